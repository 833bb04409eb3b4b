// Package transport is the seam between the pipeline engine and the wire.
//
// It holds the small contract every transport implements (a Listener, the
// bound side that hears many peers and answers one, and a Conn, the side that
// dials), the Envelope every message travels in with its versioned binary
// encoding, the payload Codec (MessagePack by default), and endpoint parsing.
//
// The endpoint's scheme picks the implementation: "inproc://name" is served
// by package transport/inproc on Go channels; "ipc:///path" and
// "tcp://host:port" by the ZeroMQ transport. Implementations register
// themselves with Register from an init function, in the way database/sql
// drivers do, so the engine depends on this package only and never on
// ZeroMQ: a program that uses inproc endpoints alone builds without cgo.
//
// ParseEndpoint validates every scheme, including ipc and tcp when no
// transport serves them, so a bad endpoint is reported by name before
// anything starts.
package transport
