package zmqtransport_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/enginetest"
	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/auth"
	"github.com/zmqpipeline/zmqpipeline/transport/zmqtransport"
)

// TestEngineSuiteWithCurve runs the engine's behavioural suite with every
// component on one key pair that the access list allows everything.
func TestEngineSuiteWithCurve(t *testing.T) {
	if testing.Short() {
		t.Skip("the suite once more, with CURVE; skipped with -short")
	}
	kp := keys(t, 1)[0]
	access, err := auth.NewAccess(auth.Entry{Key: kp.Public, Roles: []string{"all"}})
	require.NoError(t, err)
	tr, err := zmqtransport.New(zmqtransport.Options{}).Secure(auth.Config{Key: kp, Server: kp.Public, Access: access})
	require.NoError(t, err)
	// The suite dials through the registry: register the secure
	// transport for a scheme of its own.
	transport.Register("curvetest", schemeAlias{tr})
	enginetest.Run(t, enginetest.Suite{NewEndpoints: func(t testing.TB) engine.Endpoints {
		return engine.Endpoints{Distributor: "curvetest://" + ipcPath(t), Collector: "curvetest://" + ipcPath(t)}
	}})
}

func ipcPath(t testing.TB) string { return ipcEndpoint(t)[len("ipc://"):] }

// schemeAlias serves "curvetest://PATH" as "ipc://PATH" with a secure
// ZeroMQ transport.
type schemeAlias struct{ t transport.Transport }

func (a schemeAlias) ipc(ep transport.Endpoint) transport.Endpoint {
	return transport.Endpoint{Scheme: zmqtransport.SchemeIPC, Address: ep.Address}
}

func (a schemeAlias) Listen(ctx context.Context, ep transport.Endpoint) (transport.Listener, error) {
	l, err := a.t.Listen(ctx, a.ipc(ep))
	if err != nil {
		return nil, err
	}
	return aliasListener{l, ep}, nil
}

// aliasListener reports the alias scheme as its address, so that peers
// that dial it come back through the alias.
type aliasListener struct {
	transport.Listener
	ep transport.Endpoint
}

func (l aliasListener) Addr() transport.Endpoint { return l.ep }
func (l aliasListener) Stats() transport.Stats   { return transport.StatsOf(l.Listener) }
func (l aliasListener) Authenticated() bool      { return l.Listener.(auth.Authorizer).Authenticated() }
func (l aliasListener) Authorize(principal string, role transport.Role, taskType string) error {
	return l.Listener.(auth.Authorizer).Authorize(principal, role, taskType)
}

func (a schemeAlias) Dial(ctx context.Context, ep transport.Endpoint) (transport.Conn, error) {
	return a.t.Dial(ctx, a.ipc(ep))
}

// roleKeys is a run's keys: one pair per component, and the access list
// that binds each client key to its role.
type roleKeys struct {
	dist, coll, worker, md, stranger auth.KeyPair
	access                           *auth.Access
}

func newRoleKeys(t *testing.T) roleKeys {
	k := keys(t, 5)
	rk := roleKeys{dist: k[0], coll: k[1], worker: k[2], md: k[3], stranger: k[4]}
	var err error
	rk.access, err = auth.NewAccess(
		auth.Entry{Key: rk.coll.Public, Name: "collector", Roles: []string{"collector"}},
		auth.Entry{Key: rk.worker.Public, Name: "worker", Roles: []string{"worker:calc"}},
		auth.Entry{Key: rk.md.Public, Name: "metadata", Roles: []string{"metadata", "status"}},
	)
	require.NoError(t, err)
	return rk
}

// transport returns the secure transport of a component with key kp.
func (rk roleKeys) transport(t *testing.T, ep engine.Endpoints, kp auth.KeyPair) engine.Option {
	t.Helper()
	tr, err := zmqtransport.New(zmqtransport.Options{}).Secure(auth.Config{
		Key:     kp,
		Servers: map[string]auth.Key{ep.Distributor: rk.dist.Public, ep.Collector: rk.coll.Public},
		Access:  rk.access,
	})
	require.NoError(t, err)
	return engine.WithTransport(tr)
}

// TestCurveRunAdmitsEachKeyToItsRoleOnly runs a pipeline whose every
// component has its own key, while peers try what their keys do not
// allow: a key not on the list, a worker key saying hello as the
// collector, as a worker of another type and as a metadata source, and
// the collector's key sending results, a worker key asking for the run's
// status. Each is refused and counted; the
// run completes with every item handled once.
func TestCurveRunAdmitsEachKeyToItsRoleOnly(t *testing.T) {
	ctx := testCtx(t)
	rk := newRoleKeys(t)
	ep := engine.Endpoints{Distributor: tcpEndpoint(t), Collector: tcpEndpoint(t)}
	const items = 60
	d, err := engine.NewDistributor(ep, []engine.TaskSpec{{Type: "calc", Task: engine.Items(items, func(i int) (any, error) { return i, nil })}},
		rk.transport(t, ep, rk.dist), engine.WithMetadata())
	require.NoError(t, err)
	var mu sync.Mutex
	seen := map[uint64]int{}
	c, err := engine.NewCollector(ep, engine.ResultFunc(func(_ context.Context, r *engine.Result) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		seen[r.ItemID]++
		return nil, nil
	}), rk.transport(t, ep, rk.coll))
	require.NoError(t, err)
	md, err := engine.NewMetadataSource(ep, func(context.Context) (engine.Metadata, error) { return engine.Metadata{"k": 1}, nil },
		rk.transport(t, ep, rk.md))
	require.NoError(t, err)
	release := make(chan struct{})
	w, err := engine.NewWorker(ep, "calc", engine.HandlerFunc(func(ctx context.Context, j *engine.Job) (any, error) {
		<-release
		return nil, nil
	}), rk.transport(t, ep, rk.worker))
	require.NoError(t, err)
	errs := make(chan error, 4)
	for _, r := range []engine.Runner{d, c, md, w} {
		go func() { errs <- r.Run(ctx) }()
	}
	<-w.Joined()

	// A key that is not on the list never gets past the handshake.
	stranger, err := engine.NewWorker(ep, "calc", engine.HandlerFunc(func(context.Context, *engine.Job) (any, error) { return nil, nil }),
		rk.transport(t, ep, rk.stranger))
	require.NoError(t, err)
	assert.ErrorIs(t, stranger.Run(ctx), auth.ErrRefused)
	// The worker's key asks for roles it does not have.
	for _, hello := range []transport.Envelope{
		{Kind: transport.KindHello, Role: transport.RoleCollector},
		{Kind: transport.KindHello, Role: transport.RoleWorker, TaskType: "other"},
		{Kind: transport.KindMetadata, Role: transport.RoleMetadata},
	} {
		env := askAs(t, ctx, rk, ep, rk.worker, hello)
		assert.Equal(t, transport.KindReject, env.Kind, "%v", hello)
		assert.Equal(t, uint32(transport.RejectForbidden), env.Count, "%v: %s", hello, env.Payload)
	}
	// Only a key with the status role may ask how the run is.
	_, err = engine.QueryStatus(ctx, ep.Distributor, rk.transport(t, ep, rk.worker))
	assert.ErrorIs(t, err, auth.ErrForbidden)
	st, err := engine.QueryStatus(ctx, ep.Distributor, rk.transport(t, ep, rk.md))
	require.NoError(t, err)
	assert.Equal(t, int64(items), st.Total)
	assert.Len(t, st.Workers, 1)
	// The collector's key sends a result: the collector drops it.
	cc := dialAs(t, ctx, rk, ep, rk.coll, ep.Collector)
	require.NoError(t, cc.Send(ctx, transport.Envelope{Kind: transport.KindResult, TaskType: "calc", ItemID: 1, Attempt: 1, Count: 3}))
	eventually(t, "the collector dropped the result", func() bool { return c.Stats().Ignored[engine.IgnoredForbidden] == 1 })

	close(release)
	for range 4 {
		require.NoError(t, <-errs)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, items)
	for id, n := range seen {
		require.Equal(t, 1, n, "item %d", id)
	}
	assert.Equal(t, uint64(3), d.Stats().Ignored[engine.IgnoredRefused], "the three forbidden handshakes")
	assert.Positive(t, d.Stats().Transport.Dropped["unauthenticated"], "the stranger's key")
	assert.Equal(t, uint64(1), c.Stats().Ignored[engine.IgnoredForbidden], "the collector key's result")
	assert.Equal(t, uint64(1), d.Stats().Ignored[engine.IgnoredForbidden], "the worker key's status request")
}

// dialAs connects to endpoint with key kp.
func dialAs(t *testing.T, ctx context.Context, rk roleKeys, ep engine.Endpoints, kp auth.KeyPair, endpoint string) transport.Conn {
	t.Helper()
	tr, err := zmqtransport.New(zmqtransport.Options{}).Secure(auth.Config{
		Key: kp, Servers: map[string]auth.Key{ep.Distributor: rk.dist.Public, ep.Collector: rk.coll.Public},
	})
	require.NoError(t, err)
	parsed, err := transport.ParseEndpoint(endpoint)
	require.NoError(t, err)
	c, err := tr.Dial(ctx, parsed)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// askAs sends env to the distributor with key kp and returns the answer.
func askAs(t *testing.T, ctx context.Context, rk roleKeys, ep engine.Endpoints, kp auth.KeyPair, env transport.Envelope) transport.Envelope {
	t.Helper()
	c := dialAs(t, ctx, rk, ep, kp, ep.Distributor)
	require.NoError(t, c.Send(ctx, env))
	reply, err := c.Recv(ctx)
	require.NoError(t, err)
	return reply
}
