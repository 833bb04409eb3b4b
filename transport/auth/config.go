package auth

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// Config is what a transport needs to authenticate a process's peers and
// encrypt what passes between them.
type Config struct {
	// Key is the process's key pair: the server key of its listeners,
	// and the client key its connections present.
	Key KeyPair
	// Servers are the public keys of the listeners the process connects
	// to, by endpoint, as given to Dial (compared in canonical form: see
	// transport.ParseEndpoint).
	Servers map[string]Key
	// Server is the public key of every listener not in Servers, for a
	// process whose servers share one key pair. Without it, dialing an
	// endpoint not in Servers fails.
	Server Key
	// Access is the list of client keys the process's listeners accept,
	// and the roles each may take. A listener with a nil list accepts no
	// one.
	Access *Access
	// Logger, if set, is where the transport logs what it refuses (a key
	// not on the list, a failed handshake); without it the transport
	// keeps its own logger.
	Logger *slog.Logger
}

// ErrNoServerKey: a process with keys dials an endpoint whose server key
// it was not given.
var ErrNoServerKey = errors.New("auth: no server key for the endpoint")

// ErrRefused: a listener refused this process's handshake: its key is not
// on the listener's access list, the server key it was given is wrong, or
// one side uses keys and the other does not.
var ErrRefused = errors.New("auth: the listener refused the handshake")

// Check returns an error if the configuration cannot work: no key pair, a
// server endpoint that does not parse, or a zero server key.
func (c *Config) Check() error {
	if c.Key.Public.IsZero() {
		return errors.New("auth: no key pair (Config.Key)")
	}
	if pk, err := KeyPairFromSecret(c.Key.Secret); err != nil || pk.Public != c.Key.Public {
		return fmt.Errorf("%w: Config.Key's public key is not the one of its secret key", ErrBadKey)
	}
	for ep, k := range c.Servers {
		if _, err := transport.ParseEndpoint(ep); err != nil {
			return fmt.Errorf("auth: server key for %q: %w", ep, err)
		}
		if k.IsZero() {
			return fmt.Errorf("%w: the zero key for server %q", ErrBadKey, ep)
		}
	}
	return nil
}

// ServerKey returns the public key of the listener at ep.
func (c *Config) ServerKey(ep transport.Endpoint) (Key, error) {
	want := ep.String()
	for s, k := range c.Servers {
		if parsed, err := transport.ParseEndpoint(s); err == nil && parsed.String() == want {
			return k, nil
		}
	}
	if !c.Server.IsZero() {
		return c.Server, nil
	}
	return Key{}, fmt.Errorf("%w %s: give its public key (the server's NAME.key)", ErrNoServerKey, want)
}

// Securer is implemented by transports that can authenticate peers and
// encrypt their traffic (the ZeroMQ transport, with CURVE): Secure returns
// a Transport that does so with cfg. A program that is handed keys turns
// the transport registered for its endpoints' scheme into a secure one
// this way, and gives it to its components (engine.WithTransport).
type Securer interface {
	Secure(cfg Config) (transport.Transport, error)
}

// Authorizer is implemented by Listeners that can say who their peers
// are. Such a Listener sets transport.Envelope.Principal on every message
// it delivers, and the engine asks it whether that principal may take the
// role the message claims: a hello, metadata, a result.
type Authorizer interface {
	// Authenticated reports whether the Listener authenticates its
	// peers. Without, every peer that reaches it is trusted, and
	// Authorize allows everything.
	Authenticated() bool
	// Authorize returns nil if principal may take role (a worker: of
	// taskType), and an error wrapping ErrUnauthenticated or
	// ErrForbidden that says why not otherwise.
	Authorize(principal string, role transport.Role, taskType string) error
}
