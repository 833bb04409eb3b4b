package enginetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine"
)

// ordered is a collector's handler that keeps what it handled, in order:
// the task type and the item's value (its payload, echoed by the worker).
type ordered struct {
	mu      sync.Mutex
	handled []handledItem
}

type handledItem struct {
	taskType string
	value    int64
}

func (o *ordered) HandleResult(ctx context.Context, res *engine.Result) (any, error) {
	var v int64
	if err := res.Decode(&v); err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.handled = append(o.handled, handledItem{res.TaskType, v})
	return nil, nil
}

func (o *ordered) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.handled)
}

// requireEachOnce checks that every item of each type was handled once,
// and that no item of a dependent type was handled before the last of
// the type it depends on.
func (o *ordered) requireEachOnce(t *testing.T, first string, nFirst int, second string, nSecond int) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	seen := map[handledItem]int{}
	lastFirst, firstSecond := -1, len(o.handled)
	for i, h := range o.handled {
		seen[h]++
		switch h.taskType {
		case first:
			lastFirst = i
		case second:
			firstSecond = min(firstSecond, i)
		}
	}
	for tt, n := range map[string]int{first: nFirst, second: nSecond} {
		for v := range n {
			require.Equal(t, 1, seen[handledItem{tt, int64(v)}], "%s item %d: handled this many times", tt, v)
		}
	}
	require.Len(t, o.handled, nFirst+nSecond, "nothing else was handled")
	assert.Less(t, lastFirst, firstSecond, "every %s item was handled before the first %s item", first, second)
}

// testDurableRunResumes kills a distributor with a journal at points
// spread over a run of two task types, one depending on the other, and
// starts another on the same journal each time: the workers and the
// collector wait for it and join the same run, every item is handled once
// by the collector, the dependent type starts only after its dependency's
// last ACK, and the run completes.
func testDurableRunResumes(t *testing.T, s Suite) {
	const perType = 150
	for _, crashes := range [][]int{{20}, {10, 140, 200, 270}} {
		t.Run(fmt.Sprintf("killed after %v results", crashes), func(t *testing.T) {
			ep := s.NewEndpoints(t)
			ctx := testCtx(t)
			journal := filepath.Join(t.TempDir(), "run.journal")
			specs := func() []engine.TaskSpec { // fresh tasks, as a new process has
				return []engine.TaskSpec{
					{Type: "first", Task: intItems(perType)},
					{Type: "second", Task: intItems(perType), DependsOn: []string{"first"}},
				}
			}
			col := &ordered{}
			c, err := engine.NewCollector(ep, col, engine.WithRejoin(20*time.Second), engine.WithLogger(testLogger(t)))
			require.NoError(t, err)
			var peers []engine.Runner
			peers = append(peers, c)
			for _, tt := range []string{"first", "second"} {
				peers = append(peers, newWorker(t, ep, tt, slowly, engine.WithRejoin(20*time.Second)))
			}
			peerErrs := runRest(ctx, peers...)
			for i, after := range crashes {
				dT := wrap(t, ep.Distributor)
				d := newDistributor(t, ep, specs(), quickLiveness, engine.WithTransport(dT), engine.WithJournal(journal))
				dErr := runRest(ctx, d)
				eventually(t, fmt.Sprintf("%d results before crash %d", after, i+1), func() bool { return col.count() >= after })
				dT.Cut() // as kill -9: its peers hear nothing more
				require.Error(t, <-dErr)
			}
			d := newDistributor(t, ep, specs(), quickLiveness, engine.WithJournal(journal))
			require.NoError(t, <-runRest(ctx, d))
			requireAllNil(t, peerErrs, len(peers))
			col.requireEachOnce(t, "first", perType, "second", perType)
			done, produced := d.Progress()
			assert.Equal(t, int64(2*perType), done)
			assert.Equal(t, int64(2*perType), produced)
			// A distributor started on the journal of the completed run
			// hands out nothing and returns at once.
			again := newDistributor(t, ep, specs(), engine.WithJournal(journal))
			require.NoError(t, again.Run(ctx))
		})
	}
}

// testJournalOfAnotherPipelineIsRefused: a distributor started on the
// journal of a run with other task types, or other dependencies, says
// which.
func testJournalOfAnotherPipelineIsRefused(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	ctx := testCtx(t)
	journal := filepath.Join(t.TempDir(), "run.journal")
	rec := newRecorder()
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "a", Task: intItems(5)}, {Type: "b", Task: intItems(5)}}, engine.WithJournal(journal))
	require.NoError(t, engine.RunAll(ctx, d, newWorker(t, ep, "a", echo), newWorker(t, ep, "b", echo), rec.collector(t, ep)))
	for what, specs := range map[string][]engine.TaskSpec{
		`task types ["a" "b"], this distributor ["a" "c"]`: {{Type: "a", Task: intItems(5)}, {Type: "c", Task: intItems(5)}},
		`"b" depends on [] in it, on ["a"] here`:           {{Type: "a", Task: intItems(5)}, {Type: "b", Task: intItems(5), DependsOn: []string{"a"}}},
	} {
		err := newDistributor(t, ep, specs, engine.WithJournal(journal)).Run(ctx)
		require.ErrorIs(t, err, engine.ErrJournalMismatch)
		assert.ErrorContains(t, err, what)
	}
}

// testResumingANonDeterministicTaskFails: a task that gives other items
// when asked again cannot be resumed by replay, and the distributor says
// so instead of handing out the wrong items.
func testResumingANonDeterministicTaskFails(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	ctx := testCtx(t)
	journal := filepath.Join(t.TempDir(), "run.journal")
	random := func() engine.Task {
		return engine.Items(100, func(int) (any, error) { return rand.Int64(), nil })
	}
	dT := wrap(t, ep.Distributor)
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: random()}}, quickLiveness, engine.WithTransport(dT), engine.WithJournal(journal))
	col := &ordered{}
	c, err := engine.NewCollector(ep, col, engine.WithRejoin(time.Second), engine.WithLogger(testLogger(t)))
	require.NoError(t, err)
	peers := runRest(ctx, c, newWorker(t, ep, "calc", slowly, engine.WithRejoin(time.Second)))
	dErr := runRest(ctx, d)
	eventually(t, "some results", func() bool { return col.count() >= 5 })
	dT.Cut()
	require.Error(t, <-dErr)
	err = newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: random()}}, quickLiveness, engine.WithJournal(journal)).Run(ctx)
	require.ErrorIs(t, err, engine.ErrNotDeterministic)
	assert.ErrorContains(t, err, `task "calc"`)
	// The peers give up in time: nothing more comes.
	for range 2 {
		<-peers
	}
}
