package transport

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidEndpoint is wrapped by every *EndpointError.
var ErrInvalidEndpoint = errors.New("invalid endpoint")

// EndpointError says which endpoint string is wrong and why. Transports
// return it from CheckEndpoint, Listen and Dial for addresses they refuse.
type EndpointError struct {
	Endpoint string
	Reason   string
}

// Error names the endpoint and the reason.
func (e *EndpointError) Error() string {
	return fmt.Sprintf("%v %q: %s", ErrInvalidEndpoint, e.Endpoint, e.Reason)
}

// Unwrap lets errors.Is(err, ErrInvalidEndpoint) match.
func (e *EndpointError) Unwrap() error { return ErrInvalidEndpoint }

// Endpoint is "scheme://address". The scheme picks the transport; what
// the address means (a name, a socket file, a host and port) is for that
// transport alone to say: see EndpointChecker.
type Endpoint struct {
	Scheme  string
	Address string
}

// String returns "scheme://address".
func (e Endpoint) String() string { return e.Scheme + "://" + e.Address }

// Invalid returns an *EndpointError naming e, with the reason formatted
// from format and args.
func (e Endpoint) Invalid(format string, args ...any) error {
	return &EndpointError{Endpoint: e.String(), Reason: fmt.Sprintf(format, args...)}
}

// ParseEndpoint splits s into its scheme and address. It checks only the
// shape: a scheme of lower-case letters, digits, '+', '-' and '.' that
// starts with a letter, then "://". The address is checked by the
// scheme's transport. Every error is an *EndpointError naming s.
func ParseEndpoint(s string) (Endpoint, error) {
	scheme, addr, ok := strings.Cut(s, "://")
	if !ok {
		return Endpoint{}, &EndpointError{Endpoint: s, Reason: "want scheme://address (inproc://name, ipc:///path or tcp://host:port)"}
	}
	if err := checkScheme(scheme); err != nil {
		return Endpoint{}, &EndpointError{Endpoint: s, Reason: err.Error()}
	}
	return Endpoint{Scheme: scheme, Address: addr}, nil
}

// checkScheme accepts what RFC 3986 allows in a URI scheme, in lower case.
func checkScheme(scheme string) error {
	if scheme == "" {
		return errors.New("empty scheme")
	}
	for i, r := range scheme {
		switch {
		case r >= 'a' && r <= 'z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return fmt.Errorf("scheme %q: want a lower-case letter, then letters, digits, '+', '-' or '.'", scheme)
		}
	}
	return nil
}

// Use says what an endpoint is for. Some addresses only make sense on one
// side: "tcp://*:0" can be listened on but not dialled.
type Use uint8

// The two uses of an endpoint.
const (
	ForListen Use = 1
	ForDial   Use = 2
)

// String returns "listen" or "dial".
func (u Use) String() string {
	switch u {
	case ForListen:
		return "listen"
	case ForDial:
		return "dial"
	}
	return fmt.Sprintf("use(%d)", uint8(u))
}

// EndpointChecker is implemented by transports that can tell whether an
// address is valid before any I/O, so that a bad endpoint is reported when
// a component is built rather than when it runs. The error should be an
// *EndpointError naming the endpoint.
type EndpointChecker interface {
	CheckEndpoint(ep Endpoint, use Use) error
}

// Check asks t to check ep for use, when t is an EndpointChecker; other
// transports report bad addresses from Listen and Dial.
func Check(t Transport, ep Endpoint, use Use) error {
	if c, ok := t.(EndpointChecker); ok {
		return c.CheckEndpoint(ep, use)
	}
	return nil
}
