package enginetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/transport"
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
	// Each step starts a component, then waits for what the order needs
	// before the next: that the component bound its endpoint or joined.
	type step struct {
		start string
		wait  func(d *engine.Distributor, w *engine.Worker, c *engine.Collector) <-chan struct{}
	}
	bound := func(d *engine.Distributor, _ *engine.Worker, _ *engine.Collector) <-chan struct{} { return d.Bound() }
	collectorBound := func(_ *engine.Distributor, _ *engine.Worker, c *engine.Collector) <-chan struct{} { return c.Bound() }
	collectorJoined := func(_ *engine.Distributor, _ *engine.Worker, c *engine.Collector) <-chan struct{} { return c.Joined() }
	workerJoined := func(_ *engine.Distributor, w *engine.Worker, _ *engine.Collector) <-chan struct{} { return w.Joined() }
	orders := map[string][]step{
		// The worker dials both endpoints before anyone listens.
		"workers first":     {{"worker", nil}, {"collector", collectorBound}, {"distributor", nil}},
		"distributor first": {{"distributor", bound}, {"collector", collectorJoined}, {"worker", nil}},
		// The worker is welcomed before the collector it reports to exists.
		"collector last": {{"distributor", bound}, {"worker", workerJoined}, {"collector", nil}},
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			ep := s.NewEndpoints(t)
			rec := newRecorder()
			d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(50)}})
			w := newWorker(t, ep, "calc", echo)
			c := rec.collector(t, ep)
			comps := map[string]engine.Runner{"distributor": d, "worker": w, "collector": c}
			ctx := testCtx(t)
			errs := make(chan error, len(order))
			for _, st := range order {
				go func() { errs <- comps[st.start].Run(ctx) }()
				if st.wait != nil {
					require.True(t, waitFor(st.wait(d, w, c), 10*time.Second), "%s did not get ready", st.start)
				}
			}
			for range order {
				require.NoError(t, <-errs)
			}
			rec.requireEachOnce(t, "calc", 50)
		})
	}
}

func testReadinessSignals(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(20)}})
	w := newWorker(t, ep, "calc", echo)
	c := rec.collector(t, ep)
	ctx := testCtx(t)
	errs := make(chan error, 3)
	go func() { errs <- w.Run(ctx) }()
	assert.Empty(t, d.Addr(), "no address before the distributor binds")
	select {
	case <-w.Joined():
		t.Fatal("the worker joined a distributor that is not running")
	default:
	}
	go func() { errs <- d.Run(ctx) }()
	require.True(t, waitFor(d.Bound(), 10*time.Second))
	assert.Equal(t, addrOf(t, ep.Distributor), d.Addr())
	require.True(t, waitFor(w.Joined(), 10*time.Second), "the worker joins once the distributor is there")
	go func() { errs <- c.Run(ctx) }()
	require.True(t, waitFor(c.Bound(), 10*time.Second))
	assert.Equal(t, addrOf(t, ep.Collector), c.Addr())
	require.True(t, waitFor(c.Joined(), 10*time.Second))
	for range 3 {
		require.NoError(t, <-errs)
	}
	rec.requireEachOnce(t, "calc", 20)
	for name, st := range map[string]engine.Stats{"distributor": d.Stats(), "worker": w.Stats(), "collector": c.Stats()} {
		assert.Empty(t, st.Ignored, "%s ignored messages on a healthy run", name)
		assert.Zero(t, st.Transport.TotalDropped(), "%s dropped messages on a healthy run: %v", name, st.Transport.Dropped)
		assert.Zero(t, st.Transport.Peers, "%s still counts peers after its run", name)
	}
}

// addrOf returns what a listener bound to endpoint reports: the endpoint
// itself, unless it leaves the transport a choice (a tcp port 0), which the
// suite's endpoints do not.
func addrOf(t *testing.T, endpoint string) string {
	t.Helper()
	ep, err := transport.ParseEndpoint(endpoint)
	require.NoError(t, err)
	return ep.String()
}

func testAckHandlerSeesEveryAck(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	var (
		order   []string // "task" or "distributor", per ACK of type "logged"
		perType = map[string]int{}
		failed  = map[string]int{}
		data    int
	)
	logged := &ackLog{Task: intItems(10), failed: map[uint64]string{}}
	logged.onAck = func() { order = append(order, "task") }
	hook := engine.AckHandlerFunc(func(ctx context.Context, ack *engine.Ack) error {
		perType[ack.TaskType]++
		if ack.Failed {
			failed[ack.TaskType]++
			assert.Contains(t, ack.Error, "odd")
		} else if ack.HasData() {
			var v int
			if err := ack.Decode(&v); err != nil {
				return err
			}
			data += v
		}
		if ack.TaskType == "logged" {
			order = append(order, "distributor")
		}
		return nil
	})
	d := newDistributor(t, ep, []engine.TaskSpec{
		{Type: "logged", Task: logged},
		{Type: "plain", Task: intItems(7), DependsOn: []string{"logged"}},
	}, engine.WithAckHandler(hook), fastRetries)
	failOdd := func(ctx context.Context, job *engine.Job) (any, error) {
		var i int
		if err := job.Decode(&i); err != nil {
			return nil, err
		}
		if job.TaskType == "plain" && i%2 == 1 {
			return nil, errors.New("odd")
		}
		return i, nil
	}
	c, err := engine.NewCollector(ep, engine.ResultFunc(func(ctx context.Context, res *engine.Result) (any, error) {
		return 1, nil // each ACK carries 1
	}), engine.WithLogger(testLogger(t)))
	require.NoError(t, err)
	require.NoError(t, engine.RunAll(testCtx(t), d, c, newWorker(t, ep, "logged", failOdd), newWorker(t, ep, "plain", failOdd)))
	assert.Equal(t, map[string]int{"logged": 10, "plain": 7}, perType)
	assert.Equal(t, map[string]int{"plain": 3}, failed)
	assert.Equal(t, 14, data, "the collector's data reaches the hook with each successful ACK")
	require.Len(t, order, 20)
	for i := 0; i < len(order); i += 2 {
		assert.Equal(t, []string{"task", "distributor"}, order[i:i+2], "the task's own handler runs first")
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
	c := newRecorder().collector(t, ep)
	peersCtx := testCtx(t) // not cancelled: only the distributor stops
	dctx, cancel := context.WithCancel(peersCtx)
	dErr, wErr, cErr := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	go func() { dErr <- d.Run(dctx) }()
	go func() { wErr <- w.Run(peersCtx) }()
	go func() { cErr <- c.Run(peersCtx) }()
	require.True(t, waitFor(started, 10*time.Second))
	require.True(t, waitFor(c.Joined(), 10*time.Second))
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
	first := newWorker(t, ep, "calc", func(ctx context.Context, job *engine.Job) (any, error) {
		mu.Lock()
		if firstStart.IsZero() {
			firstStart = time.Now()
		}
		mu.Unlock()
		return nil, nil
	})
	second := newWorker(t, ep, "calc", echo, engine.WithWorkerInit(func(context.Context, engine.Metadata) error {
		mu.Lock()
		defer mu.Unlock()
		secondInit = time.Now()
		return nil
	}))
	// The second worker joins only after the first one is in.
	late := lateRunner{gate: first.Joined(), r: second}
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
func stuckWorker(t *testing.T, ep engine.Endpoints, taskType string, opts ...engine.WorkerOption) (*engine.Worker, <-chan struct{}) {
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

// inflight wraps a task and, through the distributor's ACK hook, records
// the most items that were out at once: produced and not yet acknowledged.
// With one worker that is the worker's window, which bounds what it holds
// and what it has finished that the collector has not acknowledged.
type inflight struct {
	engine.Task
	out, most int
}

func (f *inflight) Next(ctx context.Context) (engine.Item, error) {
	item, err := f.Task.Next(ctx)
	if err == nil {
		f.out++
		f.most = max(f.most, f.out)
	}
	return item, err
}

// mostInFlight runs items through one worker made with opts, whose handler
// is work, and returns the most items that worker held at once.
func mostInFlight(t *testing.T, s Suite, items int, work engine.HandlerFunc, opts ...engine.WorkerOption) int {
	t.Helper()
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	task := &inflight{Task: intItems(items)}
	acked := engine.AckHandlerFunc(func(ctx context.Context, ack *engine.Ack) error {
		task.out--
		return nil
	})
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: task}}, engine.WithAckHandler(acked))
	w := newWorker(t, ep, "calc", work, opts...)
	require.NoError(t, engine.RunAll(testCtx(t), d, w, rec.collector(t, ep)))
	rec.requireEachOnce(t, "calc", items)
	require.Zero(t, task.out, "every item was acknowledged")
	return task.most
}

func testShortItemsGrowTheWindow(t *testing.T, s Suite) {
	// Items that take no time drain one spare item per goroutine, so the
	// default window grows, within its bound of 1024 spare items; a window
	// set by WithPrefetch never moves.
	grown := mostInFlight(t, s, 500, echo)
	assert.Greater(t, grown, 2, "the default window of 1 goroutine + 1 spare did not grow")
	assert.LessOrEqual(t, grown, 1+1024)
	assert.Equal(t, 1, mostInFlight(t, s, 100, echo, engine.WithPrefetch(0)), "WithPrefetch(0) fixes the window at the goroutine")
	assert.Equal(t, 2+3, mostInFlight(t, s, 300, echo, engine.WithConcurrency(2), engine.WithPrefetch(3)))
}

func testLargeItemsBoundTheWindow(t *testing.T, s Suite) {
	// Items of 1 MiB that take no time would grow the window to 1024
	// items, a GiB; it stops where it would hold more than 16 MiB.
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	payload := strings.Repeat("x", 1<<20)
	task := &inflight{Task: engine.Items(120, func(int) (any, error) { return payload, nil })}
	acked := engine.AckHandlerFunc(func(ctx context.Context, ack *engine.Ack) error {
		task.out--
		return nil
	})
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: task}}, engine.WithAckHandler(acked))
	w := newWorker(t, ep, "calc", func(context.Context, *engine.Job) (any, error) { return nil, nil })
	require.NoError(t, engine.RunAll(testCtx(t), d, w, rec.collector(t, ep)))
	assert.Len(t, rec.seen["calc"], 120)
	assert.LessOrEqual(t, task.most, 16, "at most 16 MiB of items held")
}

func testLongItemsKeepTheWindow(t *testing.T, s Suite) {
	work := func(ctx context.Context, job *engine.Job) (any, error) {
		time.Sleep(40 * time.Millisecond) // far longer than a round trip
		return nil, nil
	}
	// The spare item is always there when an item ends, so the window stays
	// at 2. One doubling is allowed for a machine that stalls for longer
	// than an item; a window that grew on every item would be at 64.
	assert.LessOrEqual(t, mostInFlight(t, s, 8, work), 4)
}

// testResultsDoNotWaitForALongItem: the result of a short item reaches
// the collector while the same goroutine executes a long one after it,
// however long that one takes.
func testResultsDoNotWaitForALongItem(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	ctx := testCtx(t)
	firstHandled := make(chan struct{})
	var once sync.Once
	c, err := engine.NewCollector(ep, engine.ResultFunc(func(ctx context.Context, res *engine.Result) (any, error) {
		if res.ItemID == 1 {
			once.Do(func() { close(firstHandled) })
		}
		return nil, nil
	}), engine.WithLogger(testLogger(t)))
	require.NoError(t, err)
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(2)}})
	var stuck atomic.Bool
	w := newWorker(t, ep, "calc", func(ctx context.Context, job *engine.Job) (any, error) {
		if job.ItemID == 2 && !waitFor(firstHandled, 5*time.Second) {
			stuck.Store(true)
			return nil, errors.New("the first item's result waited for this one")
		}
		return nil, nil
		// A window of 16: both items arrive together, and a result
		// message would carry two.
	}, engine.WithConcurrency(1), engine.WithPrefetch(15))
	require.NoError(t, engine.RunAll(ctx, d, c, w))
	select {
	case <-firstHandled:
	default:
		t.Fatal("item 1 was never handled")
	}
	assert.False(t, stuck.Load(), "item 1's result waited for item 2 to end")
	assert.Equal(t, 2, c.Summary().Results)
}
