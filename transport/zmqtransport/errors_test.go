package zmqtransport_test

import (
	"context"
	"strings"
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
		{"ipc path over the OS limit", "ipc:///" + strings.Repeat("x", transport.MaxIPCPath), true, transport.ErrInvalidEndpoint},
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

// dropper is implemented by the ZeroMQ Listener and Conn.
type dropper interface{ Dropped() uint64 }

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
		{make([]byte, 2048)},
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
	assert.Equal(t, uint64(5), l.(dropper).Dropped())

	require.NoError(t, raw.SetLinger(0))
	require.NoError(t, raw.Close())
	require.NoError(t, zctx.Term())
}

func TestSendToVanishedPeerIsCountedNotFatal(t *testing.T) {
	ctx := testCtx(t)
	ep := tcpEndpoint(t)
	l, err := transport.Listen(ctx, ep)
	require.NoError(t, err)
	defer l.Close()
	c, err := transport.Dial(ctx, ep)
	require.NoError(t, err)
	require.NoError(t, c.Send(ctx, transport.Envelope{Kind: transport.KindHello}))
	from, _, err := l.Recv(ctx)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	// The peer is gone; the listener learns it when ZeroMQ refuses the
	// message, and then refuses further sends to it.
	deadline := time.Now().Add(10 * time.Second)
	for l.(dropper).Dropped() == 0 && time.Now().Before(deadline) {
		if err := l.Send(ctx, from, transport.Envelope{Kind: transport.KindWork}); err != nil {
			assert.ErrorIs(t, err, transport.ErrUnknownPeer)
			return
		}
		time.Sleep(10 * time.Millisecond) // the disconnect reaches the ROUTER asynchronously
	}
	assert.NotZero(t, l.(dropper).Dropped())
}
