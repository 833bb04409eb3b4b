//go:build cgo && linux

package zmqtransport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// idleRetry bounds how long the owner waits without a signal, as a
// backstop; libzmq and wake signal every event at once.
const idleRetry = 250 * time.Millisecond

// busyRetry is how soon the owner tries again, at the latest, a send that
// libzmq refused for now (a DEALER with no connection yet). libzmq signals
// ZMQ_FD as soon as the connection is up, so a waiting DEALER does not
// wake every few milliseconds; this is the backstop.
const busyRetry = 100 * time.Millisecond

// A DEALER whose listener is not there yet tries again after reconnectMin,
// doubling the wait up to reconnectMax: a listener started a moment later
// is reached at once, one that is down is not hammered.
const (
	reconnectMin = 10 * time.Millisecond
	reconnectMax = 250 * time.Millisecond
)

type outMsg struct {
	to   []byte // ROUTER only: the peer's routing id
	data []byte
}

type inMsg struct {
	from transport.PeerID
	env  transport.Envelope
}

// pipe is one ZeroMQ socket with its owner goroutine and the channels the
// rest of the program reaches it through.
type pipe struct {
	kind     zmq.Type
	endpoint string
	opts     Options
	log      *slog.Logger

	outbox    chan outMsg
	inbox     chan inMsg
	w         *waiter
	asleep    atomic.Bool // the owner is (about to be) parked; a Send must wake it
	inboxFull atomic.Bool // the owner holds a message for a full inbox; a Recv must wake it
	closing   chan struct{}
	done      chan struct{} // the owner has closed the socket and exited
	once      sync.Once
	err       error // why the owner stopped on its own, if it did; read after done

	// Owned by the owner goroutine.
	sock    *zmq.Socket
	heldIn  *inMsg  // received, waiting for room in the inbox
	heldOut *outMsg // refused by libzmq for now

	known   sync.Map // ROUTER: routing ids seen (string -> struct{})
	dropped atomic.Uint64
}

// open starts the owner goroutine, which creates the socket and binds or
// connects it; open returns once that succeeded or failed.
func open(kind zmq.Type, ep transport.Endpoint, opts Options) (*pipe, error) {
	p := &pipe{
		kind:     kind,
		endpoint: ep.String(),
		opts:     opts,
		log:      opts.Logger.With("component", "zmqtransport", "endpoint", ep.String()),
		outbox:   make(chan outMsg, opts.Buffer),
		inbox:    make(chan inMsg, opts.Buffer),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	ready := make(chan error, 1)
	go p.own(ready)
	if err := <-ready; err != nil {
		<-p.done
		return nil, err
	}
	return p, nil
}

// own is the owner goroutine: it alone touches the socket, from creation to
// close, locked to one OS thread, where it sleeps between turns (see
// waiter).
func (p *pipe) own(ready chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(p.done)
	zctx, err := sharedContext()
	if err != nil {
		ready <- fmt.Errorf("zmqtransport: new context: %w", err)
		return
	}
	sock, err := p.setUp(zctx)
	if err == nil {
		var fd int
		if fd, err = sock.GetFd(); err == nil {
			p.w, err = newWaiter(fd)
		}
		if err != nil {
			err = fmt.Errorf("zmqtransport %q: %w", p.endpoint, err)
		}
	}
	if err != nil {
		if sock != nil {
			_ = sock.SetLinger(0)
			_ = sock.Close()
		}
		ready <- err
		return
	}
	p.sock = sock
	ready <- nil

	for {
		done, retry := p.step()
		if done {
			break
		}
		if err := p.w.wait(retry); err != nil {
			p.err = fmt.Errorf("zmqtransport %q: waiting for the socket: %w", p.endpoint, err)
			p.log.Error("socket stopped", "err", err)
			break
		}
	}
	_ = sock.SetLinger(p.opts.Linger)
	_ = sock.Close()
	p.w.close()
}

// shared is the process's one ZeroMQ context, created with the first
// socket and never terminated: see "Sockets and goroutines" in the package
// doc.
var shared struct {
	once sync.Once
	ctx  *zmq.Context
	err  error
}

func sharedContext() (*zmq.Context, error) {
	shared.once.Do(func() { shared.ctx, shared.err = zmq.NewContext() })
	return shared.ctx, shared.err
}

func (p *pipe) setUp(zctx *zmq.Context) (*zmq.Socket, error) {
	sock, err := zctx.NewSocket(p.kind)
	if err != nil {
		return nil, fmt.Errorf("zmqtransport: new socket: %w", err)
	}
	if err := sock.SetSndhwm(0); err != nil { // the engine's credits bound what is queued
		return sock, err
	}
	if err := sock.SetRcvhwm(0); err != nil {
		return sock, err
	}
	// A hard guard far above the limit: libzmq drops a peer that sends more
	// than this before it allocates the message. Between the two, messages
	// arrive and are dropped and counted here.
	if err := sock.SetMaxmsgsize(2 * int64(p.opts.MaxMessageSize)); err != nil {
		return sock, err
	}
	if p.kind == zmq.ROUTER {
		if err := sock.SetRouterMandatory(1); err != nil {
			return sock, err
		}
		if err := sock.Bind(p.endpoint); err != nil {
			return sock, bindError(p.endpoint, err)
		}
		return sock, nil
	}
	if err := sock.SetReconnectIvl(reconnectMin); err != nil {
		return sock, err
	}
	if err := sock.SetReconnectIvlMax(reconnectMax); err != nil {
		return sock, err
	}
	if err := sock.Connect(p.endpoint); err != nil {
		return sock, fmt.Errorf("zmqtransport: connect %q: %w", p.endpoint, err)
	}
	return sock, nil
}

func bindError(endpoint string, err error) error {
	switch zmq.AsErrno(err) {
	case zmq.EADDRINUSE:
		return fmt.Errorf("zmqtransport: bind %q: %w", endpoint, transport.ErrAddrInUse)
	case zmq.EADDRNOTAVAIL:
		return fmt.Errorf("zmqtransport: bind %q: this machine has no such address: %w", endpoint, err)
	}
	return fmt.Errorf("zmqtransport: bind %q: %w", endpoint, err)
}

// step is one turn of the owner: it moves messages both ways until nothing
// is left to do, and reports whether the pipe is closing and how soon to
// call it again without a signal.
func (p *pipe) step() (done bool, retry time.Duration) {
	for {
		p.asleep.Store(false)
		select {
		case <-p.closing:
			// Hand what callers queued before Close to libzmq; linger then
			// bounds how long it may take to leave.
			p.flushOut()
			return true, 0
		default:
		}
		p.flushOut()
		p.readIn()
		// Reading ZMQ_EVENTS lets libzmq process its pending commands, and
		// a send may have consumed the ZMQ_FD signal of a message that came
		// in meanwhile: ask before parking, as libzmq's documentation says.
		ev, err := p.sock.GetEvents()
		if err != nil {
			p.log.Warn("socket events failed", "err", err)
		} else if ev&zmq.POLLIN != 0 && p.heldIn == nil {
			continue
		}
		p.asleep.Store(true)
		if len(p.outbox) > 0 && p.heldOut == nil {
			continue
		}
		if p.heldIn != nil {
			// Ask the next Recv for a wake-up, then look once more in
			// case it came before the flag was up.
			p.inboxFull.Store(true)
			select {
			case p.inbox <- *p.heldIn:
				p.heldIn = nil
				p.inboxFull.Store(false)
				continue
			default:
			}
		}
		if p.heldOut != nil {
			return false, busyRetry
		}
		return false, idleRetry
	}
}

// wake rouses a parked owner; callers first queue their message.
func (p *pipe) wake() {
	if p.asleep.CompareAndSwap(true, false) {
		p.w.wake()
	}
}

// flushOut sends what callers queued, until libzmq would block.
func (p *pipe) flushOut() {
	sock := p.sock
	for {
		var m outMsg
		if p.heldOut != nil {
			m, p.heldOut = *p.heldOut, nil
		} else {
			select {
			case m = <-p.outbox:
			default:
				return
			}
		}
		var err error
		if p.kind == zmq.ROUTER {
			_, err = sock.SendMessageDontwait(m.to, m.data)
		} else {
			_, err = sock.SendBytes(m.data, zmq.DONTWAIT)
		}
		switch {
		case err == nil:
		case zmq.AsErrno(err) == zmq.Errno(syscall.EAGAIN):
			p.heldOut = &m
			return
		case zmq.AsErrno(err) == zmq.EHOSTUNREACH:
			p.known.Delete(string(m.to))
			p.drop("peer unreachable", err)
		default:
			p.drop("send failed", err)
		}
	}
}

// readIn moves received messages into the inbox while it has room.
func (p *pipe) readIn() {
	for {
		if p.heldIn != nil {
			select {
			case p.inbox <- *p.heldIn:
				p.heldIn = nil
			default:
				return
			}
		}
		frames, err := p.sock.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			if zmq.AsErrno(err) != zmq.Errno(syscall.EAGAIN) {
				p.log.Warn("receive failed", "err", err)
			}
			return
		}
		if m, ok := p.decode(frames); ok {
			p.heldIn = &m
		}
	}
}

func (p *pipe) decode(frames [][]byte) (inMsg, bool) {
	var m inMsg
	data := frames[len(frames)-1]
	want := 1
	if p.kind == zmq.ROUTER {
		want = 2
	}
	if len(frames) != want {
		p.drop("malformed message", fmt.Errorf("%d frames, want %d", len(frames), want))
		return m, false
	}
	if len(data) > p.opts.MaxMessageSize {
		p.drop("message over the size limit", fmt.Errorf("%d bytes, limit %d", len(data), p.opts.MaxMessageSize))
		return m, false
	}
	if err := m.env.UnmarshalBinary(data); err != nil {
		p.drop("malformed message", err)
		return m, false
	}
	if p.kind == zmq.ROUTER {
		id := string(frames[0])
		m.from = transport.PeerID(id)
		if _, ok := p.known.Load(id); !ok {
			p.known.Store(id, struct{}{})
		}
	}
	return m, true
}

// drop counts a message that was thrown away and logs why, sparingly: the
// first ten, then every power of two.
func (p *pipe) drop(reason string, err error) {
	n := p.dropped.Add(1)
	if n <= 10 || n&(n-1) == 0 {
		p.log.Warn("message dropped", "reason", reason, "err", err, "dropped_total", n)
	}
}

func (p *pipe) send(ctx context.Context, m outMsg) error {
	select {
	case <-p.closing:
		return transport.ErrClosed
	case <-p.done:
		return p.stopped()
	default:
	}
	select {
	case p.outbox <- m:
	default:
		select {
		case p.outbox <- m:
		case <-p.closing:
			return transport.ErrClosed
		case <-p.done:
			return p.stopped()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.wake()
	return nil
}

func (p *pipe) recv(ctx context.Context) (inMsg, error) {
	select {
	case <-p.closing:
		return inMsg{}, transport.ErrClosed
	default:
	}
	select {
	case m := <-p.inbox:
		p.roomInInbox()
		return m, nil
	default:
	}
	select {
	case m := <-p.inbox:
		p.roomInInbox()
		return m, nil
	case <-p.closing:
		return inMsg{}, transport.ErrClosed
	case <-p.done:
		return inMsg{}, p.stopped()
	case <-ctx.Done():
		return inMsg{}, ctx.Err()
	}
}

// roomInInbox wakes an owner that waits to hand over a message.
func (p *pipe) roomInInbox() {
	if p.inboxFull.Load() && p.inboxFull.CompareAndSwap(true, false) {
		p.w.wake()
	}
}

// stopped is the error for a pipe whose owner has exited; call it only
// after done is closed.
func (p *pipe) stopped() error {
	if p.err != nil {
		return fmt.Errorf("%w: %w", transport.ErrClosed, p.err)
	}
	return transport.ErrClosed
}

func (p *pipe) close() error {
	err := transport.ErrClosed
	p.once.Do(func() {
		err = nil
		close(p.closing)
		p.w.wake()
		<-p.done
	})
	return err
}

// Dropped returns the number of messages thrown away: malformed, too large,
// or addressed to a peer that was gone.
func (p *pipe) Dropped() uint64 { return p.dropped.Load() }

// Listen binds a ROUTER socket to ep.
func (t *Transport) Listen(ctx context.Context, ep transport.Endpoint) (transport.Listener, error) {
	if err := checkScheme(ep); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ep.Scheme == transport.SchemeIPC {
		// libzmq would unlink the socket file of a live listener and take
		// its place; refuse instead, as tcp does for a port in use.
		var d net.Dialer
		if c, err := d.DialContext(ctx, "unix", ep.Path); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("zmqtransport: bind %q: another listener answers there: %w", ep, transport.ErrAddrInUse)
		}
	}
	p, err := open(zmq.ROUTER, ep, t.opts)
	if err != nil {
		return nil, err
	}
	return &listener{p}, nil
}

// Dial connects a DEALER socket to ep. A tcp host name is resolved first,
// so a name that does not resolve is an error here rather than silent
// reconnect attempts.
func (t *Transport) Dial(ctx context.Context, ep transport.Endpoint) (transport.Conn, error) {
	if err := checkScheme(ep); err != nil {
		return nil, err
	}
	if ep.Scheme == transport.SchemeTCP && net.ParseIP(ep.Host) == nil {
		if _, err := net.DefaultResolver.LookupHost(ctx, ep.Host); err != nil {
			return nil, fmt.Errorf("zmqtransport: dial %q: resolve %q: %w", ep, ep.Host, err)
		}
	}
	p, err := open(zmq.DEALER, ep, t.opts)
	if err != nil {
		return nil, err
	}
	return &conn{p}, nil
}

func checkScheme(ep transport.Endpoint) error {
	if ep.Scheme != transport.SchemeIPC && ep.Scheme != transport.SchemeTCP {
		return fmt.Errorf("zmqtransport: endpoint %q: %w", ep, errors.New("only ipc:// and tcp:// are served here"))
	}
	return nil
}

type listener struct{ p *pipe }

func (l *listener) Recv(ctx context.Context) (transport.PeerID, transport.Envelope, error) {
	m, err := l.p.recv(ctx)
	return m.from, m.env, err
}

func (l *listener) Send(ctx context.Context, to transport.PeerID, env transport.Envelope) error {
	select {
	case <-l.p.closing:
		return transport.ErrClosed
	default:
	}
	if _, ok := l.p.known.Load(string(to)); !ok {
		return fmt.Errorf("zmqtransport %q: send to %x: %w", l.p.endpoint, string(to), transport.ErrUnknownPeer)
	}
	data, err := env.MarshalBinary()
	if err != nil {
		return err
	}
	return l.p.send(ctx, outMsg{to: []byte(to), data: data})
}

func (l *listener) Close() error { return l.p.close() }

// Dropped returns the number of messages the listener threw away.
func (l *listener) Dropped() uint64 { return l.p.Dropped() }

type conn struct{ p *pipe }

func (c *conn) Send(ctx context.Context, env transport.Envelope) error {
	data, err := env.MarshalBinary()
	if err != nil {
		return err
	}
	return c.p.send(ctx, outMsg{data: data})
}

func (c *conn) Recv(ctx context.Context) (transport.Envelope, error) {
	m, err := c.p.recv(ctx)
	return m.env, err
}

func (c *conn) Close() error { return c.p.close() }

// Dropped returns the number of messages the conn threw away.
func (c *conn) Dropped() uint64 { return c.p.Dropped() }
