// Package faulty wraps a transport to inject the faults a network and its
// processes have, on demand and deterministically: messages dropped,
// duplicated or held back (a process stopped, a slow link), and every
// connection cut at once (a process killed). Give each component of a
// pipeline its own wrapper (engine.WithTransport) and each wrapper acts on
// that component alone:
//
//	w := faulty.Wrap(inproc.Transport{})
//	worker, _ := engine.NewWorker(ep, "t", h, engine.WithTransport(w))
//	...
//	w.Stall(faulty.Out) // the others stop hearing the worker
//	w.Resume()          // what it sent meanwhile goes out, in order
//
// A wrapper starts no goroutines: held messages go out on the goroutine
// that calls Resume, and held incoming ones are returned by Recv.
package faulty

import (
	"context"
	"errors"
	"sync"

	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/auth"
)

// Direction says which way a message travels, seen from the wrapped
// component.
type Direction uint8

// Directions; Both is In|Out.
const (
	In   Direction = 1 << 0
	Out  Direction = 1 << 1
	Both           = In | Out
)

// Action is what happens to one message.
type Action uint8

// Actions.
const (
	// Pass delivers the message.
	Pass Action = iota
	// Drop loses it.
	Drop
	// Duplicate delivers it twice.
	Duplicate
	// Hold keeps it back until Resume, in order with the others held.
	Hold
)

// Rule decides the fate of each message. It is called under the wrapper's
// lock, so it must not call the wrapper.
type Rule func(d Direction, env transport.Envelope) Action

// Transport wraps another, applying its rule to every message of every
// Listener and Conn it made. Its methods are safe for concurrent use.
type Transport struct {
	base transport.Transport

	mu        sync.Mutex
	rule      Rule
	cut       bool
	endpoints []*endpoint
}

// Wrap returns a Transport that passes everything to base until told
// otherwise.
func Wrap(base transport.Transport) *Transport { return &Transport{base: base} }

var (
	_ transport.Transport       = (*Transport)(nil)
	_ transport.EndpointChecker = (*Transport)(nil)
)

// CheckEndpoint asks the wrapped transport.
func (t *Transport) CheckEndpoint(ep transport.Endpoint, use transport.Use) error {
	return transport.Check(t.base, ep, use)
}

// Set makes rule decide every message from now on; nil passes everything.
// Messages already held stay held until Resume.
func (t *Transport) Set(rule Rule) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rule = rule
}

// Stall holds every message travelling in d, as a process stopped with
// SIGSTOP neither sends nor reads: until Resume.
func (t *Transport) Stall(d Direction) {
	t.Set(func(dir Direction, _ transport.Envelope) Action {
		if dir&d != 0 {
			return Hold
		}
		return Pass
	})
}

// Silence drops every message travelling in d, as a network partition
// does, until Set or Resume.
func (t *Transport) Silence(d Direction) {
	t.Set(func(dir Direction, _ transport.Envelope) Action {
		if dir&d != 0 {
			return Drop
		}
		return Pass
	})
}

// Resume passes everything again, and releases what was held (Release).
func (t *Transport) Resume() {
	t.Set(nil)
	t.Release()
}

// Release lets go of what was held, whatever the rule is now: outgoing
// messages are sent now, in order; incoming ones come out of Recv first.
func (t *Transport) Release() {
	t.mu.Lock()
	eps := append([]*endpoint(nil), t.endpoints...)
	t.mu.Unlock()
	for _, e := range eps {
		e.release()
	}
}

// Cut closes every Listener and Conn the wrapper made, at once, as a
// killed process's connections close; from then on they fail with
// transport.ErrClosed, and the wrapper makes no more.
func (t *Transport) Cut() {
	t.mu.Lock()
	t.cut = true
	eps := append([]*endpoint(nil), t.endpoints...)
	t.mu.Unlock()
	// Every endpoint goes silent before any closes: a component that sees
	// one connection close must not get a last word out on another.
	for _, e := range eps {
		e.silence()
	}
	for _, e := range eps {
		_ = e.closer.Close()
	}
}

func (t *Transport) decide(d Direction, env transport.Envelope) Action {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rule == nil {
		return Pass
	}
	return t.rule(d, env)
}

func (t *Transport) add(e *endpoint) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cut {
		return transport.ErrClosed
	}
	t.endpoints = append(t.endpoints, e)
	return nil
}

// Listen wraps a Listener of the wrapped transport.
func (t *Transport) Listen(ctx context.Context, ep transport.Endpoint) (transport.Listener, error) {
	l, err := t.base.Listen(ctx, ep)
	if err != nil {
		return nil, err
	}
	e := newEndpoint(t, l, func(ctx context.Context, m message) error { return l.Send(ctx, m.peer, m.env) })
	if err := t.add(e); err != nil {
		_ = l.Close()
		return nil, err
	}
	return &listener{e: e, l: l}, nil
}

// Dial wraps a Conn of the wrapped transport.
func (t *Transport) Dial(ctx context.Context, ep transport.Endpoint) (transport.Conn, error) {
	c, err := t.base.Dial(ctx, ep)
	if err != nil {
		return nil, err
	}
	e := newEndpoint(t, c, func(ctx context.Context, m message) error { return c.Send(ctx, m.env) })
	if err := t.add(e); err != nil {
		_ = c.Close()
		return nil, err
	}
	return &conn{e: e, c: c}, nil
}

// message is an envelope with its peer (empty for a Conn's).
type message struct {
	peer transport.PeerID
	env  transport.Envelope
}

// endpoint is what a wrapped Listener and Conn share: the messages held
// and queued each way, and the means to wake a Recv when they change.
type endpoint struct {
	t      *Transport
	closer interface{ Close() error }
	send   func(ctx context.Context, m message) error

	mu      sync.Mutex
	heldOut []message
	heldIn  []message
	ready   []message       // released or duplicated, for Recv before anything new
	wakeCtx context.Context // ends to wake the Recvs waiting on the wrapped side
	wake    context.CancelFunc
	cut     bool // cut off, or closed: every call fails
	closed  bool // Close was called
}

func newEndpoint(t *Transport, closer interface{ Close() error }, send func(context.Context, message) error) *endpoint {
	e := &endpoint{t: t, closer: closer, send: send}
	e.wakeCtx, e.wake = context.WithCancel(context.Background())
	return e
}

// out applies the rule to an outgoing message.
func (e *endpoint) out(ctx context.Context, m message) error {
	if e.isCut() {
		return transport.ErrClosed
	}
	switch e.t.decide(Out, m.env) {
	case Drop:
		return nil
	case Hold:
		e.mu.Lock()
		e.heldOut = append(e.heldOut, message{peer: m.peer, env: m.env.Clone()})
		e.mu.Unlock()
		return nil
	case Duplicate:
		// Two deliveries of one message must not share its memory.
		m.env.Handover = false
		if err := e.send(ctx, m); err != nil {
			return err
		}
	}
	return e.send(ctx, m)
}

// in applies the rule to incoming messages: recv reads the wrapped side.
func (e *endpoint) in(ctx context.Context, recv func(context.Context) (message, error)) (message, error) {
	for {
		if e.isCut() {
			return message{}, transport.ErrClosed
		}
		e.mu.Lock()
		if len(e.ready) > 0 {
			m := e.ready[0]
			e.ready = e.ready[1:]
			e.mu.Unlock()
			return m, nil
		}
		// A Recv waiting on the wrapped side is woken by release and cut.
		wake := e.wakeCtx
		e.mu.Unlock()
		rctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(wake, cancel)
		m, err := recv(rctx)
		stop()
		cancel()
		if err != nil {
			if ctx.Err() == nil && rctx.Err() != nil {
				continue // woken: look again
			}
			if e.isCut() {
				return message{}, transport.ErrClosed
			}
			return message{}, err
		}
		switch e.t.decide(In, m.env) {
		case Drop:
			continue
		case Hold:
			e.mu.Lock()
			e.heldIn = append(e.heldIn, m)
			e.mu.Unlock()
			continue
		case Duplicate:
			e.mu.Lock()
			e.ready = append(e.ready, message{peer: m.peer, env: m.env.Clone()})
			e.mu.Unlock()
		}
		return m, nil
	}
}

// release sends what was held going out and makes what was held coming in
// the next Recv's.
func (e *endpoint) release() {
	e.mu.Lock()
	out := e.heldOut
	e.heldOut = nil
	e.ready = append(e.ready, e.heldIn...)
	e.heldIn = nil
	e.wakeAll()
	e.mu.Unlock()
	for _, m := range out {
		if err := e.send(context.Background(), m); err != nil && !errors.Is(err, transport.ErrUnknownPeer) {
			return // closed: the rest is lost, as with a dead process
		}
	}
}

// silence makes every later call on the endpoint fail, and drops what it
// held.
func (e *endpoint) silence() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cut = true
	e.heldOut, e.heldIn, e.ready = nil, nil, nil
	e.wakeAll()
}

// wakeAll wakes the Recvs waiting on the wrapped side. Caller holds mu.
func (e *endpoint) wakeAll() {
	e.wake()
	e.wakeCtx, e.wake = context.WithCancel(context.Background())
}

func (e *endpoint) isCut() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cut
}

// close closes the wrapped side, unless a cut closed it already.
func (e *endpoint) close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return transport.ErrClosed
	}
	e.closed = true
	wasCut := e.cut
	e.cut = true
	e.wakeAll()
	e.mu.Unlock()
	if wasCut {
		return nil
	}
	return e.closer.Close()
}

type listener struct {
	e *endpoint
	l transport.Listener
}

func (l *listener) Recv(ctx context.Context) (transport.PeerID, transport.Envelope, error) {
	m, err := l.e.in(ctx, func(ctx context.Context) (message, error) {
		p, env, err := l.l.Recv(ctx)
		return message{peer: p, env: env}, err
	})
	return m.peer, m.env, err
}

func (l *listener) Send(ctx context.Context, to transport.PeerID, env transport.Envelope) error {
	return l.e.out(ctx, message{peer: to, env: env})
}

func (l *listener) Addr() transport.Endpoint { return l.l.Addr() }

func (l *listener) Close() error { return l.e.close() }

// Stats are the wrapped Listener's.
func (l *listener) Stats() transport.Stats { return transport.StatsOf(l.l) }

// Authenticated reports whether the wrapped Listener authenticates its
// peers (auth.Authorizer).
func (l *listener) Authenticated() bool {
	a, ok := l.l.(auth.Authorizer)
	return ok && a.Authenticated()
}

// Authorize asks the wrapped Listener, and allows everything if it does
// not authenticate.
func (l *listener) Authorize(principal string, role transport.Role, taskType string) error {
	if a, ok := l.l.(auth.Authorizer); ok {
		return a.Authorize(principal, role, taskType)
	}
	return nil
}

type conn struct {
	e *endpoint
	c transport.Conn
}

func (c *conn) Send(ctx context.Context, env transport.Envelope) error {
	return c.e.out(ctx, message{env: env})
}

func (c *conn) Recv(ctx context.Context) (transport.Envelope, error) {
	m, err := c.e.in(ctx, func(ctx context.Context) (message, error) {
		env, err := c.c.Recv(ctx)
		return message{env: env}, err
	})
	return m.env, err
}

func (c *conn) Close() error { return c.e.close() }

// Stats are the wrapped Conn's.
func (c *conn) Stats() transport.Stats { return transport.StatsOf(c.c) }
