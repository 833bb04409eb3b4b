package enginetest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine"
)

// testDeadline bounds every pipeline run in these tests; a working run
// finishes far sooner.
const testDeadline = 30 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	t.Cleanup(cancel)
	return ctx
}

// testLogger sends logs to the test's output, shown only on failure.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = testWriter{}

// recorder is a collector's result handler that remembers what it saw.
type recorder struct {
	mu       sync.Mutex
	seen     map[string]map[uint64]int // task type -> item id -> times handled
	values   map[uint64]any
	failures []*engine.ItemError
	finished []engine.Summary
}

func newRecorder() *recorder {
	return &recorder{seen: map[string]map[uint64]int{}, values: map[uint64]any{}}
}

func (r *recorder) HandleResult(ctx context.Context, res *engine.Result) (any, error) {
	if len(res.Payload()) == 0 {
		return nil, errors.New("empty result payload")
	}
	var v any
	if err := res.Decode(&v); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[res.TaskType] == nil {
		r.seen[res.TaskType] = map[uint64]int{}
	}
	r.seen[res.TaskType][res.ItemID]++
	r.values[res.ItemID] = v
	return nil, nil
}

func (r *recorder) failure(ctx context.Context, f *engine.ItemError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[f.TaskType] == nil {
		r.seen[f.TaskType] = map[uint64]int{}
	}
	r.seen[f.TaskType][f.ItemID]++
	r.failures = append(r.failures, f)
}

func (r *recorder) finish(ctx context.Context, s engine.Summary) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished = append(r.finished, s)
}

// collector returns a collector that records into r.
func (r *recorder) collector(t testing.TB, ep engine.Endpoints, opts ...engine.CollectorOption) *engine.Collector {
	t.Helper()
	opts = append([]engine.CollectorOption{
		engine.WithFailureHandler(r.failure), engine.WithFinished(r.finish), engine.WithLogger(testLogger(t)),
	}, opts...)
	c, err := engine.NewCollector(ep, r, opts...)
	require.NoError(t, err)
	return c
}

// requireEachOnce checks that type tt had exactly n items, each handled once.
func (r *recorder) requireEachOnce(t testing.TB, tt string, n int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Len(t, r.seen[tt], n, "task type %q", tt)
	for id, times := range r.seen[tt] {
		require.Equal(t, 1, times, "task type %q item %d handled %d times", tt, id, times)
	}
}

func newDistributor(t testing.TB, ep engine.Endpoints, specs []engine.TaskSpec, opts ...engine.DistributorOption) *engine.Distributor {
	t.Helper()
	d, err := engine.NewDistributor(ep, specs, append([]engine.DistributorOption{engine.WithLogger(testLogger(t))}, opts...)...)
	require.NoError(t, err)
	return d
}

func newWorker(t testing.TB, ep engine.Endpoints, tt string, h engine.HandlerFunc, opts ...engine.WorkerOption) *engine.Worker {
	t.Helper()
	w, err := engine.NewWorker(ep, tt, h, append([]engine.WorkerOption{engine.WithLogger(testLogger(t))}, opts...)...)
	require.NoError(t, err)
	return w
}

// echo returns the item's payload as the result.
func echo(ctx context.Context, job *engine.Job) (any, error) {
	if len(job.Payload()) == 0 {
		return nil, errors.New("empty item payload")
	}
	var v any
	err := job.Decode(&v)
	return v, err
}

func intItems(n int) engine.Task {
	return engine.Items(n, func(i int) (any, error) { return i, nil })
}

// waitFor blocks until ch is closed or the deadline passes; it reports
// whether ch closed. It is for handlers that must meet each other, so a
// broken engine fails the test instead of hanging it.
func waitFor(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}
