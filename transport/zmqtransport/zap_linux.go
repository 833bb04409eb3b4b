//go:build cgo && linux

package zmqtransport

import (
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"

	zmq "github.com/pebbe/zmq4"

	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/auth"
)

// ZAP (ZeroMQ RFC 27) is how libzmq asks the program whether to accept a
// CURVE client: it sends the client's public key to whatever REP socket is
// bound to zapEndpoint in the socket's context, and completes the
// handshake only if the answer is 200. With no handler bound, libzmq 4.3
// accepts every client that knows the server key; so the handler runs
// from before the first CURVE listener binds until after the last one
// closed. Each listener has a ZAP domain of its own, naming its access
// list.
const zapEndpoint = "inproc://zeromq.zap.01"

// zapDomain is one CURVE listener's part in the handler.
type zapDomain struct {
	access *auth.Access
	drops  *transport.DropCounter
	log    *slog.Logger

	mu     sync.Mutex
	logged map[string]bool // keys refused and logged already
}

// maxLoggedRefusals bounds the keys a domain remembers having logged; past
// it, refusals are logged at the DropCounter's pace only.
const maxLoggedRefusals = 1024

// refuse counts a refused client and logs it: at once the first time for
// each key, at the DropCounter's pace after that.
func (d *zapDomain) refuse(key, addr, why string) {
	d.mu.Lock()
	first := !d.logged[key] && len(d.logged) < maxLoggedRefusals
	if first {
		d.logged[key] = true
	}
	d.mu.Unlock()
	if first {
		d.log.Warn("connection refused", "key", key, "address", addr, "why", why)
		d.drops.Drop(nil, dropUnauthenticated, "")
		return
	}
	d.drops.Drop(d.log, dropUnauthenticated, "connections refused", "key", key, "address", addr, "why", why)
}

// dropUnauthenticated counts connections refused by ZAP.
const dropUnauthenticated transport.DropReason = "unauthenticated"

// zapServer is the process's ZAP handler.
type zapServer struct {
	mu      sync.Mutex
	domains map[string]*zapDomain
	next    int
	run     *zapRun // nil while no CURVE listener is open
}

type zapRun struct {
	w    *waiter
	stop atomic.Bool
	done chan struct{}
}

var zapHandler = zapServer{domains: make(map[string]*zapDomain)}

// register adds a domain, starting the handler if it is not running, and
// returns the domain's name for ZMQ_ZAP_DOMAIN.
func (z *zapServer) register(d *zapDomain) (string, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.run == nil {
		run := &zapRun{done: make(chan struct{})}
		ready := make(chan error, 1)
		go z.serve(run, ready)
		if err := <-ready; err != nil {
			<-run.done
			return "", err
		}
		z.run = run
	}
	z.next++
	name := fmt.Sprintf("zmqpipeline/%d", z.next)
	d.logged = make(map[string]bool)
	z.domains[name] = d
	return name, nil
}

// unregister removes a domain once its listener has closed, and stops the
// handler after the last one.
func (z *zapServer) unregister(name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	delete(z.domains, name)
	if len(z.domains) > 0 || z.run == nil {
		return
	}
	z.run.stop.Store(true)
	z.run.w.wake()
	<-z.run.done
	z.run = nil
}

func (z *zapServer) domain(name string) *zapDomain {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.domains[name]
}

// serve is the handler's goroutine: it owns the REP socket, locked to its
// thread like every socket's owner, and sleeps in epoll between requests.
func (z *zapServer) serve(run *zapRun, ready chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(run.done)
	zctx, err := sharedContext()
	if err != nil {
		ready <- fmt.Errorf("zmqtransport: new context: %w", err)
		return
	}
	sock, err := zctx.NewSocket(zmq.REP)
	if err != nil {
		ready <- fmt.Errorf("zmqtransport: ZAP handler: %w", err)
		return
	}
	defer sock.Close()
	_ = sock.SetLinger(0)
	if err := sock.Bind(zapEndpoint); err != nil {
		ready <- fmt.Errorf("zmqtransport: ZAP handler: bind %s: %w", zapEndpoint, err)
		return
	}
	// Unbound before the close, which releases the name only later, in
	// libzmq's reaper: the next handler binds it at once.
	defer func() { _ = sock.Unbind(zapEndpoint) }()
	fd, err := sock.GetFd()
	if err == nil {
		run.w, err = newWaiter(fd)
	}
	if err != nil {
		ready <- fmt.Errorf("zmqtransport: ZAP handler: %w", err)
		return
	}
	defer run.w.close()
	ready <- nil
	for !run.stop.Load() {
		req, err := sock.RecvMessageBytes(zmq.DONTWAIT)
		if err == nil {
			// REP: every request gets its reply before the next is read.
			// A reply that cannot go leaves that handshake to time out.
			_, _ = sock.SendMessage(z.answer(req)...)
			continue
		}
		if ev, err := sock.GetEvents(); err == nil && ev&zmq.POLLIN != 0 {
			continue
		}
		if err := run.w.wait(idleRetry); err != nil {
			return
		}
	}
}

// answer decides one request: frames version, request id, domain, peer
// address, routing id, mechanism and credentials. The reply is version,
// request id, status code, status text, user id and metadata; the user id
// becomes the User-Id of every message of the connection, which the
// listener hands the engine as the message's Principal.
func (z *zapServer) answer(req [][]byte) []any {
	if len(req) < 6 || string(req[0]) != "1.0" {
		id := []byte("0")
		if len(req) > 1 {
			id = req[1]
		}
		return []any{"1.0", id, "500", "malformed ZAP request", "", ""}
	}
	reply := func(code, text, user string) []any { return []any{"1.0", req[1], code, text, user, ""} }
	d := z.domain(string(req[2]))
	addr := string(req[3])
	if d == nil {
		return reply("400", "unknown domain", "")
	}
	if string(req[5]) != "CURVE" || len(req) != 7 || len(req[6]) != auth.KeyLen {
		d.refuse("", addr, "not CURVE")
		return reply("400", "CURVE required", "")
	}
	var key auth.Key
	copy(key[:], req[6])
	principal := key.String()
	if _, ok := d.access.Lookup(principal); !ok {
		d.refuse(principal, addr, "the key is not on the access list")
		return reply("400", "key not on the access list", "")
	}
	return reply("200", "OK", principal)
}
