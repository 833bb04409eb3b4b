package enginetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine"
)

// mdTask checks that Init, with the metadata, came before any Next.
type mdTask struct {
	engine.Task
	md         engine.Metadata
	nextBefore bool
}

func (m *mdTask) Init(ctx context.Context, md engine.Metadata) error {
	m.md = md
	return nil
}

func (m *mdTask) Next(ctx context.Context) (engine.Item, error) {
	if m.md == nil {
		m.nextBefore = true
	}
	return m.Task.Next(ctx)
}

func testMetadataReachesEveryoneBeforeWork(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	want := engine.Metadata{"run": "r-42", "scale": int64(3), "nested": map[string]any{"k": "v"}}
	task := &mdTask{Task: intItems(20)}
	var (
		mu          sync.Mutex
		workerMD    engine.Metadata
		goroutineMD []engine.Metadata
		collectorMD engine.Metadata
	)
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: task}}, engine.WithMetadata())
	w := newWorker(t, ep, "calc",
		func(ctx context.Context, job *engine.Job) (any, error) {
			var i int
			if err := job.Decode(&i); err != nil {
				return nil, err
			}
			return i * int(workerMD["scale"].(int64)), nil
		},
		engine.WithConcurrency(2),
		engine.WithWorkerInit(func(ctx context.Context, md engine.Metadata) error { workerMD = md; return nil }),
		engine.WithGoroutineInit(func(ctx context.Context, index int, md engine.Metadata) error {
			mu.Lock()
			defer mu.Unlock()
			goroutineMD = append(goroutineMD, md)
			return nil
		}),
	)
	rec := newRecorder()
	c := rec.collector(t, ep, engine.WithCollectorInit(func(ctx context.Context, md engine.Metadata) error { collectorMD = md; return nil }))
	src, err := engine.NewMetadataSource(ep, func(ctx context.Context) (engine.Metadata, error) {
		// The others were started first and have been waiting for this.
		assert.Zero(t, w.Executed(), "no work before the metadata")
		return want, nil
	}, engine.WithLogger(testLogger(t)))
	require.NoError(t, err)

	require.NoError(t, engine.RunAll(testCtx(t), d, w, c, src))

	assert.False(t, task.nextBefore, "the task was asked for an item before its Init got the metadata")
	assert.Equal(t, want, task.md)
	assert.Equal(t, want, workerMD)
	assert.Equal(t, want, collectorMD)
	require.Len(t, goroutineMD, 2)
	for _, md := range goroutineMD {
		assert.Equal(t, want, md)
	}
	rec.requireEachOnce(t, "calc", 20)
	for _, v := range rec.values {
		assert.Zero(t, v.(int64)%3, "workers used the metadata")
	}
}

func testMetadataRejectedWhenNotAwaited(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(1)}})
	src, err := engine.NewMetadataSource(ep, func(ctx context.Context) (engine.Metadata, error) { return engine.Metadata{"a": 1}, nil })
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(testCtx(t))
	dErr := make(chan error, 1)
	go func() { dErr <- d.Run(ctx) }()
	err = src.Run(ctx)
	assert.ErrorIs(t, err, engine.ErrRejected)
	assert.Contains(t, err.Error(), "WithMetadata")
	cancel()
	assert.ErrorIs(t, <-dErr, context.Canceled)
}

func testSecondMetadataRejectedSecondCollectorStandsBy(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(1)}}, engine.WithMetadata())
	fetch := func(ctx context.Context) (engine.Metadata, error) { return engine.Metadata{"a": 1}, nil }
	src1, err := engine.NewMetadataSource(ep, fetch)
	require.NoError(t, err)
	src2, err := engine.NewMetadataSource(ep, fetch)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(testCtx(t))
	dErr, c1Err := make(chan error, 1), make(chan error, 1)
	go func() { dErr <- d.Run(ctx) }()
	require.NoError(t, src1.Run(ctx))
	assert.ErrorIs(t, src2.Run(ctx), engine.ErrRejected)

	// The first collector joins; the second stands by until it leaves,
	// then takes its place.
	c1, err := engine.NewCollector(ep, newRecorder())
	require.NoError(t, err)
	c1ctx, stopC1 := context.WithCancel(ctx)
	go func() { c1Err <- c1.Run(c1ctx) }()
	<-c1.Joined()
	// The second binds its own endpoint but shares the distributor.
	ep2 := ep
	ep2.Collector = s.NewEndpoints(t).Collector
	c2, err := engine.NewCollector(ep2, newRecorder())
	require.NoError(t, err)
	c2Err := make(chan error, 1)
	go func() { c2Err <- c2.Run(ctx) }()
	select {
	case <-c2.Joined():
		t.Fatal("a second collector joined while the first was connected")
	case err := <-c2Err:
		t.Fatalf("the second collector gave up: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	stopC1()
	assert.ErrorIs(t, <-c1Err, context.Canceled)
	require.True(t, waitFor(c2.Joined(), 10*time.Second), "the standby collector takes over")
	cancel()
	assert.ErrorIs(t, <-dErr, context.Canceled)
	assert.ErrorIs(t, <-c2Err, context.Canceled)
}

func testMetadataFetchErrorIsReturned(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	boom := errors.New("no config")
	src, err := engine.NewMetadataSource(ep, func(ctx context.Context) (engine.Metadata, error) { return nil, boom })
	require.NoError(t, err)
	assert.ErrorIs(t, src.Run(testCtx(t)), boom)
}
