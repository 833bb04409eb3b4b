package enginetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/journal"
	"github.com/zmqpipeline/zmqpipeline/transport"
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
	for _, crashes := range [][]int{{20}, {10, 140, 190, 230}} {
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

// testCollectorRestartedWithTheDistributor kills a durable distributor
// and its collector together and starts both again: the new collector is
// handed no item the journal has an ACK for, the run completes, and every
// item is handled by one collector or the other.
func testCollectorRestartedWithTheDistributor(t *testing.T, s Suite) {
	const items = 300
	ep := s.NewEndpoints(t)
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "run.journal")
	specs := func() []engine.TaskSpec { return []engine.TaskSpec{{Type: "calc", Task: intItems(items)}} }
	dT, cT := wrap(t, ep.Distributor), wrap(t, ep.Collector)
	d := newDistributor(t, ep, specs(), quickLiveness, engine.WithTransport(dT), engine.WithJournal(path))
	old := &ordered{}
	c, err := engine.NewCollector(ep, old, engine.WithTransport(cT), engine.WithLogger(testLogger(t)))
	require.NoError(t, err)
	w := newWorker(t, ep, "calc", slowly, engine.WithRejoin(20*time.Second))
	wErr := runRest(ctx, w)
	oldErrs := runRest(ctx, d, c)
	eventually(t, "100 results", func() bool { return old.count() >= 100 })
	dT.Cut()
	cT.Cut()
	for range 2 {
		<-oldErrs
	}
	acked := map[int64]bool{}
	_, err = journal.Read(path, func(rec journal.Record) error {
		if rec.Kind == journal.KindAcked {
			acked[int64(rec.Item)-1] = true // intItems: item id i+1 carries i
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, acked)
	fresh := &ordered{}
	c2, err := engine.NewCollector(ep, fresh, engine.WithLogger(testLogger(t)))
	require.NoError(t, err)
	d2 := newDistributor(t, ep, specs(), quickLiveness, engine.WithJournal(path))
	requireAllNil(t, runRest(ctx, d2, c2), 2)
	require.NoError(t, <-wErr)
	both := map[int64]int{}
	for _, col := range []*ordered{old, fresh} {
		col.mu.Lock()
		for _, h := range col.handled {
			both[h.value]++
		}
		col.mu.Unlock()
	}
	fresh.mu.Lock()
	defer fresh.mu.Unlock()
	for _, h := range fresh.handled {
		assert.False(t, acked[h.value], "item %d was acknowledged before the restart, and handed to the new collector", h.value)
	}
	for v := range int64(items) {
		require.Positive(t, both[v], "item %d was never handled", v)
	}
}

// testNewCollectorSkipsCompleteItems: a collector that joins a run under
// way hands its handler no result for an item the distributor already has
// an ACK for, such as a result a worker sends again late.
func testNewCollectorSkipsCompleteItems(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	ctx := testCtx(t)
	// The default liveness: this test's worker sends no heartbeats.
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(3)}}, engine.WithEndGrace(100*time.Millisecond))
	cT := wrap(t, ep.Collector)
	first := &ordered{}
	c1, err := engine.NewCollector(ep, first, engine.WithTransport(cT), engine.WithLogger(testLogger(t)))
	require.NoError(t, err)
	dErr := runRest(ctx, d)
	c1Err := runRest(ctx, c1)
	<-c1.Joined()
	// A worker of its own, whose first result it can send again.
	toDist, err := transport.Dial(ctx, ep.Distributor)
	require.NoError(t, err)
	defer func() { _ = toDist.Close() }()
	toColl, err := transport.Dial(ctx, ep.Collector)
	require.NoError(t, err)
	defer func() { _ = toColl.Close() }()
	require.NoError(t, toDist.Send(ctx, transport.Envelope{Kind: transport.KindHello, Role: transport.RoleWorker, TaskType: "calc", Count: 1}))
	var run uint64
	next := func(kind transport.Kind) transport.Envelope {
		for {
			env, err := toDist.Recv(ctx)
			require.NoError(t, err)
			if env.Kind == kind {
				return env
			}
		}
	}
	run = next(transport.KindWelcome).Run
	require.NoError(t, toDist.Send(ctx, transport.Envelope{Kind: transport.KindReady, Run: run, Count: 1}))
	result := func(work transport.Envelope) transport.Envelope {
		return transport.Envelope{Kind: transport.KindResult, Run: run, TaskType: work.TaskType, Count: work.Count, Items: work.Items}
	}
	w1 := next(transport.KindWork)
	require.NoError(t, toColl.Send(ctx, result(w1)))
	w2 := next(transport.KindWork) // its credit came back: item 1 is complete
	eventually(t, "the first collector handled item 1", func() bool { return first.count() == 1 })
	cT.Cut() // the collector dies
	require.Error(t, <-c1Err)
	second := &ordered{}
	c2, err := engine.NewCollector(ep, second, engine.WithLogger(testLogger(t)))
	require.NoError(t, err)
	c2Err := runRest(ctx, c2)
	<-c2.Joined()
	require.NoError(t, toColl.Send(ctx, result(w1))) // late, again
	require.NoError(t, toColl.Send(ctx, result(w2)))
	// Then it answers whatever it is handed until the run ends.
	answering, stop := context.WithCancel(ctx)
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		for {
			env, err := toDist.Recv(answering)
			if err != nil {
				return
			}
			if env.Kind == transport.KindWork {
				_ = toColl.Send(answering, result(env))
			}
		}
	}()
	requireAllNil(t, dErr, 1)
	stop()
	<-answered
	requireAllNil(t, c2Err, 1)
	second.mu.Lock()
	defer second.mu.Unlock()
	assert.Equal(t, []handledItem{{"calc", 1}, {"calc", 2}}, second.handled, "the new collector handled items 2 and 3 only")
	assert.Positive(t, c2.Stats().Duplicates, "the late result was acknowledged as a duplicate")
}

// cursorTask is a Resumer: it counts from a cursor, and a resumed run
// moves the cursor instead of asking for the first items again.
type cursorTask struct {
	n, next  int
	resumed  int // the produced count Resume was given; -1 if never
	nextCall int // Next calls, to check none repeat a journaled item
}

func (c *cursorTask) Next(ctx context.Context) (engine.Item, error) {
	c.nextCall++
	if c.next == c.n {
		return engine.Item{}, engine.ErrNoMoreItems
	}
	c.next++
	return engine.Item{Payload: c.next - 1, Last: c.next == c.n}, nil
}

func (c *cursorTask) Resume(ctx context.Context, produced int) error {
	c.resumed, c.next = produced, produced
	return nil
}

// testResumerContinuesFromItsCursor: a task that implements Resumer is not
// asked for its journaled items again; it is told how far it got, the
// items in flight at the crash go out again from the journal's copies,
// and every item is handled once.
func testResumerContinuesFromItsCursor(t *testing.T, s Suite) {
	const items = 200
	ep := s.NewEndpoints(t)
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "run.journal")
	col := &ordered{}
	c, err := engine.NewCollector(ep, col, engine.WithRejoin(20*time.Second), engine.WithLogger(testLogger(t)))
	require.NoError(t, err)
	peers := runRest(ctx, c, newWorker(t, ep, "calc", slowly, engine.WithRejoin(20*time.Second)))
	dT := wrap(t, ep.Distributor)
	first := &cursorTask{n: items, resumed: -1}
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: first}}, quickLiveness, engine.WithTransport(dT), engine.WithJournal(path))
	dErr := runRest(ctx, d)
	eventually(t, "60 results", func() bool { return col.count() >= 60 })
	dT.Cut()
	require.Error(t, <-dErr)
	again := &cursorTask{n: items, resumed: -1}
	d2 := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: again}}, quickLiveness, engine.WithJournal(path))
	require.NoError(t, <-runRest(ctx, d2))
	requireAllNil(t, peers, 2)
	assert.GreaterOrEqual(t, again.resumed, 60, "Resume was told how far the task got")
	assert.Equal(t, items-again.resumed, again.nextCall, "Next was asked only for the items after the cursor")
	col.mu.Lock()
	defer col.mu.Unlock()
	seen := map[int64]int{}
	for _, h := range col.handled {
		seen[h.value]++
	}
	for v := range int64(items) {
		require.Equal(t, 1, seen[v], "item %d", v)
	}
}

// testJournalWithEveryACKButNotItsEnd: a journal that holds an ACK for
// every item but lost the record of the end (a power loss tore it) is of a
// complete run: the distributor says so and returns, instead of waiting
// for peers that are long gone.
func testJournalWithEveryACKButNotItsEnd(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "run.journal")
	rec := newRecorder()
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(20)}}, engine.WithJournal(path))
	require.NoError(t, engine.RunAll(ctx, d, newWorker(t, ep, "calc", echo), rec.collector(t, ep)))
	// Cut the last record, the end, as a torn write would.
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var ends int
	_, err = journal.Read(path, func(r journal.Record) error {
		if r.Kind == journal.KindComplete {
			ends++
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 1, ends)
	require.NoError(t, os.WriteFile(path, data[:len(data)-3], 0o600))
	again := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(20)}}, engine.WithJournal(path))
	require.NoError(t, again.Run(ctx), "no peer comes: it must not wait for one")
	done, _ := again.Progress()
	assert.Equal(t, int64(20), done, "every item was complete in the journal")
}
