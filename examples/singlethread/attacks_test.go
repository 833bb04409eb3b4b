package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine/cli/clitest"
	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/auth"
)

// These tests attack live runs of the example over tcp, one role per
// process, from hostile peers in the test process that speak ZeroMQ (or
// raw TCP) directly. Every run must complete with every item collected
// once and no role crashing; what the attackers sent must be dropped and
// counted, as the roles' end-of-run warning shows. They log the peak
// resident memory of the distributor and the collector, which the README's
// "Security" section quotes.

// siege is one attacked run.
type siege struct {
	*faultRun
	d, c *clitest.Process

	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
	started time.Time
}

// besiege starts a distributor and a collector over tcp; distExtra are
// the distributor's extra flags, and every role gets common.
func besiege(t *testing.T, bin string, distExtra, common []string) *siege {
	r := newFaultRun(t, bin, "tcp")
	s := &siege{faultRun: r, started: time.Now()}
	s.d, s.c = r.begin(append(distExtra, common...), common)
	s.ctx, s.stop = context.WithCancel(context.Background())
	t.Cleanup(func() { s.stop(); s.wg.Wait() })
	return s
}

// attack runs fn until the run ends; fn returns when ctx ends.
func (s *siege) attack(fn func(ctx context.Context)) {
	s.wg.Go(func() { fn(s.ctx) })
}

// finish starts two workers, waits for every role to exit 0, stops the
// attackers and checks the run: every item collected once. It returns
// the roles' output for further checks.
func (s *siege) finish(t *testing.T, name string, workerExtra ...string) (dist, coll string) {
	t.Helper()
	w1, w2 := s.start("worker 1", "worker", workerExtra...), s.start("worker 2", "worker", workerExtra...)
	exitsOK(t, s.d, s.c, w1, w2)
	s.stop()
	s.wg.Wait()
	collected(t, s.c, faultItems)
	t.Logf("attack %q: %d items collected once in %v; peak RSS distributor %.1f MiB, collector %.1f MiB",
		name, faultItems, time.Since(s.started).Round(time.Millisecond), mib(s.d.PeakRSS(t)), mib(s.c.PeakRSS(t)))
	return s.d.Output(), s.c.Output()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// droppedAtEnd returns a role's end-of-run warning about what it dropped
// and ignored, with the counts by reason; "" if there is none.
func droppedAtEnd(out string) string {
	return regexp.MustCompile(`.*messages dropped or ignored during the run.*`).FindString(out)
}

// intruder is a raw ZeroMQ DEALER outside the engine. One goroutine uses
// it.
type intruder struct{ s *zmq.Socket }

// dial connects an intruder to endpoint, with routing id id (none: libzmq
// picks one) and, with a key pair, as a CURVE client of server.
func dial(endpoint string, id []byte, kp *auth.KeyPair, server auth.Key) (*intruder, error) {
	s, err := zmq.NewSocket(zmq.DEALER)
	if err != nil {
		return nil, err
	}
	in := &intruder{s: s}
	if err := in.setup(endpoint, id, kp, server); err != nil {
		in.close()
		return nil, err
	}
	return in, nil
}

func (in *intruder) setup(endpoint string, id []byte, kp *auth.KeyPair, server auth.Key) error {
	if err := in.s.SetLinger(0); err != nil {
		return err
	}
	if err := in.s.SetSndhwm(100_000); err != nil {
		return err
	}
	if id != nil {
		if err := in.s.SetIdentity(string(id)); err != nil {
			return err
		}
	}
	if kp != nil {
		if err := in.s.ClientAuthCurve(server.String(), kp.Public.String(), kp.Secret.Z85()); err != nil {
			return err
		}
	}
	return in.s.Connect(endpoint)
}

func (in *intruder) close() { _ = in.s.Close() }

// send sends env without waiting; a full queue drops it, as a flood does.
func (in *intruder) send(env transport.Envelope) {
	b, err := env.MarshalBinary()
	if err != nil {
		panic(err) // the tests build only valid envelopes
	}
	_, _ = in.s.SendBytes(b, zmq.DONTWAIT)
}

// recv waits up to d for a message, and decodes it.
func (in *intruder) recv(d time.Duration) (transport.Envelope, bool) {
	var env transport.Envelope
	p := zmq.NewPoller()
	p.Add(in.s, zmq.POLLIN)
	polled, err := p.Poll(d)
	if err != nil || len(polled) == 0 {
		return env, false
	}
	b, err := in.s.RecvBytes(0)
	if err != nil || env.UnmarshalBinary(b) != nil {
		return env, false
	}
	return env, true
}

// join says hello as a worker of the example's task type until welcomed,
// and returns the run id; 0 if ctx ends first or it was refused.
func (in *intruder) join(ctx context.Context, credit uint32) uint64 {
	for ctx.Err() == nil {
		in.send(transport.Envelope{Kind: transport.KindHello, Role: transport.RoleWorker, TaskType: "C", Count: 1})
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
			env, ok := in.recv(100 * time.Millisecond)
			switch {
			case !ok:
			case env.Kind == transport.KindWelcome:
				if credit > 0 {
					in.send(transport.Envelope{Kind: transport.KindReady, Run: env.Run, Count: credit})
				}
				return env.Run
			case env.Kind == transport.KindReject && transport.RejectCode(env.Count) != transport.RejectGone:
				return 0
			}
		}
	}
	return 0
}

// randomID is a routing id of the kind the engine's peers use.
func randomID() []byte {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	id[0] |= 0x80
	return id
}

func TestAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and attacks them; skipped with -short")
	}
	bin := buildExample(t)

	t.Run("none", func(t *testing.T) {
		// The baseline the others' figures compare with.
		s := besiege(t, bin, nil, nil)
		dist, coll := s.finish(t, "none")
		assert.Empty(t, droppedAtEnd(dist)+droppedAtEnd(coll), "a run without attackers drops nothing")
	})

	t.Run("forged ACKs", func(t *testing.T) {
		s := besiege(t, bin, nil, nil)
		// One sprayer joined as a worker and knows the run id, one never
		// said hello; both send ACKs for every id and attempt.
		for _, joins := range []bool{true, false} {
			s.attack(func(ctx context.Context) {
				in, err := dial(s.dist, randomID(), nil, auth.Key{})
				if err != nil {
					t.Errorf("sprayer: %v", err)
					return
				}
				defer in.close()
				var run uint64
				if joins {
					run = in.join(ctx, 0)
				}
				for ctx.Err() == nil {
					for id := uint64(1); id <= faultItems; id++ {
						acks := []transport.Item{{ID: id, Attempt: 1}, {ID: id, Attempt: 2}, {ID: id, Attempt: 3}}
						in.send(transport.Envelope{Kind: transport.KindAck, Run: run, Items: acks})
					}
					time.Sleep(time.Millisecond) // a flood, not a busy loop in the test
				}
			})
		}
		dist, _ := s.finish(t, "forged ACKs")
		assert.Contains(t, droppedAtEnd(dist), string("not allowed for the sender's role"), "the joined sprayer's ACKs were counted:\n%s", dist)
		// Warnings come once per reason per interval, not per message.
		assert.Less(t, strings.Count(dist, "\n"), 30, "the distributor's log stays short:\n%s", dist)
	})

	t.Run("forged results and failures", func(t *testing.T) {
		s := besiege(t, bin, nil, nil)
		s.attack(func(ctx context.Context) {
			in, err := dial(s.dist, randomID(), nil, auth.Key{})
			if err != nil {
				t.Errorf("forger: %v", err)
				return
			}
			defer in.close()
			run := in.join(ctx, 0)
			// Leave, so the run does not count on this worker.
			in.send(transport.Envelope{Kind: transport.KindBye, Role: transport.RoleWorker, Run: run})
			out, err := dial(s.coll, randomID(), nil, auth.Key{})
			if err != nil {
				t.Errorf("forger: %v", err)
				return
			}
			defer out.close()
			for ctx.Err() == nil {
				// Every id of the run and past it, as results with made-up
				// tokens and as failures without any.
				for id := uint64(1); id <= 2*faultItems; id++ {
					var tok transport.Token
					_, _ = rand.Read(tok[:])
					out.send(transport.Envelope{Kind: transport.KindResult, Run: run, TaskType: "C", Count: 3, Items: []transport.Item{
						{ID: id, Attempt: 1, Token: tok, Payload: []byte{0xc0}},
						{ID: id, Attempt: 3, Flags: transport.FlagFailed | transport.FlagPermanent, Payload: []byte("forged")},
					}})
				}
				time.Sleep(time.Millisecond)
			}
		})
		_, coll := s.finish(t, "forged results and failures")
		assert.Contains(t, droppedAtEnd(coll), "no valid assignment token", "the forgeries were counted:\n%s", coll)
		assert.NotContains(t, coll, "failed", "no item failed")
	})

	t.Run("hello flood", func(t *testing.T) {
		s := besiege(t, bin, nil, nil)
		// Hellos as a worker in a loop: each handled one costs a welcome
		// and a log line or two.
		s.attack(func(ctx context.Context) {
			in, err := dial(s.dist, randomID(), nil, auth.Key{})
			if err != nil {
				t.Errorf("flood: %v", err)
				return
			}
			defer in.close()
			for ctx.Err() == nil {
				for range 1000 {
					in.send(transport.Envelope{Kind: transport.KindHello, Role: transport.RoleWorker, TaskType: "C", Count: 1})
				}
				time.Sleep(time.Millisecond)
			}
		})
		dist, _ := s.finish(t, "hello flood")
		assert.Contains(t, droppedAtEnd(dist), "too many handshakes", "the flood was counted:\n%s", dist)
		// Here a heartbeat interval is 50 ms; a flooding peer is handled
		// once per interval.
		assert.Less(t, strings.Count(dist, "\n"), 100, "the distributor's log stays short:\n%s", dist)
	})

	t.Run("pre-claimed routing ids", func(t *testing.T) {
		s := besiege(t, bin, nil, nil)
		// libzmq gives a peer without a routing id of its own 00 and a
		// counter that starts at the first rand(): 00 6b 8b 45 67 in a
		// process that never seeded it. Claim those ids and the next ones
		// at both listeners, then connect peers that bring no id.
		var held []*intruder
		defer func() {
			for _, in := range held {
				in.close()
			}
		}()
		for _, ep := range []string{s.dist, s.coll} {
			for k := range uint32(100) {
				id := binary.BigEndian.AppendUint32([]byte{0}, 0x6b8b4567+k)
				in, err := dial(ep, id, nil, auth.Key{})
				require.NoError(t, err)
				in.send(transport.Envelope{Kind: transport.KindHeartbeat})
				held = append(held, in)
			}
			for range 20 {
				in, err := dial(ep, nil, nil, auth.Key{})
				require.NoError(t, err)
				in.send(transport.Envelope{Kind: transport.KindHello, Role: transport.RoleWorker, TaskType: "C"})
				held = append(held, in)
			}
		}
		s.finish(t, "pre-claimed routing ids")
	})

	t.Run("fake workers with 2^31 credit", func(t *testing.T) {
		s := besiege(t, bin, []string{"-item-timeout", "500ms"}, nil)
		// 40 fakes announce all the credit they can before any worker
		// joins: half heartbeat and never read (slow readers), a quarter
		// read and sit on what they get (hoarders), a quarter vanish.
		joined := make(chan struct{}, 40)
		for i := range 40 {
			s.attack(func(ctx context.Context) {
				in, err := dial(s.dist, randomID(), nil, auth.Key{})
				if err != nil {
					t.Errorf("fake %d: %v", i, err)
					return
				}
				defer in.close()
				run := in.join(ctx, 1<<31)
				joined <- struct{}{}
				if i%4 == 3 {
					return // vanish, without a goodbye
				}
				for tick := time.NewTicker(50 * time.Millisecond); ctx.Err() == nil; {
					select {
					case <-ctx.Done():
					case <-tick.C:
						in.send(transport.Envelope{Kind: transport.KindHeartbeat, Role: transport.RoleWorker, Run: run})
					}
					if i%2 == 1 {
						in.recv(0)
					}
				}
			})
		}
		for range 40 {
			<-joined
		}
		dist, _ := s.finish(t, "40 fake workers with 2^31 credit")
		assert.Contains(t, dist, "finished none for its Timeout", "hoarders were taken for gone")
	})

	t.Run("frames over the limit and half-sent frames", func(t *testing.T) {
		s := besiege(t, bin, nil, nil)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for _, ep := range []string{s.dist, s.coll} {
			addr := strings.TrimPrefix(ep, "tcp://")
			// Two frames declared at 120 MiB, past the 64 MiB limit: the
			// connection is dropped on the header. Two declared at 60 MiB
			// with 8 MiB sent, then held.
			for _, f := range []struct{ declared, sent int }{{120 << 20, 1 << 20}, {120 << 20, 1 << 20}, {60 << 20, 8 << 20}, {60 << 20, 8 << 20}} {
				c, err := net.Dial("tcp", addr)
				require.NoError(t, err)
				conns = append(conns, c)
				_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_, _ = c.Write(zmtpFrameHeader(f.declared))
				_, _ = c.Write(make([]byte, f.sent))
			}
			// And a thousand connections that say nothing.
			for range 1000 {
				c, err := net.Dial("tcp", addr)
				require.NoError(t, err)
				conns = append(conns, c)
			}
		}
		s.finish(t, "oversize and half-sent frames, 1000 idle connections")
	})

	t.Run("keys: strangers and role hijacks", func(t *testing.T) {
		dir := t.TempDir()
		keys := map[string]auth.KeyPair{}
		for _, name := range []string{"dist", "coll", "worker", "stranger"} {
			kp, err := auth.GenerateKeyPair()
			require.NoError(t, err)
			require.NoError(t, auth.WriteKeyPair(filepath.Join(dir, name), kp))
			keys[name] = kp
		}
		access := filepath.Join(dir, "access.txt")
		require.NoError(t, os.WriteFile(access, []byte(keys["coll"].Public.String()+" collector coll\n"+keys["worker"].Public.String()+" worker:C workers\n"), 0o644))
		r := newFaultRun(t, bin, "tcp")
		s := &siege{faultRun: r, started: time.Now()}
		s.ctx, s.stop = context.WithCancel(context.Background())
		t.Cleanup(func() { s.stop(); s.wg.Wait() })
		r.dist, r.coll = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
		s.d = r.start("distributor", "distributor", "-key", filepath.Join(dir, "dist.key_secret"), "-access", access)
		r.dist = s.d.Listening(t, "distributor")
		distKey := keys["dist"].Public
		// A worker's key asks to be the collector before the real one:
		// refused, and it exits 1 saying why.
		hijack := r.start("hijacker", "collector", "-key", filepath.Join(dir, "worker.key_secret"), "-access", access,
			"-distributor-key", filepath.Join(dir, "dist.key"))
		assert.Equal(t, 1, hijack.ExitCode(t), hijack.Output())
		assert.Contains(t, hijack.Output(), "forbidden")
		s.c = r.start("collector", "collector", "-key", filepath.Join(dir, "coll.key_secret"), "-access", access,
			"-distributor-key", filepath.Join(dir, "dist.key"))
		r.coll = s.c.Listening(t, "collector")
		// A stranger's key, and no key at all, never get past the
		// handshake; a worker's key that sprays ACKs and forged results
		// is heard, and dropped.
		stranger, worker := keys["stranger"], keys["worker"]
		for _, who := range []*auth.KeyPair{&stranger, nil} {
			s.attack(func(ctx context.Context) {
				in, err := dial(s.dist, randomID(), who, distKey)
				if err != nil {
					t.Errorf("stranger: %v", err)
					return
				}
				defer in.close()
				if in.join(ctx, 1<<31) != 0 {
					t.Errorf("a peer without a listed key was welcomed")
				}
			})
		}
		s.attack(func(ctx context.Context) {
			// One connection asks for the collector role, another joins
			// as the worker the key is (a second hello on one connection
			// within a heartbeat would be dropped as a flood).
			hijack, err := dial(s.dist, randomID(), &worker, distKey)
			if err != nil {
				t.Errorf("insider: %v", err)
				return
			}
			defer hijack.close()
			hijack.send(transport.Envelope{Kind: transport.KindHello, Role: transport.RoleCollector})
			if env, ok := hijack.recv(clitest.Deadline); !ok || env.Kind != transport.KindReject || transport.RejectCode(env.Count) != transport.RejectForbidden {
				t.Errorf("a worker's key said hello as the collector, and got %v (want reject %d)", env, transport.RejectForbidden)
			}
			in, err := dial(s.dist, randomID(), &worker, distKey)
			if err != nil {
				t.Errorf("insider: %v", err)
				return
			}
			defer in.close()
			run := in.join(ctx, 0)
			for ctx.Err() == nil {
				for id := uint64(1); id <= faultItems; id++ {
					in.send(transport.Envelope{Kind: transport.KindAck, Run: run, Items: []transport.Item{{ID: id, Attempt: 1}}})
				}
				time.Sleep(time.Millisecond)
			}
		})
		dist, coll := s.finish(t, "keys: strangers and role hijacks",
			"-key", filepath.Join(dir, "worker.key_secret"), "-distributor-key", filepath.Join(dir, "dist.key"), "-collector-key", filepath.Join(dir, "coll.key"))
		assert.Contains(t, droppedAtEnd(dist), "unauthenticated", "the strangers were counted:\n%s", dist)
		assert.Contains(t, droppedAtEnd(dist), "not allowed for the sender's role", "the insider's ACKs were counted:\n%s", dist)
		assert.Empty(t, droppedAtEnd(coll), "nothing reached the collector but the run:\n%s", coll)
	})
}

// TestAttackMetadataBomb sends the metadata example's distributor eight
// bytes of MessagePack that claim a map of four billion entries, as
// metadata, before the real source: it is refused as malformed, without
// allocating, and the run completes with the real metadata.
func TestAttackMetadataBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and attacks them; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "metadata")
	out, err := exec.Command("go", "build", "-o", bin, "../metadata").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	s := besiege(t, bin, nil, nil)
	in, err := dial(s.dist, randomID(), nil, auth.Key{})
	require.NoError(t, err)
	defer in.close()
	bomb := []byte{0xc7, 0x05, 0x00, 0xdf, 0xff, 0xff, 0xff, 0xff}
	in.send(transport.Envelope{Kind: transport.KindMetadata, Role: transport.RoleMetadata, Payload: bomb})
	reply, ok := in.recv(clitest.Deadline)
	require.True(t, ok, "the distributor answers")
	assert.Equal(t, transport.KindReject, reply.Kind)
	assert.Contains(t, string(reply.Payload), "malformed")
	md := s.start("metadata", "metadata")
	s.finish(t, "MessagePack bomb as metadata")
	assert.Equal(t, 0, md.ExitCode(t), md.Output())
	assert.Contains(t, s.c.Output(), " 0 not multiples of 7", "every worker used the real metadata")
}

// zmtpFrameHeader is what a ZMTP 3.0 peer sends before a message of size
// bytes: the greeting (NULL mechanism), a READY command for a DEALER, and
// the long header of a single-frame message.
func zmtpFrameHeader(size int) []byte {
	b := []byte{0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0}
	b = append(b, append([]byte("NULL"), make([]byte, 16)...)...)
	b = append(b, make([]byte, 32)...) // as-server 0, filler
	ready := append([]byte("\x05READY\x0bSocket-Type"), 0, 0, 0, 6)
	ready = append(ready, "DEALER"...)
	b = append(b, 0x04, byte(len(ready)))
	b = append(b, ready...)
	b = append(b, 0x02)
	return binary.BigEndian.AppendUint64(b, uint64(size))
}
