package zmqtransport

import (
	"errors"
	"log/slog"
	"time"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// ErrNoCgo is returned by Listen and Dial in a binary built without cgo or
// for a system other than Linux.
var ErrNoCgo = errors.New("zmqtransport: ipc:// and tcp:// need libzmq through cgo on Linux; this binary was built with CGO_ENABLED=0 or for another system")

// Defaults for Options.
const (
	DefaultMaxMessageSize = 64 << 20
	DefaultLinger         = 100 * time.Millisecond
	DefaultBuffer         = 1024
)

// Options configure a Transport. The zero value uses the defaults.
type Options struct {
	// MaxMessageSize is the largest encoded envelope accepted; larger ones
	// are dropped and counted (DefaultMaxMessageSize). A peer that sends
	// a frame over twice this size is disconnected by libzmq before the
	// frame is read, and nothing is counted.
	MaxMessageSize int
	// Linger bounds how long Close waits for queued messages to leave
	// (DefaultLinger).
	Linger time.Duration
	// Buffer is the number of messages queued between the owner goroutine
	// and the callers of Send and Recv, each way (DefaultBuffer).
	Buffer int
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

var _ transport.Transport = (*Transport)(nil)

func init() {
	t := New(Options{})
	transport.Register(SchemeIPC, t)
	transport.Register(SchemeTCP, t)
}
