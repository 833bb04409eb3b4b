package enginetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine"
)

// timeline records, per task type, when its items started executing and
// when the distributor saw their ACKs.
type timeline struct {
	mu         sync.Mutex
	firstStart map[string]time.Time
	lastAck    map[string]time.Time
	acks       map[string]int
}

func newTimeline() *timeline {
	return &timeline{firstStart: map[string]time.Time{}, lastAck: map[string]time.Time{}, acks: map[string]int{}}
}

func (tl *timeline) started(tt string) {
	now := time.Now()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if _, ok := tl.firstStart[tt]; !ok {
		tl.firstStart[tt] = now
	}
}

// task wraps a task so its ACKs are timed.
func (tl *timeline) task(tt string, inner engine.Task) engine.Task {
	return &timedTask{Task: inner, tt: tt, tl: tl}
}

type timedTask struct {
	engine.Task
	tt string
	tl *timeline
}

func (t *timedTask) HandleAck(ctx context.Context, ack *engine.Ack) error {
	t.tl.mu.Lock()
	defer t.tl.mu.Unlock()
	t.tl.lastAck[t.tt] = time.Now()
	t.tl.acks[t.tt]++
	return nil
}

// requireAfter checks that no item of dependent started before the last ACK
// of each dependency.
func (tl *timeline) requireAfter(t *testing.T, dependent string, deps ...string) {
	t.Helper()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	start, ok := tl.firstStart[dependent]
	require.True(t, ok, "%q never started", dependent)
	for _, d := range deps {
		ack, ok := tl.lastAck[d]
		require.True(t, ok, "%q was never acknowledged", d)
		assert.True(t, start.After(ack), "%q started %v before the last ACK of %q", dependent, ack.Sub(start), d)
	}
}

// pipelineOf builds a distributor with one worker per type; every item
// records its start and the last item of each type is slow, so a release
// on hand-out rather than on ACK would show.
func pipelineOf(t *testing.T, ep engine.Endpoints, tl *timeline, n int, deps map[string][]string, order []string, opts ...engine.WorkerOption) []engine.Runner {
	var specs []engine.TaskSpec
	comps := []engine.Runner{}
	for _, tt := range order {
		specs = append(specs, engine.TaskSpec{Type: tt, Task: tl.task(tt, intItems(n)), DependsOn: deps[tt]})
		comps = append(comps, newWorker(t, ep, tt, func(ctx context.Context, job *engine.Job) (any, error) {
			tl.started(job.TaskType)
			var i int
			if err := job.Decode(&i); err != nil {
				return nil, err
			}
			if i == n-1 {
				time.Sleep(5 * time.Millisecond) // a slow last item: simulated work
			}
			return nil, nil
		}, opts...))
	}
	return append(comps, newDistributor(t, ep, specs))
}

func testDependentStartsAfterLastAckOfDependency(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	tl := newTimeline()
	rec := newRecorder()
	comps := pipelineOf(t, ep, tl, 100, map[string][]string{"second": {"first"}}, []string{"first", "second"},
		engine.WithConcurrency(4))
	require.NoError(t, engine.RunAll(testCtx(t), append(comps, rec.collector(t, ep))...))
	rec.requireEachOnce(t, "first", 100)
	rec.requireEachOnce(t, "second", 100)
	tl.requireAfter(t, "second", "first")
}

func testDiamondWithIndependentBranch(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	tl := newTimeline()
	rec := newRecorder()
	deps := map[string][]string{"b": {"a"}, "c": {"a"}, "d": {"b", "c"}}
	comps := pipelineOf(t, ep, tl, 40, deps, []string{"d", "c", "b", "a", "e"}, engine.WithConcurrency(2))
	require.NoError(t, engine.RunAll(testCtx(t), append(comps, rec.collector(t, ep))...))
	for _, tt := range []string{"a", "b", "c", "d", "e"} {
		rec.requireEachOnce(t, tt, 40)
	}
	tl.requireAfter(t, "b", "a")
	tl.requireAfter(t, "c", "a")
	tl.requireAfter(t, "d", "b", "c")
}

func testDeepChain(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	tl := newTimeline()
	rec := newRecorder()
	const depth = 8
	deps := map[string][]string{}
	var order []string
	for i := range depth {
		tt := fmt.Sprintf("t%d", i)
		order = append(order, tt)
		if i > 0 {
			deps[tt] = []string{fmt.Sprintf("t%d", i-1)}
		}
	}
	comps := pipelineOf(t, ep, tl, 10, deps, order)
	require.NoError(t, engine.RunAll(testCtx(t), append(comps, rec.collector(t, ep))...))
	for i := 1; i < depth; i++ {
		tl.requireAfter(t, order[i], order[i-1])
	}
}

func testIndependentBranchesRunInParallel(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	// b and c both wait only for a. Each one's first item blocks until the
	// other has started: a pipeline that ran them one after the other would
	// fail here (after a bounded wait) rather than pass.
	started := map[string]chan struct{}{"b": make(chan struct{}), "c": make(chan struct{})}
	var once sync.Map
	meet := func(self, other string) engine.HandlerFunc {
		return func(ctx context.Context, job *engine.Job) (any, error) {
			if _, loaded := once.LoadOrStore(self, true); !loaded {
				close(started[self])
				if !waitFor(started[other], 10*time.Second) {
					return nil, fmt.Errorf("%s never ran while %s did", other, self)
				}
			}
			return nil, nil
		}
	}
	d := newDistributor(t, ep, []engine.TaskSpec{
		{Type: "a", Task: intItems(5)},
		{Type: "b", Task: intItems(5), DependsOn: []string{"a"}},
		{Type: "c", Task: intItems(5), DependsOn: []string{"a"}},
	})
	comps := []engine.Runner{
		d, rec.collector(t, ep),
		newWorker(t, ep, "a", echo), newWorker(t, ep, "b", meet("b", "c")), newWorker(t, ep, "c", meet("c", "b")),
	}
	require.NoError(t, engine.RunAll(testCtx(t), comps...))
	rec.mu.Lock()
	defer rec.mu.Unlock()
	assert.Empty(t, rec.failures)
}

func testEmptyDependencyReleasesDependent(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	d := newDistributor(t, ep, []engine.TaskSpec{
		{Type: "none", Task: intItems(0)},
		{Type: "after", Task: intItems(7), DependsOn: []string{"none"}},
	})
	comps := []engine.Runner{d, rec.collector(t, ep), newWorker(t, ep, "none", echo), newWorker(t, ep, "after", echo)}
	require.NoError(t, engine.RunAll(testCtx(t), comps...))
	rec.requireEachOnce(t, "after", 7)
	assert.Empty(t, rec.seen["none"])
}
