// Package transporttest is the behavioural suite every transport.Transport
// implementation must pass. Each implementation's tests call Run with a
// function that makes fresh endpoints.
package transporttest

import (
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
	// NewEndpoint returns an endpoint no other test uses.
	NewEndpoint func(t *testing.T) string
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
		{"OrderPerPeer", testOrderPerPeer},
		{"ManyPeers", testManyPeers},
		{"ReplyToRightPeer", testReplyToRightPeer},
		{"DialBeforeListen", testDialBeforeListen},
		{"CloseUnblocksRecv", testCloseUnblocksRecv},
		{"CancelUnblocksRecv", testCancelUnblocksRecv},
		{"CloseTwice", testCloseTwice},
		{"SendAfterClose", testSendAfterClose},
		{"ListenTwice", testListenTwice},
		{"SendToUnknownPeer", testSendToUnknownPeer},
		{"PayloadIsCopied", testPayloadIsCopied},
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

func (s Suite) listen(t *testing.T, ctx context.Context, endpoint string) transport.Listener {
	t.Helper()
	ep, err := transport.ParseEndpoint(endpoint)
	require.NoError(t, err)
	l, err := s.Transport.Listen(ctx, ep)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func (s Suite) dial(t *testing.T, ctx context.Context, endpoint string) transport.Conn {
	t.Helper()
	ep, err := transport.ParseEndpoint(endpoint)
	require.NoError(t, err)
	c, err := s.Transport.Dial(ctx, ep)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func work(id uint64) transport.Envelope {
	return transport.Envelope{Kind: transport.KindWork, TaskType: "t", ItemID: id, Payload: []byte(fmt.Sprint(id))}
}

func testOrderPerPeer(t *testing.T, s Suite) {
	ctx := testCtx(t)
	ep := s.NewEndpoint(t)
	l := s.listen(t, ctx, ep)
	c := s.dial(t, ctx, ep)
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
	ep := s.NewEndpoint(t)
	l := s.listen(t, ctx, ep)
	const peers, each = 8, 300
	var wg sync.WaitGroup
	errs := make(chan error, peers)
	for p := range peers {
		c := s.dial(t, ctx, ep)
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
	ep := s.NewEndpoint(t)
	l := s.listen(t, ctx, ep)
	const peers = 5
	conns := make([]transport.Conn, peers)
	sent := make(chan error, peers)
	for i := range conns {
		conns[i] = s.dial(t, ctx, ep)
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

func testDialBeforeListen(t *testing.T, s Suite) {
	ctx := testCtx(t)
	ep := s.NewEndpoint(t)
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

func testCloseUnblocksRecv(t *testing.T, s Suite) {
	ctx := testCtx(t)
	ep := s.NewEndpoint(t)
	l := s.listen(t, ctx, ep)
	c := s.dial(t, ctx, ep)
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
	ep := s.NewEndpoint(t)
	l := s.listen(t, ctx, ep)
	c := s.dial(t, ctx, ep)
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
	ep := s.NewEndpoint(t)
	l := s.listen(t, ctx, ep)
	c := s.dial(t, ctx, ep)
	require.NoError(t, c.Close())
	assert.ErrorIs(t, c.Close(), transport.ErrClosed)
	require.NoError(t, l.Close())
	assert.ErrorIs(t, l.Close(), transport.ErrClosed)
}

func testSendAfterClose(t *testing.T, s Suite) {
	ctx := testCtx(t)
	ep := s.NewEndpoint(t)
	l := s.listen(t, ctx, ep)
	c := s.dial(t, ctx, ep)
	require.NoError(t, c.Send(ctx, work(1)))
	from, _, err := l.Recv(ctx)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	assert.ErrorIs(t, c.Send(ctx, work(2)), transport.ErrClosed)
	_, err = c.Recv(ctx)
	assert.ErrorIs(t, err, transport.ErrClosed)
	require.NoError(t, l.Close())
	assert.ErrorIs(t, l.Send(ctx, from, work(3)), transport.ErrClosed)
	_, _, err = l.Recv(ctx)
	assert.ErrorIs(t, err, transport.ErrClosed)
}

func testListenTwice(t *testing.T, s Suite) {
	ctx := testCtx(t)
	ep := s.NewEndpoint(t)
	s.listen(t, ctx, ep)
	parsed, err := transport.ParseEndpoint(ep)
	require.NoError(t, err)
	l2, err := s.Transport.Listen(ctx, parsed)
	if err == nil {
		_ = l2.Close()
	}
	require.ErrorIs(t, err, transport.ErrAddrInUse)
	assert.Contains(t, err.Error(), ep, "the error names the endpoint")
}

func testSendToUnknownPeer(t *testing.T, s Suite) {
	ctx := testCtx(t)
	l := s.listen(t, ctx, s.NewEndpoint(t))
	err := l.Send(ctx, "no-such-peer", work(1))
	assert.True(t, errors.Is(err, transport.ErrUnknownPeer), "got %v", err)
}

func testPayloadIsCopied(t *testing.T, s Suite) {
	ctx := testCtx(t)
	ep := s.NewEndpoint(t)
	l := s.listen(t, ctx, ep)
	c := s.dial(t, ctx, ep)
	env := work(1)
	env.Payload = []byte("before")
	require.NoError(t, c.Send(ctx, env))
	copy(env.Payload, "AFTER!")
	_, got, err := l.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, "before", string(got.Payload))
}
