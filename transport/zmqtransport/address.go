package zmqtransport

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// The endpoint schemes this package serves.
const (
	// SchemeIPC: "ipc:///path/to/socket", a Unix domain socket file.
	SchemeIPC = "ipc"
	// SchemeTCP: "tcp://host:port". To listen, host may be "*" (every
	// interface) and port 0 or "*" (a free port the system picks; the
	// Listener's Addr says which).
	SchemeTCP = "tcp"
)

var _ transport.EndpointChecker = (*Transport)(nil)

// CheckEndpoint checks an ipc or tcp address without any I/O: an ipc path
// must be non-empty, without NUL and at most MaxIPCPath bytes; a tcp
// address must be host:port with a port in 1-65535, and only a Listener may
// use the host "*" or the port 0. Host names are not resolved here.
func (t *Transport) CheckEndpoint(ep transport.Endpoint, use transport.Use) error {
	switch ep.Scheme {
	case SchemeIPC:
		return checkIPC(ep)
	case SchemeTCP:
		_, _, err := splitTCP(ep, use)
		return err
	}
	return ep.Invalid("the ZeroMQ transport serves ipc:// and tcp:// endpoints only")
}

func checkIPC(ep transport.Endpoint) error {
	path := ep.Address
	switch {
	case path == "":
		return ep.Invalid("empty ipc path")
	case strings.ContainsRune(path, 0):
		return ep.Invalid("ipc path contains a NUL byte")
	case len(path) > MaxIPCPath:
		return ep.Invalid("ipc path is %d bytes, over the OS limit of %d", len(path), MaxIPCPath)
	}
	return nil
}

// splitTCP checks a tcp address for use and returns its host and port (0
// for a port the system picks).
func splitTCP(ep transport.Endpoint, use transport.Use) (host string, port int, err error) {
	host, ps, err := net.SplitHostPort(ep.Address)
	if err != nil {
		return "", 0, ep.Invalid("want tcp://host:port: %v", err)
	}
	if err := checkHost(host); err != nil {
		return "", 0, ep.Invalid("%v", err)
	}
	if host == "*" && use != transport.ForListen {
		return "", 0, ep.Invalid(`host "*" means every interface, which only a listener can use; dial a host name or address`)
	}
	if ps == "*" || ps == "0" {
		if use != transport.ForListen {
			return "", 0, ep.Invalid("port %s asks the system for a free port, which only a listener can do; dial the port its Addr reports", ps)
		}
		return host, 0, nil
	}
	port, err = strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, ep.Invalid("port %q is not in 1-65535", ps)
	}
	return host, port, nil
}

// checkHost accepts "*", an IP address, or a DNS name or interface name made
// of letters, digits, '-', '_' and '.'. It does not resolve names: whether a
// name resolves is for Dial to find out.
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
