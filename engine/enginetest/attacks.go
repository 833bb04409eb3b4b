package enginetest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/transport"
)

// intruder is a hostile peer: it joins the run as a worker to learn the
// run id, leaves, and sends whatever it likes.
type intruder struct {
	dist, coll transport.Conn
	run        uint64
}

// newIntruder joins the run at ep as a worker of taskType and leaves at
// once, keeping the run id.
func newIntruder(ctx context.Context, t *testing.T, ep engine.Endpoints, taskType string) *intruder {
	t.Helper()
	dist, err := transport.Dial(ctx, ep.Distributor)
	require.NoError(t, err)
	t.Cleanup(func() { _ = dist.Close() })
	coll, err := transport.Dial(ctx, ep.Collector)
	require.NoError(t, err)
	t.Cleanup(func() { _ = coll.Close() })
	in := &intruder{dist: dist, coll: coll}
	require.NoError(t, dist.Send(ctx, transport.Envelope{Kind: transport.KindHello, Role: transport.RoleWorker, TaskType: taskType, Count: 1}))
	for in.run == 0 {
		env, err := dist.Recv(ctx)
		require.NoError(t, err, "the intruder's welcome")
		if env.Kind == transport.KindWelcome {
			in.run = env.Run
			assert.Equal(t, transport.Token{}, env.Token, "a worker's welcome carries no assignment key")
		}
	}
	// Leave, so the run does not wait for it at the end.
	require.NoError(t, dist.Send(ctx, transport.Envelope{Kind: transport.KindBye, Role: transport.RoleWorker, Run: in.run}))
	return in
}

// testForgedResultsAreNeverHandled: results and failures for items that
// were never handed to the sender (made-up tokens, ids past the run's,
// tokens of another item) are dropped and counted by the collector, and
// every real item is handled once.
func testForgedResultsAreNeverHandled(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	ctx := testCtx(t)
	rec := newRecorder()
	const items, forged = 40, 200
	release := make(chan struct{})
	// The real worker holds its first item until the forgeries are in, so
	// they arrive while every id is still open.
	held := func(ctx context.Context, job *engine.Job) (any, error) {
		if !waitFor(release, 10*time.Second) {
			return nil, context.DeadlineExceeded
		}
		return echo(ctx, job)
	}
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items)}})
	c := rec.collector(t, ep)
	errs := runRest(ctx, d, c, newWorker(t, ep, "calc", held))
	<-c.Joined()

	in := newIntruder(ctx, t, ep, "calc")
	bogus, err := transport.Msgpack{}.Marshal("forged")
	require.NoError(t, err)
	var stolen transport.Token // a token seen on the wire would be for another item
	stolen[0] = 0x5a
	for id := uint64(1); id <= forged; id++ {
		for _, it := range []transport.Item{
			{ID: id, Attempt: 1, Payload: bogus},
			{ID: id, Attempt: 1, Flags: transport.FlagFailed | transport.FlagPermanent, Token: stolen, Payload: []byte("forged")},
		} {
			env := transport.Envelope{Kind: transport.KindResult, TaskType: "calc", Run: in.run, Count: 3, Items: []transport.Item{it}}
			require.NoError(t, in.coll.Send(ctx, env))
		}
	}
	eventually(t, "the collector dropped every forgery", func() bool { return c.Stats().Ignored[engine.IgnoredBadToken] >= 2*forged })
	close(release)
	requireAllNil(t, errs, 3)
	rec.requireEachOnce(t, "calc", items)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	assert.Empty(t, rec.failures, "no forged failure was handled")
	for id, v := range rec.values {
		assert.NotEqual(t, "forged", v, "item %d", id)
	}
	assert.Equal(t, map[transport.DropReason]uint64{engine.IgnoredBadToken: 2 * forged}, c.Stats().Ignored)
}

// hoarder is a fake worker: it says hello, announces credit, keeps its
// heartbeats going so it never looks gone, and never finishes anything.
// It counts the items it was handed.
type hoarder struct {
	works atomic.Int64
	done  chan struct{}
}

// hoard runs a hoarder until ctx ends; the test's cleanup waits for it.
func hoard(ctx context.Context, t *testing.T, ep engine.Endpoints, taskType string, credit uint32, every time.Duration) *hoarder {
	t.Helper()
	c, err := transport.Dial(ctx, ep.Distributor)
	require.NoError(t, err)
	h := &hoarder{done: make(chan struct{})}
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(func() { cancel(); <-h.done; _ = c.Close() })
	require.NoError(t, c.Send(ctx, transport.Envelope{Kind: transport.KindHello, Role: transport.RoleWorker, TaskType: taskType, Count: 1}))
	var run uint64
	for run == 0 {
		env, err := c.Recv(ctx)
		require.NoError(t, err)
		if env.Kind == transport.KindWelcome {
			run = env.Run
		}
	}
	require.NoError(t, c.Send(ctx, transport.Envelope{Kind: transport.KindReady, Run: run, Count: credit}))
	go func() {
		defer close(h.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for ctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(ctx, every)
			env, err := c.Recv(rctx)
			rcancel()
			if err == nil && env.Kind == transport.KindWork {
				h.works.Add(int64(len(env.Items)))
			}
			select {
			case <-tick.C:
				_ = c.Send(ctx, transport.Envelope{Kind: transport.KindHeartbeat, Role: transport.RoleWorker, Run: run})
			default:
			}
		}
	}()
	return h
}

// testHoardingWorkerIsTakenForGone: a worker that takes items, stays
// alive and finishes none is taken for gone once it finished nothing for
// its task type's Timeout plus the liveness timeout; its items go to a
// real worker and the run completes, each item once.
func testHoardingWorkerIsTakenForGone(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	ctx := testCtx(t)
	rec := newRecorder()
	const items = 40
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items), Timeout: 100 * time.Millisecond}}, quickLiveness)
	c := rec.collector(t, ep)
	errs := runRest(ctx, d, c)
	<-c.Joined()
	h := hoard(ctx, t, ep, "calc", 16, 20*time.Millisecond)
	eventually(t, "the hoarder holds items", func() bool { return h.works.Load() > 0 })
	requireAllNil(t, runRest(ctx, newWorker(t, ep, "calc", slowly)), 1)
	requireAllNil(t, errs, 2)
	rec.requireEachOnce(t, "calc", items)
	assert.Positive(t, d.Stats().PeersLost, "the hoarder was taken for gone")
	assert.Positive(t, d.Stats().Redelivered, "its items went to the real worker")
}

// testCreditIsBoundedInTotal: fake workers announce all the credit they
// can; the distributor hands out no more than its limit of items in
// flight, gives the credit back when they are taken for gone, and the run
// completes with a real worker that joined while all credit was taken.
func testCreditIsBoundedInTotal(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	ctx := testCtx(t)
	rec := newRecorder()
	const items, limit = 30, 8
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items), Timeout: 100 * time.Millisecond}},
		quickLiveness, engine.WithLimits(16, limit))
	c := rec.collector(t, ep)
	errs := runRest(ctx, d, c)
	<-c.Joined()
	var fakes []*hoarder
	for range 3 {
		fakes = append(fakes, hoard(ctx, t, ep, "calc", 1<<31, 20*time.Millisecond))
	}
	handed := func() (n int64) {
		for _, f := range fakes {
			n += f.works.Load()
		}
		return n
	}
	eventually(t, "the fakes hold every credit", func() bool { return handed() >= limit })
	// Without the limit, all 30 items would be theirs at once.
	require.Equal(t, int64(limit), handed(), "no more than the limit is handed out")
	requireAllNil(t, runRest(ctx, newWorker(t, ep, "calc", slowly)), 1)
	requireAllNil(t, errs, 2)
	rec.requireEachOnce(t, "calc", items)
	for i, f := range fakes {
		// Each was handed what another left when it was taken for gone,
		// never more than the limit.
		assert.LessOrEqual(t, f.works.Load(), int64(limit), "fake %d", i)
	}
}

// testCreditIsEarned: a worker that announces a huge window is handed
// only the first credit every worker gets (32 items) until it finishes
// some; one that finishes none never gets more, and a real worker does
// the rest.
func testCreditIsEarned(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	ctx := testCtx(t)
	rec := newRecorder()
	const items, firstCredit = 300, 32
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(items), Timeout: 100 * time.Millisecond}}, quickLiveness)
	c := rec.collector(t, ep)
	errs := runRest(ctx, d, c)
	<-c.Joined()
	h := hoard(ctx, t, ep, "calc", 1<<20, 20*time.Millisecond)
	eventually(t, "the hoarder holds its first credit", func() bool { return h.works.Load() >= firstCredit })
	requireAllNil(t, runRest(ctx, newWorker(t, ep, "calc", echo, engine.WithPrefetch(1000))), 1)
	requireAllNil(t, errs, 2)
	rec.requireEachOnce(t, "calc", items)
	assert.Equal(t, int64(firstCredit), h.works.Load(), "a window of 2^20 earned the hoarder no more than the first credit")
}

// testHandshakeFloodIsCapped: a peer that says hello in a loop (each
// would cost a welcome and two log lines) has a few handled per heartbeat
// interval; the rest are dropped and counted, and the run goes on.
func testHandshakeFloodIsCapped(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	ctx := testCtx(t)
	rec := newRecorder()
	// The flood's last hello made it a worker that never confirms the end.
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(20)}}, engine.WithEndGrace(100*time.Millisecond))
	c := rec.collector(t, ep)
	errs := runRest(ctx, d, c)
	<-c.Joined()
	flood, err := transport.Dial(ctx, ep.Distributor)
	require.NoError(t, err)
	defer func() { _ = flood.Close() }()
	const hellos = 500
	for range hellos {
		require.NoError(t, flood.Send(ctx, transport.Envelope{Kind: transport.KindHello, Role: transport.RoleWorker, TaskType: "calc", Count: 1}))
	}
	eventually(t, "the flood is counted", func() bool { return d.Stats().Ignored[engine.IgnoredFlood] > 0 })
	requireAllNil(t, runRest(ctx, newWorker(t, ep, "calc", echo)), 1)
	requireAllNil(t, errs, 2)
	rec.requireEachOnce(t, "calc", 20)
	assert.Less(t, d.Stats().Ignored[engine.IgnoredFlood], uint64(hellos), "some hellos were handled")
}

// testTooManyPeersAreRefused: past its limit of peers the distributor
// refuses a hello, and the run goes on.
func testTooManyPeersAreRefused(t *testing.T, s Suite) {
	ep := s.NewEndpoints(t)
	ctx := testCtx(t)
	rec := newRecorder()
	d := newDistributor(t, ep, []engine.TaskSpec{{Type: "calc", Task: intItems(20)}}, engine.WithLimits(2, 100), engine.WithQuorum(1))
	release := make(chan struct{})
	w := newWorker(t, ep, "calc", func(ctx context.Context, j *engine.Job) (any, error) {
		waitFor(release, 10*time.Second)
		return echo(ctx, j)
	})
	c := rec.collector(t, ep)
	errs := runRest(ctx, d, c, w)
	<-c.Joined()
	<-w.Joined()
	err := newWorker(t, ep, "calc", echo).Run(ctx)
	assert.ErrorIs(t, err, engine.ErrRejected)
	assert.ErrorContains(t, err, "too many peers")
	close(release)
	requireAllNil(t, errs, 3)
	rec.requireEachOnce(t, "calc", 20)
}
