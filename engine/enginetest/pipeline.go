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
)

func testSingleWorkerCollectsEveryItemOnce(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(300)}})
	w := newWorker(t, ep, "calc", echo)
	require.NoError(t, engine.RunAll(testCtx(t), d, w, rec.collector(t, ep)))

	rec.requireEachOnce(t, "calc", 300)
	assert.Len(t, rec.finished, 1, "finished hook runs exactly once")
	assert.Equal(t, 300, rec.finished[0].Results)
	assert.Equal(t, int64(300), w.Executed())
	got := map[int64]bool{}
	for _, v := range rec.values {
		got[v.(int64)] = true
	}
	assert.Len(t, got, 300, "every payload arrived as a result")
}

func testLoadIsBalancedBetweenTwoWorkers(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	const items = 1000
	// The quorum makes both workers start together: over a network one of
	// them may join a reconnect interval later, which is a head start, not
	// unfairness.
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items)}}, engine.WithQuorum(2))
	work := func(ctx context.Context, job *engine.Job) (any, error) {
		time.Sleep(100 * time.Microsecond) // the simulated work the seed's examples do
		return nil, nil
	}
	w1 := newWorker(t, ep, "calc", work)
	w2 := newWorker(t, ep, "calc", work)
	require.NoError(t, engine.RunAll(testCtx(t), d, w1, w2, rec.collector(t, ep)))

	rec.requireEachOnce(t, "calc", items)
	for _, w := range []*engine.Worker{w1, w2} {
		share := float64(w.Executed()) / items
		assert.True(t, share >= 0.4 && share <= 0.6, "worker share %.3f is outside 40-60%%", share)
	}
	assert.Equal(t, int64(items), w1.Executed()+w2.Executed())
}

func testConcurrentWorkerHooks(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	const goroutines, items = 4, 40
	var (
		mu            sync.Mutex
		initOrder     []string
		goroutineSeen = map[int]bool{}
		execIndexes   = map[int]int{}
		running       atomic.Int32
		allRunning    = make(chan struct{})
		once          sync.Once
	)
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items)}})
	w := newWorker(t, ep, "calc",
		func(ctx context.Context, job *engine.Job) (any, error) {
			if running.Add(1) == goroutines {
				once.Do(func() { close(allRunning) })
			}
			defer running.Add(-1)
			// The first goroutines wait until all run at once: proof that
			// the worker really executes concurrently.
			if !waitFor(allRunning, 10*time.Second) {
				t.Error("the worker's goroutines never ran at the same time")
			}
			mu.Lock()
			execIndexes[job.Goroutine]++
			mu.Unlock()
			return job.Value, nil
		},
		engine.WithConcurrency(goroutines),
		engine.WithWorkerInit(func(ctx context.Context, md engine.Metadata) error {
			mu.Lock()
			defer mu.Unlock()
			initOrder = append(initOrder, "worker")
			return nil
		}),
		engine.WithGoroutineInit(func(ctx context.Context, index int, md engine.Metadata) error {
			mu.Lock()
			defer mu.Unlock()
			initOrder = append(initOrder, "goroutine")
			goroutineSeen[index] = true
			return nil
		}),
		engine.WithPrepare(func(ctx context.Context, job *engine.Job) (any, error) {
			var n int
			if err := job.Decode(&n); err != nil {
				return nil, err
			}
			return n * 10, nil // the main hook transforms the item
		}),
	)
	require.NoError(t, engine.RunAll(testCtx(t), d, w, rec.collector(t, ep)))

	rec.requireEachOnce(t, "calc", items)
	require.Len(t, initOrder, 1+goroutines)
	assert.Equal(t, "worker", initOrder[0], "the worker hook runs before the goroutine hooks")
	assert.Len(t, goroutineSeen, goroutines)
	total := 0
	for idx, n := range execIndexes {
		assert.True(t, idx >= 0 && idx < goroutines, "index %d", idx)
		total += n
	}
	assert.Equal(t, items, total)
	for _, v := range rec.values {
		assert.Equal(t, int64(0), v.(int64)%10, "the handler saw the prepared value")
	}
}

// gatedTask produces item k only after the ACK of item k-1 arrived, and
// checks the collector's ACK data.
type gatedTask struct {
	n, produced, acked int
	maxOutstanding     int
	ackData            []int
	waiting            bool
	notReady           int
}

func (g *gatedTask) Next(ctx context.Context) (engine.Item, error) {
	if g.waiting {
		g.notReady++
		return engine.Item{}, engine.ErrNotReady
	}
	g.produced++
	g.waiting = true
	g.maxOutstanding = max(g.maxOutstanding, g.produced-g.acked)
	return engine.Item{Payload: g.produced, Last: g.produced == g.n}, nil
}

func (g *gatedTask) HandleAck(ctx context.Context, ack *engine.Ack) error {
	g.acked++
	if !ack.HasData() {
		return errors.New("the collector's ACK data did not arrive")
	}
	var v int
	if err := ack.Decode(&v); err != nil {
		return err
	}
	g.ackData = append(g.ackData, v)
	g.waiting = false
	return nil
}

func testAckDataReachesTaskAndGatingHolds(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	task := &gatedTask{n: 30}
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "gated", Task: task}})
	// Two workers with spare capacity: without the gate they would hold
	// several items at once.
	w1 := newWorker(t, ep, "gated", echo, engine.WithConcurrency(3), engine.WithPrefetch(2))
	w2 := newWorker(t, ep, "gated", echo, engine.WithConcurrency(3))
	c, err := engine.NewCollector(ep, engine.ResultFunc(func(ctx context.Context, res *engine.Result) (any, error) {
		var v int
		if err := res.Decode(&v); err != nil {
			return nil, err
		}
		return v * 100, nil
	}), engine.WithLogger(testLogger(t)))
	require.NoError(t, err)
	require.NoError(t, engine.RunAll(testCtx(t), d, w1, w2, c))

	assert.Equal(t, 30, task.acked)
	assert.Equal(t, 1, task.maxOutstanding, "the gate let a second item out before the ACK")
	assert.Positive(t, task.notReady, "the gate was asked while closed")
	for i, v := range task.ackData {
		assert.Equal(t, (i+1)*100, v, "ACK data reaches the task in order")
	}
}

func testNotReadyWithNothingInFlightAborts(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	never := engine.TaskFunc(func(ctx context.Context) (engine.Item, error) { return engine.Item{}, engine.ErrNotReady })
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "stuck", Task: never}})
	w := newWorker(t, ep, "stuck", echo)
	err := engine.RunAll(testCtx(t), d, w, newRecorder().collector(t, ep))
	require.Error(t, err)
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), `"stuck"`)
}

func testComponentsStartInAnyOrder(t *testing.T, s Suite) {
	orders := map[string][]string{
		"workers first":     {"worker", "collector", "distributor"},
		"distributor first": {"distributor", "collector", "worker"},
		"collector last":    {"worker", "distributor", "collector"},
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			ep := s.NewEndpoints(t)
			rec := newRecorder()
			comps := map[string]engine.Runner{
				"distributor": newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(50)}}),
				"worker":      newWorker(t, ep, "calc", echo),
				"collector":   rec.collector(t, ep),
			}
			ctx := testCtx(t)
			errs := make(chan error, len(order))
			started := make(chan struct{})
			for i, name := range order {
				go func() {
					if i > 0 {
						<-started // later components start after the first one began
					}
					if i == 0 {
						close(started)
					}
					errs <- comps[name].Run(ctx)
				}()
			}
			for range order {
				require.NoError(t, <-errs)
			}
			rec.requireEachOnce(t, "calc", 50)
		})
	}
}

func testCancelReturnsContextError(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "slow", Task: intItems(100)}})
	w, started := stuckWorker(t, ep, "slow")
	c := newRecorder().collector(t, ep)
	errs := make(chan error, 3)
	for _, r := range []engine.Runner{d, w, c} {
		go func() { errs <- r.Run(ctx) }()
	}
	require.True(t, waitFor(started, 10*time.Second))
	cancel()
	for range 3 {
		assert.ErrorIs(t, <-errs, context.Canceled)
	}
}

func testDistributorCancelAbortsRemotePeers(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "slow", Task: intItems(100)}})
	w, started := stuckWorker(t, ep, "slow")
	joined := make(chan struct{})
	c := newRecorder().collector(t, ep, engine.WithCollectorInit(func(context.Context, engine.Metadata) error {
		close(joined)
		return nil
	}))
	peersCtx := testCtx(t) // not cancelled: only the distributor stops
	dctx, cancel := context.WithCancel(peersCtx)
	dErr, wErr, cErr := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	go func() { dErr <- d.Run(dctx) }()
	go func() { wErr <- w.Run(peersCtx) }()
	go func() { cErr <- c.Run(peersCtx) }()
	require.True(t, waitFor(started, 10*time.Second))
	require.True(t, waitFor(joined, 10*time.Second))
	cancel()
	assert.ErrorIs(t, <-dErr, context.Canceled)
	assert.ErrorIs(t, <-wErr, engine.ErrAborted, "the worker hears of the abort")
	assert.ErrorIs(t, <-cErr, engine.ErrAborted, "the collector hears of the abort")
}

func testRunTwice(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(3)}})
	w := newWorker(t, ep, "calc", echo)
	c := newRecorder().collector(t, ep)
	require.NoError(t, engine.RunAll(testCtx(t), d, w, c))
	for _, r := range []engine.Runner{d, w, c} {
		assert.ErrorIs(t, r.Run(testCtx(t)), engine.ErrAlreadyRunning)
	}
}

func testWorkerLeavingHandsBackItsItems(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	const items = 20
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items)}})
	ctx := testCtx(t)
	quitterCtx, quit := context.WithCancel(ctx)
	// The quitter takes items and sits on them until it is stopped.
	quitter, holding := stuckWorker(t, ep, "calc", engine.WithConcurrency(2), engine.WithPrefetch(3))
	var attempts sync.Map
	steady := newWorker(t, ep, "calc", func(ctx context.Context, job *engine.Job) (any, error) {
		attempts.Store(job.ItemID, job.Attempt)
		return nil, nil
	})
	errs := make(chan error, 4)
	go func() { errs <- d.Run(ctx) }()
	go func() { errs <- rec.collector(t, ep).Run(ctx) }()
	quitErr := make(chan error, 1)
	go func() { quitErr <- quitter.Run(quitterCtx) }()
	require.True(t, waitFor(holding, 10*time.Second))
	go func() { errs <- steady.Run(ctx) }()
	quit()
	assert.ErrorIs(t, <-quitErr, context.Canceled)
	for range 3 {
		require.NoError(t, <-errs)
	}
	rec.requireEachOnce(t, "calc", items)
	retried := 0
	attempts.Range(func(k, v any) bool {
		if v.(int) > 1 {
			retried++
		}
		return true
	})
	assert.Positive(t, retried, "items the quitter held went to the other worker with a new attempt")
	assert.Equal(t, int64(0), quitter.Executed())
}

// lateRunner starts its component only once gate is closed.
type lateRunner struct {
	gate <-chan struct{}
	r    engine.Runner
}

func (l lateRunner) Run(ctx context.Context) error {
	select {
	case <-l.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return l.r.Run(ctx)
}

func testLateWorkerDoesNotHoldUpRunAll(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	finished := make(chan struct{})
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(10)}})
	c := rec.collector(t, ep, engine.WithFinished(func(context.Context, engine.Summary) { close(finished) }))
	late := lateRunner{gate: finished, r: newWorker(t, ep, "calc", echo)}
	require.NoError(t, engine.RunAll(testCtx(t), d, c, newWorker(t, ep, "calc", echo), late))
	rec.requireEachOnce(t, "calc", 10)
}

func testQuorumHoldsWorkUntilEnoughWorkersJoined(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	var (
		mu         sync.Mutex
		secondInit time.Time
		firstStart time.Time
	)
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(20)}}, engine.WithQuorum(2))
	started := make(chan struct{})
	var once sync.Once
	first := newWorker(t, ep, "calc", func(ctx context.Context, job *engine.Job) (any, error) {
		mu.Lock()
		if firstStart.IsZero() {
			firstStart = time.Now()
		}
		mu.Unlock()
		return nil, nil
	}, engine.WithWorkerInit(func(context.Context, engine.Metadata) error {
		once.Do(func() { close(started) })
		return nil
	}))
	second := newWorker(t, ep, "calc", echo, engine.WithWorkerInit(func(context.Context, engine.Metadata) error {
		mu.Lock()
		defer mu.Unlock()
		secondInit = time.Now()
		return nil
	}))
	// The second worker joins only after the first one is in.
	late := lateRunner{gate: started, r: second}
	require.NoError(t, engine.RunAll(testCtx(t), d, rec.collector(t, ep), first, late))
	rec.requireEachOnce(t, "calc", 20)
	mu.Lock()
	defer mu.Unlock()
	if !firstStart.IsZero() {
		assert.True(t, firstStart.After(secondInit), "an item started before the quorum was complete")
	}
}

// stuckWorker returns a worker whose handler holds every item until its
// context ends, and a channel closed when it took its first item.
func stuckWorker(t *testing.T, ep engine.Endpoints, taskType string, opts ...engine.Option) (*engine.Worker, <-chan struct{}) {
	t.Helper()
	started := make(chan struct{})
	var once sync.Once
	w := newWorker(t, ep, taskType, func(ctx context.Context, job *engine.Job) (any, error) {
		once.Do(func() { close(started) })
		<-ctx.Done()
		return nil, ctx.Err()
	}, opts...)
	return w, started
}

func testShortItemsGrowTheWindow(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	const items = 500
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items)}})
	w := newWorker(t, ep, "calc", echo)
	fixed := newWorker(t, ep, "calc", echo, engine.WithPrefetch(0))
	require.NoError(t, engine.RunAll(testCtx(t), d, w, fixed, rec.collector(t, ep)))

	rec.requireEachOnce(t, "calc", items)
	// Items that take no time drain one spare item per goroutine, so the
	// default window grows, within its bound; a window set by WithPrefetch
	// never moves.
	assert.Greater(t, w.Window(), 2, "the default window of 1 goroutine + 1 spare did not grow")
	assert.LessOrEqual(t, w.Window(), 1+engine.MaxAutoPrefetch)
	assert.Equal(t, 1, fixed.Window(), "WithPrefetch(0) fixes the window at the goroutine")
}

func testLongItemsKeepTheWindow(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	const items = 8
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items)}})
	work := func(ctx context.Context, job *engine.Job) (any, error) {
		time.Sleep(40 * time.Millisecond) // far longer than a round trip
		return nil, nil
	}
	w := newWorker(t, ep, "calc", work)
	require.NoError(t, engine.RunAll(testCtx(t), d, w, rec.collector(t, ep)))

	rec.requireEachOnce(t, "calc", items)
	// The spare item is always there when an item ends, so the window stays
	// at 2. One doubling is allowed for a machine that stalls for longer
	// than an item; a window that grew on every item would be at 64.
	assert.LessOrEqual(t, w.Window(), 4)
}
