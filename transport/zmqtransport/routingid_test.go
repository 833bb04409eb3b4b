package zmqtransport_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine/cli/clitest"
	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/zmqtransport"
)

// Every Conn brings a routing id of its own, which never starts with the
// zero byte that marks the ids libzmq generates.
func TestConnsBringTheirOwnRoutingID(t *testing.T) {
	ctx := testCtx(t)
	l, err := transport.Listen(ctx, "tcp://127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	seen := map[transport.PeerID]bool{}
	for range 3 {
		c, err := transport.Dial(ctx, l.Addr().String())
		require.NoError(t, err)
		require.NoError(t, c.Send(ctx, transport.Envelope{Kind: transport.KindHello}))
		from, _, err := l.Recv(ctx)
		require.NoError(t, err)
		require.NoError(t, c.Close())
		assert.Len(t, string(from), 16)
		assert.NotZero(t, from[0], "a generated id starts with a zero byte")
		seen[from] = true
	}
	assert.Len(t, seen, 3, "each Conn has an id of its own")
}

// glibcRand returns the first n values of the C library's rand() in a
// process that never seeded it (glibc's random_r, TYPE_3, seed 1).
func glibcRand(n int) []uint32 {
	r := make([]int32, 344+n)
	r[0] = 1
	for i := 1; i < 31; i++ {
		r[i] = int32((16807 * int64(r[i-1])) % 2147483647)
		if r[i] < 0 {
			r[i] += 2147483647
		}
	}
	for i := 31; i < 34; i++ {
		r[i] = r[i-31]
	}
	for i := 34; i < len(r); i++ {
		r[i] = int32(uint32(r[i-31]) + uint32(r[i-3]))
	}
	out := make([]uint32, n)
	for k := range out {
		out[k] = uint32(r[k+344]) >> 1
	}
	return out
}

func TestGlibcRandMatchesTheCLibrary(t *testing.T) {
	assert.Equal(t, []uint32{1804289383, 846930886, 1681692777, 1714636915}, glibcRand(4))
}

// unseededRoutingIDs returns the routing ids libzmq 4.3 would generate,
// in a process that never seeded rand(), for the first listeners' first
// peers that bring no id: each ROUTER starts at a value made of two
// rand() calls and counts up.
func unseededRoutingIDs(listeners, peers int) []string {
	vals := glibcRand(2 * listeners)
	var ids []string
	for i := range listeners {
		start := vals[2*i] | vals[2*i+1]<<31
		for j := range peers {
			var b [5]byte
			binary.BigEndian.PutUint32(b[1:], start+uint32(j))
			ids = append(ids, string(b[:]))
		}
	}
	return ids
}

const listenerHelperEnv = "ZMQTRANSPORT_TEST_LISTENER"

// TestMain's helper: a process whose first socket is a listener that
// echoes what it receives, as a distributor's is.
func init() {
	if os.Getenv(listenerHelperEnv) == "" {
		return
	}
	ctx := context.Background()
	l, err := transport.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	fmt.Printf("listener listening on %s\n", l.Addr())
	for {
		from, env, err := l.Recv(ctx)
		if err != nil {
			os.Exit(0)
		}
		_ = l.Send(ctx, from, env)
	}
}

// A peer that claims, before anyone else connects, the routing ids an
// unseeded libzmq would generate next used to make the listener's process
// abort (an assertion in libzmq's ROUTER) as soon as a peer without an id
// connected. The ids are unpredictable now: the process serves on.
func TestPreclaimedRoutingIDsCannotCrashAListener(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), listenerHelperEnv+"=1")
	p := clitest.Start(t, "listener", cmd)
	ep := p.Listening(t, "listener")

	zctx, err := zmq.NewContext()
	require.NoError(t, err)
	defer func() { require.NoError(t, zctx.Term()) }()
	var socks []*zmq.Socket
	defer func() {
		for _, s := range socks {
			_ = s.SetLinger(0)
			_ = s.Close()
		}
	}()
	dealer := func(id string) *zmq.Socket {
		s, err := zctx.NewSocket(zmq.DEALER)
		require.NoError(t, err)
		socks = append(socks, s)
		if id != "" {
			require.NoError(t, s.SetIdentity(id))
		}
		require.NoError(t, s.SetRcvtimeo(10*time.Second))
		require.NoError(t, s.Connect(ep))
		return s
	}
	ping, err := (&transport.Envelope{Kind: transport.KindHeartbeat}).MarshalBinary()
	require.NoError(t, err)
	echo := func(s *zmq.Socket) {
		_, err := s.SendBytes(ping, 0)
		require.NoError(t, err)
		got, err := s.RecvBytes(0)
		require.NoError(t, err, "the listener answers; its output:\n%s", p.Output())
		require.Equal(t, ping, got)
	}
	for _, id := range unseededRoutingIDs(4, 8) {
		echo(dealer(id)) // the claim holds once the listener answered on it
	}
	for range 8 {
		echo(dealer("")) // libzmq generates an id for each
	}
	select {
	case <-p.Exited():
		t.Fatalf("the listener's process died:\n%s", p.Output())
	default:
	}
	p.Signal(t, syscall.SIGTERM)
	p.ExitCode(t)
}

// A peer that stops reading fills its queue; what else it is sent is
// dropped and counted, and the other peers are served as before.
func TestPeerThatStopsReadingHoldsUpNoOne(t *testing.T) {
	ctx := testCtx(t)
	tr := zmqtransport.New(zmqtransport.Options{SendQueue: 10, ReceiveQueue: 10})
	l, err := tr.Listen(ctx, transport.Endpoint{Scheme: zmqtransport.SchemeTCP, Address: "127.0.0.1:0"})
	require.NoError(t, err)
	defer l.Close()
	deaf, err := tr.Dial(ctx, l.Addr())
	require.NoError(t, err)
	defer deaf.Close()
	live, err := tr.Dial(ctx, l.Addr())
	require.NoError(t, err)
	defer live.Close()
	ids := map[uint64]transport.PeerID{}
	for i, c := range []transport.Conn{deaf, live} {
		require.NoError(t, c.Send(ctx, transport.Envelope{Kind: transport.KindHello, ItemID: uint64(i)}))
		from, env, err := l.Recv(ctx)
		require.NoError(t, err)
		ids[env.ItemID] = from
	}
	big := transport.Envelope{Kind: transport.KindWork, Payload: make([]byte, 16<<10)}
	const flood = 2000 // 32 MB: far more than the socket buffers hold
	for range flood {
		require.NoError(t, l.Send(ctx, ids[0], big)) // deaf never reads
	}
	require.NoError(t, l.Send(ctx, ids[1], transport.Envelope{Kind: transport.KindEnd}))
	env, err := live.Recv(ctx)
	require.NoError(t, err, "the live peer is served while the deaf one's queue is full")
	assert.Equal(t, transport.KindEnd, env.Kind)
	eventually(t, "the messages for the deaf peer are dropped", func() bool {
		return transport.StatsOf(l).Dropped[transport.DropPeerFull] > 0
	})
}

// A listener remembers at most MaxPeers peers: past that it forgets the
// ones heard from least recently, counted, and Send to one of them
// returns ErrUnknownPeer until it is heard from again.
func TestListenerForgetsTheLeastRecentPeersPastItsLimit(t *testing.T) {
	ctx := testCtx(t)
	tr := zmqtransport.New(zmqtransport.Options{MaxPeers: 8})
	l, err := tr.Listen(ctx, transport.Endpoint{Scheme: zmqtransport.SchemeTCP, Address: "127.0.0.1:0"})
	require.NoError(t, err)
	defer l.Close()
	var peers []transport.PeerID
	for i := range 20 {
		c, err := tr.Dial(ctx, l.Addr())
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.Send(ctx, transport.Envelope{Kind: transport.KindHello, ItemID: uint64(i)}))
		from, _, err := l.Recv(ctx)
		require.NoError(t, err)
		peers = append(peers, from)
	}
	st := transport.StatsOf(l)
	assert.LessOrEqual(t, st.Peers, 8)
	assert.Equal(t, uint64(20-st.Peers), st.Dropped[transport.DropTooManyPeers])
	assert.ErrorIs(t, l.Send(ctx, peers[0], transport.Envelope{Kind: transport.KindEnd}), transport.ErrUnknownPeer, "the first peer was forgotten")
	assert.NoError(t, l.Send(ctx, peers[19], transport.Envelope{Kind: transport.KindEnd}), "the last one is remembered")
}

// eventually polls cond, bounded, for a state a transport reaches on its
// own goroutine with nothing to signal it.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
