package engine

import (
	"log/slog"
	"net"

	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/auth"
)

// authorizerOf returns l as an auth.Authorizer if it authenticates its
// peers, and nil if every peer that reaches it is trusted.
func authorizerOf(l transport.Listener) auth.Authorizer {
	if a, ok := l.(auth.Authorizer); ok && a.Authenticated() {
		return a
	}
	return nil
}

// warnIfExposed warns, once at start, when a listener that authenticates
// no one is bound to a tcp address other machines can reach: every peer
// that reaches it is trusted.
func warnIfExposed(log *slog.Logger, l transport.Listener) {
	ep := l.Addr()
	if ep.Scheme != "tcp" || authorizerOf(l) != nil {
		return
	}
	host, _, err := net.SplitHostPort(ep.Address)
	if err != nil {
		return
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return
	}
	log.Warn("listening on an address other machines can reach, without keys: every peer that reaches it can take part in the run (see Security in the README)", "endpoint", ep.String())
}
