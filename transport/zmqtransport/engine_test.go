package zmqtransport_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	zmq "github.com/pebbe/zmq4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/enginetest"
	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/zmqtransport"
)

// TestEngineSuite holds the whole engine, over real ZeroMQ sockets in one
// process, to the behaviour it has in memory. The suite's tests start
// components in every order, so their endpoints must be known before
// anything binds: tcp ports are picked free beforehand.
func TestEngineSuite(t *testing.T) {
	t.Run("ipc", func(t *testing.T) {
		enginetest.Run(t, enginetest.Suite{NewEndpoints: func(t testing.TB) engine.Endpoints {
			return engine.Endpoints{Distributor: ipcEndpoint(t), Collector: ipcEndpoint(t)}
		}})
	})
	t.Run("tcp", func(t *testing.T) {
		enginetest.Run(t, enginetest.Suite{NewEndpoints: func(t testing.TB) engine.Endpoints {
			return engine.Endpoints{Distributor: tcpEndpoint(t), Collector: tcpEndpoint(t)}
		}})
	})
}

// TestEngineOnEphemeralPorts binds the distributor and the collector to
// ports the system picks, and the peers dial what each reports once bound.
func TestEngineOnEphemeralPorts(t *testing.T) {
	ctx := testCtx(t)
	const items = 50
	var results atomic.Int64
	count := engine.ResultFunc(func(context.Context, *engine.Result) (any, error) { results.Add(1); return nil, nil })
	echo := engine.HandlerFunc(func(ctx context.Context, job *engine.Job) (any, error) { return job.ItemID, nil })

	d, err := engine.NewDistributor(engine.Endpoints{Distributor: "tcp://127.0.0.1:0"},
		[]engine.TaskSpec{{Type: "calc", Task: engine.Items(items, func(i int) (any, error) { return i, nil })}})
	require.NoError(t, err)
	errs := make(chan error, 3)
	go func() { errs <- d.Run(ctx) }()
	<-d.Bound()
	require.NotContains(t, d.Addr(), ":0", "the distributor reports the port it got")

	ep := engine.Endpoints{Distributor: d.Addr(), Collector: "tcp://127.0.0.1:0"}
	c, err := engine.NewCollector(ep, count)
	require.NoError(t, err)
	go func() { errs <- c.Run(ctx) }()
	<-c.Bound()
	ep.Collector = c.Addr()
	require.NotContains(t, ep.Collector, ":0")

	_, err = engine.NewWorker(engine.Endpoints{Distributor: d.Addr(), Collector: "tcp://127.0.0.1:0"}, "calc", echo)
	require.ErrorIs(t, err, transport.ErrInvalidEndpoint, "a worker cannot dial port 0")
	w, err := engine.NewWorker(ep, "calc", echo)
	require.NoError(t, err)
	go func() { errs <- w.Run(ctx) }()
	for range 3 {
		require.NoError(t, <-errs)
	}
	assert.Equal(t, int64(items), results.Load())
}

// TestComponentsSurfaceTransportDrops: a malformed frame sent to the
// collector by a stranger shows in the collector's Stats, and the run
// completes.
func TestComponentsSurfaceTransportDrops(t *testing.T) {
	ctx := testCtx(t)
	ep := engine.Endpoints{Distributor: ipcEndpoint(t), Collector: ipcEndpoint(t)}
	small := zmqtransport.New(zmqtransport.Options{MaxMessageSize: 1 << 10})
	d, err := engine.NewDistributor(ep, []engine.TaskSpec{{Type: "calc", Task: engine.Items(10, func(i int) (any, error) { return i, nil })}},
		engine.WithQuorum(1))
	require.NoError(t, err)
	c, err := engine.NewCollector(ep, engine.ResultFunc(func(context.Context, *engine.Result) (any, error) { return nil, nil }),
		engine.WithTransport(small))
	require.NoError(t, err)
	errs := make(chan error, 3)
	go func() { errs <- d.Run(ctx) }()
	go func() { errs <- c.Run(ctx) }()
	<-c.Joined()

	zctx, err := zmq.NewContext()
	require.NoError(t, err)
	raw, err := zctx.NewSocket(zmq.DEALER)
	require.NoError(t, err)
	require.NoError(t, raw.Connect(ep.Collector))
	_, err = raw.SendBytes([]byte("not an envelope"), 0)
	require.NoError(t, err)

	w, err := engine.NewWorker(ep, "calc", engine.HandlerFunc(func(context.Context, *engine.Job) (any, error) { return nil, nil }))
	require.NoError(t, err)
	go func() { errs <- w.Run(ctx) }()
	for range 3 {
		require.NoError(t, <-errs)
	}
	st := c.Stats()
	assert.Equal(t, uint64(1), st.Transport.Dropped[transport.DropMalformed], "the collector's transport dropped the frame: %+v", st)
	assert.Zero(t, d.Stats().Transport.TotalDropped())
	require.NoError(t, raw.SetLinger(0))
	require.NoError(t, raw.Close())
	require.NoError(t, zctx.Term())
}

func TestEngineRefusesAnIPCPathOverTheOSLimit(t *testing.T) {
	long := "ipc:///" + strings.Repeat("p", zmqtransport.MaxIPCPath)
	_, err := engine.NewCollector(engine.Endpoints{Distributor: ipcEndpoint(t), Collector: long},
		engine.ResultFunc(func(context.Context, *engine.Result) (any, error) { return nil, nil }))
	require.ErrorIs(t, err, engine.ErrInvalidConfig)
	require.ErrorIs(t, err, transport.ErrInvalidEndpoint)
	assert.Contains(t, err.Error(), long)
	assert.Contains(t, err.Error(), "OS limit")
}

// A result over the transport's size limit cannot travel: the worker
// fails the item for good, saying why, and the run completes. An item
// over it stops the distributor with an error that names it.
func TestMessagesOverTheLimitFailLoudly(t *testing.T) {
	ctx := testCtx(t)
	small := zmqtransport.New(zmqtransport.Options{MaxMessageSize: 1 << 10})
	ep := engine.Endpoints{Distributor: ipcEndpoint(t), Collector: ipcEndpoint(t)}
	items := engine.Items(3, func(i int) (any, error) { return i, nil })
	d, err := engine.NewDistributor(ep, []engine.TaskSpec{{Type: "calc", Task: items}}, engine.WithTransport(small))
	require.NoError(t, err)
	var failures []string
	c, err := engine.NewCollector(ep, engine.ResultFunc(func(context.Context, *engine.Result) (any, error) { return nil, nil }),
		engine.WithTransport(small), engine.WithFailureHandler(func(_ context.Context, e *engine.ItemError) { failures = append(failures, e.Message) }))
	require.NoError(t, err)
	w, err := engine.NewWorker(ep, "calc", engine.HandlerFunc(func(_ context.Context, job *engine.Job) (any, error) {
		if job.ItemID == 2 {
			return strings.Repeat("x", 2<<10), nil
		}
		return nil, nil
	}), engine.WithTransport(small))
	require.NoError(t, err)
	require.NoError(t, engine.RunAll(ctx, d, c, w))
	require.Len(t, failures, 1)
	assert.Contains(t, failures[0], "over the size limit")
	assert.Equal(t, 2, c.Summary().Results)

	ep = engine.Endpoints{Distributor: ipcEndpoint(t), Collector: ipcEndpoint(t)}
	huge := engine.Items(1, func(int) (any, error) { return strings.Repeat("x", 2<<10), nil })
	d, err = engine.NewDistributor(ep, []engine.TaskSpec{{Type: "calc", Task: huge}}, engine.WithTransport(small))
	require.NoError(t, err)
	c, err = engine.NewCollector(ep, engine.ResultFunc(func(context.Context, *engine.Result) (any, error) { return nil, nil }), engine.WithTransport(small))
	require.NoError(t, err)
	w, err = engine.NewWorker(ep, "calc", engine.HandlerFunc(func(context.Context, *engine.Job) (any, error) { return nil, nil }), engine.WithTransport(small))
	require.NoError(t, err)
	err = engine.RunAll(ctx, d, c, w)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "item 1")
	assert.Contains(t, err.Error(), transport.ErrTooLarge.Error())
}

// Batches larger than the size limit travel split into several messages:
// items of 300 bytes under a limit of 1 KiB, handed out twenty at a time,
// and their results, which repeat them, all arrive, each once.
func TestBatchesOverTheLimitAreSplit(t *testing.T) {
	ctx := testCtx(t)
	small := zmqtransport.New(zmqtransport.Options{MaxMessageSize: 1 << 10})
	ep := engine.Endpoints{Distributor: ipcEndpoint(t), Collector: ipcEndpoint(t)}
	const n = 200
	items := engine.Items(n, func(i int) (any, error) { return fmt.Sprintf("%03d%s", i, strings.Repeat("x", 300)), nil })
	d, err := engine.NewDistributor(ep, []engine.TaskSpec{{Type: "calc", Task: items}}, engine.WithTransport(small))
	require.NoError(t, err)
	seen := map[string]int{}
	c, err := engine.NewCollector(ep, engine.ResultFunc(func(_ context.Context, res *engine.Result) (any, error) {
		var s string
		if err := res.Decode(&s); err != nil {
			return nil, err
		}
		seen[s[:3]]++
		return nil, nil
	}), engine.WithTransport(small))
	require.NoError(t, err)
	w, err := engine.NewWorker(ep, "calc", engine.HandlerFunc(func(_ context.Context, job *engine.Job) (any, error) {
		var s string
		return s, job.Decode(&s)
	}), engine.WithTransport(small), engine.WithPrefetch(19))
	require.NoError(t, err)
	require.NoError(t, engine.RunAll(ctx, d, c, w))
	require.Len(t, seen, n)
	for k, count := range seen {
		require.Equal(t, 1, count, "item %s", k)
	}
	assert.Zero(t, c.Stats().Transport.TotalDropped())
	assert.Zero(t, d.Stats().Transport.TotalDropped())
}
