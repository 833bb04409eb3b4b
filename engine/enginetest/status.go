package enginetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine"
)

// testStatusFollowsTheRun: Distributor.Status shows a run as it goes, a
// type waiting for its dependency, items in flight, the workers and the
// collector, and at the end every item complete.
func testStatusFollowsTheRun(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	ctx := testCtx(t)
	rec := newRecorder()
	release := make(chan struct{})
	held := func(ctx context.Context, job *engine.Job) (any, error) {
		if !waitFor(release, 10*time.Second) {
			return nil, context.DeadlineExceeded
		}
		return echo(ctx, job)
	}
	d := newDistributor(t, ep, []engine.TaskSpec{
		{Type: "calc", Task: intItems(30)},
		{Type: "report", Task: intItems(10), DependsOn: []string{"calc"}},
	}, quickLiveness)
	before := d.Status()
	assert.Empty(t, before.Run, "no run before Run")
	assert.Equal(t, int64(40), before.Total, "both tasks know their totals")
	require.Len(t, before.Tasks, 2)
	assert.Equal(t, engine.TaskRunning, before.Tasks[0].State)
	assert.Equal(t, engine.TaskWaiting, before.Tasks[1].State)

	calc := newWorker(t, ep, "calc", held, engine.WithPrefetch(0), engine.WithConcurrency(2))
	report := newWorker(t, ep, "report", echo)
	c := rec.collector(t, ep)
	errs := runRest(ctx, d, c, calc, report)

	// The workers are published once a heartbeat interval: wait for an
	// interval after the hand-out.
	var mid engine.Status
	types := map[string]engine.WorkerStatus{}
	eventually(t, "the status shows the held items and both workers", func() bool {
		mid = d.Status()
		clear(types)
		for _, w := range mid.Workers {
			types[w.TaskType] = w
		}
		return mid.Produced == 2 && types["calc"].Handed == 2 && len(types) == 2 && mid.Collector != ""
	})
	assert.NotEmpty(t, mid.Run)
	assert.Positive(t, mid.Elapsed)
	calcStatus, reportStatus := mid.Tasks[0], mid.Tasks[1]
	assert.Equal(t, engine.TaskStatus{Type: "calc", State: engine.TaskRunning, Total: 30, Produced: 2, InFlight: 2}, calcStatus)
	assert.Equal(t, engine.TaskStatus{Type: "report", DependsOn: []string{"calc"}, State: engine.TaskWaiting, Total: 10}, reportStatus)
	assert.Equal(t, 2, types["calc"].Window, "two goroutines, no prefetch")
	assert.Equal(t, uint32(2), types["calc"].Handed)
	assert.WithinDuration(t, time.Now(), types["calc"].LastSeen, 5*time.Second)
	assert.Contains(t, types, "report")

	// An observer gets the same view over the transport (while the items
	// are held, nothing in it moves but the clock and the rates).
	remote, err := engine.QueryStatus(ctx, ep.Distributor)
	require.NoError(t, err)
	assert.Equal(t, mid.Run, remote.Run)
	assert.Equal(t, mid.Tasks, remote.Tasks)
	assert.Equal(t, mid.Collector, remote.Collector)
	assert.Equal(t, []int64{40, 2, 2, 0}, []int64{remote.Total, remote.Produced, remote.InFlight, remote.Completed})
	require.Len(t, remote.Workers, 2)
	for _, w := range remote.Workers {
		assert.Equal(t, types[w.TaskType].Peer, w.Peer)
		assert.Equal(t, types[w.TaskType].Handed, w.Handed)
	}
	assert.True(t, remote.Started.Equal(mid.Started), "started %v, remotely %v", mid.Started, remote.Started)

	close(release)
	requireAllNil(t, errs, 4)
	end := d.Status()
	assert.Equal(t, int64(40), end.Completed)
	assert.Zero(t, end.InFlight)
	assert.Zero(t, end.Remaining, "nothing left")
	for _, ts := range end.Tasks {
		assert.Equal(t, engine.TaskComplete, ts.State, ts.Type)
		assert.Equal(t, ts.Total, ts.Completed, ts.Type)
	}
	elapsed := end.Elapsed
	time.Sleep(5 * time.Millisecond) // the elapsed time of a run that ended stays put
	assert.Equal(t, elapsed, d.Status().Elapsed)
	assert.Equal(t, engine.TypeSummary{Results: 30}, c.Summary().ByType["calc"])
}
