// Package inproc is the in-process transport: Listeners and Conns on Go
// channels, for endpoints "inproc://name". Importing it registers the scheme
// with package transport (the engine imports it, so inproc always works).
//
// It behaves like a network where that matters for correctness: endpoints are
// named in one process-wide namespace (like a ZeroMQ context's inproc names),
// a Dial may come before the Listen, buffers are bounded (a full buffer
// blocks the sender until ctx ends), payloads are copied on every send
// (unless the sender hands them over, Envelope.Handover), and
// when a Listener closes its Conns wait for a new Listener of the same name,
// as ZeroMQ reconnects. As with ZeroMQ, a Conn with no Listener queues up to
// BufferSize messages without blocking and hands them to the next Listener;
// closing it drops them. Unlike a network it never loses or reorders a
// message between live ends.
//
// It starts no goroutines: every call runs on its caller's goroutine.
package inproc

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// DefaultBufferSize is the number of messages a Listener's inbox and each
// Conn's inbox hold before Send blocks.
const DefaultBufferSize = 1024

// Scheme is the endpoint scheme this package serves: "inproc://name".
const Scheme = "inproc"

func init() { transport.Register(Scheme, Transport{}) }

// Transport serves inproc endpoints from the process-wide namespace.
// The zero value uses DefaultBufferSize.
type Transport struct {
	// BufferSize overrides DefaultBufferSize when positive.
	BufferSize int
}

var (
	_ transport.Transport       = Transport{}
	_ transport.EndpointChecker = Transport{}
	_ transport.StatsReporter   = (*listener)(nil)
)

// CheckEndpoint accepts any non-empty name, for listening and dialling
// alike.
func (Transport) CheckEndpoint(ep transport.Endpoint, _ transport.Use) error {
	if ep.Scheme != Scheme {
		return ep.Invalid("the inproc transport serves inproc:// endpoints only")
	}
	if ep.Address == "" {
		return ep.Invalid("empty inproc name")
	}
	return nil
}

type namespace struct {
	mu        sync.Mutex
	listeners map[string]*listener
	pending   map[string]map[*conn]struct{} // conns waiting for a Listen
}

var ns = namespace{
	listeners: make(map[string]*listener),
	pending:   make(map[string]map[*conn]struct{}),
}

var peerSeq atomic.Uint64

func (t Transport) size() int {
	if t.BufferSize > 0 {
		return t.BufferSize
	}
	return DefaultBufferSize
}

// Listen binds the name. A second Listen of a bound name fails with
// transport.ErrAddrInUse.
func (t Transport) Listen(ctx context.Context, ep transport.Endpoint) (transport.Listener, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := t.CheckEndpoint(ep, transport.ForListen); err != nil {
		return nil, err
	}
	l := &listener{
		name:   ep.Address,
		inbox:  make(chan delivery, t.size()),
		closed: make(chan struct{}),
		peers:  make(map[transport.PeerID]*conn),
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if _, ok := ns.listeners[ep.Address]; ok {
		return nil, fmt.Errorf("inproc: listen %q: %w", ep, transport.ErrAddrInUse)
	}
	ns.listeners[ep.Address] = l
	for c := range ns.pending[ep.Address] {
		l.attach(c)
	}
	delete(ns.pending, ep.Address)
	return l, nil
}

// Dial returns at once; until a Listener of the name exists, the Conn's
// sends wait for it.
func (t Transport) Dial(ctx context.Context, ep transport.Endpoint) (transport.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := t.CheckEndpoint(ep, transport.ForDial); err != nil {
		return nil, err
	}
	c := &conn{
		name:     ep.Address,
		size:     t.size(),
		inbox:    make(chan transport.Envelope, t.size()),
		closed:   make(chan struct{}),
		attached: make(chan struct{}),
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if l, ok := ns.listeners[ep.Address]; ok {
		l.attach(c)
	} else {
		ns.wait(c)
	}
	return c, nil
}

// wait parks c until a Listen of its name. Caller holds ns.mu.
func (n *namespace) wait(c *conn) {
	set := n.pending[c.name]
	if set == nil {
		set = make(map[*conn]struct{})
		n.pending[c.name] = set
	}
	set[c] = struct{}{}
}

// deliverable returns what Send delivers of env: env itself when the
// caller handed its memory over (Envelope.Handover), a copy otherwise.
func deliverable(env transport.Envelope) transport.Envelope {
	if env.Handover {
		env.Handover = false
		return env
	}
	return env.Clone()
}

type delivery struct {
	from transport.PeerID
	env  transport.Envelope
}

type listener struct {
	name      string
	inbox     chan delivery
	closed    chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	peers    map[transport.PeerID]*conn
	backlog  []delivery   // queued by conns before they attached; older than inbox
	nBacklog atomic.Int32 // len(backlog), to skip the lock when empty
}

// attach connects c to l and takes over what c queued while it had no
// listener. Caller holds ns.mu. Lock order: c.mu, then l.mu.
func (l *listener) attach(c *conn) {
	id := transport.PeerID("inproc-" + strconv.FormatUint(peerSeq.Add(1), 10))
	c.mu.Lock()
	defer c.mu.Unlock()
	l.mu.Lock()
	l.peers[id] = c
	for _, env := range c.backlog {
		l.backlog = append(l.backlog, delivery{from: id, env: env})
	}
	l.nBacklog.Store(int32(len(l.backlog)))
	l.mu.Unlock()
	c.backlog = nil
	c.l, c.id = l, id
	close(c.attached)
}

func (l *listener) Recv(ctx context.Context) (transport.PeerID, transport.Envelope, error) {
	select {
	case <-l.closed:
		return "", transport.Envelope{}, transport.ErrClosed
	default:
	}
	if l.nBacklog.Load() > 0 {
		l.mu.Lock()
		if len(l.backlog) > 0 {
			d := l.backlog[0]
			l.backlog = l.backlog[1:]
			l.nBacklog.Store(int32(len(l.backlog)))
			l.mu.Unlock()
			return d.from, d.env, nil
		}
		l.mu.Unlock()
	}
	select { // fast path: a non-blocking receive costs far less than the select below
	case d := <-l.inbox:
		return d.from, d.env, nil
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
	l.mu.Lock()
	c := l.peers[to]
	l.mu.Unlock()
	select {
	case <-l.closed:
		return transport.ErrClosed
	default:
	}
	if c == nil {
		return fmt.Errorf("inproc %q: send to %s: %w", l.name, to, transport.ErrUnknownPeer)
	}
	env = deliverable(env)
	select { // fast path
	case c.inbox <- env:
		return nil
	default:
	}
	select {
	case c.inbox <- env:
		return nil
	case <-c.closed:
		return fmt.Errorf("inproc %q: send to %s: %w", l.name, to, transport.ErrUnknownPeer)
	case <-l.closed:
		return transport.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Addr returns the endpoint: inproc://name.
func (l *listener) Addr() transport.Endpoint {
	return transport.Endpoint{Scheme: Scheme, Address: l.name}
}

// Stats reports the connected peers. The in-process transport never drops
// a message.
func (l *listener) Stats() transport.Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return transport.Stats{Peers: len(l.peers)}
}

// Close unbinds the name; its Conns wait for the next Listener of it.
func (l *listener) Close() error {
	err := transport.ErrClosed
	l.closeOnce.Do(func() {
		err = nil
		ns.mu.Lock()
		defer ns.mu.Unlock()
		close(l.closed)
		if ns.listeners[l.name] == l {
			delete(ns.listeners, l.name)
		}
		l.mu.Lock()
		peers := l.peers
		l.peers = nil
		l.mu.Unlock()
		for _, c := range peers {
			c.mu.Lock()
			c.l, c.id = nil, ""
			c.attached = make(chan struct{})
			c.mu.Unlock()
			ns.wait(c)
		}
	})
	return err
}

type conn struct {
	name      string
	size      int
	inbox     chan transport.Envelope
	closed    chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	l        *listener
	id       transport.PeerID
	attached chan struct{}        // closed when l is set
	backlog  []transport.Envelope // sent while l was nil
}

func (c *conn) Send(ctx context.Context, env transport.Envelope) error {
	env = deliverable(env)
	for {
		c.mu.Lock()
		l, id, attached := c.l, c.id, c.attached
		if l == nil && len(c.backlog) < c.size {
			select {
			case <-c.closed:
				c.mu.Unlock()
				return transport.ErrClosed
			default:
			}
			c.backlog = append(c.backlog, env)
			c.mu.Unlock()
			return nil
		}
		c.mu.Unlock()
		if l == nil {
			select {
			case <-attached:
				continue
			case <-c.closed:
				return transport.ErrClosed
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case <-c.closed:
			return transport.ErrClosed
		default:
		}
		d := delivery{from: id, env: env}
		select { // fast path
		case l.inbox <- d:
			return nil
		default:
		}
		select {
		case l.inbox <- d:
			return nil
		case <-l.closed:
			// The listener went away; wait for the next one of this name.
		case <-c.closed:
			return transport.ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *conn) Recv(ctx context.Context) (transport.Envelope, error) {
	select {
	case <-c.closed:
		return transport.Envelope{}, transport.ErrClosed
	default:
	}
	select { // fast path
	case env := <-c.inbox:
		return env, nil
	default:
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

func (c *conn) Close() error {
	err := transport.ErrClosed
	c.closeOnce.Do(func() {
		err = nil
		ns.mu.Lock()
		defer ns.mu.Unlock()
		close(c.closed)
		c.mu.Lock()
		l, id := c.l, c.id
		c.mu.Unlock()
		if l != nil {
			l.mu.Lock()
			delete(l.peers, id)
			l.mu.Unlock()
		}
		delete(ns.pending[c.name], c)
		if len(ns.pending[c.name]) == 0 {
			delete(ns.pending, c.name)
		}
	})
	return err
}
