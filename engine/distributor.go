package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/zmqpipeline/zmqpipeline/dag"
	"github.com/zmqpipeline/zmqpipeline/transport"
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

// Run binds the distributor endpoint and runs the pipeline: it returns nil
// once every task type is complete, the collector's finished hook ran and
// the workers confirmed the end (or DefaultEndGrace passed); ctx.Err() when
// ctx ends; a wrapped error when a task fails (its Next, Init or HandleAck
// returned an error or panicked). On any early return it tells every
// connected peer that the run was aborted. A Distributor runs once.
func (d *Distributor) Run(ctx context.Context) error {
	if !d.started.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer d.meter.summarize(d.log) // after the transports below are closed
	l, err := d.s.listen(ctx, d.ep.Distributor)
	if err != nil {
		return fmt.Errorf("distributor: %w", err)
	}
	d.meter.track(l)
	defer d.meter.release(l)
	addr := l.Addr().String()
	d.binding.set(addr)
	tracker, err := dag.NewTracker(d.graph)
	if err != nil {
		return fmt.Errorf("distributor: %w", err) // validated in NewDistributor; unreachable
	}
	r := &distRun{
		d: d, l: l, tracker: tracker,
		tasks: make(map[string]*taskState, len(d.specs)),
		peers: make(map[transport.PeerID]*peerState),
		items: make(map[uint64]*flight),
		bye:   make(map[transport.PeerID]bool),
	}
	for _, spec := range d.specs {
		r.tasks[spec.Type] = &taskState{spec: spec, log: d.s.logger.With("component", "task", "task_type", spec.Type)}
	}
	start := time.Now()
	d.log.Info("distributor running", "endpoint", addr, "task_types", len(d.specs), "wait_metadata", d.s.waitMetadata)
	if err := r.run(ctx); err != nil {
		r.abort(ctx, err)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("distributor: %w", err)
	}
	d.log.Info("run complete", "items", r.nextID, "elapsed", time.Since(start))
	return nil
}

// distRun is the state of one run. Only the Run goroutine touches it.
type distRun struct {
	d       *Distributor
	l       transport.Listener
	tracker *dag.Tracker
	tasks   map[string]*taskState
	peers   map[transport.PeerID]*peerState
	items   map[uint64]*flight // produced, not yet acknowledged
	nextID  uint64

	ready     int              // workers that announced capacity, for the quorum
	collector transport.PeerID // "" until a collector said hello
	mdReady   bool             // metadata arrived, or none is awaited
	md        []byte           // encoded metadata for welcomes
	waiting   []transport.PeerID

	ending        bool
	bye           map[transport.PeerID]bool // peers told of the end that have not confirmed
	collectorBye  bool
	graceDeadline time.Time
}

type taskState struct {
	spec      TaskSpec
	log       *slog.Logger
	exhausted bool // the task produced its last item
	parked    bool // Next returned ErrNotReady; ask again after an ACK
	complete  bool
	inflight  int
	produced  int
	failed    int
	slots     []transport.PeerID // one entry per credit, oldest first
	retry     []*flight          // produced, to be handed out again
}

type peerState struct {
	role      transport.Role
	taskType  string
	welcomed  bool
	announced bool   // the worker sent its first ready
	window    uint32 // credits the worker announced in all
}

// maxWindow bounds the credits one worker may announce: its goroutines
// plus its prefetch (NewWorker refuses more).
const maxWindow = 1 << 20

type flight struct {
	id       uint64
	taskType string
	attempt  uint32
	payload  []byte
	peer     transport.PeerID
}

func (r *distRun) run(ctx context.Context) error {
	if !r.d.s.waitMetadata {
		if err := r.metadataArrived(ctx, nil); err != nil {
			return err
		}
	}
	for {
		if r.ending && r.collectorBye && len(r.bye) == 0 {
			return nil
		}
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if r.ending && r.collectorBye {
			rctx, cancel = context.WithDeadline(ctx, r.graceDeadline)
		}
		from, env, err := r.l.Recv(rctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && rctx.Err() != nil {
				r.d.log.Warn("workers did not confirm the end in time; every item was acknowledged, so the run is complete", "workers", len(r.bye))
				return nil
			}
			return err
		}
		if err := r.handle(ctx, from, env); err != nil {
			return err
		}
	}
}

func (r *distRun) handle(ctx context.Context, from transport.PeerID, env transport.Envelope) error {
	switch env.Kind {
	case transport.KindHello:
		return r.onHello(ctx, from, env)
	case transport.KindReady:
		return r.onReady(ctx, from, env)
	case transport.KindAck:
		return r.onAck(ctx, env)
	case transport.KindMetadata:
		return r.onMetadata(ctx, from, env)
	case transport.KindBye:
		return r.onBye(ctx, from, env)
	case transport.KindHeartbeat:
		return nil
	default:
		r.d.meter.ignore(r.d.log, "unexpected message; dropped", "kind", env.Kind, "peer", from)
		return nil
	}
}

func (r *distRun) send(ctx context.Context, to transport.PeerID, env transport.Envelope) error {
	err := r.l.Send(ctx, to, env)
	if errors.Is(err, transport.ErrUnknownPeer) {
		r.d.log.Warn("peer gone", "peer", to, "kind", env.Kind)
		r.dropPeer(to)
		return nil
	}
	return err
}

func (r *distRun) reject(ctx context.Context, to transport.PeerID, code transport.RejectCode, format string, args ...any) error {
	reason := fmt.Sprintf(format, args...)
	r.d.log.Warn("handshake rejected", "peer", to, "reason", reason)
	return r.send(ctx, to, transport.Envelope{Kind: transport.KindReject, Count: uint32(code), Payload: []byte(reason)})
}

func (r *distRun) onHello(ctx context.Context, from transport.PeerID, env transport.Envelope) error {
	switch env.Role {
	case transport.RoleWorker:
		if _, ok := r.tasks[env.TaskType]; !ok {
			return r.reject(ctx, from, transport.RejectUnknownTaskType, "unknown task type %q (registered: %v)", env.TaskType, r.d.graph.Nodes())
		}
		if r.ending {
			return r.send(ctx, from, transport.Envelope{Kind: transport.KindEnd})
		}
		r.peers[from] = &peerState{role: transport.RoleWorker, taskType: env.TaskType}
		r.d.log.Info("worker joined", "peer", from, "task_type", env.TaskType, "concurrency", env.Count)
	case transport.RoleCollector:
		if r.collector != "" && r.collector != from {
			return r.reject(ctx, from, transport.RejectDuplicate, "a collector is already connected")
		}
		r.collector = from
		r.peers[from] = &peerState{role: transport.RoleCollector}
		r.d.log.Info("collector joined", "peer", from)
	default:
		return r.reject(ctx, from, transport.RejectUnexpected, "hello from unexpected role %v", env.Role)
	}
	if !r.mdReady {
		r.waiting = append(r.waiting, from)
		return nil
	}
	return r.welcome(ctx, from)
}

func (r *distRun) welcome(ctx context.Context, to transport.PeerID) error {
	p := r.peers[to]
	if p == nil {
		return nil // left while waiting
	}
	if err := r.send(ctx, to, transport.Envelope{Kind: transport.KindWelcome, Payload: r.md}); err != nil {
		return err
	}
	p.welcomed = true
	if p.role == transport.RoleCollector && r.tracker.AllComplete() {
		return r.startEnd(ctx)
	}
	return nil
}

func (r *distRun) onMetadata(ctx context.Context, from transport.PeerID, env transport.Envelope) error {
	if !r.d.s.waitMetadata {
		return r.reject(ctx, from, transport.RejectUnexpected, "this distributor does not wait for metadata (see WithMetadata)")
	}
	if r.mdReady {
		return r.reject(ctx, from, transport.RejectDuplicate, "metadata was already delivered")
	}
	if _, err := decodeMetadata(r.d.s.codec, env.Payload); err != nil {
		return r.reject(ctx, from, transport.RejectUnexpected, "malformed metadata: %v", err)
	}
	if err := r.send(ctx, from, transport.Envelope{Kind: transport.KindMetadata}); err != nil {
		return err
	}
	r.d.log.Info("metadata received", "bytes", len(env.Payload))
	return r.metadataArrived(ctx, env.Payload)
}

// metadataArrived initialises the tasks, welcomes the peers that waited and
// starts handing out work.
func (r *distRun) metadataArrived(ctx context.Context, payload []byte) error {
	r.mdReady, r.md = true, payload
	order, err := r.d.graph.TopoOrder()
	if err != nil {
		return err
	}
	for _, t := range order {
		ts := r.tasks[t]
		init, ok := ts.spec.Task.(TaskInitializer)
		if !ok {
			continue
		}
		md, err := decodeMetadata(r.d.s.codec, payload) // a map of its own per task
		if err != nil {
			return err
		}
		if err := protect(func() error { return init.Init(ctx, md) }); err != nil {
			return fmt.Errorf("task %q: init: %w", t, err)
		}
	}
	waiting := r.waiting
	r.waiting = nil
	for _, p := range waiting {
		if err := r.welcome(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (r *distRun) onReady(ctx context.Context, from transport.PeerID, env transport.Envelope) error {
	p := r.peers[from]
	if p == nil || p.role != transport.RoleWorker || !p.welcomed {
		r.d.meter.ignore(r.d.log, "credit from a peer that is not a welcomed worker; dropped", "peer", from)
		return nil
	}
	// A later ready widens the worker's window; the whole window stays
	// bounded, so a peer cannot make the distributor hold unbounded credit.
	n := min(env.Count, maxWindow-p.window)
	p.window += n
	first := !p.announced
	p.announced = true
	if r.ending {
		return nil
	}
	ts := r.tasks[p.taskType]
	for range n {
		ts.slots = append(ts.slots, from)
	}
	if !first {
		return r.dispatch(ctx, ts)
	}
	r.ready++
	if r.ready == r.d.s.quorum { // the quorum is complete: every type may start
		for _, t := range r.d.graph.Nodes() {
			if err := r.dispatch(ctx, r.tasks[t]); err != nil {
				return err
			}
		}
		return nil
	}
	return r.dispatch(ctx, ts)
}

// canHandOut reports whether ts may hand out an item now.
func (r *distRun) canHandOut(ts *taskState) bool {
	if !r.mdReady || r.ready < r.d.s.quorum || ts.complete || !r.tracker.Ready(ts.spec.Type) {
		return false
	}
	return len(ts.retry) > 0 || !ts.exhausted && !ts.parked
}

// dispatch hands out items of ts while a worker has credit and the task can
// produce.
func (r *distRun) dispatch(ctx context.Context, ts *taskState) error {
	for len(ts.slots) > 0 && r.canHandOut(ts) {
		to := ts.slots[0]
		if _, ok := r.peers[to]; !ok {
			ts.slots = ts.slots[1:]
			continue
		}
		var f *flight
		if n := len(ts.retry); n > 0 {
			f, ts.retry = ts.retry[0], ts.retry[1:]
		} else {
			var err error
			if f, err = r.produce(ctx, ts); err != nil || f == nil {
				return err
			}
		}
		ts.slots = ts.slots[1:]
		f.peer = to
		err := r.l.Send(ctx, to, transport.Envelope{Kind: transport.KindWork, TaskType: f.taskType, ItemID: f.id, Attempt: f.attempt, Payload: f.payload})
		if errors.Is(err, transport.ErrUnknownPeer) {
			r.dropPeer(to)
			ts.retry = append(ts.retry, f)
			continue
		}
		if err != nil {
			return fmt.Errorf("send item %d to %s: %w", f.id, to, err)
		}
	}
	return nil
}

// produce asks the task for its next item. It returns nil without an error
// when the task has no item to give now.
func (r *distRun) produce(ctx context.Context, ts *taskState) (*flight, error) {
	var item Item
	err := protect(func() (err error) { item, err = ts.spec.Task.Next(ctx); return err })
	switch {
	case err == nil:
	case errors.Is(err, ErrNoMoreItems):
		ts.exhausted = true
		return nil, r.checkComplete(ctx, ts)
	case errors.Is(err, ErrNotReady):
		if ts.inflight == 0 {
			return nil, fmt.Errorf("task %q returned ErrNotReady with none of its items in flight, so no ACK can come to wake it", ts.spec.Type)
		}
		ts.parked = true
		return nil, nil
	default:
		return nil, fmt.Errorf("task %q: next item: %w", ts.spec.Type, err)
	}
	payload, err := r.d.s.codec.Marshal(item.Payload)
	if err != nil {
		return nil, fmt.Errorf("task %q: encode item payload with %s: %w", ts.spec.Type, r.d.s.codec.Name(), err)
	}
	r.nextID++
	f := &flight{id: r.nextID, taskType: ts.spec.Type, attempt: 1, payload: payload}
	r.items[f.id] = f
	ts.inflight++
	ts.produced++
	if item.Last {
		ts.exhausted = true
	}
	return f, nil
}

func (r *distRun) onAck(ctx context.Context, env transport.Envelope) error {
	f := r.items[env.ItemID]
	if f == nil || f.taskType != env.TaskType {
		r.d.meter.ignore(r.d.log, "ACK for an item not in flight; dropped", "task_type", env.TaskType, "item", env.ItemID)
		return nil
	}
	delete(r.items, env.ItemID)
	ts := r.tasks[f.taskType]
	ts.inflight--
	failed := env.Flags&transport.FlagFailed != 0
	if failed {
		ts.failed++
	}
	taskHandler, _ := ts.spec.Task.(AckHandler)
	if taskHandler != nil || r.d.s.onAck != nil {
		ack := &Ack{TaskType: f.taskType, ItemID: f.id, Attempt: int(env.Attempt), Failed: failed, codec: r.d.s.codec}
		if failed {
			ack.Error = string(env.Payload)
		} else {
			ack.data = env.Payload
		}
		if taskHandler != nil {
			if err := protect(func() error { return taskHandler.HandleAck(ctx, ack) }); err != nil {
				return fmt.Errorf("task %q: ack handler: %w", f.taskType, err)
			}
		}
		if h := r.d.s.onAck; h != nil {
			if err := protect(func() error { return h.HandleAck(ctx, ack) }); err != nil {
				return fmt.Errorf("ack handler (WithAckHandler), at task %q item %d: %w", f.taskType, f.id, err)
			}
		}
	}
	// The worker's capacity comes back with the ACK: its window bounds the
	// items it holds plus its results not yet acknowledged.
	if p := r.peers[f.peer]; p != nil && p.role == transport.RoleWorker && !r.ending {
		ts.slots = append(ts.slots, f.peer)
	}
	ts.parked = false
	if err := r.checkComplete(ctx, ts); err != nil {
		return err
	}
	return r.dispatch(ctx, ts)
}

// checkComplete marks ts complete once its last item was produced and every
// item acknowledged, then releases its dependents.
func (r *distRun) checkComplete(ctx context.Context, ts *taskState) error {
	if ts.complete || !ts.exhausted || ts.inflight > 0 {
		return nil
	}
	ts.complete = true
	released, err := r.tracker.Complete(ts.spec.Type)
	if err != nil {
		return err
	}
	ts.log.Info("task type complete", "items", ts.produced, "failed", ts.failed)
	for _, t := range released {
		if err := r.dispatch(ctx, r.tasks[t]); err != nil {
			return err
		}
	}
	if r.tracker.AllComplete() {
		return r.startEnd(ctx)
	}
	return nil
}

// startEnd tells the collector and every worker that the run is over, once
// the collector is there to hear it.
func (r *distRun) startEnd(ctx context.Context) error {
	if r.ending {
		return nil
	}
	if c := r.peers[r.collector]; c == nil || !c.welcomed {
		r.d.log.Info("all task types complete; waiting for the collector to join")
		return nil
	}
	r.ending = true
	r.graceDeadline = time.Now().Add(r.d.s.endGrace)
	for id := range r.peers {
		r.bye[id] = true
	}
	for id := range r.peers {
		if err := r.send(ctx, id, transport.Envelope{Kind: transport.KindEnd}); err != nil {
			return err
		}
	}
	return nil
}

func (r *distRun) onBye(ctx context.Context, from transport.PeerID, env transport.Envelope) error {
	p := r.peers[from]
	var unfinished []uint64
	if len(env.Payload) > 0 {
		if err := r.d.s.codec.Unmarshal(env.Payload, &unfinished); err != nil {
			r.d.meter.ignore(r.d.log, "malformed list of unfinished items in a goodbye", "peer", from, "err", err)
		}
	}
	switch {
	case p == nil:
		// A second goodbye, with items that crossed the first one.
	case r.ending:
		if from == r.collector {
			r.collectorBye = true
		}
		delete(r.bye, from)
	case p.role == transport.RoleCollector:
		r.d.log.Warn("the collector left before the end of the run")
	default:
		r.d.log.Info("worker left", "peer", from, "task_type", p.taskType, "items_handed_back", len(unfinished))
	}
	r.dropPeer(from)
	var retried []*taskState
	for _, id := range unfinished {
		if f := r.items[id]; f != nil && f.peer == from {
			f.attempt++
			f.peer = ""
			ts := r.tasks[f.taskType]
			ts.retry = append(ts.retry, f)
			retried = append(retried, ts)
		}
	}
	// Confirm, so the peer knows the goodbye arrived before it closes.
	if err := r.send(ctx, from, transport.Envelope{Kind: transport.KindBye}); err != nil {
		return err
	}
	for _, ts := range retried {
		if err := r.dispatch(ctx, ts); err != nil {
			return err
		}
	}
	return nil
}

// dropPeer forgets a peer. Its credit slots are skipped when reached.
func (r *distRun) dropPeer(id transport.PeerID) {
	delete(r.peers, id)
	delete(r.bye, id)
	if id == r.collector {
		r.collector = ""
		if r.ending {
			r.collectorBye = true
		}
	}
}

// abort tells every peer the run ended early, with why. It has its own
// short deadline: ctx may be over.
func (r *distRun) abort(ctx context.Context, cause error) {
	reason := cause.Error()
	if ctx.Err() != nil {
		reason = "the distributor was cancelled"
		r.d.log.Info("run cancelled")
	} else {
		r.d.log.Error("run aborted", "err", cause)
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), byeTimeout)
	defer cancel()
	for id := range r.peers {
		if err := r.l.Send(actx, id, transport.Envelope{Kind: transport.KindEnd, Payload: []byte(reason)}); err != nil {
			r.d.log.Warn("could not tell a peer of the abort", "peer", id, "err", err)
		}
	}
}
