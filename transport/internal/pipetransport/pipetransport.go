// Package pipetransport is a third transport, written against the transport
// contract alone, that the engine has never heard of: every connection is a
// net.Pipe carrying length-prefixed envelopes, read by a goroutine per
// connection end. It exists to prove that the seam is open (the engine's
// suite and the conformance suite run over it with no change to either),
// so it is internal and kept small; it is a fair model of a stream
// transport (framing, partial writes, a reader per connection) all the
// same.
//
// A Transport value is its own namespace of endpoints "scheme://name",
// where scheme is the one given to New.
package pipetransport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// DefaultMaxMessageSize is the size limit of a Transport made with a
// limit of 0.
const DefaultMaxMessageSize = 16 << 20

// inboxSize is how many received messages wait for Recv before the reader
// stops reading, which blocks the writer: the pipe's backpressure. Each
// end's outbox holds as many frames waiting to be written.
const inboxSize = 256

// Transport serves endpoints of one scheme in a namespace of its own.
type Transport struct {
	scheme string
	max    int

	mu        sync.Mutex
	listeners map[string]*listener
	waiting   map[string]map[*conn]struct{} // conns with no listener
	peers     atomic.Uint64                 // numbers PeerIDs
}

// New returns a transport for endpoints "scheme://name" that refuses to
// send, and drops on receipt, messages over maxMessageSize bytes
// (DefaultMaxMessageSize for 0).
func New(scheme string, maxMessageSize int) *Transport {
	if maxMessageSize <= 0 {
		maxMessageSize = DefaultMaxMessageSize
	}
	return &Transport{
		scheme: scheme, max: maxMessageSize,
		listeners: make(map[string]*listener),
		waiting:   make(map[string]map[*conn]struct{}),
	}
}

var (
	_ transport.Transport       = (*Transport)(nil)
	_ transport.EndpointChecker = (*Transport)(nil)
	_ transport.StatsReporter   = (*listener)(nil)
)

// CheckEndpoint accepts names of 1 to 64 letters, digits, '.', '_', '/'
// and '-'.
func (t *Transport) CheckEndpoint(ep transport.Endpoint, _ transport.Use) error {
	if ep.Scheme != t.scheme {
		return ep.Invalid("this pipe transport serves %s:// endpoints only", t.scheme)
	}
	if len(ep.Address) < 1 || len(ep.Address) > 64 {
		return ep.Invalid("pipe name is %d bytes, want 1 to 64", len(ep.Address))
	}
	for _, r := range ep.Address {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '/' || r == '-') {
			return ep.Invalid("pipe name has the character %q", r)
		}
	}
	return nil
}

// Listen binds the name.
func (t *Transport) Listen(ctx context.Context, ep transport.Endpoint) (transport.Listener, error) {
	if err := t.CheckEndpoint(ep, transport.ForListen); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.listeners[ep.Address]; ok {
		return nil, fmt.Errorf("pipetransport: listen %q: %w", ep, transport.ErrAddrInUse)
	}
	l := &listener{
		t: t, ep: ep,
		inbox:  make(chan delivery, inboxSize),
		closed: make(chan struct{}),
		peers:  make(map[transport.PeerID]*end),
	}
	t.listeners[ep.Address] = l
	for c := range t.waiting[ep.Address] {
		t.pair(l, c)
	}
	delete(t.waiting, ep.Address)
	return l, nil
}

// Dial returns at once; the Conn connects when a Listener of the name
// exists, and again to the next one when it closes.
func (t *Transport) Dial(ctx context.Context, ep transport.Endpoint) (transport.Conn, error) {
	if err := t.CheckEndpoint(ep, transport.ForDial); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := &conn{
		t: t, name: ep.Address,
		inbox:     make(chan transport.Envelope, inboxSize),
		closed:    make(chan struct{}),
		connected: make(chan struct{}),
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.attach(c)
	return c, nil
}

// attach connects c to the listener of its name, or parks it until one
// appears. Caller holds t.mu.
func (t *Transport) attach(c *conn) {
	c.mu.Lock()
	busy := c.cur != nil || c.isClosed()
	c.mu.Unlock()
	if busy {
		return
	}
	if l, ok := t.listeners[c.name]; ok {
		t.pair(l, c)
		return
	}
	if t.waiting[c.name] == nil {
		t.waiting[c.name] = make(map[*conn]struct{})
	}
	t.waiting[c.name][c] = struct{}{}
}

// pair joins l and c by a new pipe. Caller holds t.mu.
func (t *Transport) pair(l *listener, c *conn) {
	near, far := net.Pipe()
	l.accept(far, transport.PeerID("pipe-"+strconv.FormatUint(t.peers.Add(1), 10)))
	c.connect(near)
}

// end is one end of a pipe: the connection and its outbox, which a
// writer goroutine empties, so that Send queues a frame and returns. A
// frame queued when the pipe breaks is lost, as on a network.
type end struct {
	c        net.Conn
	lost     *atomic.Uint64 // counts the frames dropped when the pipe broke
	out      chan []byte
	unsent   atomic.Int64  // frames queued and not yet written
	quit     chan struct{} // closed by close
	quitOnce sync.Once
	dead     chan struct{} // closed when the writer stopped: the pipe broke or was closed
}

func newEnd(c net.Conn, lost *atomic.Uint64) *end {
	return &end{c: c, lost: lost, out: make(chan []byte, inboxSize), quit: make(chan struct{}), dead: make(chan struct{})}
}

// writeLoop writes queued frames until the pipe breaks or is closed; it
// closes the pipe on its way out, so the reader ends too.
func (e *end) writeLoop() {
	defer close(e.dead)
	defer e.c.Close()
	for {
		select {
		case f := <-e.out:
			_, err := e.c.Write(f)
			e.unsent.Add(-1)
			if err != nil {
				e.lost.Add(1)
				return
			}
		case <-e.quit:
			return
		}
	}
}

// dropQueued empties the outbox of a dead end and counts what it held as
// lost.
func (e *end) dropQueued() {
	<-e.dead
	for {
		select {
		case <-e.out:
			e.unsent.Add(-1)
			e.lost.Add(1)
		default:
			return
		}
	}
}

// send queues one frame; with a done ctx it never waits.
func (e *end) send(ctx context.Context, frame []byte) error {
	select {
	case <-e.dead:
		return errBroken
	default:
	}
	e.unsent.Add(1)
	select {
	case e.out <- frame:
		return nil
	default:
	}
	select {
	case e.out <- frame:
		return nil
	case <-e.dead:
		e.unsent.Add(-1)
		return errBroken
	case <-ctx.Done():
		e.unsent.Add(-1)
		return ctx.Err()
	}
}

// linger bounds how long Close waits for the frames still queued on its
// pipes to be written, as ZeroMQ's linger does.
const linger = 100 * time.Millisecond

// flush waits, until deadline, for every queued frame to be written.
func (e *end) flush(deadline time.Time) {
	for e.unsent.Load() > 0 && time.Now().Before(deadline) {
		select {
		case <-e.dead:
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// close ends the pipe: the writer stops, and both readers see the end
// of the stream.
func (e *end) close() {
	e.quitOnce.Do(func() { close(e.quit) })
	_ = e.c.Close()
}

// errBroken: the pipe under an end broke.
var errBroken = errors.New("pipetransport: pipe broken")

// frames returns env as length-prefixed frames, written together: one, or
// several when its items make it larger than the size limit (see
// Envelope.Split). An item too large to travel alone is an error wrapping
// transport.ErrTooLarge.
func (t *Transport) frames(env *transport.Envelope) ([]byte, error) {
	parts, err := env.Split(t.max)
	if err != nil {
		return nil, fmt.Errorf("pipetransport: %w", err)
	}
	size := 0
	for i := range parts {
		size += 4 + parts[i].EncodedLen()
	}
	b := make([]byte, 0, size)
	for i := range parts {
		b = binary.BigEndian.AppendUint32(b, uint32(parts[i].EncodedLen()))
		if b, err = parts[i].AppendBinary(b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// counters are what a Listener or Conn dropped.
type counters struct {
	malformed, oversize, peerGone, sendFailed atomic.Uint64
}

func (d *counters) stats(peers int) transport.Stats {
	s := transport.Stats{Peers: peers}
	for r, n := range map[transport.DropReason]uint64{
		transport.DropMalformed: d.malformed.Load(), transport.DropOversize: d.oversize.Load(),
		transport.DropPeerGone: d.peerGone.Load(), transport.DropSendFailed: d.sendFailed.Load(),
	} {
		if n > 0 {
			if s.Dropped == nil {
				s.Dropped = make(map[transport.DropReason]uint64)
			}
			s.Dropped[r] = n
		}
	}
	return s
}

// read delivers the frames of r until the stream ends or deliver refuses.
// A frame over max or one that is not an envelope is dropped and counted;
// a frame cut short ends the stream.
func read(r io.Reader, max int, drops *counters, deliver func(transport.Envelope) bool) {
	br := bufio.NewReader(r)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := int64(binary.BigEndian.Uint32(hdr[:]))
		if n > int64(max) {
			if _, err := io.CopyN(io.Discard, br, n); err != nil {
				return
			}
			drops.oversize.Add(1)
			continue
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(br, buf); err != nil {
			return
		}
		var env transport.Envelope
		if err := env.UnmarshalBinary(buf); err != nil {
			drops.malformed.Add(1)
			continue
		}
		if !deliver(env) {
			return
		}
	}
}

type delivery struct {
	from transport.PeerID
	env  transport.Envelope
}

type listener struct {
	t         *Transport
	ep        transport.Endpoint
	inbox     chan delivery
	closed    chan struct{}
	closeOnce sync.Once
	readers   sync.WaitGroup
	drops     counters

	mu    sync.Mutex
	peers map[transport.PeerID]*end
}

// accept takes the far end of a new pipe. Caller holds t.mu, so l is not
// closed.
func (l *listener) accept(c net.Conn, id transport.PeerID) {
	e := newEnd(c, &l.drops.peerGone)
	l.mu.Lock()
	l.peers[id] = e
	l.mu.Unlock()
	l.readers.Go(e.writeLoop)
	l.readers.Go(func() {
		read(c, l.t.max, &l.drops, func(env transport.Envelope) bool {
			select {
			case l.inbox <- delivery{from: id, env: env}:
				return true
			case <-l.closed:
				return false
			}
		})
		l.forget(id, e)
	})
}

// forget drops a peer whose pipe ended; frames still queued for it are
// dropped and counted.
func (l *listener) forget(id transport.PeerID, e *end) {
	l.mu.Lock()
	if l.peers[id] == e {
		delete(l.peers, id)
	}
	l.mu.Unlock()
	e.close()
	e.dropQueued()
}

func (l *listener) Recv(ctx context.Context) (transport.PeerID, transport.Envelope, error) {
	select {
	case <-l.closed:
		return "", transport.Envelope{}, transport.ErrClosed
	default:
	}
	select {
	case d := <-l.inbox:
		return d.from, d.env, nil
	case <-l.closed:
		return "", transport.Envelope{}, transport.ErrClosed
	case <-ctx.Done():
		return "", transport.Envelope{}, ctx.Err()
	}
}

func (l *listener) Send(ctx context.Context, to transport.PeerID, env transport.Envelope) error {
	select {
	case <-l.closed:
		return transport.ErrClosed
	default:
	}
	l.mu.Lock()
	e := l.peers[to]
	l.mu.Unlock()
	if e == nil {
		return fmt.Errorf("pipetransport %q: send to %s: %w", l.ep, to, transport.ErrUnknownPeer)
	}
	b, err := l.t.frames(&env)
	if err != nil {
		return err
	}
	switch err := e.send(ctx, b); {
	case err == nil:
		return nil
	case errors.Is(err, errBroken):
		return fmt.Errorf("pipetransport %q: send to %s: %w", l.ep, to, transport.ErrUnknownPeer)
	default:
		return err
	}
}

func (l *listener) Addr() transport.Endpoint { return l.ep }

func (l *listener) Stats() transport.Stats {
	l.mu.Lock()
	peers := len(l.peers)
	l.mu.Unlock()
	return l.drops.stats(peers)
}

// Close unbinds the name and ends every pipe; the Conns wait for the next
// Listener of the name.
func (l *listener) Close() error {
	err := transport.ErrClosed
	l.closeOnce.Do(func() {
		err = nil
		l.t.mu.Lock()
		delete(l.t.listeners, l.ep.Address)
		l.t.mu.Unlock()
		close(l.closed)
		l.mu.Lock()
		peers := l.peers
		l.peers = map[transport.PeerID]*end{}
		l.mu.Unlock()
		deadline := time.Now().Add(linger)
		for _, e := range peers {
			e.flush(deadline)
			e.close()
		}
		l.readers.Wait()
	})
	return err
}

type conn struct {
	t         *Transport
	name      string
	inbox     chan transport.Envelope
	closed    chan struct{}
	closeOnce sync.Once
	readers   sync.WaitGroup
	drops     counters

	mu        sync.Mutex
	cur       *end          // nil while no listener
	connected chan struct{} // closed once cur is set
}

func (c *conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// connect takes the near end of a new pipe. Caller holds t.mu.
func (c *conn) connect(p net.Conn) {
	e := newEnd(p, &c.drops.sendFailed)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed() {
		_ = p.Close()
		return
	}
	c.cur = e
	close(c.connected)
	c.readers.Go(e.writeLoop)
	c.readers.Go(func() {
		read(p, c.t.max, &c.drops, func(env transport.Envelope) bool {
			select {
			case c.inbox <- env:
				return true
			case <-c.closed:
				return false
			}
		})
		c.lost(e)
	})
}

// lost handles a pipe that ended: unless the Conn is closing, it waits for
// the next Listener of its name.
func (c *conn) lost(e *end) {
	e.close()
	e.dropQueued()
	c.mu.Lock()
	if c.cur == e {
		c.cur = nil
		c.connected = make(chan struct{})
	}
	again := c.cur == nil && !c.isClosed()
	c.mu.Unlock()
	if again {
		c.t.mu.Lock()
		c.t.attach(c)
		c.t.mu.Unlock()
	}
}

// Send waits for a listener, then queues the frame on the current pipe.
func (c *conn) Send(ctx context.Context, env transport.Envelope) error {
	b, err := c.t.frames(&env)
	if err != nil {
		return err
	}
	for {
		c.mu.Lock()
		e, connected := c.cur, c.connected
		c.mu.Unlock()
		if c.isClosed() {
			return transport.ErrClosed
		}
		if e == nil {
			select {
			case <-connected:
				continue
			case <-c.closed:
				return transport.ErrClosed
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err := e.send(ctx, b)
		if !errors.Is(err, errBroken) {
			return err
		}
		// The pipe broke before the frame was queued: wait for the next.
		c.mu.Lock()
		if c.cur == e {
			c.cur = nil
			c.connected = make(chan struct{})
		}
		c.mu.Unlock()
	}
}

func (c *conn) Recv(ctx context.Context) (transport.Envelope, error) {
	if c.isClosed() {
		return transport.Envelope{}, transport.ErrClosed
	}
	select {
	case env := <-c.inbox:
		return env, nil
	case <-c.closed:
		return transport.Envelope{}, transport.ErrClosed
	case <-ctx.Done():
		return transport.Envelope{}, ctx.Err()
	}
}

func (c *conn) Stats() transport.Stats { return c.drops.stats(0) }

func (c *conn) Close() error {
	err := transport.ErrClosed
	c.closeOnce.Do(func() {
		err = nil
		c.mu.Lock()
		close(c.closed)
		e := c.cur
		c.mu.Unlock()
		c.t.mu.Lock()
		delete(c.t.waiting[c.name], c)
		if len(c.t.waiting[c.name]) == 0 {
			delete(c.t.waiting, c.name)
		}
		c.t.mu.Unlock()
		if e != nil {
			e.flush(time.Now().Add(linger))
			e.close()
		}
		c.readers.Wait()
	})
	return err
}
