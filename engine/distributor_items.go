package engine

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

type taskState struct {
	spec        TaskSpec
	index       uint32 // in the distributor's specs, as the journal records it
	maxAttempts uint32
	log         *slog.Logger
	exhausted   bool // the task produced its last item
	parked      bool // Next returned ErrNotReady; ask again after an ACK
	complete    bool
	inflight    int
	produced    int
	failed      int
	slots       fifo[*peerState] // one entry per credit, oldest first
	retry       []*flight        // to be handed out again, oldest first
	touched     bool             // in distRun.touched
	ackHandler  AckHandler       // the task's, if it is one
	counts      taskCounts       // for Status
}

// flight is an item from its production to its completion.
type flight struct {
	id      uint64
	ts      *taskState
	attempt uint32 // of the hand-out in progress, or of the next one while queued
	payload []byte
	trace   []byte     // the item's trace context as the wire carries it; nil for none
	worker  *peerState // the worker of the current attempt; nil while queued
	queued  bool       // in ts.retry or waiting out a backoff
	done    bool
}

// handedOut reports whether the given attempt of f went to a worker.
func (f *flight) handedOut(attempt uint32) bool {
	return attempt >= 1 && (attempt < f.attempt || attempt == f.attempt && !f.queued)
}

// canHandOut reports whether ts may hand out an item now.
func (r *distRun) canHandOut(ts *taskState) bool {
	if r.stopped || !r.mdReady || !r.quorumMet || r.collector == "" || ts.complete || !r.tracker.Ready(ts.spec.Type) {
		return false
	}
	return len(ts.retry) > 0 || !ts.exhausted && !ts.parked
}

// dispatchAll hands out what every task type can.
func (r *distRun) dispatchAll(ctx context.Context) error {
	for _, ts := range r.order {
		if err := r.dispatch(ctx, ts); err != nil {
			return err
		}
	}
	return nil
}

// dispatch hands out items of ts while a worker has credit and the task can
// produce: items to hand out again first, then new ones. With a journal,
// what it produced is written before any of it goes out. Each worker gets
// what it was handed in one message: a batch as large as its credit.
func (r *distRun) dispatch(ctx context.Context, ts *taskState) error {
	// Producing can complete a task and dispatch its dependents, and a
	// send can lose a peer and dispatch its items: this call owns its
	// scratch space while nested ones make their own.
	out := r.handouts[:0]
	r.handouts = nil
	defer func() { clear(out); r.handouts = out[:0] }()
	for ts.slots.len() > 0 && r.canHandOut(ts) {
		p := ts.slots.front()
		if p.gone || p.draining {
			ts.slots.pop()
			continue
		}
		var f *flight
		if len(ts.retry) > 0 {
			f, ts.retry = ts.retry[0], ts.retry[1:]
			if f.done {
				continue
			}
		} else {
			var err error
			if f, err = r.produce(ctx, ts); err != nil {
				return err // the run aborts
			}
			if f == nil {
				break // nothing to produce now; what was taken goes out below
			}
		}
		ts.slots.pop()
		f.worker, f.queued = p, false
		if p.handed == p.progress && ts.spec.Timeout > 0 {
			p.busySince = time.Now() // it held nothing unfinished
		}
		p.handed++
		out = append(out, handout{p: p, f: f})
	}
	if len(out) == 0 {
		return nil
	}
	if err := r.writeJournal(); err != nil {
		return err
	}
	// One message per worker, with its hand-outs in order, each with its
	// assignment token.
	var batches []batch
	signing := r.signer.signing(ts.spec.Type)
	for _, h := range out {
		if h.p.inBatch == 0 {
			batches = append(batches, batch{p: h.p})
			h.p.inBatch = len(batches)
		}
		batches[h.p.inBatch-1].n++
	}
	for _, h := range out {
		b := &batches[h.p.inBatch-1]
		if b.items == nil {
			b.items = getItems(b.n)
		}
		f := h.f
		it := transport.Item{ID: f.id, Attempt: f.attempt, Token: r.signer.token(signing, f.id, f.attempt), Payload: f.payload}
		if f.trace != nil {
			it.Flags = transport.FlagTraced
			it.Payload = transport.TracedPayload(f.trace, f.payload)
		}
		b.items = append(b.items, it)
	}
	for _, b := range batches {
		b.p.inBatch = 0
	}
	for _, b := range batches {
		// The items are this message's alone, and their payloads are
		// never written to: the transport may take them as they are.
		env := transport.Envelope{Kind: transport.KindWork, TaskType: ts.spec.Type, Count: ts.maxAttempts, Items: b.items, Handover: true}
		if err := r.post(ctx, b.p, env); err != nil {
			return fmt.Errorf("send %d items of task %q to %s: %w", len(b.items), ts.spec.Type, b.p.id, err)
		}
	}
	return nil
}

// handout is an item's attempt and the worker it goes to.
type handout struct {
	p *peerState
	f *flight
}

// batch is the items one dispatch hands one worker.
type batch struct {
	p     *peerState
	n     int // the items it will hold
	items []transport.Item
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
	payload, err := r.payloads.encode(item.Payload)
	if err != nil {
		return nil, fmt.Errorf("task %q: encode item payload with %s: %w", ts.spec.Type, r.d.s.codec.Name(), err)
	}
	trace, err := item.Trace.encode()
	if err != nil {
		return nil, fmt.Errorf("task %q: next item: %w", ts.spec.Type, err)
	}
	f := r.track(ts, r.nextID+1, payload, item.Last)
	f.trace = trace
	if err := r.journalProduced(f); err != nil {
		return nil, err
	}
	return f, nil
}

// track records a new item of ts, in flight from now on.
func (r *distRun) track(ts *taskState, id uint64, payload []byte, last bool) *flight {
	r.nextID = max(r.nextID, id)
	r.d.produced.Add(1)
	ts.counts.produced.Add(1)
	f := r.newFlight()
	*f = flight{id: id, ts: ts, attempt: 1, payload: payload}
	r.items.put(f)
	ts.inflight++
	ts.produced++
	ts.exhausted = ts.exhausted || last
	return f
}

// requeue puts an item back to be handed out again, as its next attempt.
func (r *distRun) requeue(f *flight) {
	if f.queued || f.done {
		return
	}
	f.attempt++
	f.worker, f.queued = nil, true
	f.ts.retry = append(f.ts.retry, f)
	r.d.meter.redelivered.Add(1)
	f.ts.counts.redelivered.Add(1)
}

// returnCredit gives the worker of f's attempt its credit back: its window
// bounds the items it holds plus its results not yet acknowledged. The
// acknowledged attempt also earns the worker one more credit, up to its
// window (see grant).
func (r *distRun) returnCredit(f *flight) {
	if p := f.worker; p != nil && !p.gone && !p.draining && !r.ending {
		f.ts.slots.push(p)
		p.earned++
		r.grant(p)
	}
}

// onAcks handles the collector's acknowledgements of attempts' results,
// then hands out items with the credit they returned: one dispatch per
// task type for the whole batch.
func (r *distRun) onAcks(ctx context.Context, p *peerState, env transport.Envelope) error {
	if p.id != r.collector {
		r.d.meter.ignore(r.d.log, IgnoredWrongRole, "ACK from a peer that is not the collector; dropped", "peer", p.id, "items", len(env.Items))
		return nil
	}
	touched := r.touched[:0]
	r.touched = nil
	defer func() {
		for _, ts := range touched {
			ts.touched = false
		}
		clear(touched)
		r.touched = touched[:0]
	}()
	for i := range env.Items {
		ts, err := r.onAck(ctx, &env.Items[i])
		if err != nil {
			return err
		}
		if ts != nil && !ts.touched {
			ts.touched = true
			touched = append(touched, ts)
		}
	}
	putItems(env.Items) // read: nothing of the ACKs is kept but their data
	for _, ts := range touched {
		if err := r.dispatch(ctx, ts); err != nil {
			return err
		}
	}
	return nil
}

// onAck handles one acknowledged attempt. The first ACK of any attempt
// handed out completes the item; a failure that is not the item's last
// sends it out again after a backoff, if it is the current attempt's. It
// returns the item's task state when a credit came back or the item
// completed, so the caller hands out what that allows.
func (r *distRun) onAck(ctx context.Context, ack *transport.Item) (*taskState, error) {
	f := r.items.get(ack.ID)
	if f == nil {
		if ack.ID >= 1 && ack.ID <= r.nextID {
			return nil, nil // the item is complete: a late attempt's result, or a duplicate
		}
		r.d.meter.ignore(r.d.log, IgnoredUnknownItem, "ACK for an item never handed out; dropped", "item", ack.ID)
		return nil, nil
	}
	if !f.handedOut(ack.Attempt) {
		r.d.meter.ignore(r.d.log, IgnoredUnknownItem, "ACK for an attempt never handed out; dropped", "task_type", f.ts.spec.Type, "item", ack.ID, "attempt", ack.Attempt)
		return nil, nil
	}
	if ack.Flags&(transport.FlagFailed|transport.FlagFinal) == transport.FlagFailed {
		if ack.Attempt != f.attempt || f.queued {
			return nil, nil // a late failure of an attempt already handed out again
		}
		r.returnCredit(f)
		r.retryLater(f, time.Now())
		return f.ts, nil
	}
	ts := f.ts // complete may recycle f
	return ts, r.complete(ctx, f, ack)
}

// complete records an item's end: succeeded, or failed for good. The
// caller hands out what the credit it returned allows.
func (r *distRun) complete(ctx context.Context, f *flight, ack *transport.Item) error {
	r.journalAcked(f, ack)
	ts := f.ts
	r.items.remove(f.id)
	f.done = true
	ts.inflight--
	r.d.done.Add(1)
	ts.counts.completed.Add(1)
	failed := ack.Flags&transport.FlagFailed != 0
	if failed {
		ts.failed++
		ts.counts.failed.Add(1)
	}
	taskHandler := ts.ackHandler
	if taskHandler != nil || r.d.s.onAck != nil {
		a := &Ack{TaskType: ts.spec.Type, ItemID: f.id, Attempt: int(ack.Attempt), Failed: failed, codec: r.d.s.codec}
		if failed {
			a.Error = string(ack.Payload)
		} else {
			a.data = ack.Payload
		}
		if taskHandler != nil {
			if err := protect(func() error { return taskHandler.HandleAck(ctx, a) }); err != nil {
				return fmt.Errorf("task %q: ack handler: %w", ts.spec.Type, err)
			}
		}
		if h := r.d.s.onAck; h != nil {
			if err := protect(func() error { return h.HandleAck(ctx, a) }); err != nil {
				return fmt.Errorf("ack handler (WithAckHandler), at task %q item %d: %w", ts.spec.Type, f.id, err)
			}
		}
	}
	if !f.queued {
		r.returnCredit(f)
		// Queued, it would be in a retry queue still (and skipped there,
		// as done); otherwise nothing refers to it any more.
		r.recycle(f)
	}
	ts.parked = false
	return r.checkComplete(ctx, ts)
}

// maxSpareFlights bounds the completed flights kept for reuse.
const maxSpareFlights = 4096

// newFlight returns a flight to fill in: a recycled one if there is one.
func (r *distRun) newFlight() *flight {
	if n := len(r.spareFlights); n > 0 {
		f := r.spareFlights[n-1]
		r.spareFlights = r.spareFlights[:n-1]
		return f
	}
	return &flight{}
}

// recycle keeps a completed flight, which nothing refers to, for reuse.
func (r *distRun) recycle(f *flight) {
	if len(r.spareFlights) < maxSpareFlights {
		*f = flight{}
		r.spareFlights = append(r.spareFlights, f)
	}
}

// checkComplete marks ts complete once its last item was produced and every
// item completed, then releases its dependents.
func (r *distRun) checkComplete(ctx context.Context, ts *taskState) error {
	if ts.complete || !ts.exhausted || ts.inflight > 0 {
		return nil
	}
	ts.complete = true
	ts.counts.state.Store(int32(TaskComplete))
	released, err := r.tracker.Complete(ts.spec.Type)
	if err != nil {
		return err
	}
	for _, t := range released {
		r.tasks[t].counts.state.Store(int32(TaskRunning))
	}
	ts.log.Info("task type complete", "items", ts.produced, "failed", ts.failed)
	for _, t := range released {
		if err := r.dispatch(ctx, r.tasks[t]); err != nil {
			return err
		}
	}
	if r.tracker.AllComplete() {
		if err := r.journalComplete(); err != nil {
			return err
		}
		return r.startEnd(ctx)
	}
	return nil
}

// retryLater queues an item whose attempt failed, to go out again once its
// backoff has passed: exponential in the attempts made, with jitter.
func (r *distRun) retryLater(f *flight, now time.Time) {
	wait := r.d.s.retryMin << min(f.attempt-1, 30)
	if wait > r.d.s.retryMax || wait <= 0 {
		wait = r.d.s.retryMax
	}
	wait = wait/2 + rand.N(wait/2+1) // jitter: a herd of failures spreads out
	f.attempt++
	f.worker, f.queued = nil, true
	heap.Push(&r.delayed, retryAt{due: now.Add(wait), f: f})
	r.d.meter.retried.Add(1)
	f.ts.counts.retried.Add(1)
}

// releaseRetries moves the items whose backoff passed to their task's
// queue and hands them out.
func (r *distRun) releaseRetries(ctx context.Context, now time.Time) error {
	var due []*taskState
	for len(r.delayed) > 0 && !r.delayed[0].due.After(now) {
		f := heap.Pop(&r.delayed).(retryAt).f
		if f.done {
			continue
		}
		f.ts.retry = append(f.ts.retry, f)
		due = append(due, f.ts)
	}
	for _, ts := range due {
		if err := r.dispatch(ctx, ts); err != nil {
			return err
		}
	}
	return nil
}

// reclaim takes items back from workers that hold items and do not work
// on them, for task types with a Timeout. A worker enforces the Timeout
// itself, and its heartbeats say how many items it has finished in this
// run; one that has items unfinished and finished none for a Timeout plus
// a liveness timeout (since it finished one, or since it last held none)
// is hung, or hoarding. It is taken for gone, and its items go to other
// workers. Counting what the worker finished, not what the collector
// acknowledged, keeps a collector slow to acknowledge from counting
// against the workers. Called on the heartbeat tick, over the peers.
func (r *distRun) reclaim(ctx context.Context, now time.Time) error {
	var idle []*peerState
	for _, p := range r.peers {
		if p.role != transport.RoleWorker || p.handed == p.progress {
			continue
		}
		timeout := r.tasks[p.taskType].spec.Timeout
		if timeout <= 0 {
			continue
		}
		since := p.busySince
		if p.progressAt.After(since) {
			since = p.progressAt
		}
		if now.After(since.Add(timeout + r.d.s.liveness)) {
			idle = append(idle, p)
		}
	}
	for _, p := range idle {
		why := fmt.Sprintf("it holds %d items unfinished and finished none for its Timeout of %v plus the liveness timeout",
			p.handed-p.progress, r.tasks[p.taskType].spec.Timeout)
		if err := r.lose(ctx, p, why, false); err != nil {
			return err
		}
	}
	return nil
}

// retryAt is an item waiting out its backoff.
type retryAt struct {
	due time.Time
	f   *flight
}

// retryHeap orders items waiting out their backoff, soonest first.
type retryHeap []retryAt

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h retryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)        { *h = append(*h, x.(retryAt)) }
func (h *retryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = retryAt{}
	*h = old[:len(old)-1]
	return x
}

// next returns when the soonest retry is due.
func (h retryHeap) next() (time.Time, bool) {
	if len(h) == 0 {
		return time.Time{}, false
	}
	return h[0].due, true
}
