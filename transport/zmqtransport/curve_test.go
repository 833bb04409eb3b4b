package zmqtransport_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/auth"
	"github.com/zmqpipeline/zmqpipeline/transport/transporttest"
	"github.com/zmqpipeline/zmqpipeline/transport/zmqtransport"
)

// keys returns n fresh key pairs.
func keys(t testing.TB, n int) []auth.KeyPair {
	t.Helper()
	out := make([]auth.KeyPair, n)
	for i := range out {
		kp, err := auth.GenerateKeyPair()
		require.NoError(t, err)
		out[i] = kp
	}
	return out
}

// secure returns the ZeroMQ transport with CURVE and cfg.
func secure(t testing.TB, cfg auth.Config) transport.Transport {
	t.Helper()
	tr, err := zmqtransport.New(zmqtransport.Options{MaxMessageSize: suiteMaxMessage}).Secure(cfg)
	require.NoError(t, err)
	return tr
}

// TestCurveConformance: with CURVE on, the transport keeps every property
// of the contract. The suite's listeners and conns share one key pair,
// which the access list allows.
func TestCurveConformance(t *testing.T) {
	kp := keys(t, 1)[0]
	access, err := auth.NewAccess(auth.Entry{Key: kp.Public, Roles: []string{"all"}})
	require.NoError(t, err)
	tr := secure(t, auth.Config{Key: kp, Server: kp.Public, Access: access})
	features := transporttest.Features{MaxMessageSize: suiteMaxMessage}
	t.Run("ipc", func(t *testing.T) {
		transporttest.Run(t, transporttest.Suite{Transport: tr, NewEndpoint: ipcEndpoint, Features: features})
	})
	t.Run("tcp", func(t *testing.T) {
		transporttest.Run(t, transporttest.Suite{Transport: tr, NewEndpoint: ephemeralTCP, Features: features})
	})
}

// A listener with CURVE hands on only what clients on its access list
// sent, each message marked with the client's key. A client whose key is
// not on the list, one that has the wrong server key, and one without
// keys are refused at the handshake: their Conns stop with
// auth.ErrRefused, the listener counts them, and the listed client is
// served throughout.
func TestCurveAcceptsOnlyListedKeys(t *testing.T) {
	ctx := testCtx(t)
	k := keys(t, 4)
	server, listed, unlisted, impostor := k[0], k[1], k[2], k[3]
	access, err := auth.NewAccess(auth.Entry{Key: listed.Public, Name: "listed", Roles: []string{"worker:resize"}})
	require.NoError(t, err)
	ltr := secure(t, auth.Config{Key: server, Access: access})
	l, err := ltr.Listen(ctx, transport.Endpoint{Scheme: zmqtransport.SchemeTCP, Address: "127.0.0.1:0"})
	require.NoError(t, err)
	defer l.Close()
	ep := l.Addr()

	dial := func(tr transport.Transport) transport.Conn {
		c, err := tr.Dial(ctx, ep)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	good := dial(secure(t, auth.Config{Key: listed, Servers: map[string]auth.Key{ep.String(): server.Public}}))
	require.NoError(t, good.Send(ctx, transport.Envelope{Kind: transport.KindHello, Role: transport.RoleWorker, TaskType: "resize"}))
	from, env, err := l.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, listed.Public.String(), env.Principal, "the message carries its sender's key")

	a, ok := l.(auth.Authorizer)
	require.True(t, ok, "a CURVE listener is an auth.Authorizer")
	assert.True(t, a.Authenticated())
	assert.NoError(t, a.Authorize(env.Principal, transport.RoleWorker, "resize"))
	assert.ErrorIs(t, a.Authorize(env.Principal, transport.RoleCollector, ""), auth.ErrForbidden)
	assert.ErrorIs(t, a.Authorize("", transport.RoleWorker, "resize"), auth.ErrUnauthenticated)

	refused := map[string]transport.Conn{
		"a key not on the list": dial(secure(t, auth.Config{Key: unlisted, Server: server.Public})),
		"the wrong server key":  dial(secure(t, auth.Config{Key: listed, Server: impostor.Public})),
		"no keys":               dial(zmqtransport.New(zmqtransport.Options{})),
	}
	for name, c := range refused {
		_ = c.Send(ctx, transport.Envelope{Kind: transport.KindHello, Role: transport.RoleCollector})
		_, err := c.Recv(ctx)
		assert.ErrorIs(t, err, auth.ErrRefused, name)
		assert.ErrorIs(t, c.Send(ctx, transport.Envelope{Kind: transport.KindHello}), transport.ErrClosed, name)
	}
	require.NoError(t, l.Send(ctx, from, transport.Envelope{Kind: transport.KindWelcome}))
	back, err := good.Recv(ctx)
	require.NoError(t, err, "the listed client is served throughout")
	assert.Equal(t, transport.KindWelcome, back.Kind)
	rctx, cancel := context.WithTimeout(ctx, 50e6)
	defer cancel()
	_, _, err = l.Recv(rctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "nothing of the refused clients came through")

	dropped := transport.StatsOf(l).Dropped
	assert.Positive(t, dropped["unauthenticated"], "the unlisted key was refused by ZAP: %v", dropped)
	assert.Positive(t, dropped["handshake failed"], "the others failed their handshake: %v", dropped)
}

// A Conn with keys refuses to dial an endpoint whose server key it was not
// given, and Secure refuses a configuration without a key pair.
func TestCurveConfigurationErrors(t *testing.T) {
	ctx := testCtx(t)
	kp := keys(t, 1)[0]
	tr := secure(t, auth.Config{Key: kp})
	_, err := tr.Dial(ctx, transport.Endpoint{Scheme: zmqtransport.SchemeTCP, Address: "127.0.0.1:1"})
	assert.ErrorIs(t, err, auth.ErrNoServerKey)
	_, err = zmqtransport.New(zmqtransport.Options{}).Secure(auth.Config{})
	assert.Error(t, err)
}

// Without CURVE a listener authenticates no one and allows everything.
func TestPlainListenerAuthorizesEveryone(t *testing.T) {
	ctx := testCtx(t)
	l, err := transport.Listen(ctx, "tcp://127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	a, ok := l.(auth.Authorizer)
	require.True(t, ok)
	assert.False(t, a.Authenticated())
	assert.NoError(t, a.Authorize("", transport.RoleCollector, ""))
}
