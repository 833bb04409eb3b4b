package enginetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/dag"
	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/transport"
)

// ackLog records the ACKs a task received.
type ackLog struct {
	engine.Task
	mu     sync.Mutex
	failed map[uint64]string
	ok     int
	onAck  func() // called with each ACK, if set
}

func (a *ackLog) HandleAck(ctx context.Context, ack *engine.Ack) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.onAck != nil {
		a.onAck()
	}
	if ack.Failed {
		a.failed[ack.ItemID] = ack.Error
	} else {
		a.ok++
	}
	return nil
}

// fastRetries keeps the suite's retries quick.
var fastRetries = engine.WithRetryBackoff(time.Millisecond, 5*time.Millisecond)

func testHandlerErrorsAndPanicsFailOnlyTheirItem(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	task := &ackLog{Task: intItems(30), failed: map[uint64]string{}}
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: task}}, fastRetries)
	var tries sync.Map // item id -> *atomic.Int32
	w := newWorker(t, ep, "calc", func(ctx context.Context, job *engine.Job) (any, error) {
		n, _ := tries.LoadOrStore(job.ItemID, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		var i int
		if err := job.Decode(&i); err != nil {
			return nil, err
		}
		switch i % 10 {
		case 3:
			return nil, fmt.Errorf("boom %d", i)
		case 7:
			panic(fmt.Sprintf("kaboom %d", i))
		}
		return i, nil
	}, engine.WithConcurrency(3))
	require.NoError(t, engine.RunAll(testCtx(t), d, w, rec.collector(t, ep)))

	rec.requireEachOnce(t, "calc", 30)
	require.Len(t, rec.failures, 6)
	var booms, panics int
	for _, f := range rec.failures {
		assert.Equal(t, "calc", f.TaskType)
		assert.NotZero(t, f.ItemID)
		assert.Equal(t, engine.DefaultMaxAttempts, f.Attempt, "the failure handler sees the last attempt")
		switch {
		case strings.Contains(f.Message, "boom") && !strings.Contains(f.Message, "kaboom"):
			booms++
		case strings.Contains(f.Message, "panic: kaboom"):
			panics++
			assert.Contains(t, f.Message, "goroutine", "a panic carries its stack")
		}
		assert.Contains(t, f.Error(), fmt.Sprintf("item %d", f.ItemID))
		assert.Equal(t, f.Message, task.failed[f.ItemID], "the task sees the failure in its ACK")
	}
	assert.Equal(t, 3, booms)
	assert.Equal(t, 3, panics)
	assert.Equal(t, 24, task.ok)
	failed := map[uint64]bool{}
	for _, f := range rec.failures {
		failed[f.ItemID] = true
	}
	tries.Range(func(k, v any) bool {
		want := int32(1)
		if failed[k.(uint64)] {
			want = engine.DefaultMaxAttempts
		}
		assert.Equal(t, want, v.(*atomic.Int32).Load(), "item %d was tried", k)
		return true
	})
	require.Len(t, rec.finished, 1)
	assert.Equal(t, engine.Summary{Results: 24, Failures: 6, ByType: map[string]engine.TypeSummary{"calc": {Results: 24, Failures: 6}}}, rec.finished[0])
	assert.Equal(t, uint64(2*6), d.Stats().Retried, "each failing item went out twice more")
}

func testPermanentErrorsAttemptLimitsAndDeadlines(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	rec := newRecorder()
	var tries sync.Map // "type/id" -> *atomic.Int32
	count := func(job *engine.Job) int32 {
		n, _ := tries.LoadOrStore(fmt.Sprintf("%s/%d", job.TaskType, job.ItemID), new(atomic.Int32))
		return n.(*atomic.Int32).Add(1)
	}
	d := newDistributor(t, ep, []engine.TaskSpec{
		{Type: "permanent", Task: intItems(3)},
		{Type: "flaky", Task: intItems(4), MaxAttempts: 5},
		{Type: "slow", Task: intItems(2), MaxAttempts: 2, Timeout: 20 * time.Millisecond},
	}, fastRetries)
	permanent := newWorker(t, ep, "permanent", func(ctx context.Context, job *engine.Job) (any, error) {
		count(job)
		return nil, fmt.Errorf("bad input: %w", engine.ErrPermanent)
	})
	flaky := newWorker(t, ep, "flaky", func(ctx context.Context, job *engine.Job) (any, error) {
		if count(job) < 4 {
			return nil, errors.New("not yet")
		}
		return job.Attempt, nil // the fourth attempt of five succeeds
	})
	slow := newWorker(t, ep, "slow", func(ctx context.Context, job *engine.Job) (any, error) {
		count(job)
		<-ctx.Done() // the deadline reaches the handler through its context
		return "too late", nil
	})
	require.NoError(t, engine.RunAll(testCtx(t), d, rec.collector(t, ep), permanent, flaky, slow))
	rec.requireEachOnce(t, "permanent", 3)
	rec.requireEachOnce(t, "flaky", 4)
	rec.requireEachOnce(t, "slow", 2)
	tries.Range(func(k, v any) bool {
		n := v.(*atomic.Int32).Load()
		switch tt, _, _ := strings.Cut(k.(string), "/"); tt {
		case "permanent":
			assert.Equal(t, int32(1), n, "%s: a permanent error is not retried", k)
		case "flaky":
			assert.Equal(t, int32(4), n, "%s", k)
		case "slow":
			assert.Equal(t, int32(2), n, "%s: the type's attempt limit", k)
		}
		return true
	})
	byType := map[string][]*engine.ItemError{}
	for _, f := range rec.failures {
		byType[f.TaskType] = append(byType[f.TaskType], f)
	}
	assert.Len(t, byType["flaky"], 0)
	require.Len(t, byType["permanent"], 3)
	for _, f := range byType["permanent"] {
		assert.Equal(t, 1, f.Attempt)
		assert.Contains(t, f.Message, "bad input")
	}
	require.Len(t, byType["slow"], 2)
	for _, f := range byType["slow"] {
		assert.Equal(t, 2, f.Attempt)
		assert.Contains(t, f.Message, "deadline of 20ms")
	}
	for id, v := range rec.values {
		_ = id
		assert.Equal(t, int64(4), v, "the flaky items succeeded on their fourth attempt")
	}
}

func testPrepareAndResultHandlerFailuresAreItemFailures(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	var failures []*engine.ItemError
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(10)}}, fastRetries)
	w := newWorker(t, ep, "calc", echo, engine.WithPrepare(func(ctx context.Context, job *engine.Job) (any, error) {
		var i int
		if err := job.Decode(&i); err != nil {
			return nil, err
		}
		if i == 2 {
			return nil, errors.New("cannot prepare")
		}
		return nil, nil
	}))
	c, err := engine.NewCollector(ep, engine.ResultFunc(func(ctx context.Context, res *engine.Result) (any, error) {
		var i int
		if err := res.Decode(&i); err != nil {
			return nil, err
		}
		if i == 5 {
			return nil, errors.New("cannot store")
		}
		return nil, nil
	}), engine.WithFailureHandler(func(ctx context.Context, f *engine.ItemError) { failures = append(failures, f) }))
	require.NoError(t, err)
	require.NoError(t, engine.RunAll(testCtx(t), d, w, c))
	require.Len(t, failures, 2)
	msgs := failures[0].Message + "|" + failures[1].Message
	assert.Contains(t, msgs, "prepare hook: cannot prepare")
	assert.Contains(t, msgs, "result handler: cannot store")
	assert.Equal(t, engine.Summary{Results: 8, Failures: 2, ByType: map[string]engine.TypeSummary{"calc": {Results: 8, Failures: 2}}}, c.Summary())
}

func testTaskErrorAbortsTheRun(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	n := 0
	bad := engine.TaskFunc(func(ctx context.Context) (engine.Item, error) {
		n++
		if n == 5 {
			return engine.Item{}, errors.New("database gone")
		}
		return engine.Item{Payload: n}, nil
	})
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: bad}})
	err := engine.RunAll(testCtx(t), d, newWorker(t, ep, "calc", echo), newRecorder().collector(t, ep))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "database gone")
	assert.Contains(t, err.Error(), `"calc"`)
}

func testWorkerForUnknownTypeIsAnError(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(1)}})
	ctx, cancel := context.WithCancel(testCtx(t))
	dErr := make(chan error, 1)
	go func() { dErr <- d.Run(ctx) }()
	err := newWorker(t, ep, "typo", echo).Run(ctx)
	require.ErrorIs(t, err, engine.ErrUnknownTaskType)
	assert.Contains(t, err.Error(), `"typo"`)
	assert.Contains(t, err.Error(), "calc", "the error lists the registered types")
	cancel()
	assert.ErrorIs(t, <-dErr, context.Canceled)
}

func testWorkerInitErrorEndsItsRun(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(4)}})
	broken := newWorker(t, ep, "calc", echo, engine.WithGoroutineInit(func(ctx context.Context, i int, md engine.Metadata) error {
		return errors.New("no GPU")
	}))
	ctx := testCtx(t)
	rec := newRecorder()
	errs := make(chan error, 2)
	go func() { errs <- d.Run(ctx) }()
	go func() { errs <- rec.collector(t, ep).Run(ctx) }()
	assert.ErrorContains(t, broken.Run(ctx), "no GPU")
	// A healthy worker still completes the run.
	require.NoError(t, newWorker(t, ep, "calc", echo).Run(ctx))
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
	rec.requireEachOnce(t, "calc", 4)
}

func testBadConfiguration(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	task := intItems(1)
	h := engine.HandlerFunc(echo)
	tests := []struct {
		name string
		err  error
		want []string
		is   error
	}{
		{"no tasks", ctorErr(engine.NewDistributor(ep, nil)), []string{"no tasks"}, nil},
		{"empty type", ctorErr(engine.NewDistributor(ep, []engine.TaskSpec{{Task: task}})), []string{"empty task type"}, nil},
		{"nil task", ctorErr(engine.NewDistributor(ep, []engine.TaskSpec{{Type: "x"}})), []string{`"x"`, "nil Task"}, nil},
		{"duplicate", ctorErr(engine.NewDistributor(ep, []engine.TaskSpec{{Type: "x", Task: task}, {Type: "x", Task: task}})), []string{`"x"`}, dag.ErrDuplicate},
		{"unknown dependency", ctorErr(engine.NewDistributor(ep, []engine.TaskSpec{{Type: "x", Task: task, DependsOn: []string{"ghost"}}})), []string{`"ghost"`}, dag.ErrUnknownDependency},
		{"cycle", ctorErr(engine.NewDistributor(ep, []engine.TaskSpec{
			{Type: "x", Task: task, DependsOn: []string{"y"}}, {Type: "y", Task: task, DependsOn: []string{"x"}},
		})), []string{"x -> y -> x"}, dag.ErrCycle},
		{"endpoint without a scheme", ctorErr(engine.NewDistributor(engine.Endpoints{Distributor: "host:5555"}, []engine.TaskSpec{{Type: "x", Task: task}})), []string{`"host:5555"`, "distributor endpoint"}, transport.ErrInvalidEndpoint},
		{"scheme nobody serves", ctorErr(engine.NewCollector(engine.Endpoints{Distributor: ep.Distributor, Collector: "nosuch://x"}, newRecorder())), []string{`"nosuch://x"`, "collector endpoint"}, transport.ErrNoTransport},
		{"empty endpoint", ctorErr(engine.NewWorker(engine.Endpoints{Distributor: ep.Distributor}, "x", h)), []string{"collector endpoint"}, nil},
		{"equal endpoints", ctorErr(engine.NewCollector(engine.Endpoints{Distributor: ep.Distributor, Collector: ep.Distributor}, newRecorder())), []string{"each binds its own", ep.Distributor}, nil},
		{"equal endpoints for a worker", ctorErr(engine.NewWorker(engine.Endpoints{Distributor: ep.Collector, Collector: ep.Collector}, "x", h)), []string{"each binds its own"}, nil},
		{"worker empty type", ctorErr(engine.NewWorker(ep, "", h)), []string{"empty task type"}, nil},
		{"worker nil handler", ctorErr(engine.NewWorker(ep, "x", nil)), []string{"nil handler"}, nil},
		{"collector nil handler", ctorErr(engine.NewCollector(ep, nil)), []string{"nil result handler"}, nil},
		{"metadata nil fetch", ctorErr(engine.NewMetadataSource(ep, nil)), []string{"nil fetch"}, nil},
		{"zero concurrency", ctorErr(engine.NewWorker(ep, "x", h, engine.WithConcurrency(0))), []string{"WithConcurrency", "concurrency 0"}, nil},
		{"negative prefetch", ctorErr(engine.NewWorker(ep, "x", h, engine.WithPrefetch(-2))), []string{"WithPrefetch"}, nil},
		{"window over the limit", ctorErr(engine.NewWorker(ep, "x", h, engine.WithConcurrency(1<<15), engine.WithPrefetch(1<<16))), []string{"32768 goroutines", "65536"}, nil},
		{"nil logger", ctorErr(engine.NewWorker(ep, "x", h, engine.WithLogger(nil))), []string{"WithLogger", "nil logger"}, nil},
		{"nil transport", ctorErr(engine.NewCollector(ep, newRecorder(), engine.WithTransport(nil))), []string{"WithTransport", "nil transport"}, nil},
		{"nil ack handler", ctorErr(engine.NewDistributor(ep, []engine.TaskSpec{{Type: "x", Task: task}}, engine.WithAckHandler(nil))), []string{"WithAckHandler"}, nil},
		{"zero option", ctorErr(engine.NewWorker(ep, "x", h, engine.Option{})), []string{"zero Option"}, nil},
		{"nil option", ctorErr(engine.NewMetadataSource(ep, fetchNothing, nil)), []string{"option 0 is nil"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorIs(t, tt.err, engine.ErrInvalidConfig)
			for _, w := range tt.want {
				assert.Contains(t, tt.err.Error(), w)
			}
			if tt.is != nil {
				assert.ErrorIs(t, tt.err, tt.is)
			}
		})
	}
	assert.ErrorIs(t, engine.RunAll(testCtx(t), nil), engine.ErrInvalidConfig)
	var typedNil *engine.Worker
	assert.ErrorIs(t, engine.RunAll(testCtx(t), typedNil), engine.ErrInvalidConfig)
}

func ctorErr[T any](_ T, err error) error { return err }

func fetchNothing(context.Context) (engine.Metadata, error) { return nil, nil }

// countingHandler counts log records, and those that name an item.
type countingHandler struct {
	level          slog.Level
	records, items atomic.Int64
}

func (h *countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.records.Add(1)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "item" {
			h.items.Add(1)
		}
		return true
	})
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func testLoggingIsQuietUnlessDebug(t *testing.T, s Suite) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		t.Run(level.String(), func(t *testing.T) {
			ep := s.NewEndpoints(t)
			h := &countingHandler{level: level}
			log := engine.WithLogger(slog.New(h))
			const items = 300
			d, err := engine.NewDistributor(ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items)}}, log)
			require.NoError(t, err)
			w, err := engine.NewWorker(ep, "calc", engine.HandlerFunc(echo), log)
			require.NoError(t, err)
			c, err := engine.NewCollector(ep, newRecorder(), log)
			require.NoError(t, err)
			require.NoError(t, engine.RunAll(testCtx(t), d, w, c))
			if level == slog.LevelInfo {
				assert.Zero(t, h.items.Load(), "no per-item lines at info level")
				assert.Less(t, h.records.Load(), int64(15), "a run logs a handful of lines, whatever its size")
			} else {
				assert.GreaterOrEqual(t, h.items.Load(), int64(items), "debug shows each item")
			}
		})
	}
}

// testHostilePeerDoesNotStopTheRun: messages out of place, of unknown
// items or with malformed payloads are dropped, and the run completes.
func testHostilePeerDoesNotStopTheRun(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	ctx := testCtx(t)
	rec := newRecorder()
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(20)}})
	dErr := make(chan error, 1)
	go func() { dErr <- d.Run(ctx) }()

	bad, err := transport.Dial(ctx, ep.Distributor)
	require.NoError(t, err)
	defer bad.Close()
	for _, env := range []transport.Envelope{
		{Kind: transport.KindReady, Count: 1 << 30},                                    // credit without a hello
		{Kind: transport.KindAck, Items: []transport.Item{{ID: 999, Attempt: 1}}},      // ACK of no item
		{Kind: transport.KindWork, TaskType: "calc", Items: []transport.Item{{ID: 1}}}, // a kind the distributor never receives
		{Kind: transport.KindMetadata, Payload: []byte{0xdd, 0xff, 0xff, 0xff, 0xff}},  // metadata not asked for, and malformed
		{Kind: transport.KindHello, Role: transport.Role(77)},                          // an unknown role
		{Kind: transport.KindBye, Payload: []byte{0xdd, 0xff, 0xff, 0xff, 0xff}},       // a goodbye from a stranger, malformed
	} {
		require.NoError(t, bad.Send(ctx, env))
	}
	// The unknown role is rejected by name, and the goodbye, the last
	// message, is answered: the distributor has handled all of them.
	rejectedRole := false
	for {
		env, err := bad.Recv(ctx)
		require.NoError(t, err)
		if env.Kind == transport.KindReject && strings.Contains(string(env.Payload), "role") {
			rejectedRole = true
		}
		if env.Kind == transport.KindBye {
			break
		}
	}
	assert.True(t, rejectedRole, "the hello of an unknown role was rejected by name")
	require.NoError(t, engine.RunAll(ctx, rec.collector(t, ep), newWorker(t, ep, "calc", echo)))
	require.NoError(t, <-dErr)
	rec.requireEachOnce(t, "calc", 20)
	// Credit without a hello, the ACK of no item and a kind the distributor
	// never receives come from a peer not in the run; the goodbye is
	// malformed; the unknown role and the metadata are refused.
	assert.Equal(t, map[transport.DropReason]uint64{
		engine.IgnoredNotInRun: 3, engine.IgnoredMalformed: 1, engine.IgnoredRefused: 2,
	}, d.Stats().Ignored)
}
