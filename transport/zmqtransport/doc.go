// Package zmqtransport carries the pipeline over ZeroMQ (libzmq, through
// github.com/pebbe/zmq4) for "ipc://" and "tcp://" endpoints. Importing it
// registers both schemes with package transport:
//
//	import _ "github.com/zmqpipeline/zmqpipeline/transport/zmqtransport"
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
// polls it, and closes it. Send and Recv talk to the owner through Go
// channels; a Send wakes an owner asleep in zmq_poll through an inproc PAIR
// socket that a second goroutine owns. Close returns after both goroutines
// closed their sockets and exited. Linger on close is bounded
// (Options.Linger), and nothing the engine needs at the end of a run relies
// on it: the engine acknowledges its last messages end to end.
//
// All sockets share one ZeroMQ context for the life of the process, as
// pebbe/zmq4's default context does, rather than one per Listener or Conn
// terminated on Close. With one context each, zmq_ctx_term (libzmq 4.3.4)
// was seen here to hang for good in about one close in twenty to a hundred,
// with every socket of the context closed and linger 0 (compare libzmq issue
// 2586); a Close that can hang forever is worse than a context that lives as
// long as the process. TestCloseNeverHangs keeps that in check.
//
// # Bad input
//
// A frame that is malformed, of an unknown version or kind, or larger than
// Options.MaxMessageSize is dropped, logged with the reason and counted
// (Dropped); the Listener or Conn keeps serving.
//
// # Building without cgo
//
// libzmq needs cgo. Built with CGO_ENABLED=0 this package still compiles
// and registers ipc and tcp, but Listen and Dial fail with ErrNoCgo, so a
// program that uses inproc endpoints alone builds and runs without cgo.
package zmqtransport
