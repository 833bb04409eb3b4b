package zmqtransport

import (
	"errors"
	"log/slog"
	"time"

	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/auth"
)

// ErrNoCgo is returned by Listen and Dial in a binary built without cgo or
// for a system other than Linux.
var ErrNoCgo = errors.New("zmqtransport: ipc:// and tcp:// need libzmq through cgo on Linux; this binary was built with CGO_ENABLED=0 or for another system")

// Defaults for Options.
const (
	DefaultMaxMessageSize = 64 << 20
	DefaultLinger         = 100 * time.Millisecond
	DefaultBuffer         = 1024
	DefaultSendQueue      = 1 << 17
	DefaultReceiveQueue   = 1000
	DefaultMaxPeers       = 4096
)

// Options configure a Transport. The zero value uses the defaults.
type Options struct {
	// MaxMessageSize is the largest encoded envelope sent or received
	// (DefaultMaxMessageSize). Send refuses a larger one with
	// transport.ErrTooLarge; libzmq closes a connection that sends one as
	// soon as its header arrives, before storing any of it. Give every
	// process of a pipeline the same limit.
	MaxMessageSize int
	// Linger bounds how long Close waits for queued messages to leave
	// (DefaultLinger).
	Linger time.Duration
	// Buffer is the number of messages queued between the owner goroutine
	// and the callers of Send and Recv, each way (DefaultBuffer).
	Buffer int
	// SendQueue is how many messages libzmq queues for one peer that does
	// not read them (ZMQ_SNDHWM, DefaultSendQueue). It is far above what
	// the engine has in flight to a peer (a worker's window is at most
	// 65536 items), so only a peer that stopped reading fills it; a
	// Listener then drops what else it is sent, counted as
	// transport.DropPeerFull, and a Conn's Send waits.
	SendQueue int
	// ReceiveQueue is how many messages libzmq takes in from one peer
	// before it stops reading that peer's connection until the program
	// catches up (ZMQ_RCVHWM, DefaultReceiveQueue).
	ReceiveQueue int
	// MaxPeers bounds how many peers a Listener remembers (to tell a
	// departed peer from a live one, and to count them;
	// DefaultMaxPeers). When a new peer would pass it, the quarter heard
	// from least recently is forgotten: Send to one of them returns
	// transport.ErrUnknownPeer until it sends again.
	MaxPeers int
	// Curve, if set, turns on CURVE: every connection is authenticated
	// and encrypted with these keys, and listeners accept only the
	// client keys on Curve.Access (see "Security" in the package doc).
	// Secure sets it.
	Curve *auth.Config
	// Logger receives dropped-message and connection logs; discarded by
	// default.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.Linger <= 0 {
		o.Linger = DefaultLinger
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.SendQueue <= 0 {
		o.SendQueue = DefaultSendQueue
	}
	if o.ReceiveQueue <= 0 {
		o.ReceiveQueue = DefaultReceiveQueue
	}
	if o.MaxPeers <= 0 {
		o.MaxPeers = DefaultMaxPeers
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Transport serves ipc and tcp endpoints over ZeroMQ. The one registered
// for both schemes when this package is imported uses the default Options;
// to change them, make one with New and hand it to the components
// (engine.WithTransport) or register it in place of the default.
type Transport struct {
	opts Options
}

// New returns a Transport with opts.
func New(opts Options) *Transport { return &Transport{opts: opts.withDefaults()} }

var (
	_ transport.Transport = (*Transport)(nil)
	_ auth.Securer        = (*Transport)(nil)
)

// Secure returns a Transport like t that authenticates and encrypts with
// CURVE, using cfg (see "Security" in the package doc).
func (t *Transport) Secure(cfg auth.Config) (transport.Transport, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	opts := t.opts
	opts.Curve = &cfg
	if cfg.Logger != nil {
		opts.Logger = cfg.Logger
	}
	return New(opts), nil
}

func init() {
	t := New(Options{})
	transport.Register(SchemeIPC, t)
	transport.Register(SchemeTCP, t)
}
