package transport

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"sync"
)

// Sentinel errors shared by every implementation; match with errors.Is.
var (
	// ErrClosed: the Listener or Conn was closed (by this side).
	ErrClosed = errors.New("transport: closed")
	// ErrUnknownPeer: Listener.Send to a peer that never connected, or
	// that the Listener knows has departed.
	ErrUnknownPeer = errors.New("transport: unknown peer")
	// ErrAddrInUse: another listener holds the endpoint.
	ErrAddrInUse = errors.New("transport: address already in use")
	// ErrNoTransport: no transport is registered for the endpoint's scheme.
	ErrNoTransport = errors.New("transport: no transport registered for scheme")
	// ErrTooLarge: Send refused a message over the transport's size
	// limit, and sent nothing.
	ErrTooLarge = errors.New("transport: message over the size limit")
)

// PeerID names one connected peer of a Listener. It is only meaningful to the
// Listener that returned it.
type PeerID string

// String returns the id as it is, if it is printable ASCII, and in hex
// otherwise (ZeroMQ routing ids are random bytes), for logs and errors.
func (p PeerID) String() string {
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] > 0x7e {
			return hex.EncodeToString([]byte(p))
		}
	}
	return string(p)
}

// Listener is the bound side of an endpoint: it receives from many peers and
// replies to one. ZeroMQ's ROUTER fits it.
//
// Every method is safe for concurrent use with the others.
type Listener interface {
	// Recv blocks until a message arrives from any peer, ctx ends (ctx.Err())
	// or the Listener is closed (ErrClosed). Malformed or oversize input
	// never comes out of Recv: it is dropped and counted (see Stats).
	Recv(ctx context.Context) (PeerID, Envelope, error)
	// Send queues env for the peer and returns without waiting for it to
	// be delivered. It blocks while the peer's buffer is full, and returns
	// ErrUnknownPeer if the peer never connected or the Listener knows it
	// has departed. With a ctx that is already done, Send never waits: it
	// queues env if it can at once and otherwise returns ctx.Err() having
	// sent nothing, so a caller can try a send and keep the message for
	// later. Send keeps neither env.Payload nor env.Items (nor their
	// payloads) after it returns, unless env.Handover gives them to it.
	Send(ctx context.Context, to PeerID, env Envelope) error
	// Addr returns the endpoint the Listener is bound to, with what the
	// transport chose filled in: a tcp port asked for as 0 is the port
	// the system gave. Peers dial this endpoint.
	Addr() Endpoint
	// Close releases the endpoint and returns once every goroutine the
	// Listener owns has exited. Blocked calls return ErrClosed. Closing
	// twice returns ErrClosed.
	Close() error
}

// Conn is the connecting side of an endpoint. ZeroMQ's DEALER fits it.
//
// Every method is safe for concurrent use with the others.
type Conn interface {
	// Send queues env for the listener. It blocks while the buffer is
	// full, or (depending on the transport) until the listener exists;
	// with a ctx that is already done it never waits, as Listener.Send.
	// Send keeps neither env.Payload nor env.Items (nor their payloads)
	// after it returns, unless env.Handover gives them to it.
	Send(ctx context.Context, env Envelope) error
	// Recv blocks until a message from the listener arrives, ctx ends or the
	// Conn is closed (ErrClosed).
	Recv(ctx context.Context) (Envelope, error)
	// Close disconnects and returns once every goroutine the Conn owns has
	// exited. Closing twice returns ErrClosed.
	Close() error
}

// Transport makes Listeners and Conns for endpoints. The properties every
// implementation has, and that the engine relies on (package transporttest
// checks each):
//
//   - Order: the messages of one Conn reach its Listener in the order they
//     were sent, and the Listener's messages to one peer reach that Conn in
//     order.
//   - No loss between live ends: a message Send accepted is delivered
//     unless an end closes, or the connection breaks, before it arrives.
//     What the end of a run depends on is acknowledged by the engine, never
//     left to the transport.
//   - Dial before listen: Dial succeeds with no Listener yet; the Conn
//     connects when one appears (its Sends queue or wait meanwhile), and a
//     Conn whose Listener closed connects to the next Listener of the
//     endpoint.
//   - Stable peer ids: every message of one connection arrives with one
//     PeerID, distinct connections have distinct ids, and a Listener never
//     gives one id to two connections. A Conn that connects again (to a new
//     Listener, or after its connection broke) may arrive under a new id.
//   - Departure: once a Listener knows that a peer's connection ended (the
//     Conn closed, its process died, the network dropped it), Send to that
//     peer returns ErrUnknownPeer. When it knows differs: the in-process
//     transport knows when Conn.Close returns; ZeroMQ learns when libzmq
//     fails to deliver to the peer, and the message that finds out is
//     dropped and counted as DropPeerGone. Messages sent to a peer in
//     between are lost; the engine hears of peers that leave cleanly from
//     their goodbyes, not from the transport.
//   - Bad input is dropped, counted (StatsReporter) and never stops a
//     Listener or Conn: a malformed frame, an unknown version or kind, a
//     message over the transport's size limit. A transport with a size
//     limit refuses to send a message over it (ErrTooLarge).
//   - Copies: Send never keeps the caller's payloads or items (unless the
//     caller hands them over, Envelope.Handover), and what Recv returns
//     is the caller's to keep.
//
// A transport may implement EndpointChecker (to refuse bad addresses
// before any I/O) and its Listeners and Conns may implement StatsReporter.
type Transport interface {
	// Listen binds ep. A second Listen of a bound endpoint fails with
	// ErrAddrInUse.
	Listen(ctx context.Context, ep Endpoint) (Listener, error)
	// Dial connects to ep, now or when a Listener of it appears.
	Dial(ctx context.Context, ep Endpoint) (Conn, error)
}

// DropReason says why a transport threw a message away.
type DropReason string

// Reasons for dropping a message. Transports may add their own.
const (
	// DropMalformed: the input is not an envelope (too short, unknown
	// version or kind, wrong framing).
	DropMalformed DropReason = "malformed"
	// DropOversize: the message is over the receiver's size limit.
	DropOversize DropReason = "oversize"
	// DropPeerGone: the message was addressed to a peer that had departed.
	DropPeerGone DropReason = "peer gone"
	// DropSendFailed: the transport failed to send it for another reason.
	DropSendFailed DropReason = "send failed"
	// DropPeerFull: the message was for a peer whose queue was full: it
	// has not read what it was sent for a long time.
	DropPeerFull DropReason = "peer not reading"
	// DropTooManyPeers counts peers, not messages: those a Listener
	// forgot because more peers than its limit were heard from more
	// recently.
	DropTooManyPeers DropReason = "too many peers"
)

// Stats is a snapshot of a Listener's or Conn's counters.
type Stats struct {
	// Peers is the number of peers a Listener knows to be connected (0
	// for a Conn). A transport that learns of departures late (see
	// Transport) counts a departed peer until it finds out.
	Peers int
	// Dropped counts the messages thrown away, by reason; reasons that
	// never happened are absent.
	Dropped map[DropReason]uint64
}

// Add adds o's counters to s.
func (s *Stats) Add(o Stats) {
	s.Peers += o.Peers
	if len(o.Dropped) > 0 && s.Dropped == nil {
		s.Dropped = make(map[DropReason]uint64, len(o.Dropped))
	}
	for r, n := range o.Dropped {
		s.Dropped[r] += n
	}
}

// TotalDropped returns the sum of Dropped over every reason.
func (s Stats) TotalDropped() uint64 {
	var n uint64
	for _, d := range s.Dropped {
		n += d
	}
	return n
}

// Clone returns a copy of s that shares no map with it.
func (s Stats) Clone() Stats {
	s.Dropped = maps.Clone(s.Dropped)
	return s
}

// StatsReporter is implemented by Listeners and Conns that count what they
// drop. Stats is safe to call concurrently with everything else, and
// after Close (it then returns the final counts).
type StatsReporter interface {
	Stats() Stats
}

// StatsOf returns x's Stats when it is a StatsReporter, and zero Stats
// otherwise.
func StatsOf(x any) Stats {
	if r, ok := x.(StatsReporter); ok {
		return r.Stats()
	}
	return Stats{}
}

var registry struct {
	mu sync.RWMutex
	m  map[string]Transport
}

// Register makes t the transport for endpoints of the given scheme,
// replacing any earlier one. Implementations call it from init, so that
// importing a transport package is enough to enable its schemes. The
// registry is only the default: a component can also be handed a
// Transport value (engine.WithTransport). Register panics if scheme is
// not a valid scheme or t is nil, as database/sql's Register does for a
// nil driver: both are mistakes in the program, not in its input.
func Register(scheme string, t Transport) {
	if err := checkScheme(scheme); err != nil {
		panic("transport: Register: " + err.Error())
	}
	if t == nil {
		panic("transport: Register: nil transport for scheme " + scheme)
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.m == nil {
		registry.m = make(map[string]Transport)
	}
	registry.m[scheme] = t
}

// Lookup returns the transport registered for scheme.
func Lookup(scheme string) (Transport, bool) {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	t, ok := registry.m[scheme]
	return t, ok
}

// Resolve parses endpoint and returns it with the transport registered
// for its scheme. It does not check the address; see Check.
func Resolve(endpoint string) (Endpoint, Transport, error) {
	ep, err := ParseEndpoint(endpoint)
	if err != nil {
		return Endpoint{}, nil, err
	}
	t, ok := Lookup(ep.Scheme)
	if !ok {
		hint := ""
		if ep.Scheme == "ipc" || ep.Scheme == "tcp" {
			hint = ` (import _ "github.com/zmqpipeline/zmqpipeline/transport/zmqtransport" to enable ipc:// and tcp://)`
		}
		return Endpoint{}, nil, fmt.Errorf("endpoint %q: %w %q%s", endpoint, ErrNoTransport, ep.Scheme, hint)
	}
	return ep, t, nil
}

// Listen binds endpoint with the transport registered for its scheme.
func Listen(ctx context.Context, endpoint string) (Listener, error) {
	ep, t, err := Resolve(endpoint)
	if err != nil {
		return nil, err
	}
	return t.Listen(ctx, ep)
}

// Dial connects to endpoint with the transport registered for its scheme.
func Dial(ctx context.Context, endpoint string) (Conn, error) {
	ep, t, err := Resolve(endpoint)
	if err != nil {
		return nil, err
	}
	return t.Dial(ctx, ep)
}
