package engine

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// component names, as they appear in logs and option errors.
const (
	compDistributor = "distributor"
	compWorker      = "worker"
	compCollector   = "collector"
	compMetadata    = "metadata"
)

// Option configures a component. Each option says which components it
// applies to; giving it to another one is an ErrInvalidConfig error from the
// constructor, not a silent no-op.
type Option struct {
	name  string
	roles []string
	set   func(*settings) error
}

// settings holds every knob; each constructor reads the ones of its role.
type settings struct {
	logger *slog.Logger
	codec  transport.Codec

	// distributor
	waitMetadata bool
	endGrace     time.Duration
	quorum       int

	// worker
	concurrency   int
	prefetch      int
	prepare       func(ctx context.Context, job *Job) (any, error)
	workerInit    func(ctx context.Context, md Metadata) error
	goroutineInit func(ctx context.Context, index int, md Metadata) error

	// collector
	onFailure     func(ctx context.Context, failure *ItemError)
	onFinished    func(ctx context.Context, summary Summary)
	collectorInit func(ctx context.Context, md Metadata) error
}

// DefaultPrefetch, given to WithPrefetch, asks for the default window: one
// item held per executing goroutine beyond the one it executes. That is
// enough that no round trip sits between two items even when all of a
// worker's goroutines finish at once, and small enough that at the end of a
// run a worker sits on at most one round of items another worker could have
// taken.
//
// Items shorter than a round trip drain such a window, so with the default
// the window grows: each time a goroutine that finished an item finds none
// waiting and the next one comes within StarvedWithin, the worker doubles
// its prefetch, up to MaxAutoPrefetch items. Items longer than the round
// trip never wait and keep the window at its start; items that short cost
// little unfairness at the end of a run however many a worker holds.
const DefaultPrefetch = -1

// MaxAutoPrefetch bounds how far the default window grows (see
// DefaultPrefetch); a worker with more goroutines than this starts, and
// stays, at one per goroutine.
const MaxAutoPrefetch = 64

// StarvedWithin is the longest wait for an item that counts as the window
// running dry rather than the distributor having nothing to hand out (a
// dependency not complete, a task not ready).
const StarvedWithin = 50 * time.Millisecond

// DefaultEndGrace is how long a distributor waits, at the end of a run, for
// workers to confirm they saw the end before it returns anyway.
const DefaultEndGrace = 5 * time.Second

func newSettings(component string, opts []Option) (settings, error) {
	s := settings{
		logger:      slog.New(slog.DiscardHandler),
		codec:       transport.Msgpack,
		endGrace:    DefaultEndGrace,
		concurrency: 1,
		prefetch:    DefaultPrefetch,
	}
	for _, o := range opts {
		if o.set == nil {
			return s, invalid("zero Option given to the %s", component)
		}
		if !applies(o.roles, component) {
			return s, invalid("option %s applies to %v, not to a %s", o.name, o.roles, component)
		}
		if err := o.set(&s); err != nil {
			return s, fmt.Errorf("%w: option %s: %w", ErrInvalidConfig, o.name, err)
		}
	}
	return s, nil
}

func applies(roles []string, component string) bool {
	for _, r := range roles {
		if r == component {
			return true
		}
	}
	return false
}

var allRoles = []string{compDistributor, compWorker, compCollector, compMetadata}

// WithLogger sets the component's logger; each component adds a
// "component" attribute (and "task_type" where there is one). The default
// discards everything. Per-item lines are logged only at debug level.
// Applies to every component.
func WithLogger(l *slog.Logger) Option {
	return Option{name: "WithLogger", roles: allRoles, set: func(s *settings) error {
		if l == nil {
			return fmt.Errorf("nil logger")
		}
		s.logger = l
		return nil
	}}
}

// WithCodec sets the codec for payloads, results, ACK data and metadata. All
// components of one pipeline must use the same codec. The default is
// transport.Msgpack. Applies to every component.
func WithCodec(c transport.Codec) Option {
	return Option{name: "WithCodec", roles: allRoles, set: func(s *settings) error {
		if c == nil {
			return fmt.Errorf("nil codec")
		}
		s.codec = c
		return nil
	}}
}

// WithMetadata makes the distributor hand out nothing, and welcome no worker
// or collector, until a MetadataSource delivered its map. Applies to the
// Distributor.
func WithMetadata() Option {
	return Option{name: "WithMetadata", roles: []string{compDistributor}, set: func(s *settings) error {
		s.waitMetadata = true
		return nil
	}}
}

// WithEndGrace sets how long the distributor waits at the end of a run for
// every worker to confirm the end (DefaultEndGrace). A worker that does not
// answer in time (it was killed, say) is logged and the run still returns
// nil: all its items were already acknowledged. Applies to the Distributor.
func WithEndGrace(d time.Duration) Option {
	return Option{name: "WithEndGrace", roles: []string{compDistributor}, set: func(s *settings) error {
		if d <= 0 {
			return fmt.Errorf("grace %v is not positive", d)
		}
		s.endGrace = d
		return nil
	}}
}

// WithQuorum makes the distributor hand out nothing until n workers (of
// any task types) announced their capacity, so that workers started a
// little after the distributor still take part, and runs compared with
// each other start alike. Applies to the Distributor.
func WithQuorum(n int) Option {
	return Option{name: "WithQuorum", roles: []string{compDistributor}, set: func(s *settings) error {
		if n < 0 {
			return fmt.Errorf("quorum %d is negative", n)
		}
		s.quorum = n
		return nil
	}}
}

// WithConcurrency sets the number of goroutines that execute items in one
// worker, the original's MultiThreadedWorker (default 1: one item at a time,
// the SingleThreadedWorker). Applies to the Worker.
func WithConcurrency(n int) Option {
	return Option{name: "WithConcurrency", roles: []string{compWorker}, set: func(s *settings) error {
		if n < 1 {
			return fmt.Errorf("concurrency %d is below 1", n)
		}
		s.concurrency = n
		return nil
	}}
}

// WithPrefetch sets how many items a worker holds beyond the ones it is
// executing; DefaultPrefetch (the default) holds one per goroutine and
// grows while items are shorter than a round trip. A number fixes the
// window: 0 makes a round trip to the distributor sit between two items;
// more helps when items are tiny and the network slow, at the cost of
// fairness at the end of a run. Applies to the Worker.
func WithPrefetch(n int) Option {
	return Option{name: "WithPrefetch", roles: []string{compWorker}, set: func(s *settings) error {
		if n < DefaultPrefetch || n > 1<<20 {
			return fmt.Errorf("prefetch %d is not DefaultPrefetch or in 0..%d", n, 1<<20)
		}
		s.prefetch = n
		return nil
	}}
}

// WithPrepare sets the worker's main hook, the original's
// MultiThreadedWorker.handle_execution: it runs on the worker's main
// goroutine, one item at a time in arrival order, before the item goes to an
// executing goroutine; what it returns is the Job's Value there. An error
// fails the item. Applies to the Worker.
func WithPrepare(fn func(ctx context.Context, job *Job) (any, error)) Option {
	return Option{name: "WithPrepare", roles: []string{compWorker}, set: func(s *settings) error {
		if fn == nil {
			return fmt.Errorf("nil hook")
		}
		s.prepare = fn
		return nil
	}}
}

// WithWorkerInit sets a hook that runs once per worker after the handshake
// with the distributor, with the run's metadata (nil without metadata), and
// before the worker takes any item. An error ends the worker's Run. Applies
// to the Worker.
func WithWorkerInit(fn func(ctx context.Context, md Metadata) error) Option {
	return Option{name: "WithWorkerInit", roles: []string{compWorker}, set: func(s *settings) error {
		if fn == nil {
			return fmt.Errorf("nil hook")
		}
		s.workerInit = fn
		return nil
	}}
}

// WithGoroutineInit sets a hook that runs once in each executing goroutine,
// with its index (0 to concurrency-1) and the metadata, after the worker
// init hook and before the goroutine takes any item. An error ends the
// worker's Run. Applies to the Worker.
func WithGoroutineInit(fn func(ctx context.Context, index int, md Metadata) error) Option {
	return Option{name: "WithGoroutineInit", roles: []string{compWorker}, set: func(s *settings) error {
		if fn == nil {
			return fmt.Errorf("nil hook")
		}
		s.goroutineInit = fn
		return nil
	}}
}

// WithFailureHandler sets the collector's hook for failed items; it runs on
// the collector's goroutine, like the result handler. Without one, failures
// are only counted (and logged at warn level). Applies to the Collector.
func WithFailureHandler(fn func(ctx context.Context, failure *ItemError)) Option {
	return Option{name: "WithFailureHandler", roles: []string{compCollector}, set: func(s *settings) error {
		if fn == nil {
			return fmt.Errorf("nil hook")
		}
		s.onFailure = fn
		return nil
	}}
}

// WithFinished sets the collector's hook that runs exactly once when a run
// completes, after every result was handled. It does not run when the run
// is cancelled or aborted. Applies to the Collector.
func WithFinished(fn func(ctx context.Context, summary Summary)) Option {
	return Option{name: "WithFinished", roles: []string{compCollector}, set: func(s *settings) error {
		if fn == nil {
			return fmt.Errorf("nil hook")
		}
		s.onFinished = fn
		return nil
	}}
}

// WithCollectorInit sets a hook that runs once after the collector's
// handshake, with the run's metadata, before any result is handled. An
// error ends the collector's Run. Applies to the Collector.
func WithCollectorInit(fn func(ctx context.Context, md Metadata) error) Option {
	return Option{name: "WithCollectorInit", roles: []string{compCollector}, set: func(s *settings) error {
		if fn == nil {
			return fmt.Errorf("nil hook")
		}
		s.collectorInit = fn
		return nil
	}}
}
