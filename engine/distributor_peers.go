package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// peerState is what the distributor knows of one peer.
type peerState struct {
	id        transport.PeerID
	principal string // the key it said hello with; "" without authentication
	role      transport.Role
	taskType  string
	welcomed  bool
	announced bool   // the worker sent its first ready
	draining  bool   // the worker takes no more items
	gone      bool   // no longer in the run's peers: its credits are void
	window    uint32 // credits the worker announced in all
	granted   int    // of those, the credits the distributor gave it (see grant)
	earned    int    // its attempts the collector acknowledged (see grant)
	// handed counts the items handed to the worker in this run, progress
	// those it finished (from its heartbeats), progressAt when that last
	// grew, and busySince when it last went from holding nothing
	// unfinished to holding something (see reclaim).
	handed     uint32
	progress   uint32
	progressAt time.Time
	busySince  time.Time
	seen       uint64 // the tick of its last message
	rate       workerRate
	// out holds messages the transport could not take at once, in order;
	// work in it is bounded by the peer's credits.
	out []transport.Envelope
	// inBatch is, during a dispatch, 1 + the index of the worker's batch
	// of hand-outs; 0 otherwise.
	inBatch int
}

// maxWindow bounds the credits one worker may announce: its goroutines
// plus its prefetch (NewWorker refuses more).
const maxWindow = 1 << 16

// doneCtx is a context that has ended: a Send with it never waits (see
// transport.Listener).
var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func (r *distRun) handle(ctx context.Context, from transport.PeerID, env transport.Envelope) error {
	p := r.peers[from]
	if p != nil && env.Principal != p.principal {
		// The connection of that routing id is not the one that said
		// hello: nothing it sends counts for the peer.
		r.d.meter.ignore(r.d.log, IgnoredForbidden, "message under another key than its peer's hello; dropped", "kind", env.Kind, "peer", from, "key", env.Principal)
		return nil
	}
	if p != nil {
		p.seen = r.tick
	}
	switch env.Kind {
	case transport.KindHello, transport.KindMetadata, transport.KindBye, transport.KindStatus:
		// Each is answered, and a hello can cost a welcome: a peer that
		// sends them in a loop gets a few handled per tick, not an
		// answer (and a log line) per message.
		n := r.thisTick[from]
		if env.Kind == transport.KindHello && n.hello || n.others >= maxHandshakesPerTick {
			r.d.meter.ignore(r.d.log, IgnoredFlood, "too many handshakes from one peer in a heartbeat interval; dropped", "kind", env.Kind, "peer", from)
			return nil
		}
		if env.Kind == transport.KindHello {
			n.hello = true
		} else {
			n.others++
		}
		r.thisTick[from] = n
	}
	switch env.Kind {
	case transport.KindHello:
		return r.onHello(ctx, from, p, env)
	case transport.KindMetadata:
		return r.onMetadata(ctx, from, env)
	case transport.KindBye:
		return r.onBye(ctx, from, p, env)
	case transport.KindStatus:
		r.onStatus(from, env)
		return nil
	}
	if p == nil {
		// Not a peer of this run: declared gone, or it never said hello.
		// Tell it to start over; it drops what it holds for the run.
		r.d.meter.ignore(r.d.log, IgnoredNotInRun, "message from a peer that is not in the run; told to say hello again", "kind", env.Kind, "peer", from)
		if n := r.thisTick[from]; !n.toldGone {
			n.toldGone = true
			r.thisTick[from] = n
			r.tell(from, transport.Envelope{Kind: transport.KindReject, Count: uint32(transport.RejectGone), Payload: []byte("not a peer of this run: say hello again")})
		}
		return nil
	}
	if env.Run != r.runID {
		r.d.meter.ignore(r.d.log, IgnoredOtherRun, "message of another run; dropped", "kind", env.Kind, "peer", from, "run", runName(env.Run))
		return nil
	}
	switch env.Kind {
	case transport.KindHeartbeat:
		if p.role == transport.RoleWorker && env.Count != p.progress {
			p.progress, p.progressAt = env.Count, time.Now()
		}
		return nil
	case transport.KindReady:
		return r.onReady(ctx, p, env)
	case transport.KindAck:
		return r.onAcks(ctx, p, env)
	}
	r.d.meter.ignore(r.d.log, IgnoredUnexpected, "unexpected message; dropped", "kind", env.Kind, "peer", from)
	return nil
}

// post sends env to p, or keeps it in p's backlog, in order, when the
// transport cannot take it at once: the loop never waits on one peer.
func (r *distRun) post(ctx context.Context, p *peerState, env transport.Envelope) error {
	env.Run = r.runID
	if len(p.out) > 0 {
		p.out = append(p.out, env)
		return nil
	}
	return r.try(ctx, p, env)
}

// try sends env to p without waiting, or puts it first in p's backlog.
func (r *distRun) try(ctx context.Context, p *peerState, env transport.Envelope) error {
	err := r.l.Send(doneCtx, p.id, env)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		p.out = append(p.out, env)
		r.backlog[p] = struct{}{}
		return nil
	case errors.Is(err, transport.ErrUnknownPeer):
		return r.lose(ctx, p, "its connection closed", false)
	}
	return fmt.Errorf("send %s to %s: %w", env.Kind, p.id, err)
}

// flush sends what the backlogs hold, while the transport takes it.
func (r *distRun) flush(ctx context.Context) error {
	for p := range r.backlog {
		for len(p.out) > 0 {
			err := r.l.Send(doneCtx, p.id, p.out[0])
			if errors.Is(err, context.Canceled) {
				break
			}
			if errors.Is(err, transport.ErrUnknownPeer) {
				if err := r.lose(ctx, p, "its connection closed", false); err != nil {
					return err
				}
				break
			}
			if err != nil {
				return fmt.Errorf("send %s to %s: %w", p.out[0].Kind, p.id, err)
			}
			p.out[0] = transport.Envelope{}
			p.out = p.out[1:]
		}
		if len(p.out) == 0 {
			p.out = nil
			delete(r.backlog, p)
		}
	}
	return nil
}

// tell sends env to a peer the run does not track, if the transport takes
// it at once; such a peer asks again if it gets no answer.
func (r *distRun) tell(to transport.PeerID, env transport.Envelope) {
	env.Run = r.runID
	if err := r.l.Send(doneCtx, to, env); err != nil {
		r.d.log.Debug("could not answer a peer", "peer", to, "kind", env.Kind, "err", err)
	}
}

func (r *distRun) reject(ctx context.Context, to transport.PeerID, code transport.RejectCode, format string, args ...any) error {
	reason := fmt.Sprintf(format, args...)
	// Counted, and logged sparingly: a standby collector asks again every
	// second.
	r.d.meter.ignore(r.d.log, IgnoredRefused, "handshake refused", "peer", to, "why", reason)
	r.tell(to, transport.Envelope{Kind: transport.KindReject, Count: uint32(code), Payload: []byte(reason)})
	return nil
}

func (r *distRun) onHello(ctx context.Context, from transport.PeerID, p *peerState, env transport.Envelope) error {
	if p != nil {
		if !p.welcomed {
			return nil // it asked again while waiting for the metadata
		}
		// A welcomed peer said hello again: it lost its state for the run
		// (it was stopped, or it was told it was gone), or its welcome was
		// slow and it asked again. Either way it starts over as a new peer.
		if err := r.lose(ctx, p, "it said hello again", false); err != nil {
			return err
		}
	}
	if env.Role == transport.RoleWorker || env.Role == transport.RoleCollector {
		if err := r.authorize(env, env.Role); err != nil {
			return r.reject(ctx, from, transport.RejectForbidden, "%v", err)
		}
	}
	if len(r.peers) >= r.d.s.maxPeers {
		return r.reject(ctx, from, transport.RejectFull, "too many peers: this distributor takes %d at once (WithLimits)", r.d.s.maxPeers)
	}
	switch env.Role {
	case transport.RoleWorker:
		if _, ok := r.tasks[env.TaskType]; !ok {
			return r.reject(ctx, from, transport.RejectUnknownTaskType, "unknown task type %q (registered: %v)", env.TaskType, r.d.graph.Nodes())
		}
		if r.ending {
			r.tell(from, transport.Envelope{Kind: transport.KindEnd})
			return nil
		}
		p = &peerState{id: from, principal: env.Principal, role: transport.RoleWorker, taskType: env.TaskType, seen: r.tick}
		r.d.log.Info("worker joined", "peer", from, "task_type", env.TaskType, "concurrency", env.Count)
	case transport.RoleCollector:
		if r.collector != "" {
			return r.reject(ctx, from, transport.RejectDuplicate, "a collector is already connected")
		}
		p = &peerState{id: from, principal: env.Principal, role: transport.RoleCollector, seen: r.tick}
		r.collector = from
		r.d.log.Info("collector joined", "peer", from)
	default:
		return r.reject(ctx, from, transport.RejectUnexpected, "hello from unexpected role %v", env.Role)
	}
	r.peers[from] = p
	if !r.mdReady {
		r.waiting = append(r.waiting, from)
		return nil
	}
	return r.welcome(ctx, p)
}

// welcome completes a peer's handshake: the run id, the heartbeat
// interval, the liveness timeout, a worker's execution deadline, the
// collector's assignment key and the metadata.
func (r *distRun) welcome(ctx context.Context, p *peerState) error {
	env := transport.Envelope{
		Kind:    transport.KindWelcome,
		Count:   uint32(r.d.s.heartbeat.Milliseconds()),
		Attempt: uint32(r.d.s.liveness.Milliseconds()),
		Payload: r.md,
	}
	if ts := r.tasks[p.taskType]; ts != nil {
		env.ItemID = uint64(ts.spec.Timeout.Milliseconds())
	}
	if p.role == transport.RoleCollector {
		env.Token = r.tokenKey
		if err := r.tellDone(ctx, p); err != nil {
			return err
		}
	}
	p.welcomed = true
	p.seen = r.tick
	if err := r.post(ctx, p, env); err != nil {
		return err
	}
	if p.role != transport.RoleCollector || r.peers[p.id] != p {
		return nil
	}
	if r.ending {
		// The collector that was told of the end was lost; this one
		// confirms it instead, after its finished hook.
		r.collectorBye = false
		r.bye[p.id] = true
		return r.post(ctx, p, transport.Envelope{Kind: transport.KindEnd})
	}
	if r.tracker.AllComplete() {
		return r.startEnd(ctx)
	}
	return r.dispatchAll(ctx) // hand-out waited for a collector
}

// tellDone tells a collector, just before its welcome, which items are
// complete: every id issued but those still open. A collector that joins
// during a run (a new one, or one of a resumed durable run) then hands its
// handler no result the distributor already has an ACK for.
func (r *distRun) tellDone(ctx context.Context, p *peerState) error {
	if r.nextID == 0 {
		return nil
	}
	open := r.items.ids()
	payload, err := r.d.s.codec.Marshal(open)
	if err != nil {
		return fmt.Errorf("encode the open items for a collector: %w", err)
	}
	return r.post(ctx, p, transport.Envelope{Kind: transport.KindDone, ItemID: r.nextID, Payload: payload})
}

// onStatus answers a status request with the run's Status as JSON, made
// at most once per statusFresh however many ask (and, through the
// per-sender limit in handle, however often one asks). With keys, only a
// key with the status role (or all) gets an answer.
func (r *distRun) onStatus(from transport.PeerID, env transport.Envelope) {
	if err := r.authorize(env, transport.RoleObserver); err != nil {
		r.d.meter.ignore(r.d.log, IgnoredForbidden, "status request refused", "peer", from, "why", err)
		r.tell(from, transport.Envelope{Kind: transport.KindReject, Count: uint32(transport.RejectForbidden), Payload: []byte(err.Error())})
		return
	}
	if now := time.Now(); r.status == nil || now.Sub(r.statusAt) >= statusFresh {
		r.publishPeers(now, false) // the peers as they are, not as of the last heartbeat
		b, err := json.Marshal(r.d.Status())
		if err != nil {
			r.d.log.Error("could not encode the status", "err", err)
			return
		}
		r.status, r.statusAt = b, now
	}
	r.tell(from, transport.Envelope{Kind: transport.KindStatus, Payload: r.status})
}

// statusFresh is how long an answer to a status request is given again
// to whoever asks, rather than made anew.
const statusFresh = 100 * time.Millisecond

// authorize checks that the sender of env may take role, when the
// listener authenticates its peers.
func (r *distRun) authorize(env transport.Envelope, role transport.Role) error {
	if r.auth == nil {
		return nil
	}
	return r.auth.Authorize(env.Principal, role, env.TaskType)
}

func (r *distRun) onMetadata(ctx context.Context, from transport.PeerID, env transport.Envelope) error {
	if err := r.authorize(env, transport.RoleMetadata); err != nil {
		return r.reject(ctx, from, transport.RejectForbidden, "%v", err)
	}
	if !r.d.s.waitMetadata {
		return r.reject(ctx, from, transport.RejectUnexpected, "this distributor does not wait for metadata (see WithMetadata)")
	}
	if r.mdReady && r.dur != nil && r.dur.hasMD {
		// A resumed run kept its metadata: a source started again for it
		// is done.
		r.tell(from, transport.Envelope{Kind: transport.KindMetadata})
		return nil
	}
	if r.mdReady {
		return r.reject(ctx, from, transport.RejectDuplicate, "metadata was already delivered")
	}
	if _, err := decodeMetadata(r.d.s.codec, env.Payload); err != nil {
		return r.reject(ctx, from, transport.RejectUnexpected, "malformed metadata: %v", err)
	}
	r.tell(from, transport.Envelope{Kind: transport.KindMetadata})
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
	if r.dur != nil {
		if err := r.openJournal(ctx); err != nil {
			return err
		}
	}
	waiting := r.waiting
	r.waiting = nil
	for _, id := range waiting {
		if p := r.peers[id]; p != nil {
			if err := r.welcome(ctx, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *distRun) onReady(ctx context.Context, p *peerState, env transport.Envelope) error {
	if p.role != transport.RoleWorker || !p.welcomed {
		r.d.meter.ignore(r.d.log, IgnoredWrongRole, "credit from a peer that is not a welcomed worker; dropped", "peer", p.id)
		return nil
	}
	if env.Flags&transport.FlagDraining != 0 {
		// The worker finishes what it holds and takes nothing more.
		p.draining = true
		r.d.log.Info("worker draining", "peer", p.id, "task_type", p.taskType)
		return nil
	}
	// A later ready widens the worker's window; the whole window stays
	// bounded, so a peer cannot make the distributor hold unbounded credit.
	p.window += min(env.Count, maxWindow-p.window)
	first := !p.announced
	p.announced = true
	if r.ending || p.draining {
		return nil
	}
	r.grant(p)
	ts := r.tasks[p.taskType]
	if first {
		r.ready++
		if !r.quorumMet && r.ready >= r.d.s.quorum {
			r.quorumMet = true
			return r.dispatchAll(ctx) // every type may start
		}
	}
	return r.dispatch(ctx, ts)
}

// answered is what one peer got answered in a heartbeat interval: the
// distributor handles one hello and maxHandshakesPerTick goodbyes and
// metadata (an honest peer says hello at most once a second, helloRetry,
// and goodbye once or twice), and tells a stranger once to say hello
// again.
type answered struct {
	hello    bool
	others   int
	toldGone bool
}

const maxHandshakesPerTick = 3

// firstCredit is the most credit a worker that finished nothing yet is
// given (see grant).
const firstCredit = 32

// grant gives worker p as much of the credit it announced as it earned
// and the limit on items in flight leaves. A worker starts with at most
// firstCredit, and each of its attempts acknowledged earns it one more,
// so its credit can double every round trip, up to its window: a worker
// that announces a huge window and finishes nothing holds firstCredit
// items at most, however many it asked for.
func (r *distRun) grant(p *peerState) {
	n := min(int(p.window), firstCredit+p.earned) - p.granted
	n = min(n, r.d.s.maxInFlight-r.granted)
	if n <= 0 {
		return
	}
	ts := r.tasks[p.taskType]
	for range n {
		ts.slots.push(p)
	}
	p.granted += n
	r.granted += n
}

// release takes back the credit of a worker that left, and gives it to
// workers that announced more than they were given.
func (r *distRun) release(ctx context.Context, p *peerState) error {
	if p.granted == 0 {
		return nil
	}
	r.granted -= p.granted
	p.granted = 0
	if r.ending {
		return nil
	}
	for _, w := range r.peers {
		if w.role == transport.RoleWorker && w.announced && !w.draining && w.granted < int(w.window) {
			r.grant(w)
		}
	}
	return r.dispatchAll(ctx)
}

// heartbeat runs on every tick: it declares gone the peers silent for the
// liveness timeout and sends a heartbeat to the others. A peer whose
// backlog is not empty gets no heartbeat: it has messages waiting.
func (r *distRun) heartbeat(ctx context.Context) error {
	for id, at := range r.departed {
		if r.tick-at <= r.timeoutTicks {
			continue
		}
		delete(r.departed, id)
		for f := range r.items.all() {
			if f.worker != nil && f.worker.id == id {
				r.requeue(f)
			}
		}
		if err := r.dispatchAll(ctx); err != nil {
			return err
		}
	}
	for _, p := range r.peers {
		if !p.welcomed {
			continue
		}
		if r.tick-p.seen > r.timeoutTicks {
			if err := r.lose(ctx, p, fmt.Sprintf("silent for %v", r.d.s.liveness), false); err != nil {
				return err
			}
			continue
		}
		if len(p.out) == 0 {
			if err := r.try(ctx, p, transport.Envelope{Kind: transport.KindHeartbeat, Run: r.runID}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *distRun) onBye(ctx context.Context, from transport.PeerID, p *peerState, env transport.Envelope) error {
	var unfinished []uint64
	if len(env.Payload) > 0 {
		if err := r.d.s.codec.Unmarshal(env.Payload, &unfinished); err != nil {
			r.d.meter.ignore(r.d.log, IgnoredMalformed, "malformed list of unfinished items in a goodbye", "peer", from, "err", err)
			unfinished = nil
		}
	}
	// Confirm, so the peer knows the goodbye arrived before it closes.
	defer r.tell(from, transport.Envelope{Kind: transport.KindBye})
	// The items it will not finish go out again, to other workers.
	var retried []*taskState
	for _, id := range unfinished {
		if f := r.items.get(id); f != nil && f.worker != nil && f.worker.id == from {
			r.requeue(f)
			retried = append(retried, f.ts)
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
		delete(r.peers, from)
		p.gone = true
		delete(r.backlog, p)
		if from == r.collector {
			r.collector = ""
		}
		return nil
	default:
		r.d.log.Info("peer left", "peer", from, "role", p.role, "task_type", p.taskType, "items_handed_back", len(unfinished))
		if err := r.lose(ctx, p, "it said goodbye", true); err != nil {
			return err
		}
	}
	for _, ts := range retried {
		if err := r.dispatch(ctx, ts); err != nil {
			return err
		}
	}
	return nil
}

// lose forgets a peer. A worker's items go to other workers: all of them
// when it vanished, none when it said goodbye (its goodbye lists those it
// did not finish; the results of the others are on their way to the
// collector). When the collector is lost, every item in flight is handed
// out again once a collector joins: its result may have been lost with it.
func (r *distRun) lose(ctx context.Context, p *peerState, why string, clean bool) error {
	if r.peers[p.id] != p {
		return nil // already lost
	}
	delete(r.peers, p.id)
	p.gone = true
	delete(r.backlog, p)
	wasExpected := r.bye[p.id]
	delete(r.bye, p.id)
	if !clean {
		r.d.meter.peersLost.Add(1)
	}
	if p.role == transport.RoleCollector {
		if r.collector == p.id {
			r.collector = ""
		}
		if r.ending {
			if wasExpected {
				r.d.log.Warn("the collector was lost before it confirmed the end; every item was acknowledged", "peer", p.id, "why", why)
				r.collectorBye = true
			}
			return nil
		}
		r.d.log.Warn("collector lost: items in flight go out again once a collector joins", "peer", p.id, "why", why, "in_flight", r.items.len())
		for f := range r.items.all() {
			if f.queued {
				continue
			}
			// A live worker still executes this attempt: its credit
			// returns now, as the item is handed out again.
			if w := f.worker; w != nil && !w.gone && !w.draining && !r.ending {
				f.ts.slots.push(w)
			}
			r.requeue(f)
		}
		return nil
	}
	if err := r.release(ctx, p); err != nil {
		return err
	}
	if !clean || r.ending {
		lvl := "worker lost"
		if r.ending {
			lvl = "worker lost at the end of the run"
		}
		r.d.log.Warn(lvl, "peer", p.id, "task_type", p.taskType, "why", why)
	}
	if clean {
		// The results of its other items are on their way to the
		// collector, and items that crossed its goodbye come in a second
		// one. Whatever is neither by the liveness timeout goes out again.
		r.departed[p.id] = r.tick
		return nil
	}
	var retried []*taskState
	for f := range r.items.all() {
		if f.worker == p {
			r.requeue(f)
			retried = append(retried, f.ts)
		}
	}
	for _, ts := range retried {
		if err := r.dispatch(ctx, ts); err != nil {
			return err
		}
	}
	return nil
}
