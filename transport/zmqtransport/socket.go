//go:build cgo

package zmqtransport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// idlePoll caps how long the owner sleeps in zmq_poll without a wake-up; it
// bounds the owner's reaction to a lost wake-up and to a full inbox
// draining. Every other event wakes it at once.
const idlePoll = 250 * time.Millisecond

// busyPoll is the owner's poll timeout while it waits for room in the inbox
// or in a full ZeroMQ send queue.
const busyPoll = time.Millisecond

var wakeSeq atomic.Uint64

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

	outbox  chan outMsg
	inbox   chan inMsg
	wake    chan struct{} // to the waker goroutine; capacity 1
	asleep  atomic.Bool   // the owner is (about to be) in zmq_poll
	closing chan struct{}
	done    chan struct{}
	once    sync.Once

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
		wake:     make(chan struct{}, 1),
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

// own is the owner goroutine: it alone touches the socket and the wake-up
// receiver, from creation to close, locked to one OS thread so the sockets
// never migrate between threads.
func (p *pipe) own(ready chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(p.done)
	zctx, err := sharedContext()
	if err != nil {
		ready <- fmt.Errorf("zmqtransport: new context: %w", err)
		return
	}
	wakeAddr := "inproc://zmqtransport-wake-" + strconv.FormatUint(wakeSeq.Add(1), 10)
	sock, wakeR, err := p.setUp(zctx, wakeAddr)
	if err != nil {
		for _, s := range []*zmq.Socket{sock, wakeR} {
			if s != nil {
				_ = s.SetLinger(0)
				_ = s.Close()
			}
		}
		ready <- err
		return
	}
	wakerDone := make(chan struct{})
	wakerReady := make(chan error, 1)
	go p.waker(zctx, wakeAddr, wakerReady, wakerDone)
	if err := <-wakerReady; err != nil {
		_ = sock.SetLinger(0)
		_ = sock.Close()
		_ = wakeR.Close()
		<-wakerDone
		ready <- err
		return
	}
	ready <- nil

	p.loop(sock, wakeR)

	_ = sock.SetLinger(p.opts.Linger)
	_ = sock.Close()
	_ = wakeR.SetLinger(0)
	_ = wakeR.Close()
	<-wakerDone
}

// shared is the process's one ZeroMQ context, created on first use and
// never terminated: see "Sockets and goroutines" in the package doc.
var shared struct {
	once sync.Once
	ctx  *zmq.Context
	err  error
}

func sharedContext() (*zmq.Context, error) {
	shared.once.Do(func() { shared.ctx, shared.err = zmq.NewContext() })
	return shared.ctx, shared.err
}

func (p *pipe) setUp(zctx *zmq.Context, wakeAddr string) (sock, wakeR *zmq.Socket, err error) {
	sock, err = zctx.NewSocket(p.kind)
	if err != nil {
		return nil, nil, fmt.Errorf("zmqtransport: new socket: %w", err)
	}
	if err := sock.SetSndhwm(0); err != nil { // the engine's credits bound what is queued
		return sock, nil, err
	}
	if err := sock.SetRcvhwm(0); err != nil {
		return sock, nil, err
	}
	// A hard guard far above the limit: libzmq drops a peer that sends more
	// than this before it allocates the message. Between the two, messages
	// arrive and are dropped and counted here.
	if err := sock.SetMaxmsgsize(2 * int64(p.opts.MaxMessageSize)); err != nil {
		return sock, nil, err
	}
	if p.kind == zmq.ROUTER {
		if err := sock.SetRouterMandatory(1); err != nil {
			return sock, nil, err
		}
		if err := sock.Bind(p.endpoint); err != nil {
			return sock, nil, bindError(p.endpoint, err)
		}
	} else {
		if err := sock.SetReconnectIvl(100 * time.Millisecond); err != nil {
			return sock, nil, err
		}
		if err := sock.SetReconnectIvlMax(250 * time.Millisecond); err != nil {
			return sock, nil, err
		}
		if err := sock.Connect(p.endpoint); err != nil {
			return sock, nil, fmt.Errorf("zmqtransport: connect %q: %w", p.endpoint, err)
		}
	}
	wakeR, err = zctx.NewSocket(zmq.PAIR)
	if err != nil {
		return sock, nil, err
	}
	if err := wakeR.Bind(wakeAddr); err != nil {
		return sock, wakeR, err
	}
	return sock, wakeR, nil
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

// waker owns the sending end of the wake-up pair: it turns a Go channel
// signal into a ZeroMQ message the owner's poll sees.
func (p *pipe) waker(zctx *zmq.Context, addr string, ready chan<- error, done chan<- struct{}) {
	defer close(done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	w, err := zctx.NewSocket(zmq.PAIR)
	if err == nil {
		err = w.Connect(addr)
	}
	if err != nil {
		if w != nil {
			_ = w.Close()
		}
		ready <- fmt.Errorf("zmqtransport: wake-up socket: %w", err)
		return
	}
	ready <- nil
	defer func() {
		_ = w.SetLinger(0)
		_ = w.Close()
	}()
	for {
		select {
		case <-p.wake:
			if _, err := w.SendBytes([]byte{1}, zmq.DONTWAIT); err != nil && zmq.AsErrno(err) != zmq.Errno(syscall.EAGAIN) {
				p.log.Warn("wake-up failed", "err", err)
			}
		case <-p.closing:
			_, _ = w.SendBytes([]byte{1}, zmq.DONTWAIT)
			return
		}
	}
}

// nudge wakes the owner if it sleeps. Callers first queue their message.
func (p *pipe) nudge() {
	if p.asleep.Load() {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

func (p *pipe) loop(sock, wakeR *zmq.Socket) {
	poller := zmq.NewPoller()
	sockID := poller.Add(sock, zmq.POLLIN)
	poller.Add(wakeR, zmq.POLLIN)
	var (
		heldIn  *inMsg  // received, waiting for room in the inbox
		heldOut *outMsg // refused by ZeroMQ for now (send queue full)
	)
	for {
		select {
		case <-p.closing:
			// Hand what callers queued before Close to ZeroMQ; linger then
			// bounds how long it may take to leave.
			p.flushOut(sock, heldOut)
			return
		default:
		}
		heldOut = p.flushOut(sock, heldOut)
		heldIn = p.readIn(sock, heldIn)

		p.asleep.Store(true)
		if len(p.outbox) > 0 && heldOut == nil {
			p.asleep.Store(false)
			continue
		}
		events := zmq.State(0)
		if heldIn == nil {
			events |= zmq.POLLIN
		}
		_, _ = poller.Update(sockID, events)
		timeout := idlePoll
		if heldIn != nil || heldOut != nil {
			timeout = busyPoll
		}
		polled, err := poller.Poll(timeout)
		p.asleep.Store(false)
		if err != nil {
			if zmq.AsErrno(err) == zmq.ETERM {
				return
			}
			p.log.Warn("poll failed", "err", err)
			continue
		}
		for _, pl := range polled {
			if pl.Socket == wakeR {
				for {
					if _, err := wakeR.RecvBytes(zmq.DONTWAIT); err != nil {
						break
					}
				}
			}
		}
	}
}

// flushOut sends what callers queued, until ZeroMQ would block.
func (p *pipe) flushOut(sock *zmq.Socket, held *outMsg) *outMsg {
	for {
		var m outMsg
		if held != nil {
			m, held = *held, nil
		} else {
			select {
			case m = <-p.outbox:
			default:
				return nil
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
			return &m
		case zmq.AsErrno(err) == zmq.EHOSTUNREACH:
			p.known.Delete(string(m.to))
			p.drop("peer unreachable", err)
		default:
			p.drop("send failed", err)
		}
	}
}

// readIn moves received messages into the inbox while it has room.
func (p *pipe) readIn(sock *zmq.Socket, held *inMsg) *inMsg {
	for {
		if held != nil {
			select {
			case p.inbox <- *held:
				held = nil
			default:
				return held
			}
		}
		frames, err := sock.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			if zmq.AsErrno(err) != zmq.Errno(syscall.EAGAIN) {
				p.log.Warn("receive failed", "err", err)
			}
			return nil
		}
		m, ok := p.decode(frames)
		if ok {
			held = &m
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
	default:
	}
	select {
	case p.outbox <- m:
	default:
		select {
		case p.outbox <- m:
		case <-p.closing:
			return transport.ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.nudge()
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
		return m, nil
	default:
	}
	select {
	case m := <-p.inbox:
		return m, nil
	case <-p.closing:
		return inMsg{}, transport.ErrClosed
	case <-ctx.Done():
		return inMsg{}, ctx.Err()
	}
}

func (p *pipe) close() error {
	err := transport.ErrClosed
	p.once.Do(func() {
		err = nil
		close(p.closing)
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
