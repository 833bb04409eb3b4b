package inproc_test

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
	"github.com/zmqpipeline/zmqpipeline/transport/inproc"
	"github.com/zmqpipeline/zmqpipeline/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var seq atomic.Int64

func newEndpoint(t testing.TB) string {
	return fmt.Sprintf("inproc://%s-%d", t.Name(), seq.Add(1))
}

func TestConformance(t *testing.T) {
	transporttest.Run(t, transporttest.Suite{Transport: inproc.Transport{}, NewEndpoint: newEndpoint,
		Features: transporttest.Features{DepartureOnClose: true}})
}

func TestConformanceSmallBuffers(t *testing.T) {
	transporttest.Run(t, transporttest.Suite{Transport: inproc.Transport{BufferSize: 1}, NewEndpoint: newEndpoint,
		Features: transporttest.Features{DepartureOnClose: true}})
}

func TestRegisteredForInprocScheme(t *testing.T) {
	ctx := context.Background()
	ep := newEndpoint(t)
	l, err := transport.Listen(ctx, ep)
	require.NoError(t, err)
	defer l.Close()
	c, err := transport.Dial(ctx, ep)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Send(ctx, transport.Envelope{Kind: transport.KindHello}))
	_, env, err := l.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, transport.KindHello, env.Kind)
}

func TestConnWaitsForNextListenerAfterClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ep := newEndpoint(t)
	parsed, err := transport.ParseEndpoint(ep)
	require.NoError(t, err)
	tr := inproc.Transport{}
	l1, err := tr.Listen(ctx, parsed)
	require.NoError(t, err)
	c, err := tr.Dial(ctx, parsed)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, l1.Close())

	sent := make(chan error, 1)
	go func() { sent <- c.Send(ctx, transport.Envelope{Kind: transport.KindReady, Count: 3}) }()
	l2, err := tr.Listen(ctx, parsed)
	require.NoError(t, err)
	defer l2.Close()
	_, env, err := l2.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint32(3), env.Count)
	require.NoError(t, <-sent)
}

func TestFullBufferBlocksUntilCancel(t *testing.T) {
	ctx := context.Background()
	ep := newEndpoint(t)
	parsed, err := transport.ParseEndpoint(ep)
	require.NoError(t, err)
	tr := inproc.Transport{BufferSize: 1}
	l, err := tr.Listen(ctx, parsed)
	require.NoError(t, err)
	defer l.Close()
	c, err := tr.Dial(ctx, parsed)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Send(ctx, transport.Envelope{Kind: transport.KindReady}))
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Send(sctx, transport.Envelope{Kind: transport.KindReady}) }()
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}

func TestSendsWithoutListenerQueueThenArriveInOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	parsed, err := transport.ParseEndpoint(newEndpoint(t))
	require.NoError(t, err)
	tr := inproc.Transport{BufferSize: 4}
	c, err := tr.Dial(ctx, parsed)
	require.NoError(t, err)
	defer c.Close()
	for i := range uint64(4) {
		require.NoError(t, c.Send(ctx, transport.Envelope{Kind: transport.KindWork, ItemID: i}), "queued without blocking")
	}
	full, cancelFull := context.WithCancel(ctx)
	cancelFull()
	assert.ErrorIs(t, c.Send(full, transport.Envelope{Kind: transport.KindWork, ItemID: 99}), context.Canceled, "a full queue blocks")

	l, err := tr.Listen(ctx, parsed)
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, c.Send(ctx, transport.Envelope{Kind: transport.KindWork, ItemID: 4}))
	for i := range uint64(5) {
		_, env, err := l.Recv(ctx)
		require.NoError(t, err)
		assert.Equal(t, i, env.ItemID)
	}
}

// A sender that hands an envelope's memory over (Handover) has it
// delivered as it is; one that does not gets a copy delivered, so it may
// reuse its items and payloads at once.
func TestHandoverDeliversWithoutACopy(t *testing.T) {
	ctx := context.Background()
	ep := newEndpoint(t)
	l, err := transport.Listen(ctx, ep)
	require.NoError(t, err)
	defer l.Close()
	c, err := transport.Dial(ctx, ep)
	require.NoError(t, err)
	defer c.Close()
	items := []transport.Item{{ID: 1, Payload: []byte("a")}}
	require.NoError(t, c.Send(ctx, transport.Envelope{Kind: transport.KindResult, Items: items, Handover: true}))
	_, got, err := l.Recv(ctx)
	require.NoError(t, err)
	assert.Same(t, &items[0], &got.Items[0], "handed over: the same memory")
	assert.False(t, got.Handover, "Recv returns Handover false")

	require.NoError(t, c.Send(ctx, transport.Envelope{Kind: transport.KindResult, Items: items}))
	items[0].Payload[0] = 'b' // the sender reuses its memory
	_, got, err = l.Recv(ctx)
	require.NoError(t, err)
	assert.NotSame(t, &items[0], &got.Items[0])
	assert.Equal(t, []byte("a"), got.Items[0].Payload, "not handed over: a copy")
}
