package enginetest

import (
	"context"
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
		for _, env := range []transport.Envelope{
			{Kind: transport.KindResult, TaskType: "calc", ItemID: id, Attempt: 1, Count: 3, Payload: bogus},
			{Kind: transport.KindFailure, Flags: transport.FlagPermanent, TaskType: "calc", ItemID: id, Attempt: 1, Count: 3, Token: stolen, Payload: []byte("forged")},
		} {
			env.Run = in.run
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
