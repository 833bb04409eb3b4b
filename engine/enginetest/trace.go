package enginetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine"
)

// testTraceContextTravelsWithTheItem: an item's trace context reaches its
// handler, and what the handler sets with Job.SetTrace reaches the collector
// (a failure's too); items without one carry none.
func testTraceContextTravelsWithTheItem(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	ctx := testCtx(t)
	const items = 30
	parent := func(i int64) string { return fmt.Sprintf("00-%032x-%016x-01", i, i) }
	next := 0
	task := engine.TaskFunc(func(context.Context) (engine.Item, error) {
		next++
		item := engine.Item{Payload: next, Last: next == items}
		if next%3 != 0 { // every third item has none
			item.Trace = engine.TraceContext{Parent: parent(int64(next)), State: fmt.Sprintf("k=%d,other=v", next)}
		}
		return item, nil
	})
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: task, MaxAttempts: 1}}, quickLiveness)
	var (
		mu        sync.Mutex
		wrong     []string
		collected = map[int64]engine.TraceContext{}
	)
	w := newWorker(t, ep, "calc", func(ctx context.Context, job *engine.Job) (any, error) {
		var i int64
		if err := job.Decode(&i); err != nil {
			return nil, err
		}
		want := engine.TraceContext{}
		if i%3 != 0 {
			want = engine.TraceContext{Parent: parent(i), State: fmt.Sprintf("k=%d,other=v", i)}
		}
		if job.Trace() != want {
			mu.Lock()
			wrong = append(wrong, fmt.Sprintf("item %d: the handler got %+v, want %+v", i, job.Trace(), want))
			mu.Unlock()
		}
		if i%3 != 0 {
			job.SetTrace(engine.TraceContext{Parent: parent(1000 + i)}) // the handler's own span, say
		}
		if i == items-1 {
			return nil, fmt.Errorf("item %d fails: %w", i, engine.ErrPermanent)
		}
		return i, nil
	})
	var failed engine.TraceContext
	c, err := engine.NewCollector(ep, engine.ResultFunc(func(_ context.Context, res *engine.Result) (any, error) {
		var i int64
		if err := res.Decode(&i); err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		collected[i] = res.Trace()
		return nil, nil
	}), engine.WithFailureHandler(func(_ context.Context, ie *engine.ItemError) {
		mu.Lock()
		defer mu.Unlock()
		failed = ie.Trace
	}), engine.WithLogger(testLogger(t)))
	require.NoError(t, err)
	requireAllNil(t, runRest(ctx, d, c, w), 3)

	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, wrong)
	require.Len(t, collected, items-1)
	for i, tc := range collected {
		want := engine.TraceContext{}
		if i%3 != 0 {
			want = engine.TraceContext{Parent: parent(1000 + i)}
		}
		assert.Equal(t, want, tc, "item %d", i)
	}
	assert.Equal(t, engine.TraceContext{Parent: parent(1000 + items - 1)}, failed, "the failure's")
}

// testTraceContextTooLongIsAnError: a task's item whose trace context is
// over engine.MaxTraceLen aborts the run, saying so.
func testTraceContextTooLongIsAnError(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	ctx := testCtx(t)
	long := make([]byte, engine.MaxTraceLen)
	task := engine.TaskFunc(func(context.Context) (engine.Item, error) {
		return engine.Item{Payload: 1, Last: true, Trace: engine.TraceContext{Parent: "00-x", State: string(long)}}, nil
	})
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: task}}, quickLiveness)
	w := newWorker(t, ep, "calc", echo)
	c := newRecorder().collector(t, ep)
	errs := make(chan error, 2)
	go func() { errs <- w.Run(ctx) }()
	go func() { errs <- c.Run(ctx) }()
	err := d.Run(ctx)
	require.Error(t, err)
	assert.ErrorContains(t, err, `task "calc": next item: trace context of 1029 bytes, over 1024`)
	for range 2 {
		assert.ErrorIs(t, <-errs, engine.ErrAborted, "the peers hear why the run ended")
	}
}
