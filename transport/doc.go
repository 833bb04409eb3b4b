// Package transport is the seam between the pipeline engine and the wire.
//
// It holds the small contract every transport implements (a Listener, the
// bound side that hears many peers and answers one, and a Conn, the side that
// dials; the properties the engine relies on are listed on Transport), the
// Envelope every message travels in with its versioned binary encoding, the
// payload Codec (MessagePack by default), and endpoints.
//
// An endpoint is "scheme://address". The scheme picks the transport and the
// address means what that transport says: "inproc://name" is served by
// package transport/inproc on Go channels, "ipc:///path" and
// "tcp://host:port" by package transport/zmqtransport on ZeroMQ, and any
// other scheme by whatever transport a program registers for it. Each
// transport checks its own addresses (EndpointChecker), so a bad endpoint
// is reported by name before anything starts.
//
// Transports register themselves with Register from an init function, the
// way database/sql drivers do, so the engine depends on this package only
// and never on ZeroMQ: a program that uses inproc endpoints alone builds
// without cgo. The registry is only the default: a Transport is a value,
// and a component can be handed one directly (engine.WithTransport), which
// is how a transport with its own settings is used.
//
// Listeners and Conns may count what they drop (StatsReporter); the engine
// sums those counts in each component's Stats, so that "dropped, logged
// and counted" is visible without reading logs.
package transport
