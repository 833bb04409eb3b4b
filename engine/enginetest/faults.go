package enginetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/faulty"
)

// The fault tests give one component a transport of its own, wrapped to
// inject faults into it alone, and run with a short liveness timeout.
var quickLiveness = engine.WithHeartbeat(20*time.Millisecond, 250*time.Millisecond)

// wrap returns a fault-injecting wrapper around the transport that serves
// endpoint.
func wrap(t *testing.T, endpoint string) *faulty.Transport {
	t.Helper()
	_, base, err := transport.Resolve(endpoint)
	require.NoError(t, err)
	return faulty.Wrap(base)
}

// slowly is a handler that takes a millisecond, so that a run lasts long
// enough for faults to land in its middle.
func slowly(ctx context.Context, job *engine.Job) (any, error) {
	time.Sleep(time.Millisecond)
	return echo(ctx, job)
}

// counting returns a handler that closes reached once it started n items.
func counting(n int32, h engine.HandlerFunc) (engine.HandlerFunc, <-chan struct{}) {
	var started atomic.Int32
	reached := make(chan struct{})
	return func(ctx context.Context, job *engine.Job) (any, error) {
		if started.Add(1) == n {
			close(reached)
		}
		return h(ctx, job)
	}, reached
}

// runRest runs components in their own goroutines and returns a channel of
// their errors, one each.
func runRest(ctx context.Context, comps ...engine.Runner) <-chan error {
	errs := make(chan error, len(comps))
	for _, c := range comps {
		go func() { errs <- c.Run(ctx) }()
	}
	return errs
}

func requireAllNil(t *testing.T, errs <-chan error, n int) {
	t.Helper()
	for range n {
		require.NoError(t, <-errs)
	}
}

// eventually polls cond, bounded, for a state reached asynchronously that
// nothing signals (a peer taken for gone after its timeout).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testWorkerKilledMidRun(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	const items = 300
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items)}}, quickLiveness, engine.WithQuorum(2))
	victimT := wrap(t, ep.Distributor)
	h, took := counting(10, slowly)
	victim := newWorker(t, ep, "calc", h, engine.WithTransport(victimT), engine.WithConcurrency(2))
	steady := newWorker(t, ep, "calc", slowly)
	ctx := testCtx(t)
	errs := runRest(ctx, d, rec.collector(t, ep), steady)
	victimErr := runRest(ctx, victim)
	require.True(t, waitFor(took, 10*time.Second))
	victimT.Cut() // kill -9: its connections close, nothing more from it
	assert.Error(t, <-victimErr, "the killed worker's Run fails")
	requireAllNil(t, errs, 3)
	rec.requireEachOnce(t, "calc", items)
	st := d.Stats()
	assert.Positive(t, st.PeersLost, "the distributor took the killed worker for gone")
	assert.Positive(t, st.Redelivered, "its items went to the other worker")
}

func testSilentWorkerIsTakenForGone(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	const items = 300
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items)}}, quickLiveness, engine.WithQuorum(2))
	victimT := wrap(t, ep.Distributor)
	h, took := counting(10, slowly)
	victim := newWorker(t, ep, "calc", h, engine.WithTransport(victimT))
	steady := newWorker(t, ep, "calc", slowly)
	ctx := testCtx(t)
	errs := runRest(ctx, d, rec.collector(t, ep), steady)
	victimErr := runRest(ctx, victim)
	require.True(t, waitFor(took, 10*time.Second))
	victimT.Silence(faulty.Both) // a partition: nothing either way, nothing closed
	assert.ErrorIs(t, <-victimErr, engine.ErrDistributorLost, "the cut-off worker notices its distributor's silence")
	requireAllNil(t, errs, 3)
	rec.requireEachOnce(t, "calc", items)
	assert.Positive(t, d.Stats().PeersLost)
}

func testStalledWorkerComesBackAndJoinsAgain(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	const items = 400
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items)}}, quickLiveness, engine.WithQuorum(2))
	victimT := wrap(t, ep.Distributor)
	var welcomes atomic.Int32
	var stalled atomic.Bool
	victimT.Set(func(dir faulty.Direction, env transport.Envelope) faulty.Action {
		if dir == faulty.In && env.Kind == transport.KindWelcome {
			welcomes.Add(1)
		}
		if dir == faulty.Out && stalled.Load() {
			return faulty.Hold
		}
		return faulty.Pass
	})
	h, took := counting(5, slowly)
	victim := newWorker(t, ep, "calc", h, engine.WithTransport(victimT))
	steady := newWorker(t, ep, "calc", func(ctx context.Context, job *engine.Job) (any, error) {
		time.Sleep(2 * time.Millisecond) // the run outlasts the stall
		return echo(ctx, job)
	})
	ctx := testCtx(t)
	errs := runRest(ctx, d, rec.collector(t, ep), steady, victim)
	require.True(t, waitFor(took, 10*time.Second))
	// SIGSTOP, as the others see it: nothing from the worker reaches them.
	stalled.Store(true)
	eventually(t, "the distributor takes the stalled worker for gone", func() bool { return d.Stats().PeersLost > 0 })
	// SIGCONT: what it sent meanwhile arrives (late results, stale
	// heartbeats); the distributor tells it it is gone, and it joins again.
	stalled.Store(false)
	victimT.Release()
	requireAllNil(t, errs, 4)
	rec.requireEachOnce(t, "calc", items)
	assert.GreaterOrEqual(t, welcomes.Load(), int32(2), "the worker that came back was welcomed again")
	assert.Positive(t, d.Stats().Redelivered)
}

func testDuplicatedMessagesAreHandledOnce(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	const items = 100
	twice := func(kind transport.Kind) faulty.Rule {
		return func(dir faulty.Direction, env transport.Envelope) faulty.Action {
			if dir == faulty.Out && env.Kind == kind {
				return faulty.Duplicate
			}
			return faulty.Pass
		}
	}
	dT, wT, cT := wrap(t, ep.Distributor), wrap(t, ep.Distributor), wrap(t, ep.Collector)
	dT.Set(twice(transport.KindWork))   // every item handed out twice
	wT.Set(twice(transport.KindResult)) // every result sent twice
	cT.Set(twice(transport.KindAck))    // every ACK sent twice
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items)}}, engine.WithTransport(dT))
	w := newWorker(t, ep, "calc", echo, engine.WithTransport(wT))
	c := rec.collector(t, ep, engine.WithTransport(cT))
	require.NoError(t, engine.RunAll(testCtx(t), d, w, c))
	rec.requireEachOnce(t, "calc", items)
	sum := c.Summary()
	assert.Equal(t, items, sum.Results)
	// Each item's three extra results are acknowledged, not handled; those
	// of duplicated work still queued when the run ended are never made.
	assert.Positive(t, sum.Duplicates)
	assert.LessOrEqual(t, sum.Duplicates, 3*items)
	assert.Equal(t, uint64(sum.Duplicates), c.Stats().Duplicates)
	assert.Equal(t, sum.Duplicates, sum.ByType["calc"].Duplicates, "the duplicates are counted by task type too")
}

func testCollectorKilledAndReplaced(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	const items = 300
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items)}}, quickLiveness)
	first, second := newRecorder(), newRecorder()
	firstT := wrap(t, ep.Collector)
	handled := make(chan struct{})
	var once sync.Once
	c1, err := engine.NewCollector(ep, engine.ResultFunc(func(ctx context.Context, res *engine.Result) (any, error) {
		if _, err := first.HandleResult(ctx, res); err != nil {
			return nil, err
		}
		first.mu.Lock()
		n := len(first.seen["calc"])
		first.mu.Unlock()
		if n == 50 {
			once.Do(func() { close(handled) })
		}
		return nil, nil
	}), engine.WithTransport(firstT), engine.WithLogger(testLogger(t)))
	require.NoError(t, err)
	ctx := testCtx(t)
	errs := runRest(ctx, d, newWorker(t, ep, "calc", slowly), newWorker(t, ep, "calc", slowly))
	c1Err := runRest(ctx, c1)
	require.True(t, waitFor(handled, 10*time.Second))
	firstT.Cut()
	assert.Error(t, <-c1Err, "the killed collector's Run fails")
	c2 := second.collector(t, ep)
	errs2 := runRest(ctx, c2)
	requireAllNil(t, errs, 3)
	require.NoError(t, <-errs2)

	first.mu.Lock()
	second.mu.Lock()
	defer first.mu.Unlock()
	defer second.mu.Unlock()
	twice := 0
	for id := uint64(1); id <= items; id++ {
		n1, n2 := first.seen["calc"][id], second.seen["calc"][id]
		require.LessOrEqual(t, n1, 1, "item %d handled twice by one collector", id)
		require.LessOrEqual(t, n2, 1, "item %d handled twice by one collector", id)
		require.Positive(t, n1+n2, "item %d was never collected", id)
		if n1+n2 > 1 {
			twice++
		}
	}
	// What the first collector handled and had not acknowledged when it
	// was killed is handled again by the second: at most the items in
	// flight then, bounded by the workers' windows.
	assert.LessOrEqual(t, twice, 2*(1+64), "items handled by both collectors")
	require.Len(t, second.finished, 1, "the new collector finishes the run")
	assert.Positive(t, d.Stats().PeersLost)
	t.Logf("collector killed after 50 results: %d items handled by both collectors", twice)
}

func testDistributorLost(t *testing.T, s Suite) {
	for _, rejoin := range []bool{false, true} {
		name := "peers stop"
		if rejoin {
			name = "peers join the next distributor"
		}
		t.Run(name, func(t *testing.T) {
			ep := s.NewEndpoints(t)
			const items = 200
			d1T := wrap(t, ep.Distributor)
			d1 := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items)}}, quickLiveness, engine.WithTransport(d1T))
			rec := newRecorder()
			var opts []engine.PeerOption
			if rejoin {
				opts = append(opts, engine.WithRejoin(10*time.Second))
			}
			h, took := counting(20, slowly)
			wOpts := []engine.WorkerOption{}
			cOpts := []engine.CollectorOption{}
			for _, o := range opts {
				wOpts = append(wOpts, o)
				cOpts = append(cOpts, o)
			}
			w := newWorker(t, ep, "calc", h, wOpts...)
			c := rec.collector(t, ep, cOpts...)
			ctx := testCtx(t)
			peers := runRest(ctx, w, c)
			d1Err := runRest(ctx, d1)
			require.True(t, waitFor(took, 10*time.Second))
			d1T.Cut() // kill -9 the distributor
			assert.Error(t, <-d1Err)
			if !rejoin {
				for range 2 {
					assert.ErrorIs(t, <-peers, engine.ErrDistributorLost, "no peer hangs: each gives up after the timeout")
				}
				return
			}
			// A new distributor, a new run: the peers drop what they held
			// for the old one and take part in it.
			d2 := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(50)}}, quickLiveness)
			require.NoError(t, <-runRest(ctx, d2))
			requireAllNil(t, peers, 2)
			rec.mu.Lock()
			defer rec.mu.Unlock()
			require.NotEmpty(t, rec.finished, "the collector finished the new run")
			last := rec.finished[len(rec.finished)-1]
			assert.Equal(t, 50, last.Results, "the summary is the new run's")
		})
	}
}

// testNoDeadlockByConfiguration: a window far larger than the
// transports' buffers and a hook that fails every item in the worker's
// main loop once wedged the distributor, the worker and the collector,
// each blocked sending to another's full inbox.
func testNoDeadlockByConfiguration(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	const items = 3500
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items), MaxAttempts: 1}})
	w := newWorker(t, ep, "calc", echo, engine.WithPrefetch(3500), engine.WithPrepare(func(context.Context, *engine.Job) (any, error) {
		return nil, errors.New("cannot prepare")
	}))
	require.NoError(t, engine.RunAll(testCtx(t), d, w, rec.collector(t, ep)))
	rec.requireEachOnce(t, "calc", items)
	assert.Len(t, rec.failures, items)
}

func testDrainFinishesWhatTheWorkerHolds(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	const items = 200
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items)}}, engine.WithQuorum(2))
	h, took := counting(4, func(ctx context.Context, job *engine.Job) (any, error) {
		time.Sleep(10 * time.Millisecond)
		return echo(ctx, job)
	})
	leaving := newWorker(t, ep, "calc", h, engine.WithConcurrency(2), engine.WithPrefetch(4))
	steady := newWorker(t, ep, "calc", slowly)
	ctx := testCtx(t)
	errs := runRest(ctx, d, rec.collector(t, ep), steady)
	leavingErr := runRest(ctx, leaving)
	require.True(t, waitFor(took, 10*time.Second))
	leaving.Drain(10 * time.Second)
	require.NoError(t, <-leavingErr, "a drained worker's Run returns nil")
	done := leaving.Executed()
	requireAllNil(t, errs, 3)
	rec.requireEachOnce(t, "calc", items)
	assert.GreaterOrEqual(t, done, int64(4), "it finished the items it held")
	assert.Equal(t, done, leaving.Executed(), "and took no more after it was asked to drain")
}

func testDrainGraceIsBounded(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	const items = 50
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items)}}, engine.WithQuorum(2))
	stuck, holding := stuckWorker(t, ep, "calc", engine.WithConcurrency(2))
	steady := newWorker(t, ep, "calc", slowly)
	ctx := testCtx(t)
	errs := runRest(ctx, d, rec.collector(t, ep), steady)
	stuckErr := runRest(ctx, stuck)
	require.True(t, waitFor(holding, 10*time.Second))
	start := time.Now()
	stuck.Drain(50 * time.Millisecond)
	require.NoError(t, <-stuckErr)
	assert.Less(t, time.Since(start), 5*time.Second, "the grace bounds the drain")
	requireAllNil(t, errs, 3)
	rec.requireEachOnce(t, "calc", items)
	assert.Zero(t, stuck.Executed(), "what it could not finish went to the other worker")
	assert.Positive(t, d.Stats().Redelivered)
}
