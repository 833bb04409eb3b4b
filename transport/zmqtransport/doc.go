// Package zmqtransport carries the pipeline over ZeroMQ (libzmq, through
// github.com/pebbe/zmq4) for "ipc://" and "tcp://" endpoints. Importing it
// registers both schemes with package transport, with the default Options:
//
//	import _ "github.com/zmqpipeline/zmqpipeline/transport/zmqtransport"
//
// A Transport with other Options (a larger message limit, a logger for its
// drops) is made with New and handed to the components with
// engine.WithTransport.
//
// Addresses are checked before any I/O (CheckEndpoint): an ipc path must
// fit the OS limit (MaxIPCPath); a tcp address is host:port, where a
// Listener may use the host "*" (every interface) and the port 0 or "*" (a
// port the system picks, which the Listener's Addr reports).
//
// A Listener is a ROUTER socket bound to the endpoint; a Conn is a DEALER
// connected to it. Each envelope travels as one frame in the versioned
// binary format of transport.Envelope (see PROTOCOL.md at the repository's
// root), so a peer in another language needs only a DEALER and that format.
//
// # Sockets and goroutines
//
// A ZeroMQ socket is not safe for concurrent use, so each Listener and Conn
// has one owner goroutine, locked to its OS thread, that creates its socket,
// moves messages between it and Go channels, and closes it. Between turns
// the owner sleeps in epoll_wait on two descriptors: libzmq's ZMQ_FD, which
// libzmq signals when the socket may have messages to read or room to
// write, and an eventfd that Send (and Close, and a Recv that frees room
// in a full inbox) writes to when the owner sleeps. So a message costs one
// system call to hand over, with no goroutine or socket in between. Before
// it sleeps the owner reads ZMQ_EVENTS, as libzmq asks, since a send may
// consume the signal of a message that came in meanwhile.
//
// The owner sleeps outside Go's network poller on purpose: parked there it
// would hold no thread, but every message would break the poller's sleep,
// which Go counts in whole milliseconds, and so push back the process's
// timers (time.Sleep in handlers) by up to a millisecond each time.
//
// Close returns after the owner has closed its socket. Linger on close is
// bounded (Options.Linger), and nothing the engine needs at the end of a
// run relies on it: the engine acknowledges its last messages end to end.
//
// All sockets share one ZeroMQ context for the life of the process, as
// pebbe/zmq4's default context does, rather than one terminated when the
// last socket closes. zmq_ctx_term (libzmq 4.3.4) was seen here to hang for
// good, with every socket of the context closed and linger bounded, within
// a few dozen to a few hundred cycles of a listener and a conn of one
// process closing at once with messages in flight; with one context per
// socket it hung about once in twenty to a hundred (compare libzmq issue
// 2586). A Close that can hang forever is worse than a context that lives
// as long as the process, whose two threads sleep in epoll_wait.
// TestCloseNeverHangs keeps that in check.
//
// # Bad input
//
// A frame that is malformed, of an unknown version or kind, or larger than
// Options.MaxMessageSize is dropped, logged with the reason (sparingly: at
// most a line per reason every transport.DropLogInterval, with the count)
// and counted by reason (Stats); the Listener or Conn keeps serving.
//
// # Departed peers
//
// libzmq does not tell a ROUTER which peer disconnected. A Listener learns
// it when libzmq refuses a message for the peer (ZMQ_ROUTER_MANDATORY):
// that message is dropped and counted as transport.DropPeerGone, and from
// then on Send to the peer returns transport.ErrUnknownPeer.
//
// # Closing
//
// libzmq releases a listener's port (or socket file) in its I/O thread
// after the socket is closed; Close waits for that, watching the socket's
// monitor for the close, so that a Listen of the same endpoint right after
// Close succeeds.
//
// # Building without cgo
//
// libzmq needs cgo, and the owner's sleep needs Linux. Built with
// CGO_ENABLED=0, or for another system, this package still compiles and
// registers ipc and tcp, but Listen and Dial fail with ErrNoCgo, so a
// program that uses inproc endpoints alone builds and runs anywhere.
package zmqtransport
