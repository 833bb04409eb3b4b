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
// has one owner goroutine that creates its socket, polls it, and closes it.
// Send and Recv talk to the owner through Go channels; a Send wakes an owner
// asleep in zmq_poll through an inproc PAIR socket that a second goroutine
// owns. Each Listener and Conn has its own ZeroMQ context, terminated by
// Close after both sockets are closed; Close returns after both goroutines
// have exited. Linger on close is bounded (Options.Linger), and nothing the
// engine needs at the end of a run relies on it: the engine acknowledges its
// last messages end to end.
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
