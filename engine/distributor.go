package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/zmqpipeline/zmqpipeline/dag"
	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/auth"
)

// Distributor owns the registered tasks and hands their items to workers
// that announced capacity, tracks every item until the collector
// acknowledges it, releases dependent task types when their dependencies are
// complete, and ends the run.
type Distributor struct {
	ep      Endpoints
	specs   []TaskSpec
	graph   *dag.Graph
	s       *distributorSettings
	log     *slog.Logger
	started atomic.Bool
	binding binding
	meter   meter

	done, produced atomic.Int64 // the run's progress, for Progress

	// For Status: the run under way, when it ended, and its peers as of
	// the last heartbeat interval.
	live  atomic.Pointer[distRun]
	ended atomic.Pointer[time.Time]
	peers atomic.Pointer[peerView]
}

// NewDistributor validates the tasks, their dependency graph, the
// distributor endpoint and the options, and returns a distributor. Errors
// wrap ErrInvalidConfig and name the culprit: an empty, over-long or
// duplicate type, a nil Task, a dependency on a type that is not
// registered (dag.ErrUnknownDependency), a cycle (a *dag.CycleError naming
// its path), an endpoint the transport refuses.
func NewDistributor(ep Endpoints, tasks []TaskSpec, opts ...DistributorOption) (*Distributor, error) {
	if len(tasks) == 0 {
		return nil, invalid("distributor: no tasks registered")
	}
	g := dag.New()
	for i, spec := range tasks {
		switch {
		case spec.Type == "":
			return nil, invalid("distributor: task %d: empty task type", i)
		case len(spec.Type) > transport.MaxTaskTypeLen:
			return nil, invalid("distributor: task %d: task type is %d bytes, over %d", i, len(spec.Type), transport.MaxTaskTypeLen)
		case spec.Task == nil:
			return nil, invalid("distributor: task %q: nil Task", spec.Type)
		}
		if err := g.Add(spec.Type, spec.DependsOn...); err != nil {
			return nil, fmt.Errorf("%w: distributor: %w", ErrInvalidConfig, err)
		}
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("%w: distributor: %w", ErrInvalidConfig, err)
	}
	s, err := newDistributorSettings(opts)
	if err != nil {
		return nil, fmt.Errorf("distributor: %w", err)
	}
	if err := ep.distinct("distributor"); err != nil {
		return nil, err
	}
	if err := s.checkEndpoint("distributor", "distributor", ep.Distributor, transport.ForListen); err != nil {
		return nil, err
	}
	return &Distributor{
		ep: ep, specs: slices.Clone(tasks), graph: g, s: s,
		log:     s.logger.With("component", "distributor"),
		binding: newBinding(),
	}, nil
}

// Bound returns a channel that is closed once the distributor is bound to
// its endpoint and peers can reach it. It is never closed if Run fails
// before that.
func (d *Distributor) Bound() <-chan struct{} { return d.binding.bound.ch }

// Addr returns the endpoint the distributor is bound to, as its transport
// reports it (a tcp port given as 0 is the port the system picked), or ""
// before Bound is closed. Peers dial it.
func (d *Distributor) Addr() string {
	return d.binding.endpoint()
}

// Stats returns what the distributor's transport dropped and what it
// ignored. Safe to call concurrently with Run.
func (d *Distributor) Stats() Stats { return d.meter.stats() }

// Progress returns how many items of the run are complete (acknowledged,
// succeeded or failed for good) and how many its tasks produced so far.
// Safe to call concurrently with Run.
func (d *Distributor) Progress() (done, produced int64) { return d.done.Load(), d.produced.Load() }

// Run binds the distributor endpoint and runs the pipeline: it returns nil
// once every task type is complete, the collector's finished hook ran and
// the workers confirmed the end (or DefaultEndGrace passed); an error
// wrapping ctx.Err() when ctx ends; a wrapped error when a task fails (its
// Next, Init or HandleAck returned an error or panicked). On any early
// return it tells every peer that the run was aborted and waits, briefly,
// for each to confirm. A Distributor runs once.
func (d *Distributor) Run(ctx context.Context) error {
	if !d.started.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer d.meter.summarize(d.log) // after the transports below are closed
	var dur *durable
	if d.s.journalPath != "" {
		var err error
		if dur, err = readJournal(d); err != nil {
			return err
		}
		if dur.complete {
			d.log.Info("the journal's run is complete; nothing to hand out", "journal", dur.path, "run", runName(dur.run))
			return nil
		}
	}
	l, err := d.s.listen(ctx, d.ep.Distributor)
	if err != nil {
		return fmt.Errorf("distributor: %w", err)
	}
	d.meter.track(l)
	defer d.meter.release(l)
	addr := l.Addr().String()
	warnIfExposed(d.log, l)
	d.binding.set(addr)
	r, err := newDistRun(d, l, dur)
	if err != nil {
		return fmt.Errorf("distributor: %w", err)
	}
	start := r.started
	d.live.Store(r)
	defer func() { end := time.Now(); d.ended.Store(&end) }()
	d.log.Info("distributor running", "endpoint", addr, "run", runName(r.runID), "task_types", len(d.specs),
		"wait_metadata", d.s.waitMetadata, "heartbeat", d.s.heartbeat, "liveness_timeout", d.s.liveness)
	err = r.run(ctx)
	r.alarm.stop()
	if errors.Is(err, errResumedComplete) {
		d.log.Info("the journal's run is complete; nothing to hand out", "journal", dur.path, "run", runName(r.runID))
		return r.closeJournal(true)
	}
	if jerr := r.closeJournal(err == nil); err == nil && jerr != nil {
		err = jerr
	}
	if err != nil {
		r.abort(ctx, err)
		done, produced := d.Progress()
		if ctx.Err() != nil {
			return fmt.Errorf("distributor: stopped before the run completed (%d items done of %d produced): %w", done, produced, context.Cause(ctx))
		}
		return fmt.Errorf("distributor: %w", err)
	}
	_, produced := d.Progress()
	d.log.Info("run complete", "items", produced, "redelivered", d.meter.redelivered.Load(), "elapsed", time.Since(start))
	return nil
}

// distRun is the state of one run. Only the Run goroutine touches it.
type distRun struct {
	d       *Distributor
	l       transport.Listener
	auth    auth.Authorizer // nil when the listener trusts every peer
	runID   uint64
	tracker *dag.Tracker
	tasks   map[string]*taskState
	order   []*taskState // in the order the tasks were registered
	peers   map[transport.PeerID]*peerState
	items   itemTable // produced, not yet complete
	nextID  uint64
	// The run's assignment key signs every hand-out; the collector gets
	// it in its welcome and checks results with it.
	tokenKey transport.Token
	signer   *tokenSigner
	dur      *durable // the journal of a durable run (WithJournal); nil otherwise

	started time.Time

	// Scratch space of dispatch and onAcks, reused from call to call.
	handouts []handout
	payloads slab // where produced items are encoded
	// spareFlights are completed flights for reuse: an item costs no
	// allocation of its own in a steady run.
	spareFlights []*flight
	touched      []*taskState

	delayed  retryHeap // failed attempts waiting out their backoff
	backlog  map[*peerState]struct{}
	departed map[transport.PeerID]uint64 // workers that said goodbye, and the tick they did
	// thisTick is what each sender got answered in this heartbeat
	// interval: its hellos, goodbyes and metadata, and whether it was told
	// to say hello again. Cleared every tick.
	thisTick map[transport.PeerID]answered
	// status is the last answer to a status request, made at statusAt.
	status   []byte
	statusAt time.Time

	ready     int              // workers that announced capacity, for the quorum
	granted   int              // credit given to workers, in all (WithLimits)
	quorumMet bool             // the quorum was met once: it never gates again
	collector transport.PeerID // the welcomed collector, "" while there is none
	mdReady   bool             // metadata arrived, or none is awaited
	md        []byte           // encoded metadata for welcomes
	waiting   []transport.PeerID

	// Liveness counts heartbeat ticks of this loop, not wall time, so a
	// distributor that was itself held up (a slow task, a stopped
	// process) does not declare its peers gone for its own silence.
	tick         uint64
	timeoutTicks uint64
	nextTick     time.Time
	alarm        alarm

	stopped       bool // the run is being aborted: nothing more goes out
	ending        bool
	bye           map[transport.PeerID]bool // peers told of the end that have not confirmed
	collectorBye  bool
	graceDeadline time.Time
}

func newDistRun(d *Distributor, l transport.Listener, dur *durable) (*distRun, error) {
	tracker, err := dag.NewTracker(d.graph)
	if err != nil {
		return nil, err // validated in NewDistributor; unreachable
	}
	key := newTokenKey()
	r := &distRun{
		d: d, l: l, auth: authorizerOf(l), runID: newRunID(), tracker: tracker, tokenKey: key, signer: newTokenSigner(key),
		tasks:        make(map[string]*taskState, len(d.specs)),
		peers:        make(map[transport.PeerID]*peerState),
		backlog:      make(map[*peerState]struct{}),
		departed:     make(map[transport.PeerID]uint64),
		thisTick:     make(map[transport.PeerID]answered),
		bye:          make(map[transport.PeerID]bool),
		timeoutTicks: uint64((d.s.liveness + d.s.heartbeat - 1) / d.s.heartbeat),
		dur:          dur,
		payloads:     slab{codec: d.s.codec},
		started:      time.Now(),
	}
	if dur != nil && dur.begun {
		r.runID, r.tokenKey, r.signer = dur.run, dur.key, newTokenSigner(dur.key)
	}
	for i, spec := range d.specs {
		ts := &taskState{
			spec:        spec,
			index:       uint32(i),
			maxAttempts: uint32(cmp.Or(spec.MaxAttempts, DefaultMaxAttempts)),
			log:         d.s.logger.With("component", "task", "task_type", spec.Type),
		}
		ts.ackHandler, _ = spec.Task.(AckHandler)
		if len(spec.DependsOn) == 0 {
			ts.counts.state.Store(int32(TaskRunning))
		}
		r.tasks[spec.Type] = ts
		r.order = append(r.order, ts)
	}
	return r, nil
}

// newRunID returns a random, non-zero run id.
func newRunID() uint64 {
	for {
		if id := rand.Uint64(); id != 0 {
			return id
		}
	}
}

// runName is how logs show a run id.
func runName(id uint64) string { return fmt.Sprintf("%016x", id) }

func (r *distRun) run(ctx context.Context) error {
	r.alarm.parent = ctx
	r.nextTick = time.Now().Add(r.d.s.heartbeat)
	switch {
	case !r.d.s.waitMetadata:
		if err := r.metadataArrived(ctx, nil); err != nil {
			return err
		}
	case r.dur != nil && r.dur.hasMD:
		// A resumed run has its metadata already.
		if err := r.metadataArrived(ctx, r.dur.md); err != nil {
			return err
		}
	}
	for {
		if err := r.writeJournal(); err != nil {
			return err
		}
		if r.ending && r.collectorBye && len(r.bye) == 0 {
			return nil
		}
		if len(r.backlog) > 0 {
			if err := r.flush(ctx); err != nil {
				return err
			}
		}
		rctx := r.alarm.until(r.nextWake())
		from, env, err := r.l.Recv(rctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if rctx.Err() == nil {
				return err
			}
			over, err := r.onTimers(ctx, time.Now())
			if err != nil || over {
				return err
			}
			continue
		}
		if err := r.handle(ctx, from, env); err != nil {
			return err
		}
		// A loop that always finds a message waiting still keeps its
		// timers: heartbeats, liveness, retries.
		if now := time.Now(); !now.Before(r.nextWake()) {
			over, err := r.onTimers(ctx, now)
			if err != nil || over {
				return err
			}
		}
	}
}

// flushEvery is how soon the loop tries again to send what a peer's full
// buffer held back, when nothing else wakes it.
const flushEvery = 5 * time.Millisecond

// nextWake is when the loop must look at its timers next.
func (r *distRun) nextWake() time.Time {
	t := r.nextTick
	if due, ok := r.delayed.next(); ok && due.Before(t) {
		t = due
	}
	if r.ending && r.collectorBye && r.graceDeadline.Before(t) {
		t = r.graceDeadline
	}
	if len(r.backlog) > 0 {
		if soon := time.Now().Add(flushEvery); soon.Before(t) {
			t = soon
		}
	}
	return t
}

// onTimers runs what is due at now: the heartbeat tick (heartbeats out,
// silent peers declared gone), retries whose backoff passed, and the end
// of the grace for workers to confirm the end. over reports that the run
// is complete.
func (r *distRun) onTimers(ctx context.Context, now time.Time) (over bool, err error) {
	if !now.Before(r.nextTick) {
		r.tick++
		clear(r.thisTick)
		r.nextTick = now.Add(r.d.s.heartbeat)
		if err := r.heartbeat(ctx); err != nil {
			return false, err
		}
		r.publishPeers(now, true)
		if err := r.reclaim(ctx, now); err != nil {
			return false, err
		}
	}
	if err := r.releaseRetries(ctx, now); err != nil {
		return false, err
	}
	if r.ending && r.collectorBye && !now.Before(r.graceDeadline) {
		r.d.log.Warn("workers did not confirm the end in time; every item was acknowledged, so the run is complete", "workers", len(r.bye))
		return true, nil
	}
	return false, nil
}

// alarm gives the loop a context that ends when its timers are due, so
// that Recv returns then; a message costs nothing more than before. One
// context serves every Recv until it ends.
type alarm struct {
	parent context.Context
	ctx    context.Context
	cancel context.CancelFunc
	timer  *time.Timer
	at     time.Time
}

// until returns a context that ends at t at the latest.
func (a *alarm) until(t time.Time) context.Context {
	if a.ctx != nil && a.ctx.Err() == nil {
		if !t.Before(a.at) {
			return a.ctx
		}
		if a.timer.Stop() {
			a.at = t
			a.timer.Reset(time.Until(t))
			return a.ctx
		}
		// The timer fired: its context is ending; make a new one.
	}
	if a.cancel != nil {
		a.cancel()
	}
	a.ctx, a.cancel = context.WithCancel(a.parent)
	a.at = t
	a.timer = time.AfterFunc(time.Until(t), a.cancel)
	return a.ctx
}

func (a *alarm) stop() {
	if a.timer != nil {
		a.timer.Stop()
		a.cancel()
	}
}
