package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The rate comes from the completed counts of the last heartbeat
// intervals, and the time left from the items left at that rate; a task
// that does not know its total leaves both unknown.
func TestStatusEstimatesTheTimeLeft(t *testing.T) {
	d, err := NewDistributor(InProcess("status-eta"), []TaskSpec{{Type: "t", Task: Items(1000, func(int) (any, error) { return nil, nil })}})
	require.NoError(t, err)
	now := time.Now()
	d.done.Store(400)
	d.peers.Store(&peerView{samples: []progressSample{{at: now.Add(-2 * time.Second), completed: 200}, {at: now, completed: 400}}})
	r := &distRun{started: now.Add(-4 * time.Second), order: []*taskState{{}}}
	r.order[0].counts.completed.Store(400)
	r.order[0].counts.produced.Store(450)
	d.live.Store(r)
	st := d.Status()
	assert.Equal(t, int64(1000), st.Total)
	assert.Equal(t, int64(400), st.Completed)
	assert.Equal(t, int64(50), st.InFlight)
	assert.InDelta(t, 100.0, st.Rate, 0.001, "200 items in 2 s")
	assert.InDelta(t, 6*time.Second, st.Remaining, float64(time.Millisecond), "600 items left at 100 a second")

	unsized, err := NewDistributor(InProcess("status-unsized"), []TaskSpec{{Type: "t", Task: TaskFunc(nil)}})
	require.NoError(t, err)
	unsized.peers.Store(d.peers.Load())
	st = unsized.Status()
	assert.Equal(t, int64(-1), st.Total)
	assert.Zero(t, st.Remaining)
}
