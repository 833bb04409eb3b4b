//go:build cgo && linux

package zmqtransport

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/auth"
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

// outMsg is what one Send queued: one message, or (a batch split to fit
// the size limit) several, which go out together and in order.
type outMsg struct {
	to   []byte   // ROUTER only: the peer's routing id
	data []byte   // the first message
	more [][]byte // the rest, if the envelope was split
}

type inMsg struct {
	from transport.PeerID
	env  transport.Envelope
}

// peerEntry is what a Listener remembers of a peer: when it was last heard
// from, in received messages.
type peerEntry struct{ seen atomic.Uint64 }

// pipe is one ZeroMQ socket with its owner goroutine and the channels the
// rest of the program reaches it through.
type pipe struct {
	kind     zmq.Type
	endpoint string
	ipv6     bool // a tcp endpoint with an IPv6 address, which libzmq must be told of
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

	// CURVE: the keys and access list, or nil; a ROUTER's ZAP domain.
	curve     *auth.Config
	serverKey auth.Key // DEALER: the listener's public key
	zapDomain string

	// Owned by the owner goroutine: the socket's monitor, and the
	// handshakes a DEALER failed in a row.
	mon            *zmq.Socket
	handshakeFails int

	known sync.Map // ROUTER: routing ids seen (string -> *peerEntry)
	peers atomic.Int64
	seq   uint64             // owner: counts the messages received, to age peers
	addr  transport.Endpoint // ROUTER: the bound endpoint; set before open returns
	drops transport.DropCounter
}

// open starts the owner goroutine, which creates the socket and binds or
// connects it; open returns once that succeeded or failed.
func open(kind zmq.Type, ep transport.Endpoint, opts Options, serverKey auth.Key) (*pipe, error) {
	p := &pipe{
		kind:      kind,
		curve:     opts.Curve,
		serverKey: serverKey,
		endpoint:  ep.String(),
		ipv6:      ep.Scheme == SchemeTCP && strings.HasPrefix(ep.Address, "["),
		opts:      opts,
		log:       opts.Logger.With("component", "zmqtransport", "endpoint", ep.String()),
		outbox:    make(chan outMsg, opts.Buffer),
		inbox:     make(chan inMsg, opts.Buffer),
		closing:   make(chan struct{}),
		done:      make(chan struct{}),
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
		var fd, monFD int
		if fd, err = sock.GetFd(); err == nil {
			if monFD, err = p.mon.GetFd(); err == nil {
				p.w, err = newWaiter(fd, monFD)
			}
		}
		if err != nil {
			err = fmt.Errorf("zmqtransport %q: %w", p.endpoint, err)
		}
	}
	if err != nil {
		if sock != nil {
			p.stopMonitor(sock)
			_ = sock.SetLinger(0)
			_ = sock.Close()
		}
		p.leaveZAP()
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
	if p.kind == zmq.ROUTER {
		p.releaseEndpoint(sock)
	}
	p.stopMonitor(sock)
	_ = sock.SetLinger(p.opts.Linger)
	_ = sock.Close()
	p.leaveZAP()
	p.w.close()
}

// monitors numbers the inproc endpoints of socket monitors.
var monitors atomic.Uint64

// monitorEvents are the events a socket's monitor reports to its owner:
// how handshakes end, and a listener's endpoint closing.
const monitorEvents = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL |
	zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_CLOSED

// startMonitor has libzmq report sock's events to a PAIR socket the owner
// reads.
func (p *pipe) startMonitor(zctx *zmq.Context, sock *zmq.Socket) error {
	ep := fmt.Sprintf("inproc://zmqtransport-monitor-%d", monitors.Add(1))
	if err := sock.Monitor(ep, monitorEvents); err != nil {
		return fmt.Errorf("zmqtransport %q: monitor: %w", p.endpoint, err)
	}
	mon, err := zctx.NewSocket(zmq.PAIR)
	if err != nil {
		return fmt.Errorf("zmqtransport %q: monitor: %w", p.endpoint, err)
	}
	if err := mon.Connect(ep); err != nil {
		_ = mon.Close()
		return fmt.Errorf("zmqtransport %q: monitor: %w", p.endpoint, err)
	}
	p.mon = mon
	return nil
}

// stopMonitor stops sock's monitor and closes the socket that read it.
// libzmq sends monitor events blocking, from its I/O thread: an event
// sent to a monitor nobody reads would hang every socket of the context.
// So the monitor is stopped first (zmq_socket_monitor with no endpoint,
// after which libzmq sends nothing more), and what it sent before is read.
func (p *pipe) stopMonitor(sock *zmq.Socket) {
	if p.mon == nil {
		return
	}
	p.readMonitor()
	_ = sock.Monitor("", 0)
	p.readMonitor()
	_ = p.mon.SetLinger(0)
	_ = p.mon.Close()
	p.mon = nil
}

// leaveZAP gives up a closed listener's ZAP domain.
func (p *pipe) leaveZAP() {
	if p.zapDomain != "" {
		zapHandler.unregister(p.zapDomain)
		p.zapDomain = ""
	}
}

// readMonitor takes in what the monitor reported (see onEvent).
func (p *pipe) readMonitor() {
	for {
		ev, _, val, err := p.mon.RecvEvent(zmq.DONTWAIT)
		if err != nil {
			return
		}
		p.onEvent(ev, val)
	}
}

// onEvent handles one monitor event: a DEALER whose key the listener
// refused, or whose handshakes keep failing, stops with an error that
// says why; a listener counts the handshakes that failed (those ZAP
// refused are counted as it refuses them).
func (p *pipe) onEvent(ev zmq.Event, val int) {
	switch ev {
	case zmq.EVENT_HANDSHAKE_SUCCEEDED:
		p.handshakeFails = 0
	case zmq.EVENT_HANDSHAKE_FAILED_AUTH:
		if p.kind == zmq.DEALER && p.err == nil {
			p.err = fmt.Errorf("zmqtransport %q: %w (ZAP status %d)", p.endpoint, auth.ErrRefused, val)
		}
	case zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
		why := handshakeFailure(ev, val)
		if p.kind == zmq.ROUTER {
			p.drop(dropHandshakeFailed, errors.New(why))
			return
		}
		p.handshakeFails++
		if ev == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL {
			// The listener found the handshake itself wrong: libzmq
			// does not try again, and it would fail the same way.
			p.handshakeFails = maxHandshakeFails
		}
		if p.handshakeFails >= maxHandshakeFails && p.err == nil {
			p.err = fmt.Errorf("zmqtransport %q: %w: %d handshakes in a row failed: %s", p.endpoint, auth.ErrRefused, p.handshakeFails, why)
		}
	}
}

// maxHandshakeFails is how many handshakes in a row a DEALER may fail,
// when the listener only hung up, before it stops: a wrong key never gets
// better. One the listener called a protocol error stops it at once.
const maxHandshakeFails = 3

// dropHandshakeFailed counts connections whose ZMTP handshake failed: a
// client with the wrong server key, without a key where one is needed,
// or one that does not speak ZMTP.
const dropHandshakeFailed transport.DropReason = "handshake failed"

// handshakeFailure says what a failed handshake means.
func handshakeFailure(ev zmq.Event, val int) string {
	const (
		cryptographic     = 0x11000001 // ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
		mechanismMismatch = 0x11000002 // ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
	)
	switch {
	case ev == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
		return fmt.Sprintf("the connection broke during the handshake (%v): a wrong server key makes the listener hang up", syscall.Errno(val))
	case val == mechanismMismatch:
		return "one side uses CURVE keys and the other does not"
	case val == cryptographic:
		return "a CURVE message did not decrypt: the wrong server key, or a client that is not who it says"
	}
	return fmt.Sprintf("ZMTP protocol error 0x%x", val)
}

// releaseEndpoint unbinds a listener's endpoint and waits until libzmq
// has released it. libzmq closes the listening port (or unlinks the socket
// file) in its I/O thread, some time after zmq_unbind or zmq_close
// returns, so without the wait a Listen of the same endpoint right after
// Close could fail with "address already in use". The monitor reports
// EVENT_CLOSED when the listening socket is gone; the wait is bounded by
// linger plus a second, after which Close goes on anyway.
func (p *pipe) releaseEndpoint(sock *zmq.Socket) {
	if err := sock.Unbind(p.addr.String()); err != nil {
		p.log.Warn("cannot unbind; a Listen of this endpoint right after Close may find it in use", "err", err)
		return
	}
	_ = p.mon.SetRcvtimeo(p.opts.Linger + time.Second)
	for {
		ev, _, val, err := p.mon.RecvEvent(0)
		if err != nil || ev == zmq.EVENT_CLOSED {
			return
		}
		p.onEvent(ev, val)
	}
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
	shared.once.Do(func() {
		seedLibzmqRandom()
		shared.ctx, shared.err = zmq.NewContext()
	})
	return shared.ctx, shared.err
}

func (p *pipe) setUp(zctx *zmq.Context) (*zmq.Socket, error) {
	sock, err := zctx.NewSocket(p.kind)
	if err != nil {
		return nil, fmt.Errorf("zmqtransport: new socket: %w", err)
	}
	for _, set := range []func() error{
		func() error { return sock.SetSndhwm(p.opts.SendQueue) },
		func() error { return sock.SetRcvhwm(p.opts.ReceiveQueue) },
		// libzmq closes the connection of a peer that sends more, as soon
		// as the frame's header arrives, before it stores any of it.
		func() error { return sock.SetMaxmsgsize(int64(p.opts.MaxMessageSize + p.wireOverhead())) },
		func() error { return sock.SetHandshakeIvl(handshakeTimeout) },
		// ZMTP heartbeats close connections whose other end vanished
		// without a word (a host powered off, a network cut), so libzmq
		// frees them and a DEALER connects again; the engine's own
		// heartbeats decide when a peer is gone.
		func() error { return sock.SetHeartbeatIvl(zmtpHeartbeat) },
		func() error { return sock.SetHeartbeatTimeout(zmtpTimeout) },
		func() error { return sock.SetIpv6(p.ipv6) },
	} {
		if err := set(); err != nil {
			return sock, fmt.Errorf("zmqtransport %q: socket option: %w", p.endpoint, err)
		}
	}
	if err := p.setUpCurve(sock); err != nil {
		return sock, err
	}
	if err := p.startMonitor(zctx, sock); err != nil {
		return sock, err
	}
	if p.kind == zmq.ROUTER {
		if err := sock.SetRouterMandatory(1); err != nil {
			return sock, err
		}
		// Room for a burst of connections (libzmq's default is 100): past
		// it the kernel drops the next connections' SYNs and they wait a
		// second to try again, real workers among them.
		if err := sock.SetBacklog(listenBacklog); err != nil {
			return sock, err
		}
		if err := sock.Bind(p.endpoint); err != nil {
			return sock, bindError(p.endpoint, err)
		}
		last, err := sock.GetLastEndpoint()
		if err != nil {
			return sock, fmt.Errorf("zmqtransport: bound %q but cannot read the address: %w", p.endpoint, err)
		}
		if p.addr, err = transport.ParseEndpoint(last); err != nil {
			return sock, fmt.Errorf("zmqtransport: bound %q: %w", p.endpoint, err)
		}
		return sock, nil
	}
	// A routing id of its own, so that the listener never makes one up
	// for it: see newRoutingID.
	if err := sock.SetIdentity(newRoutingID()); err != nil {
		return sock, err
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

// setUpCurve gives the socket its CURVE keys: a listener its server key
// and a ZAP domain, whose handler accepts only the keys on the access
// list; a connection its client key and the listener's public key.
func (p *pipe) setUpCurve(sock *zmq.Socket) error {
	if p.curve == nil {
		return nil
	}
	k := p.curve.Key
	var sets []func() error
	if p.kind == zmq.ROUTER {
		domain, err := zapHandler.register(&zapDomain{access: p.curve.Access, drops: &p.drops, log: p.log})
		if err != nil {
			return err
		}
		p.zapDomain = domain
		sets = []func() error{
			func() error { return sock.SetCurveServer(1) },
			func() error { return sock.SetCurveSecretkey(string(k.Secret[:])) },
			func() error { return sock.SetZapDomain(domain) },
		}
	} else {
		sets = []func() error{
			func() error { return sock.SetCurveServerkey(string(p.serverKey[:])) },
			func() error { return sock.SetCurvePublickey(string(k.Public[:])) },
			func() error { return sock.SetCurveSecretkey(string(k.Secret[:])) },
		}
	}
	for _, set := range sets {
		if err := set(); err != nil {
			return fmt.Errorf("zmqtransport %q: CURVE: %w", p.endpoint, err)
		}
	}
	return nil
}

// curveOverhead is what CURVE adds to a message on the wire: the MESSAGE
// command's name, nonce, flags and authenticator (33 bytes), rounded up.
const curveOverhead = 64

// wireOverhead is how much larger than the message a frame on the wire
// may be: libzmq checks ZMQ_MAXMSGSIZE against the frame, which CURVE
// encrypts.
func (p *pipe) wireOverhead() int {
	if p.curve != nil {
		return curveOverhead
	}
	return 0
}

// handshakeTimeout bounds how long a connection may take to complete its
// ZMTP handshake before libzmq closes it.
const handshakeTimeout = 10 * time.Second

// listenBacklog is the listen queue of a listener's sockets (the kernel
// caps it at net.core.somaxconn).
const listenBacklog = 4096

// ZMTP heartbeats: a ping every zmtpHeartbeat, and a connection that
// answers nothing for zmtpTimeout after one is closed.
const (
	zmtpHeartbeat = 2 * time.Second
	zmtpTimeout   = 20 * time.Second
)

// newRoutingID returns a random routing id for a DEALER: 16 bytes, the
// first never zero.
//
// libzmq 4.3 aborts the process (an assertion in the ROUTER) when an id it
// generates for a peer without one is already taken, and ids starting with
// a zero byte are the ones it generates. So every DEALER of this package
// brings its own id, and PROTOCOL.md requires the same of foreign peers;
// the ids libzmq generates for peers that still bring none are made
// unpredictable by seedLibzmqRandom.
func newRoutingID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (Go 1.24+)
	b[0] |= 0x80
	return string(b[:])
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
		p.readMonitor()
		if p.err != nil {
			p.log.Error("connection stopped", "err", p.err)
			return true, 0
		}
		// Reading ZMQ_EVENTS lets libzmq process its pending commands, and
		// a send may have consumed the ZMQ_FD signal of a message that came
		// in meanwhile: ask before parking, as libzmq's documentation says.
		ev, err := p.sock.GetEvents()
		if err != nil {
			p.log.Warn("socket events failed", "err", err)
		} else if ev&zmq.POLLIN != 0 && p.heldIn == nil {
			continue
		}
		if ev, err := p.mon.GetEvents(); err == nil && ev&zmq.POLLIN != 0 {
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
		for {
			if !p.sendOne(&m) {
				p.heldOut = &m
				return
			}
			if len(m.more) == 0 {
				break
			}
			m.data, m.more = m.more[0], m.more[1:]
		}
	}
}

// sendOne hands m's first message to libzmq. It reports false when a
// DEALER must try it again later; every other failure is counted and the
// message dropped.
func (p *pipe) sendOne(m *outMsg) bool {
	var err error
	if p.kind == zmq.ROUTER {
		_, err = p.sock.SendMessageDontwait(m.to, m.data)
	} else {
		_, err = p.sock.SendBytes(m.data, zmq.DONTWAIT)
	}
	switch {
	case err == nil:
	case zmq.AsErrno(err) == zmq.Errno(syscall.EAGAIN) && p.kind == zmq.ROUTER:
		// That peer's queue is full: it stopped reading. Holding
		// the message would hold up every other peer.
		p.drop(transport.DropPeerFull, fmt.Errorf("peer %x: %d messages queued", m.to, p.opts.SendQueue))
	case zmq.AsErrno(err) == zmq.Errno(syscall.EAGAIN):
		return false
	case zmq.AsErrno(err) == zmq.EHOSTUNREACH:
		if _, ok := p.known.LoadAndDelete(string(m.to)); ok {
			p.peers.Add(-1)
		}
		p.drop(transport.DropPeerGone, err)
	default:
		p.drop(transport.DropSendFailed, err)
	}
	return true
}

// readIn moves received messages into the inbox while it has room, at
// most maxReadIn of them: step then sends what is queued before it reads
// more, so that a peer flooding the socket with messages (which the
// engine reads and drops as fast as they come) does not hold up what goes
// out, heartbeats first of all.
func (p *pipe) readIn() {
	for range maxReadIn {
		if p.heldIn != nil {
			select {
			case p.inbox <- *p.heldIn:
				p.heldIn = nil
			default:
				return
			}
		}
		var (
			frames    [][]byte
			principal string
			err       error
		)
		if p.curve != nil && p.kind == zmq.ROUTER {
			frames, principal, err = p.recvAuthenticated()
		} else {
			frames, err = p.sock.RecvMessageBytes(zmq.DONTWAIT)
		}
		if err != nil {
			if zmq.AsErrno(err) != zmq.Errno(syscall.EAGAIN) {
				p.log.Warn("receive failed", "err", err)
			}
			return
		}
		if m, ok := p.decode(frames); ok {
			m.env.Principal = principal
			p.heldIn = &m
		}
	}
}

// maxReadIn bounds the messages readIn moves at a time.
const maxReadIn = 256

// recvAuthenticated receives one message and the User-Id that ZAP gave
// its connection: the client's key. The id comes from the message's last
// frame, which libzmq delivers as it came off the connection; the routing
// id frame a ROUTER puts before it lacks it when the message was looked at
// before (ZMQ_EVENTS does that).
func (p *pipe) recvAuthenticated() (frames [][]byte, principal string, err error) {
	b, md, err := p.sock.RecvBytesWithMetadata(zmq.DONTWAIT, "User-Id")
	for err == nil {
		frames = append(frames, b)
		principal = md["User-Id"]
		var more bool
		if more, err = p.sock.GetRcvmore(); err != nil || !more {
			break
		}
		b, md, err = p.sock.RecvBytesWithMetadata(0, "User-Id")
	}
	return frames, principal, err
}

func (p *pipe) decode(frames [][]byte) (inMsg, bool) {
	var m inMsg
	data := frames[len(frames)-1]
	want := 1
	if p.kind == zmq.ROUTER {
		want = 2
	}
	if len(frames) != want {
		p.drop(transport.DropMalformed, fmt.Errorf("%d frames, want %d", len(frames), want))
		return m, false
	}
	if len(data) > p.opts.MaxMessageSize {
		p.drop(transport.DropOversize, fmt.Errorf("%d bytes, limit %d", len(data), p.opts.MaxMessageSize))
		return m, false
	}
	if err := m.env.UnmarshalBinary(data); err != nil {
		p.drop(transport.DropMalformed, err)
		return m, false
	}
	if p.kind == zmq.ROUTER {
		id := string(frames[0])
		m.from = transport.PeerID(id)
		p.seq++
		if e, ok := p.known.Load(id); ok {
			e.(*peerEntry).seen.Store(p.seq)
		} else {
			if p.peers.Load() >= int64(p.opts.MaxPeers) {
				p.forgetOldest()
			}
			e := &peerEntry{}
			e.seen.Store(p.seq)
			p.known.Store(id, e)
			p.peers.Add(1)
		}
	}
	return m, true
}

// forgetOldest forgets the quarter of the known peers heard from least
// recently, to make room for new ones.
func (p *pipe) forgetOldest() {
	type aged struct {
		id   any
		seen uint64
	}
	var all []aged
	p.known.Range(func(k, v any) bool {
		all = append(all, aged{k, v.(*peerEntry).seen.Load()})
		return true
	})
	slices.SortFunc(all, func(a, b aged) int { return cmp.Compare(a.seen, b.seen) })
	for _, a := range all[:max(len(all)/4, 1)] {
		if _, ok := p.known.LoadAndDelete(a.id); ok {
			p.peers.Add(-1)
			p.drop(transport.DropTooManyPeers, fmt.Errorf("over %d peers: forgot %x, heard from least recently", p.opts.MaxPeers, a.id))
		}
	}
}

// drop counts a message that was thrown away and logs why, sparingly (see
// transport.DropCounter).
func (p *pipe) drop(reason transport.DropReason, err error) {
	p.drops.Drop(p.log, reason, "message dropped", "err", err)
}

// encode returns env as the messages it goes out as: one, or several when
// its items make it larger than the size limit (see Envelope.Split). An
// item too large to travel alone is an error wrapping
// transport.ErrTooLarge, and nothing is sent.
func (p *pipe) encode(to []byte, env *transport.Envelope) (outMsg, error) {
	m := outMsg{to: to}
	if env.EncodedLen() <= p.opts.MaxMessageSize {
		data, err := env.MarshalBinary()
		m.data = data
		return m, err
	}
	parts, err := env.Split(p.opts.MaxMessageSize)
	if err != nil {
		return m, fmt.Errorf("zmqtransport %q: %w", p.endpoint, err)
	}
	for i := range parts {
		data, err := parts[i].MarshalBinary()
		if err != nil {
			return m, err
		}
		if i == 0 {
			m.data = data
		} else {
			m.more = append(m.more, data)
		}
	}
	return m, nil
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

// stats returns the pipe's counters.
func (p *pipe) stats() transport.Stats {
	return transport.Stats{Peers: int(p.peers.Load()), Dropped: p.drops.Counts()}
}

// Listen binds a ROUTER socket to ep.
func (t *Transport) Listen(ctx context.Context, ep transport.Endpoint) (transport.Listener, error) {
	if err := t.CheckEndpoint(ep, transport.ForListen); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ep.Scheme == SchemeIPC {
		return t.listenIPC(ctx, ep)
	}
	p, err := open(zmq.ROUTER, ep, t.opts, auth.Key{})
	if err != nil {
		return nil, err
	}
	return &listener{p: p}, nil
}

// Dial connects a DEALER socket to ep. A tcp host name is resolved first,
// so a name that does not resolve is an error here rather than silent
// reconnect attempts.
func (t *Transport) Dial(ctx context.Context, ep transport.Endpoint) (transport.Conn, error) {
	if err := t.CheckEndpoint(ep, transport.ForDial); err != nil {
		return nil, err
	}
	if ep.Scheme == SchemeTCP {
		host, _, _ := splitTCP(ep, transport.ForDial) // checked above
		if net.ParseIP(host) == nil {
			if _, err := net.DefaultResolver.LookupHost(ctx, host); err != nil {
				return nil, fmt.Errorf("zmqtransport: dial %q: resolve %q: %w", ep, host, err)
			}
		}
	}
	var serverKey auth.Key
	if t.opts.Curve != nil {
		k, err := t.opts.Curve.ServerKey(ep)
		if err != nil {
			return nil, fmt.Errorf("zmqtransport: dial %q: %w", ep, err)
		}
		serverKey = k
	}
	p, err := open(zmq.DEALER, ep, t.opts, serverKey)
	if err != nil {
		return nil, err
	}
	return &conn{p}, nil
}

type listener struct {
	p    *pipe
	file *ipcFile // the socket file an ipc listener made, removed on Close
}

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
	m, err := l.p.encode([]byte(to), &env)
	if err != nil {
		return err
	}
	return l.p.send(ctx, m)
}

// Addr returns the bound endpoint, as libzmq reports it.
func (l *listener) Addr() transport.Endpoint { return l.p.addr }

func (l *listener) Close() error {
	err := l.p.close()
	if err == nil && l.file != nil {
		l.file.remove()
	}
	return err
}

// Stats returns the peers the listener knows and what it dropped.
func (l *listener) Stats() transport.Stats { return l.p.stats() }

// Authenticated reports whether the listener uses CURVE.
func (l *listener) Authenticated() bool { return l.p.curve != nil }

// Authorize checks principal against the access list; without CURVE it
// allows everything.
func (l *listener) Authorize(principal string, role transport.Role, taskType string) error {
	if l.p.curve == nil {
		return nil
	}
	return l.p.curve.Access.Authorize(principal, role, taskType)
}

type conn struct{ p *pipe }

func (c *conn) Send(ctx context.Context, env transport.Envelope) error {
	m, err := c.p.encode(nil, &env)
	if err != nil {
		return err
	}
	return c.p.send(ctx, m)
}

func (c *conn) Recv(ctx context.Context) (transport.Envelope, error) {
	m, err := c.p.recv(ctx)
	return m.env, err
}

func (c *conn) Close() error { return c.p.close() }

// Stats returns what the conn dropped.
func (c *conn) Stats() transport.Stats { return c.p.stats() }
