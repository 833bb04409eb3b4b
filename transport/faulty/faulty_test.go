package faulty_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/faulty"
	"github.com/zmqpipeline/zmqpipeline/transport/inproc"
	"github.com/zmqpipeline/zmqpipeline/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var seq atomic.Int64

func newEndpoint(t testing.TB) string { return fmt.Sprintf("inproc://faulty-%d", seq.Add(1)) }

// TestConformance: a wrapper that passes everything is the transport it
// wraps.
func TestConformance(t *testing.T) {
	transporttest.Run(t, transporttest.Suite{Transport: faulty.Wrap(inproc.Transport{}), NewEndpoint: newEndpoint,
		Features: transporttest.Features{DepartureOnClose: true}})
}

func work(id uint64) transport.Envelope {
	return transport.Envelope{Kind: transport.KindWork, TaskType: "t", ItemID: id}
}

// pair is a plain listener and a conn through a wrapper.
func pair(t *testing.T) (context.Context, transport.Listener, transport.Conn, *faulty.Transport, transport.PeerID) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	ep, err := transport.ParseEndpoint(newEndpoint(t))
	require.NoError(t, err)
	l, err := inproc.Transport{}.Listen(ctx, ep)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	w := faulty.Wrap(inproc.Transport{})
	c, err := w.Dial(ctx, ep)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Send(ctx, transport.Envelope{Kind: transport.KindHello}))
	from, _, err := l.Recv(ctx)
	require.NoError(t, err)
	return ctx, l, c, w, from
}

func TestStallHoldsBothWaysAndResumeReleasesInOrder(t *testing.T) {
	ctx, l, c, w, from := pair(t)
	w.Stall(faulty.Both)
	for i := range uint64(3) {
		require.NoError(t, c.Send(ctx, work(i)), "a held send returns at once")
		require.NoError(t, l.Send(ctx, from, work(10+i)))
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, _, err := l.Recv(short)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "nothing the stalled side sent arrived")
	received := make(chan uint64, 3)
	go func() {
		for range 3 {
			env, err := c.Recv(ctx)
			if err != nil {
				return
			}
			received <- env.ItemID
		}
	}()
	select {
	case id := <-received:
		t.Fatalf("the stalled side read %d", id)
	case <-time.After(50 * time.Millisecond):
	}
	w.Resume()
	for i := range uint64(3) {
		_, env, err := l.Recv(ctx)
		require.NoError(t, err)
		assert.Equal(t, i, env.ItemID, "released in order")
		assert.Equal(t, 10+i, <-received, "what came in is read in order, after the resume")
	}
}

func TestSilenceAndDuplicate(t *testing.T) {
	ctx, l, c, w, _ := pair(t)
	w.Silence(faulty.Out)
	require.NoError(t, c.Send(ctx, work(1)))
	w.Set(func(d faulty.Direction, env transport.Envelope) faulty.Action {
		if d == faulty.Out && env.ItemID == 2 {
			return faulty.Duplicate
		}
		return faulty.Pass
	})
	require.NoError(t, c.Send(ctx, work(2)))
	require.NoError(t, c.Send(ctx, work(3)))
	var got []uint64
	for range 3 {
		_, env, err := l.Recv(ctx)
		require.NoError(t, err)
		got = append(got, env.ItemID)
	}
	assert.Equal(t, []uint64{2, 2, 3}, got, "1 was dropped, 2 came twice")
}

func TestCutClosesEverythingAsAKilledProcessWould(t *testing.T) {
	ctx, l, c, w, from := pair(t)
	recvErr := make(chan error, 1)
	go func() { _, err := c.Recv(ctx); recvErr <- err }()
	w.Cut()
	assert.ErrorIs(t, <-recvErr, transport.ErrClosed, "a Recv in progress ends")
	assert.ErrorIs(t, c.Send(ctx, work(1)), transport.ErrClosed)
	assert.ErrorIs(t, l.Send(ctx, from, work(1)), transport.ErrUnknownPeer, "the other side sees the connection gone")
	assert.NoError(t, c.Close(), "the component's own Close still succeeds once")
	assert.ErrorIs(t, c.Close(), transport.ErrClosed)
	_, err := w.Dial(ctx, l.Addr())
	assert.ErrorIs(t, err, transport.ErrClosed, "a cut wrapper makes nothing new")
}
