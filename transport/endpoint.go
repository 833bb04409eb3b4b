package transport

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
)

// Endpoint schemes.
const (
	SchemeInproc = "inproc"
	SchemeIPC    = "ipc"
	SchemeTCP    = "tcp"
)

// ErrInvalidEndpoint is wrapped by every *EndpointError.
var ErrInvalidEndpoint = errors.New("invalid endpoint")

// EndpointError says which endpoint string is wrong and why.
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

// MaxIPCPath is the longest ipc path the OS accepts: the size of sun_path in
// struct sockaddr_un less its terminating NUL (108 on Linux, 104 on the BSDs
// and macOS).
var MaxIPCPath = func() int {
	switch runtime.GOOS {
	case "linux", "android":
		return 107
	default:
		return 103
	}
}()

// Endpoint is a parsed endpoint string: "inproc://name", "ipc:///path" or
// "tcp://host:port". For binding, a tcp host may be "*" (all interfaces).
type Endpoint struct {
	Scheme string
	// Name is the inproc name.
	Name string
	// Path is the ipc socket file.
	Path string
	// Host and Port are the tcp address.
	Host string
	Port int
	raw  string
}

// String returns the endpoint as it was given.
func (e Endpoint) String() string { return e.raw }

// ParseEndpoint parses and validates s. Every error is an *EndpointError
// naming s.
func ParseEndpoint(s string) (Endpoint, error) {
	bad := func(format string, args ...any) (Endpoint, error) {
		return Endpoint{}, &EndpointError{Endpoint: s, Reason: fmt.Sprintf(format, args...)}
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return bad("want scheme://address, with scheme inproc, ipc or tcp")
	}
	ep := Endpoint{Scheme: scheme, raw: s}
	switch scheme {
	case SchemeInproc:
		if rest == "" {
			return bad("empty inproc name")
		}
		ep.Name = rest
	case SchemeIPC:
		if rest == "" {
			return bad("empty ipc path")
		}
		if strings.ContainsRune(rest, 0) {
			return bad("ipc path contains a NUL byte")
		}
		if len(rest) > MaxIPCPath {
			return bad("ipc path is %d bytes, over the OS limit of %d", len(rest), MaxIPCPath)
		}
		ep.Path = rest
	case SchemeTCP:
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return bad("want tcp://host:port: %v", err)
		}
		if err := checkHost(host); err != nil {
			return bad("%v", err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return bad("port %q is not in 1-65535", port)
		}
		ep.Host, ep.Port = host, p
	default:
		return bad("unknown scheme %q, want inproc, ipc or tcp", scheme)
	}
	return ep, nil
}

// checkHost accepts "*", an IP address, or a DNS name or interface name made
// of letters, digits, '-', '_' and '.'. It does not resolve names: whether a
// name resolves is the transport's business when it binds or connects.
func checkHost(host string) error {
	if host == "" {
		return errors.New("empty host")
	}
	if host == "*" || net.ParseIP(host) != nil {
		return nil
	}
	if len(host) > 253 {
		return fmt.Errorf("host name is %d bytes, over 253", len(host))
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("host %q has an empty or over-long label", host)
		}
		for _, r := range label {
			if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return fmt.Errorf("host %q has the character %q", host, r)
			}
		}
	}
	return nil
}
