package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// DistributorOption configures a Distributor. Options come in one type
// per component, so that an option given to a component it does not fit is
// a compile error; an option with a bad value (a negative quorum, a nil
// hook) is an ErrInvalidConfig error from the constructor.
type DistributorOption interface {
	applyDistributor(*distributorSettings) error
}

// WorkerOption configures a Worker.
type WorkerOption interface {
	applyWorker(*workerSettings) error
}

// CollectorOption configures a Collector.
type CollectorOption interface {
	applyCollector(*collectorSettings) error
}

// PeerOption configures a Worker or a Collector: it is both a
// WorkerOption and a CollectorOption.
type PeerOption interface {
	WorkerOption
	CollectorOption
}

// MetadataOption configures a MetadataSource.
type MetadataOption interface {
	applyMetadata(*commonSettings) error
}

// Option configures any component: it is a DistributorOption, a
// WorkerOption, a CollectorOption and a MetadataOption.
type Option struct {
	name string
	set  func(*commonSettings) error
}

func (o Option) apply(s *commonSettings) error {
	if o.set == nil {
		return errors.New("zero Option")
	}
	return optionError(o.name, o.set(s))
}

func (o Option) applyDistributor(s *distributorSettings) error { return o.apply(&s.commonSettings) }
func (o Option) applyWorker(s *workerSettings) error           { return o.apply(&s.commonSettings) }
func (o Option) applyCollector(s *collectorSettings) error     { return o.apply(&s.commonSettings) }
func (o Option) applyMetadata(s *commonSettings) error         { return o.apply(s) }

type distributorOption struct {
	name string
	set  func(*distributorSettings) error
}

func (o distributorOption) applyDistributor(s *distributorSettings) error {
	return optionError(o.name, o.set(s))
}

type workerOption struct {
	name string
	set  func(*workerSettings) error
}

func (o workerOption) applyWorker(s *workerSettings) error { return optionError(o.name, o.set(s)) }

type peerOption struct {
	name string
	set  func(*peerSettings) error
}

func (o peerOption) applyWorker(s *workerSettings) error {
	return optionError(o.name, o.set(&s.peerSettings))
}

func (o peerOption) applyCollector(s *collectorSettings) error {
	return optionError(o.name, o.set(&s.peerSettings))
}

type collectorOption struct {
	name string
	set  func(*collectorSettings) error
}

func (o collectorOption) applyCollector(s *collectorSettings) error {
	return optionError(o.name, o.set(s))
}

func optionError(name string, err error) error {
	if err != nil {
		return fmt.Errorf("option %s: %w", name, err)
	}
	return nil
}

// commonSettings are the knobs every component has.
type commonSettings struct {
	logger    *slog.Logger
	codec     transport.Codec
	transport transport.Transport // nil: the one registered for each endpoint's scheme
}

func defaultCommon() commonSettings {
	return commonSettings{logger: slog.New(slog.DiscardHandler), codec: transport.Msgpack{}}
}

type distributorSettings struct {
	commonSettings
	waitMetadata bool
	endGrace     time.Duration
	quorum       int
	onAck        AckHandler
	heartbeat    time.Duration
	liveness     time.Duration
	retryMin     time.Duration
	retryMax     time.Duration
	maxPeers     int
	maxInFlight  int
	journalPath  string
	journalSync  time.Duration
}

// peerSettings are the knobs of the components that join a distributor's
// run and stay: workers and collectors.
type peerSettings struct {
	rejoin time.Duration // how long to wait for a lost distributor to come back
}

type workerSettings struct {
	commonSettings
	peerSettings
	concurrency   int
	prefetch      int
	prepare       func(ctx context.Context, job *Job) (any, error)
	workerInit    func(ctx context.Context, md Metadata) error
	goroutineInit func(ctx context.Context, index int, md Metadata) error
}

type collectorSettings struct {
	commonSettings
	peerSettings
	onFailure     func(ctx context.Context, failure *ItemError)
	onFinished    func(ctx context.Context, summary Summary)
	collectorInit func(ctx context.Context, md Metadata) error
}

func newDistributorSettings(opts []DistributorOption) (*distributorSettings, error) {
	s := &distributorSettings{
		commonSettings: defaultCommon(), endGrace: DefaultEndGrace,
		heartbeat: DefaultHeartbeat, liveness: DefaultLivenessTimeout,
		retryMin: DefaultRetryBackoff, retryMax: DefaultMaxRetryBackoff,
		maxPeers: DefaultMaxPeers, maxInFlight: DefaultMaxInFlight,
		journalSync: DefaultJournalSync,
	}
	for i, o := range opts {
		if o == nil {
			return nil, invalid("option %d is nil", i)
		}
		if err := o.applyDistributor(s); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return s, nil
}

func newWorkerSettings(opts []WorkerOption) (*workerSettings, error) {
	s := &workerSettings{commonSettings: defaultCommon(), concurrency: 1, prefetch: DefaultPrefetch}
	for i, o := range opts {
		if o == nil {
			return nil, invalid("option %d is nil", i)
		}
		if err := o.applyWorker(s); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return s, nil
}

func newCollectorSettings(opts []CollectorOption) (*collectorSettings, error) {
	s := &collectorSettings{commonSettings: defaultCommon()}
	for i, o := range opts {
		if o == nil {
			return nil, invalid("option %d is nil", i)
		}
		if err := o.applyCollector(s); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return s, nil
}

func newMetadataSettings(opts []MetadataOption) (*commonSettings, error) {
	s := defaultCommon()
	for i, o := range opts {
		if o == nil {
			return nil, invalid("option %d is nil", i)
		}
		if err := o.applyMetadata(&s); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return &s, nil
}

// DefaultPrefetch, given to WithPrefetch, asks for the default window: one
// item held per executing goroutine beyond the one it executes. That is
// enough that no round trip sits between two items even when all of a
// worker's goroutines finish at once, and small enough that at the end of a
// run a worker sits on at most one round of items another worker could have
// taken.
//
// Items shorter than a round trip drain such a window, and items much
// shorter than a millisecond would travel nearly one to a message, so with
// the default the window grows: the worker doubles its prefetch each time
// a goroutine that finished an item finds none waiting and the next one
// comes soon after (within 50 ms), and each time a goroutine sees that the
// window holds less than 2 ms of items as long as its last ones; up to
// 1024 items, and while the items it holds take less than 16 MiB. Items longer than the round trip never wait and
// keep the window at its start; items that short cost little unfairness
// at the end of a run however many a worker holds.
const DefaultPrefetch = -1

// maxAutoPrefetch bounds how far the default window grows (see
// DefaultPrefetch); a worker with more goroutines than this starts, and
// stays, at one per goroutine. A window of 1024 covers the round trip of
// items that take microseconds across processes.
const maxAutoPrefetch = 1024

// minWindowWork: the default window grows while it holds less work than
// this (items that short are handled many to a message), so a worker's
// window, at the end of a run, holds a few milliseconds of work at most.
const minWindowWork = 2 * time.Millisecond

// maxAutoPrefetchBytes stops the default window growing while the
// payloads a worker holds take this much memory.
const maxAutoPrefetchBytes = 16 << 20

// starvedWithin is the longest wait for an item that counts as the window
// running dry rather than the distributor having nothing to hand out (a
// dependency not complete, a task not ready).
const starvedWithin = 50 * time.Millisecond

// maxPrefetch bounds WithPrefetch, and maxConcurrency WithConcurrency; a
// worker's goroutines and prefetch together must fit the credit a
// distributor keeps for one worker (maxWindow).
const (
	maxPrefetch    = 1 << 16
	maxConcurrency = 1 << 15
)

// DefaultEndGrace is how long a distributor waits, at the end of a run, for
// workers to confirm they saw the end before it returns anyway.
const DefaultEndGrace = 5 * time.Second

// Defaults for WithHeartbeat: every connection to the distributor carries
// a heartbeat each way every second, and a side that hears nothing from
// the other for five seconds takes it for gone.
const (
	DefaultHeartbeat       = time.Second
	DefaultLivenessTimeout = 5 * time.Second
)

// Defaults for WithRetryBackoff: a failed attempt waits 100 ms before it
// goes out again, doubling with each attempt up to 30 s, with jitter.
const (
	DefaultRetryBackoff    = 100 * time.Millisecond
	DefaultMaxRetryBackoff = 30 * time.Second
)

// Defaults for WithLimits: a distributor takes part in a run with at most
// 4096 peers at once, and has at most 65536 items handed out and not yet
// acknowledged, across every worker.
const (
	DefaultMaxPeers    = 4096
	DefaultMaxInFlight = 1 << 16
)

// DefaultMaxAttempts is the attempt limit of a task type whose TaskSpec
// does not set one: an item whose handler fails is tried three times in
// all, unless the error is permanent (ErrPermanent).
const DefaultMaxAttempts = 3

// WithLogger sets the component's logger; each component adds a
// "component" attribute (and "task_type" where there is one). The default
// discards everything. Per-item lines are logged only at debug level.
func WithLogger(l *slog.Logger) Option {
	return Option{name: "WithLogger", set: func(s *commonSettings) error {
		if l == nil {
			return errors.New("nil logger")
		}
		s.logger = l
		return nil
	}}
}

// WithCodec sets the codec for payloads, results, ACK data and metadata. All
// components of one pipeline must use the same codec. The default is
// transport.Msgpack.
func WithCodec(c transport.Codec) Option {
	return Option{name: "WithCodec", set: func(s *commonSettings) error {
		if c == nil {
			return errors.New("nil codec")
		}
		s.codec = c
		return nil
	}}
}

// WithTransport makes the component bind and dial every one of its
// endpoints with t, instead of the transport registered for the endpoint's
// scheme (transport.Register). It is how a transport with non-default
// settings (zmqtransport.New), or one that is not registered at all, is
// used. t also checks the endpoints' addresses at construction when it is a
// transport.EndpointChecker.
func WithTransport(t transport.Transport) Option {
	return Option{name: "WithTransport", set: func(s *commonSettings) error {
		if t == nil {
			return errors.New("nil transport")
		}
		s.transport = t
		return nil
	}}
}

// WithMetadata makes the distributor hand out nothing, and welcome no worker
// or collector, until a MetadataSource delivered its map.
func WithMetadata() DistributorOption {
	return distributorOption{name: "WithMetadata", set: func(s *distributorSettings) error {
		s.waitMetadata = true
		return nil
	}}
}

// WithEndGrace sets how long the distributor waits at the end of a run for
// every worker to confirm the end (DefaultEndGrace). A worker that does not
// answer in time (it was killed, say) is logged and the run still returns
// nil: all its items were already acknowledged.
func WithEndGrace(d time.Duration) DistributorOption {
	return distributorOption{name: "WithEndGrace", set: func(s *distributorSettings) error {
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
// each other start alike. 0, the default, starts with the first worker.
func WithQuorum(n int) DistributorOption {
	return distributorOption{name: "WithQuorum", set: func(s *distributorSettings) error {
		if n < 0 {
			return fmt.Errorf("quorum %d is negative", n)
		}
		s.quorum = n
		return nil
	}}
}

// WithLimits bounds what a distributor keeps, whatever its peers ask:
// maxPeers workers, collectors and metadata sources at once (a hello past
// it is refused: "too many peers"), and maxInFlight items handed out and
// not yet acknowledged, across every worker. A worker's window counts
// against the second in full (at most 65536 each); credit a worker
// announces past what is left waits until a worker leaves or is taken for
// gone. With the defaults (DefaultMaxPeers, DefaultMaxInFlight) the
// distributor's memory is bounded by 65536 times the size of an item, plus
// a little per peer.
func WithLimits(maxPeers, maxInFlight int) DistributorOption {
	return distributorOption{name: "WithLimits", set: func(s *distributorSettings) error {
		if maxPeers < 2 || maxInFlight < 1 {
			return fmt.Errorf("limits of %d peers and %d items in flight: want at least 2 peers (a worker and the collector) and 1 item", maxPeers, maxInFlight)
		}
		s.maxPeers, s.maxInFlight = maxPeers, maxInFlight
		return nil
	}}
}

// WithJournal makes the run durable: the distributor records it in the
// journal at path (package journal; created if missing, mode 0600, as it
// holds the run's assignment key), and a distributor started again on the
// same file resumes the run, with the same run id, instead of starting
// over. A journal of a completed run makes Run return nil at once; one of
// another pipeline is an error wrapping ErrJournalMismatch.
//
// Resuming asks every task for the items the journal says it produced,
// in the same order, and checks each against the journal (a task that
// gives another is ErrNotDeterministic), or, for a task that implements
// Resumer, calls Resume instead; it replays every recorded ACK to the
// tasks' HandleAck and WithAckHandler's handler, in order, so gating state
// comes back as it was; and it hands out again, attempt raised, every item
// that was not acknowledged. Workers and collectors that wait for their
// distributor (WithRejoin) join the resumed run, and a collector that
// survived handles none of its items twice.
//
// What survives what: an item is written to the journal before it goes
// out, and its ACK soon after it arrives, so a distributor killed at any
// point (kill -9) loses nothing and hands out again only what was not
// acknowledged. Records reach the disk every WithJournalSync interval; a
// power loss loses at most that interval's records, whose items go out
// again under new ids (ids are reserved ahead and synced at once, so none
// is ever reused), and a surviving collector may then handle them twice.
func WithJournal(path string) DistributorOption {
	return distributorOption{name: "WithJournal", set: func(s *distributorSettings) error {
		if path == "" {
			return errors.New("empty journal path")
		}
		s.journalPath = path
		return nil
	}}
}

// WithJournalSync sets how often a durable run's journal is synced to
// disk (DefaultJournalSync): what a power loss can cost (see
// WithJournal). Zero syncs before every hand-out, which costs an fsync per
// batch of items.
func WithJournalSync(every time.Duration) DistributorOption {
	return distributorOption{name: "WithJournalSync", set: func(s *distributorSettings) error {
		if every < 0 {
			return fmt.Errorf("sync interval %v is negative", every)
		}
		s.journalSync = every
		return nil
	}}
}

// WithAckHandler gives the distributor a handler that sees every ACK, of
// every task type, with the collector's ACK data: one place to watch a
// run's progress. It runs on the distributor's goroutine after the task's
// own AckHandler, if the task has one; an error or a panic aborts the run.
func WithAckHandler(h AckHandler) DistributorOption {
	return distributorOption{name: "WithAckHandler", set: func(s *distributorSettings) error {
		if h == nil {
			return errors.New("nil handler")
		}
		s.onAck = h
		return nil
	}}
}

// WithHeartbeat sets how often the distributor and each of its peers send
// each other a heartbeat, and after how long without a word from the other
// side each takes it for gone (DefaultHeartbeat, DefaultLivenessTimeout).
// A worker taken for gone has its items handed to other workers; a
// collector, the items in flight; a peer that loses the distributor stops
// (or waits for another, with WithRejoin). The distributor tells its peers
// both numbers when they join. timeout must be at least twice interval.
func WithHeartbeat(interval, timeout time.Duration) DistributorOption {
	return distributorOption{name: "WithHeartbeat", set: func(s *distributorSettings) error {
		if interval < time.Millisecond || interval > time.Hour {
			return fmt.Errorf("interval %v is not within 1ms..1h", interval)
		}
		if timeout < 2*interval || timeout > 24*time.Hour {
			return fmt.Errorf("timeout %v is not within twice the interval (%v)..24h", timeout, 2*interval)
		}
		s.heartbeat, s.liveness = interval, timeout
		return nil
	}}
}

// WithRetryBackoff sets how long an item whose attempt failed waits
// before it goes out again: min after the first attempt, doubling with
// each further one up to max, less a random part of up to a half, so that
// many failures at once do not come back at once (DefaultRetryBackoff,
// DefaultMaxRetryBackoff). The attempt limit is per task type
// (TaskSpec.MaxAttempts).
func WithRetryBackoff(min, max time.Duration) DistributorOption {
	return distributorOption{name: "WithRetryBackoff", set: func(s *distributorSettings) error {
		if min <= 0 || max < min {
			return fmt.Errorf("backoff %v..%v: want 0 < min <= max", min, max)
		}
		s.retryMin, s.retryMax = min, max
		return nil
	}}
}

// WithRejoin makes a worker or collector that lost its distributor (it
// heard nothing from it for the liveness timeout) wait up to within for a
// distributor to welcome it again, and take part in that distributor's
// run, a new run: what it held for the old one is dropped. Without it (or
// with 0), Run returns an error wrapping ErrDistributorLost at once.
func WithRejoin(within time.Duration) PeerOption {
	return peerOption{name: "WithRejoin", set: func(s *peerSettings) error {
		if within < 0 {
			return fmt.Errorf("rejoin bound %v is negative", within)
		}
		s.rejoin = within
		return nil
	}}
}

// WithConcurrency sets the number of goroutines that execute items in one
// worker, the original's MultiThreadedWorker (default 1: one item at a time,
// the SingleThreadedWorker). At most 32768.
func WithConcurrency(n int) WorkerOption {
	return workerOption{name: "WithConcurrency", set: func(s *workerSettings) error {
		if n < 1 {
			return fmt.Errorf("concurrency %d is below 1", n)
		}
		if n > maxConcurrency {
			return fmt.Errorf("concurrency %d is over %d", n, maxConcurrency)
		}
		s.concurrency = n
		return nil
	}}
}

// WithPrefetch sets how many items a worker holds beyond the ones it is
// executing; DefaultPrefetch (the default) holds one per goroutine and
// grows while items are shorter than a round trip or much shorter than a
// millisecond. A number fixes the
// window: 0 makes a round trip to the distributor sit between two items;
// more helps when items are tiny and the network slow, at the cost of
// fairness at the end of a run. At most 65536, and the goroutines plus
// the prefetch at most 65536.
func WithPrefetch(n int) WorkerOption {
	return workerOption{name: "WithPrefetch", set: func(s *workerSettings) error {
		if n < DefaultPrefetch || n > maxPrefetch {
			return fmt.Errorf("prefetch %d is not DefaultPrefetch or in 0..%d", n, maxPrefetch)
		}
		s.prefetch = n
		return nil
	}}
}

// WithPrepare sets the worker's main hook, the original's
// MultiThreadedWorker.handle_execution: it runs on the worker's main
// goroutine, one item at a time in arrival order, before the item goes to an
// executing goroutine; what it returns is the Job's Value there. An error
// fails the item.
func WithPrepare(fn func(ctx context.Context, job *Job) (any, error)) WorkerOption {
	return workerOption{name: "WithPrepare", set: func(s *workerSettings) error {
		if fn == nil {
			return errors.New("nil hook")
		}
		s.prepare = fn
		return nil
	}}
}

// WithWorkerInit sets a hook that runs once per worker after the handshake
// with the distributor, with the run's metadata (nil without metadata), and
// before the worker takes any item. An error ends the worker's Run.
func WithWorkerInit(fn func(ctx context.Context, md Metadata) error) WorkerOption {
	return workerOption{name: "WithWorkerInit", set: func(s *workerSettings) error {
		if fn == nil {
			return errors.New("nil hook")
		}
		s.workerInit = fn
		return nil
	}}
}

// WithGoroutineInit sets a hook that runs once in each executing goroutine,
// with its index (0 to concurrency-1) and the metadata, after the worker
// init hook and before the goroutine takes any item. An error ends the
// worker's Run.
func WithGoroutineInit(fn func(ctx context.Context, index int, md Metadata) error) WorkerOption {
	return workerOption{name: "WithGoroutineInit", set: func(s *workerSettings) error {
		if fn == nil {
			return errors.New("nil hook")
		}
		s.goroutineInit = fn
		return nil
	}}
}

// WithFailureHandler sets the collector's hook for failed items; it runs on
// the collector's goroutine, like the result handler. Without one, failures
// are only counted (and logged at warn level).
func WithFailureHandler(fn func(ctx context.Context, failure *ItemError)) CollectorOption {
	return collectorOption{name: "WithFailureHandler", set: func(s *collectorSettings) error {
		if fn == nil {
			return errors.New("nil hook")
		}
		s.onFailure = fn
		return nil
	}}
}

// WithFinished sets the collector's hook that runs exactly once when a run
// completes, after every result was handled. It does not run when the run
// is cancelled or aborted.
func WithFinished(fn func(ctx context.Context, summary Summary)) CollectorOption {
	return collectorOption{name: "WithFinished", set: func(s *collectorSettings) error {
		if fn == nil {
			return errors.New("nil hook")
		}
		s.onFinished = fn
		return nil
	}}
}

// WithCollectorInit sets a hook that runs once after the collector's
// handshake, with the run's metadata, before any result is handled. An
// error ends the collector's Run.
func WithCollectorInit(fn func(ctx context.Context, md Metadata) error) CollectorOption {
	return collectorOption{name: "WithCollectorInit", set: func(s *collectorSettings) error {
		if fn == nil {
			return errors.New("nil hook")
		}
		s.collectorInit = fn
		return nil
	}}
}
