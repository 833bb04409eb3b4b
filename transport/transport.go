package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Sentinel errors shared by every implementation; match with errors.Is.
var (
	// ErrClosed: the Listener or Conn was closed (by this side).
	ErrClosed = errors.New("transport: closed")
	// ErrUnknownPeer: Listener.Send to a peer that is not (or no longer)
	// connected.
	ErrUnknownPeer = errors.New("transport: unknown peer")
	// ErrAddrInUse: another listener holds the endpoint.
	ErrAddrInUse = errors.New("transport: address already in use")
	// ErrNoTransport: no transport is registered for the endpoint's scheme.
	ErrNoTransport = errors.New("transport: no transport registered for scheme")
)

// PeerID names one connected peer of a Listener. It is only meaningful to the
// Listener that returned it.
type PeerID string

// Listener is the bound side of an endpoint: it receives from many peers and
// replies to one. ZeroMQ's ROUTER fits it.
//
// Recv and Send are safe for concurrent use with each other and with Close.
// Messages from one peer arrive in the order that peer sent them.
type Listener interface {
	// Recv blocks until a message arrives from any peer, ctx ends (ctx.Err())
	// or the Listener is closed (ErrClosed).
	Recv(ctx context.Context) (PeerID, Envelope, error)
	// Send queues env for the peer. It blocks while the peer's buffer is full
	// and returns ErrUnknownPeer if the peer is not connected.
	Send(ctx context.Context, to PeerID, env Envelope) error
	// Close releases the endpoint and returns once every goroutine the
	// Listener owns has exited. Blocked calls return ErrClosed. Closing
	// twice returns ErrClosed.
	Close() error
}

// Conn is the connecting side of an endpoint. ZeroMQ's DEALER fits it.
//
// Recv and Send are safe for concurrent use with each other and with Close.
// Messages arrive in the order they were sent.
type Conn interface {
	// Send queues env for the listener. It blocks while the buffer is full.
	Send(ctx context.Context, env Envelope) error
	// Recv blocks until a message from the listener arrives, ctx ends or the
	// Conn is closed (ErrClosed).
	Recv(ctx context.Context) (Envelope, error)
	// Close disconnects and returns once every goroutine the Conn owns has
	// exited. Closing twice returns ErrClosed.
	Close() error
}

// Transport makes Listeners and Conns for the endpoints of its schemes.
// A Dial may come before the matching Listen: the Conn then waits for it.
type Transport interface {
	Listen(ctx context.Context, ep Endpoint) (Listener, error)
	Dial(ctx context.Context, ep Endpoint) (Conn, error)
}

var registry struct {
	mu sync.RWMutex
	m  map[string]Transport
}

// Register makes t the transport for endpoints of the given scheme,
// replacing any earlier one. Implementations call it from init, so importing
// a transport package is enough to enable its schemes.
func Register(scheme string, t Transport) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.m == nil {
		registry.m = make(map[string]Transport)
	}
	registry.m[scheme] = t
}

// ForEndpoint parses endpoint and returns it with the transport registered
// for its scheme.
func ForEndpoint(endpoint string) (Endpoint, Transport, error) {
	ep, err := ParseEndpoint(endpoint)
	if err != nil {
		return Endpoint{}, nil, err
	}
	registry.mu.RLock()
	t := registry.m[ep.Scheme]
	registry.mu.RUnlock()
	if t == nil {
		hint := ""
		if ep.Scheme == SchemeIPC || ep.Scheme == SchemeTCP {
			hint = ` (import _ "github.com/zmqpipeline/zmqpipeline/transport/zmqtransport" to enable ipc:// and tcp://)`
		}
		return Endpoint{}, nil, fmt.Errorf("endpoint %q: %w %q%s", endpoint, ErrNoTransport, ep.Scheme, hint)
	}
	return ep, t, nil
}

// Listen binds endpoint with the transport registered for its scheme.
func Listen(ctx context.Context, endpoint string) (Listener, error) {
	ep, t, err := ForEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	return t.Listen(ctx, ep)
}

// Dial connects to endpoint with the transport registered for its scheme.
func Dial(ctx context.Context, endpoint string) (Conn, error) {
	ep, t, err := ForEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	return t.Dial(ctx, ep)
}
