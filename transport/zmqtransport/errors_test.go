package zmqtransport_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/zmqtransport"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestBadEndpointsNameTheEndpoint(t *testing.T) {
	ctx := testCtx(t)
	tests := []struct {
		name, endpoint string
		listen         bool
		is             error
	}{
		{"unresolvable host", "tcp://no-such-host.invalid:5555", false, nil},
		{"address this machine lacks", "tcp://192.0.2.1:5555", true, nil},
		{"ipc path over the OS limit", "ipc:///" + strings.Repeat("x", zmqtransport.MaxIPCPath), true, transport.ErrInvalidEndpoint},
		{"ipc directory missing", "ipc:///no/such/dir/p.ipc", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.listen {
				var l transport.Listener
				if l, err = transport.Listen(ctx, tt.endpoint); err == nil {
					_ = l.Close()
				}
			} else {
				var c transport.Conn
				if c, err = transport.Dial(ctx, tt.endpoint); err == nil {
					_ = c.Close()
				}
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.endpoint)
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
		})
	}
}

func TestPortInUseByAnotherProgram(t *testing.T) {
	ctx := testCtx(t)
	ep := tcpEndpoint(t)
	l, err := transport.Listen(ctx, ep)
	require.NoError(t, err)
	defer l.Close()
	_, err = transport.Listen(ctx, ep)
	require.ErrorIs(t, err, transport.ErrAddrInUse)
	assert.Contains(t, err.Error(), ep)
}

func TestBadFramesAreDroppedCountedAndServingGoesOn(t *testing.T) {
	ctx := testCtx(t)
	ep := ipcEndpoint(t)
	tr := zmqtransport.New(zmqtransport.Options{MaxMessageSize: 1024})
	parsed, err := transport.ParseEndpoint(ep)
	require.NoError(t, err)
	l, err := tr.Listen(ctx, parsed)
	require.NoError(t, err)
	defer l.Close()

	zctx, err := zmq.NewContext()
	require.NoError(t, err)
	raw, err := zctx.NewSocket(zmq.DEALER)
	require.NoError(t, err)
	require.NoError(t, raw.Connect(ep))
	good, err := (&transport.Envelope{Kind: transport.KindHello, TaskType: "t"}).MarshalBinary()
	require.NoError(t, err)
	badVersion := append([]byte(nil), good...)
	badVersion[0] = 9
	badKind := append([]byte(nil), good...)
	badKind[1] = 99
	for _, frames := range [][][]byte{
		{[]byte("junk")},
		{badVersion},
		{badKind},
		{good, good}, // two frames where one is expected
		{good},
	} {
		parts := make([]any, len(frames))
		for i, f := range frames {
			parts[i] = f
		}
		_, err := raw.SendMessage(parts...)
		require.NoError(t, err)
	}
	_, env, err := l.Recv(ctx)
	require.NoError(t, err, "the listener still serves after bad input")
	assert.Equal(t, transport.KindHello, env.Kind)
	assert.Equal(t, map[transport.DropReason]uint64{transport.DropMalformed: 4},
		transport.StatsOf(l).Dropped, "each drop is counted under its reason")

	require.NoError(t, raw.SetLinger(0))
	require.NoError(t, raw.Close())
	require.NoError(t, zctx.Term())
}

// A peer that sends a frame over the limit loses its connection before
// the listener stores the frame; the listener serves on, and a frame of
// exactly the limit is delivered.
func TestOversizeFrameClosesTheSendersConnection(t *testing.T) {
	ctx := testCtx(t)
	const limit = 1 << 10
	tr := zmqtransport.New(zmqtransport.Options{MaxMessageSize: limit})
	parsed, err := transport.ParseEndpoint(tcpEndpoint(t))
	require.NoError(t, err)
	l, err := tr.Listen(ctx, parsed)
	require.NoError(t, err)
	defer l.Close()

	zctx, err := zmq.NewContext()
	require.NoError(t, err)
	defer func() { require.NoError(t, zctx.Term()) }()
	raw, err := zctx.NewSocket(zmq.DEALER)
	require.NoError(t, err)
	mon := "inproc://oversize-monitor"
	require.NoError(t, raw.Monitor(mon, zmq.EVENT_CONNECTED|zmq.EVENT_DISCONNECTED))
	watch, err := zctx.NewSocket(zmq.PAIR)
	require.NoError(t, err)
	require.NoError(t, watch.Connect(mon))
	require.NoError(t, watch.SetRcvtimeo(10*time.Second))
	next := func() zmq.Event {
		ev, _, _, err := watch.RecvEvent(0)
		require.NoError(t, err)
		return ev
	}
	require.NoError(t, raw.Connect(l.Addr().String()))
	require.Equal(t, zmq.EVENT_CONNECTED, next())
	over := transport.Envelope{Kind: transport.KindResult, TaskType: "t", Payload: make([]byte, limit)}
	frame, err := over.MarshalBinary()
	require.NoError(t, err)
	_, err = raw.SendBytes(frame, 0)
	require.NoError(t, err)
	require.Equal(t, zmq.EVENT_DISCONNECTED, next(), "the listener closed the connection of the frame over its limit")

	exact := transport.Envelope{Kind: transport.KindResult, TaskType: "t", ItemID: 2}
	exact.Payload = make([]byte, limit-exact.EncodedLen())
	frame, err = exact.MarshalBinary()
	require.NoError(t, err)
	_, err = raw.SendBytes(frame, 0) // after the DEALER connected again
	require.NoError(t, err)
	_, env, err := l.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), env.ItemID, "only the frame within the limit arrived")

	require.NoError(t, raw.SetLinger(0))
	require.NoError(t, raw.Close())
	require.NoError(t, watch.SetLinger(0))
	require.NoError(t, watch.Close())
}

func TestEndpointChecks(t *testing.T) {
	tr := zmqtransport.New(zmqtransport.Options{})
	valid := []struct {
		endpoint string
		use      transport.Use
	}{
		{"ipc:///tmp/w.ipc", transport.ForDial},
		{"ipc://worker.ipc", transport.ForListen},
		{"ipc://" + strings.Repeat("p", zmqtransport.MaxIPCPath), transport.ForListen},
		{"tcp://127.0.0.1:5558", transport.ForDial},
		{"tcp://localhost:1", transport.ForDial},
		{"tcp://*:65535", transport.ForListen},
		{"tcp://[::1]:80", transport.ForDial},
		{"tcp://eth0:80", transport.ForListen},
		{"tcp://127.0.0.1:0", transport.ForListen},
		{"tcp://*:*", transport.ForListen},
	}
	for _, tt := range valid {
		ep, err := transport.ParseEndpoint(tt.endpoint)
		require.NoError(t, err)
		assert.NoError(t, tr.CheckEndpoint(ep, tt.use), "%s to %s", tt.endpoint, tt.use)
	}
	invalid := []struct {
		endpoint string
		use      transport.Use
		reason   string
	}{
		{"ipc://", transport.ForListen, "empty ipc path"},
		{"ipc:///" + strings.Repeat("p", zmqtransport.MaxIPCPath), transport.ForListen, "over the OS limit"},
		{"tcp://127.0.0.1", transport.ForDial, "host:port"},
		{"tcp://:5555", transport.ForListen, "empty host"},
		{"tcp://127.0.0.1:0", transport.ForDial, "only a listener"},
		{"tcp://*:5555", transport.ForDial, "only a listener"},
		{"tcp://127.0.0.1:65536", transport.ForListen, "not in 1-65535"},
		{"tcp://127.0.0.1:http", transport.ForDial, "not in 1-65535"},
		{"tcp://bad host:80", transport.ForDial, "character"},
		{"tcp://a..b:80", transport.ForDial, "label"},
		{"inproc://x", transport.ForDial, "ipc:// and tcp:// endpoints only"},
	}
	for _, tt := range invalid {
		ep, err := transport.ParseEndpoint(tt.endpoint)
		require.NoError(t, err)
		err = tr.CheckEndpoint(ep, tt.use)
		require.ErrorIs(t, err, transport.ErrInvalidEndpoint, tt.endpoint)
		assert.Contains(t, err.Error(), tt.reason)
		assert.Contains(t, err.Error(), `"`+ep.String()+`"`, "the error names the endpoint")
	}
	nul, err := transport.ParseEndpoint("ipc:///a\x00b")
	require.NoError(t, err)
	assert.ErrorContains(t, tr.CheckEndpoint(nul, transport.ForListen), "NUL")
}

func TestListenerReportsTheEphemeralPort(t *testing.T) {
	ctx := testCtx(t)
	for _, endpoint := range []string{"tcp://127.0.0.1:0", "tcp://127.0.0.1:*", "tcp://*:0"} {
		l, err := transport.Listen(ctx, endpoint)
		require.NoError(t, err, endpoint)
		addr := l.Addr()
		assert.Equal(t, zmqtransport.SchemeTCP, addr.Scheme)
		_, port, err := net.SplitHostPort(addr.Address)
		require.NoError(t, err)
		assert.NotEqual(t, "0", port, "%s reports the port it got: %s", endpoint, addr)
		c, err := transport.Dial(ctx, addr.String())
		require.NoError(t, err, "the reported endpoint can be dialled")
		require.NoError(t, c.Send(ctx, transport.Envelope{Kind: transport.KindHello}))
		_, env, err := l.Recv(ctx)
		require.NoError(t, err)
		assert.Equal(t, transport.KindHello, env.Kind)
		require.NoError(t, c.Close())
		require.NoError(t, l.Close())
	}
}

func TestIPCListenerRemovesItsSocketFile(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "l.ipc")
	l, err := transport.Listen(ctx, "ipc://"+path)
	require.NoError(t, err)
	_, err = os.Stat(path)
	require.NoError(t, err, "the socket file exists while the listener is bound")
	require.NoError(t, l.Close())
	_, err = os.Stat(path)
	assert.ErrorIs(t, err, os.ErrNotExist, "the listener removed its socket file")
}

// TestIPCListenerLeavesAnotherSocketFile: a listener whose path was taken
// over (here by a program that binds carelessly) does not remove the other
// program's socket when it closes.
func TestIPCListenerLeavesAnotherSocketFile(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "l.ipc")
	l, err := transport.Listen(ctx, "ipc://"+path)
	require.NoError(t, err)
	zctx, err := zmq.NewContext()
	require.NoError(t, err)
	other, err := zctx.NewSocket(zmq.ROUTER)
	require.NoError(t, err)
	require.NoError(t, other.Bind("ipc://"+path), "libzmq takes the path over")
	require.NoError(t, l.Close())
	_, err = os.Stat(path)
	assert.NoError(t, err, "the other program's socket file is still there")
	require.NoError(t, other.SetLinger(0))
	require.NoError(t, other.Close())
	require.NoError(t, zctx.Term())
}

func TestTwoListenersRacingForOneIPCPathNeverBothSucceed(t *testing.T) {
	ctx := testCtx(t)
	for round := range 20 {
		endpoint := "ipc://" + filepath.Join(t.TempDir(), "race.ipc")
		const racers = 4
		results := make(chan error, racers)
		listeners := make(chan transport.Listener, racers)
		var start sync.WaitGroup
		start.Add(1)
		for range racers {
			go func() {
				start.Wait()
				l, err := transport.Listen(ctx, endpoint)
				if err == nil {
					listeners <- l
				}
				results <- err
			}()
		}
		start.Done()
		won := 0
		for range racers {
			err := <-results
			if err == nil {
				won++
				continue
			}
			require.ErrorIs(t, err, transport.ErrAddrInUse, "round %d", round)
		}
		require.Equal(t, 1, won, "round %d: exactly one listener binds the path", round)
		require.NoError(t, (<-listeners).Close())
	}
}
