// Package transporttest is the behavioural suite every transport.Transport
// implementation must pass: one test per property the transport contract
// (see transport.Transport) states. Each implementation's tests call Run
// with the transport, a function that makes fresh endpoints, and the
// Features in which implementations legitimately differ.
package transporttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// Suite describes the transport under test.
type Suite struct {
	// Transport is the implementation under test.
	Transport transport.Transport
	// NewEndpoint returns an endpoint to listen on that no other test
	// uses. It may leave a part to the transport ("tcp://127.0.0.1:0"):
	// the tests dial what the Listener's Addr reports.
	NewEndpoint func(t testing.TB) string
	// Features says where the transport differs from others.
	Features Features
}

// Features are the properties in which transports legitimately differ.
type Features struct {
	// DepartureOnClose: a Listener knows that a peer departed as soon as
	// the peer's Conn.Close returned, so the next Send to it fails with
	// ErrUnknownPeer. Without it the Listener must still find out, by
	// the time a few sends to the peer failed on the wire, and count the
	// message that found out as transport.DropPeerGone.
	DepartureOnClose bool
	// MaxMessageSize is the largest encoded envelope the transport, as set
	// up for the suite, accepts; 0 for no limit. Send must refuse a larger
	// one with transport.ErrTooLarge.
	MaxMessageSize int
}

// deadline bounds every test of the suite; none comes near it when the
// transport works.
const deadline = 20 * time.Second

// Run runs every conformance test as a subtest of t.
func Run(t *testing.T, s Suite) {
	tests := []struct {
		name string
		fn   func(*testing.T, Suite)
	}{
		{"AddrIsDialable", testAddrIsDialable},
		{"OrderPerPeer", testOrderPerPeer},
		{"ManyPeers", testManyPeers},
		{"ReplyToRightPeer", testReplyToRightPeer},
		{"DialBeforeListen", testDialBeforeListen},
		{"ReconnectToNextListener", testReconnectToNextListener},
		{"CloseUnblocksRecv", testCloseUnblocksRecv},
		{"CancelUnblocksRecv", testCancelUnblocksRecv},
		{"CloseTwice", testCloseTwice},
		{"SendAfterClose", testSendAfterClose},
		{"ListenTwice", testListenTwice},
		{"SendToUnknownPeer", testSendToUnknownPeer},
		{"SendToDepartedPeer", testSendToDepartedPeer},
		{"PayloadIsCopied", testPayloadIsCopied},
		{"SendWithDoneContextNeverWaits", testSendWithDoneContextNeverWaits},
		{"LargeMessage", testLargeMessage},
		{"OversizeIsRefused", testOversizeIsRefused},
		{"LargeBatchIsSplit", testLargeBatchIsSplit},
		{"StatsCountPeers", testStatsCountPeers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, s) })
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}

func parse(t *testing.T, endpoint string) transport.Endpoint {
	t.Helper()
	ep, err := transport.ParseEndpoint(endpoint)
	require.NoError(t, err)
	return ep
}

// listen binds a fresh endpoint, or the one given.
func (s Suite) listen(t *testing.T, ctx context.Context, at ...transport.Endpoint) transport.Listener {
	t.Helper()
	ep := parse(t, s.NewEndpoint(t))
	if len(at) > 0 {
		ep = at[0]
	}
	l, err := s.Transport.Listen(ctx, ep)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func (s Suite) dial(t *testing.T, ctx context.Context, ep transport.Endpoint) transport.Conn {
	t.Helper()
	c, err := s.Transport.Dial(ctx, ep)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func work(id uint64) transport.Envelope {
	return transport.Envelope{Kind: transport.KindWork, TaskType: "t", ItemID: id, Payload: []byte(fmt.Sprint(id))}
}

// hello makes c known to l and returns the id l knows it by.
func hello(t *testing.T, ctx context.Context, l transport.Listener, c transport.Conn) transport.PeerID {
	t.Helper()
	require.NoError(t, c.Send(ctx, transport.Envelope{Kind: transport.KindHello}))
	from, env, err := l.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, transport.KindHello, env.Kind)
	return from
}

func testAddrIsDialable(t *testing.T, s Suite) {
	ctx := testCtx(t)
	asked := parse(t, s.NewEndpoint(t))
	l := s.listen(t, ctx, asked)
	addr := l.Addr()
	assert.Equal(t, asked.Scheme, addr.Scheme)
	reparsed, err := transport.ParseEndpoint(addr.String())
	require.NoError(t, err, "Addr is an endpoint string")
	assert.Equal(t, addr, reparsed)
	require.NoError(t, transport.Check(s.Transport, addr, transport.ForDial), "Addr can be dialled")
	c := s.dial(t, ctx, addr)
	from := hello(t, ctx, l, c)
	require.NoError(t, l.Send(ctx, from, work(1)))
	env, err := c.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), env.ItemID)
}

func testOrderPerPeer(t *testing.T, s Suite) {
	ctx := testCtx(t)
	l := s.listen(t, ctx)
	c := s.dial(t, ctx, l.Addr())
	const n = 2000
	sendErr := make(chan error, 1)
	go func() {
		for i := range uint64(n) {
			if err := c.Send(ctx, work(i)); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	var from transport.PeerID
	for i := range uint64(n) {
		p, env, err := l.Recv(ctx)
		require.NoError(t, err)
		if i == 0 {
			from = p
		}
		require.Equal(t, from, p)
		require.Equal(t, i, env.ItemID)
		require.Equal(t, fmt.Sprint(i), string(env.Payload))
	}
	require.NoError(t, <-sendErr)
	// And the other way round.
	for i := range uint64(n) {
		require.NoError(t, l.Send(ctx, from, work(i)))
		env, err := c.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, i, env.ItemID)
	}
}

func testManyPeers(t *testing.T, s Suite) {
	ctx := testCtx(t)
	l := s.listen(t, ctx)
	const peers, each = 8, 300
	var wg sync.WaitGroup
	errs := make(chan error, peers)
	for p := range peers {
		c := s.dial(t, ctx, l.Addr())
		wg.Go(func() {
			for i := range uint64(each) {
				env := work(i)
				env.Count = uint32(p)
				if err := c.Send(ctx, env); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	next := map[uint32]uint64{}
	idOf := map[uint32]transport.PeerID{}
	for range peers * each {
		from, env, err := l.Recv(ctx)
		require.NoError(t, err)
		if id, ok := idOf[env.Count]; ok {
			require.Equal(t, id, from, "one peer keeps one id")
		} else {
			idOf[env.Count] = from
		}
		require.Equal(t, next[env.Count], env.ItemID, "peer %d out of order", env.Count)
		next[env.Count]++
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	distinct := map[transport.PeerID]bool{}
	for _, id := range idOf {
		distinct[id] = true
	}
	assert.Len(t, distinct, peers, "every peer has its own id")
}

func testReplyToRightPeer(t *testing.T, s Suite) {
	ctx := testCtx(t)
	l := s.listen(t, ctx)
	const peers = 5
	conns := make([]transport.Conn, peers)
	sent := make(chan error, peers)
	for i := range conns {
		conns[i] = s.dial(t, ctx, l.Addr())
		go func() { sent <- conns[i].Send(ctx, transport.Envelope{Kind: transport.KindHello, Count: uint32(i)}) }()
	}
	for range peers {
		from, env, err := l.Recv(ctx)
		require.NoError(t, err)
		require.NoError(t, l.Send(ctx, from, transport.Envelope{Kind: transport.KindWelcome, Count: env.Count}))
	}
	for range peers {
		require.NoError(t, <-sent)
	}
	for i, c := range conns {
		env, err := c.Recv(ctx)
		require.NoError(t, err)
		assert.Equal(t, uint32(i), env.Count)
	}
}

// vacated returns an endpoint that a Listener of this transport held a
// moment ago and released, so that a test can dial it before anyone
// listens there.
func (s Suite) vacated(t *testing.T, ctx context.Context) transport.Endpoint {
	t.Helper()
	l, err := s.Transport.Listen(ctx, parse(t, s.NewEndpoint(t)))
	require.NoError(t, err)
	addr := l.Addr()
	require.NoError(t, l.Close())
	return addr
}

func testDialBeforeListen(t *testing.T, s Suite) {
	ctx := testCtx(t)
	ep := s.vacated(t, ctx)
	c := s.dial(t, ctx, ep)
	sent := make(chan error, 1)
	go func() { sent <- c.Send(ctx, work(7)) }()
	l := s.listen(t, ctx, ep)
	from, env, err := l.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(7), env.ItemID)
	require.NoError(t, <-sent)
	require.NoError(t, l.Send(ctx, from, work(8)))
	env, err = c.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(8), env.ItemID)
}

func testReconnectToNextListener(t *testing.T, s Suite) {
	ctx := testCtx(t)
	first, err := s.Transport.Listen(ctx, parse(t, s.NewEndpoint(t)))
	require.NoError(t, err)
	ep := first.Addr()
	c := s.dial(t, ctx, ep)
	hello(t, ctx, first, c)
	require.NoError(t, first.Close())

	second := s.listen(t, ctx, ep)
	// Messages sent while the first Listener went away may be lost (no
	// live end); the Conn must reach the second one all the same. The
	// sends are spaced so that a transport that reconnects with backoff is
	// not flooded; every one is bounded by the test's context.
	got := make(chan transport.PeerID, 1)
	go func() {
		from, _, err := second.Recv(ctx)
		if err == nil {
			got <- from
		}
		close(got)
	}()
	var from transport.PeerID
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for from == "" {
		require.NoError(t, c.Send(ctx, work(1)))
		select {
		case id, ok := <-got:
			require.True(t, ok, "the second Listener's Recv failed")
			from = id
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("the Conn never reached the next Listener of its endpoint")
		}
	}
	require.NoError(t, second.Send(ctx, from, work(2)))
	for {
		env, err := c.Recv(ctx)
		require.NoError(t, err)
		if env.ItemID == 2 {
			break
		}
	}
}

func testCloseUnblocksRecv(t *testing.T, s Suite) {
	ctx := testCtx(t)
	l := s.listen(t, ctx)
	c := s.dial(t, ctx, l.Addr())
	lDone, cDone := make(chan error, 1), make(chan error, 1)
	go func() { _, _, err := l.Recv(ctx); lDone <- err }()
	go func() { _, err := c.Recv(ctx); cDone <- err }()
	require.NoError(t, c.Close())
	require.NoError(t, l.Close())
	assert.ErrorIs(t, <-lDone, transport.ErrClosed)
	assert.ErrorIs(t, <-cDone, transport.ErrClosed)
}

func testCancelUnblocksRecv(t *testing.T, s Suite) {
	ctx := testCtx(t)
	l := s.listen(t, ctx)
	c := s.dial(t, ctx, l.Addr())
	rctx, cancel := context.WithCancel(ctx)
	lDone, cDone := make(chan error, 1), make(chan error, 1)
	go func() { _, _, err := l.Recv(rctx); lDone <- err }()
	go func() { _, err := c.Recv(rctx); cDone <- err }()
	cancel()
	assert.ErrorIs(t, <-lDone, context.Canceled)
	assert.ErrorIs(t, <-cDone, context.Canceled)
}

func testCloseTwice(t *testing.T, s Suite) {
	ctx := testCtx(t)
	l := s.listen(t, ctx)
	c := s.dial(t, ctx, l.Addr())
	require.NoError(t, c.Close())
	assert.ErrorIs(t, c.Close(), transport.ErrClosed)
	require.NoError(t, l.Close())
	assert.ErrorIs(t, l.Close(), transport.ErrClosed)
}

func testSendAfterClose(t *testing.T, s Suite) {
	ctx := testCtx(t)
	l := s.listen(t, ctx)
	c := s.dial(t, ctx, l.Addr())
	from := hello(t, ctx, l, c)
	require.NoError(t, c.Close())
	assert.ErrorIs(t, c.Send(ctx, work(2)), transport.ErrClosed)
	_, err := c.Recv(ctx)
	assert.ErrorIs(t, err, transport.ErrClosed)
	require.NoError(t, l.Close())
	assert.ErrorIs(t, l.Send(ctx, from, work(3)), transport.ErrClosed)
	_, _, err = l.Recv(ctx)
	assert.ErrorIs(t, err, transport.ErrClosed)
}

func testListenTwice(t *testing.T, s Suite) {
	ctx := testCtx(t)
	l := s.listen(t, ctx)
	l2, err := s.Transport.Listen(ctx, l.Addr())
	if err == nil {
		_ = l2.Close()
	}
	require.ErrorIs(t, err, transport.ErrAddrInUse)
	assert.Contains(t, err.Error(), l.Addr().String(), "the error names the endpoint")
}

func testSendToUnknownPeer(t *testing.T, s Suite) {
	ctx := testCtx(t)
	l := s.listen(t, ctx)
	err := l.Send(ctx, "no-such-peer", work(1))
	assert.True(t, errors.Is(err, transport.ErrUnknownPeer), "got %v", err)
}

func testSendToDepartedPeer(t *testing.T, s Suite) {
	ctx := testCtx(t)
	l := s.listen(t, ctx)
	c := s.dial(t, ctx, l.Addr())
	from := hello(t, ctx, l, c)
	require.NoError(t, c.Close())
	if s.Features.DepartureOnClose {
		assert.ErrorIs(t, l.Send(ctx, from, work(1)), transport.ErrUnknownPeer)
		assert.Zero(t, transport.StatsOf(l).Peers, "the departed peer is not counted")
		return
	}
	// The Listener learns of the departure from the wire: a send to the
	// peer fails there, and the send after that is refused. The close
	// reaches the Listener asynchronously, so sends are retried, spaced
	// and bounded.
	var err error
	accepted := 0 // sends that returned nil although the peer was gone
	for i := 0; i < 500 && err == nil; i++ {
		if err = l.Send(ctx, from, work(uint64(i))); err == nil {
			accepted++
			time.Sleep(10 * time.Millisecond)
		}
	}
	require.ErrorIs(t, err, transport.ErrUnknownPeer, "the Listener never found out that the peer departed")
	if _, ok := l.(transport.StatsReporter); ok {
		st := transport.StatsOf(l)
		if accepted > 0 {
			assert.Positive(t, st.Dropped[transport.DropPeerGone], "%d messages for the departed peer were accepted and none is counted as dropped", accepted)
		}
		assert.Zero(t, st.Peers, "the departed peer is not counted")
	}
}

func testPayloadIsCopied(t *testing.T, s Suite) {
	ctx := testCtx(t)
	l := s.listen(t, ctx)
	c := s.dial(t, ctx, l.Addr())
	env := work(1)
	env.Payload = []byte("before")
	require.NoError(t, c.Send(ctx, env))
	copy(env.Payload, "AFTER!")
	from, got, err := l.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, "before", string(got.Payload))
	env.Payload = []byte("reply")
	require.NoError(t, l.Send(ctx, from, env))
	copy(env.Payload, "REPLY")
	back, err := c.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, "reply", string(back.Payload))
}

func testLargeMessage(t *testing.T, s Suite) {
	ctx := testCtx(t)
	size := 4 << 20
	if m := s.Features.MaxMessageSize; m > 0 {
		size = min(size, m-64) // room for the envelope's header
	}
	l := s.listen(t, ctx)
	c := s.dial(t, ctx, l.Addr())
	big := work(1)
	big.Payload = bytes.Repeat([]byte("0123456789abcdef"), size/16)
	require.NoError(t, c.Send(ctx, big))
	from, got, err := l.Recv(ctx)
	require.NoError(t, err)
	require.True(t, bytes.Equal(big.Payload, got.Payload), "a %d-byte payload arrives whole", len(big.Payload))
	require.NoError(t, l.Send(ctx, from, big))
	back, err := c.Recv(ctx)
	require.NoError(t, err)
	require.True(t, bytes.Equal(big.Payload, back.Payload))
}

func testOversizeIsRefused(t *testing.T, s Suite) {
	limit := s.Features.MaxMessageSize
	if limit == 0 {
		t.Skip("the transport has no message size limit (Features.MaxMessageSize is 0)")
	}
	ctx := testCtx(t)
	l := s.listen(t, ctx)
	c := s.dial(t, ctx, l.Addr())
	sized := func(id uint64, n int) transport.Envelope {
		env := work(id)
		env.Payload = make([]byte, n-(&transport.Envelope{Kind: env.Kind, TaskType: env.TaskType}).EncodedLen())
		require.Equal(t, n, env.EncodedLen())
		return env
	}
	over := sized(1, limit+1)
	require.ErrorIs(t, c.Send(ctx, over), transport.ErrTooLarge, "a Conn refuses a message over the limit")
	require.NoError(t, c.Send(ctx, sized(2, limit)), "a message of exactly the limit goes")
	from, env, err := l.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), env.ItemID, "the refused message was not sent")
	require.ErrorIs(t, l.Send(ctx, from, over), transport.ErrTooLarge, "a Listener refuses one too")
	require.NoError(t, l.Send(ctx, from, work(3)))
	back, err := c.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), back.ItemID)
	assert.Zero(t, transport.StatsOf(l).TotalDropped(), "nothing oversize was sent, so nothing was dropped")
}

// testLargeBatchIsSplit: a batch larger than the size limit arrives as
// several messages, with every item once and in order, both ways; a batch
// with an item too large to travel alone is refused whole.
func testLargeBatchIsSplit(t *testing.T, s Suite) {
	limit := s.Features.MaxMessageSize
	if limit == 0 {
		t.Skip("the transport has no message size limit (Features.MaxMessageSize is 0)")
	}
	ctx := testCtx(t)
	l := s.listen(t, ctx)
	c := s.dial(t, ctx, l.Addr())
	const n = 10
	batch := transport.Envelope{Kind: transport.KindResult, TaskType: "t", Run: 3}
	for i := range n {
		batch.Items = append(batch.Items, transport.Item{ID: uint64(i + 1), Attempt: 1, Payload: bytes.Repeat([]byte{byte(i)}, limit/4)})
	}
	received := func(recv func() (transport.Envelope, error)) {
		t.Helper()
		var next uint64 = 1
		for next <= n {
			env, err := recv()
			require.NoError(t, err)
			require.Equal(t, uint64(3), env.Run, "every part repeats the header")
			for _, it := range env.Items {
				require.Equal(t, next, it.ID, "items in order, each once")
				require.True(t, bytes.Equal(batch.Items[it.ID-1].Payload, it.Payload), "item %d arrives whole", it.ID)
				next++
			}
		}
	}
	require.NoError(t, c.Send(ctx, batch))
	var from transport.PeerID
	received(func() (transport.Envelope, error) {
		f, env, err := l.Recv(ctx)
		from = f
		return env, err
	})
	require.NoError(t, l.Send(ctx, from, batch))
	received(func() (transport.Envelope, error) { return c.Recv(ctx) })

	tooBig := batch
	tooBig.Items = []transport.Item{{ID: 1}, {ID: 2, Payload: make([]byte, limit)}}
	require.ErrorIs(t, c.Send(ctx, tooBig), transport.ErrTooLarge)
	require.NoError(t, c.Send(ctx, work(9)))
	_, env, err := l.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(9), env.ItemID, "nothing of the refused batch was sent")
}

func testStatsCountPeers(t *testing.T, s Suite) {
	ctx := testCtx(t)
	l := s.listen(t, ctx)
	if _, ok := l.(transport.StatsReporter); !ok {
		t.Skip("the Listener does not report Stats")
	}
	for range 3 {
		hello(t, ctx, l, s.dial(t, ctx, l.Addr()))
	}
	st := transport.StatsOf(l)
	assert.Equal(t, 3, st.Peers)
	assert.Zero(t, st.TotalDropped(), "nothing was dropped: %v", st.Dropped)
}

// testSendWithDoneContextNeverWaits: a Send with a context that is already
// done queues the message or refuses it at once, and a refused message is
// never delivered. The peer reads nothing until every send returned, so a
// transport with bounded buffers refuses some.
func testSendWithDoneContextNeverWaits(t *testing.T, s Suite) {
	ctx := testCtx(t)
	l := s.listen(t, ctx)
	c := s.dial(t, ctx, l.Addr())
	from := hello(t, ctx, l, c)
	done, cancel := context.WithCancel(ctx)
	cancel()
	const n = 5000
	var queued []uint64
	for i := range uint64(n) {
		err := l.Send(done, from, work(i))
		if err == nil {
			queued = append(queued, i)
			continue
		}
		require.ErrorIs(t, err, context.Canceled, "send %d", i)
	}
	require.NotEmpty(t, queued, "a Send with a done context queues while there is room")
	for _, want := range queued {
		env, err := c.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, want, env.ItemID, "what was queued arrives in order, and nothing that was refused")
	}
	// And the other way round, from the Conn.
	queued = queued[:0]
	for i := range uint64(n) {
		err := c.Send(done, work(i))
		if err == nil {
			queued = append(queued, i)
			continue
		}
		require.ErrorIs(t, err, context.Canceled, "send %d", i)
	}
	require.NotEmpty(t, queued)
	for _, want := range queued {
		_, env, err := l.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, want, env.ItemID)
	}
}
