package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// Handler executes one work item. Its returned value goes to the collector
// (nil is fine); an error, or a panic, fails the item. In a worker with
// several goroutines it is called concurrently, once per goroutine.
type Handler interface {
	Handle(ctx context.Context, job *Job) (any, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, job *Job) (any, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, job *Job) (any, error) { return f(ctx, job) }

// Job is one work item as a worker sees it.
type Job struct {
	TaskType string
	ItemID   uint64
	Attempt  int
	// Goroutine is the index of the goroutine executing the job, from 0 to
	// the worker's concurrency less one. It is 0 in the Prepare hook.
	Goroutine int
	// Value is what the worker's Prepare hook returned; nil without one.
	Value   any
	payload []byte
	trace   *TraceContext   // nil for none
	token   transport.Token // its assignment token, repeated in the result
	// batch is the work message it came in, with what its items share;
	// finished, that its outcome went to the collector (both guarded by
	// the worker's lock).
	batch    *jobBatch
	finished bool
}

// jobBatch is the items of one work message, which a worker holds until
// it finished every one.
type jobBatch struct {
	jobs  []Job
	open  int // not yet finished
	codec transport.Codec
	run   uint64 // the run the items belong to
	limit uint32 // their task type's attempt limit
}

// Trace returns the item's trace context (Item.Trace); zero when it has
// none.
func (j *Job) Trace() TraceContext {
	if j.trace == nil {
		return TraceContext{}
	}
	return *j.trace
}

// SetTrace sets the trace context the item's result carries to the
// collector (Result.Trace) in place of the item's own: a handler that
// makes a span sets it to the span's, so that the collector's joins it
// (engine/oteltrace does). The zero TraceContext sends none.
func (j *Job) SetTrace(tc TraceContext) {
	if tc.IsZero() {
		j.trace = nil
		return
	}
	j.trace = &tc
}

// Decode decodes the item's payload into v.
func (j *Job) Decode(v any) error {
	if j.batch == nil {
		return errors.New("engine: Job.Decode on a job the engine did not make")
	}
	return j.batch.codec.Unmarshal(j.payload, v)
}

// Payload returns the encoded payload. The caller must not modify it.
func (j *Job) Payload() []byte { return j.payload }

// Worker executes the items of one task type: it connects to the
// distributor, announces how many items it can take, executes them on one
// or more goroutines and sends each result to the collector.
type Worker struct {
	ep       Endpoints
	taskType string
	handler  Handler
	s        *workerSettings
	log      *slog.Logger
	started  atomic.Bool
	joined   *signal
	meter    meter

	drainCtx     context.Context // ends when Drain is called
	requestDrain context.CancelFunc
	drainOnce    sync.Once
	graceNanos   atomic.Int64

	executed atomic.Int64
}

// NewWorker returns a worker for taskType. Errors wrap ErrInvalidConfig:
// an empty or over-long task type, a nil handler, an endpoint the
// transport refuses, a bad option. Whether the distributor knows taskType
// is checked by Run.
func NewWorker(ep Endpoints, taskType string, h Handler, opts ...WorkerOption) (*Worker, error) {
	if taskType == "" {
		return nil, invalid("worker: empty task type")
	}
	if len(taskType) > transport.MaxTaskTypeLen {
		return nil, invalid("worker: task type is %d bytes, over %d", len(taskType), transport.MaxTaskTypeLen)
	}
	if h == nil {
		return nil, invalid("worker %q: nil handler", taskType)
	}
	s, err := newWorkerSettings(opts)
	if err != nil {
		return nil, fmt.Errorf("worker %q: %w", taskType, err)
	}
	if err := ep.distinct(fmt.Sprintf("worker %q", taskType)); err != nil {
		return nil, err
	}
	if s.prefetch != DefaultPrefetch && s.concurrency+s.prefetch > maxWindow {
		return nil, invalid("worker %q: %d goroutines and a prefetch of %d are over the %d items a distributor lets one worker hold", taskType, s.concurrency, s.prefetch, maxWindow)
	}
	for _, e := range []struct{ which, endpoint string }{{"distributor", ep.Distributor}, {"collector", ep.Collector}} {
		if err := s.checkEndpoint(fmt.Sprintf("worker %q", taskType), e.which, e.endpoint, transport.ForDial); err != nil {
			return nil, err
		}
	}
	w := &Worker{
		ep: ep, taskType: taskType, handler: h, s: s,
		log:    s.logger.With("component", "worker", "task_type", taskType),
		joined: newSignal(),
	}
	w.drainCtx, w.requestDrain = context.WithCancel(context.Background())
	return w, nil
}

// TaskType returns the task type the worker executes.
func (w *Worker) TaskType() string { return w.taskType }

// Executed returns the number of items this worker finished (succeeded or
// failed) so far. Safe to call concurrently with Run.
func (w *Worker) Executed() int64 { return w.executed.Load() }

// Drain asks the worker to leave gracefully, as operators expect of a
// SIGTERM: it takes no more items, finishes those it holds (for up to
// grace; then it interrupts them, and they go to other workers), says
// goodbye, and its Run returns nil. Calling it again changes nothing; a
// worker asked to drain before it joined leaves when it joins. Safe to
// call concurrently with Run.
func (w *Worker) Drain(grace time.Duration) {
	w.drainOnce.Do(func() {
		w.graceNanos.Store(int64(max(grace, 0)))
		w.requestDrain()
	})
}

func (w *Worker) grace() time.Duration { return time.Duration(w.graceNanos.Load()) }

// Joined returns a channel that is closed once the distributor welcomed
// the worker, before its init hooks run. It is never closed if Run ends
// before that.
func (w *Worker) Joined() <-chan struct{} { return w.joined.ch }

// Stats returns what the worker's transports dropped and what it ignored.
// Safe to call concurrently with Run.
func (w *Worker) Stats() Stats { return w.meter.stats() }

// Run connects, takes and executes items until the distributor ends the run
// (nil), ctx ends (ctx.Err()) or something fails. On the way out it tells
// the distributor which items it held but did not finish, so they go to
// another worker. Run waits for every handler it started to return, so
// handlers should honour ctx. A Worker runs once.
func (w *Worker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer w.meter.summarize(w.log) // after the transports below are closed
	// The collector first: a worker that cannot reach it never joins.
	coll, err := w.s.dial(ctx, w.ep.Collector)
	if err != nil {
		return fmt.Errorf("worker %q: dial collector: %w", w.taskType, err)
	}
	w.meter.track(coll)
	defer w.meter.release(coll)
	dist, err := w.s.dial(ctx, w.ep.Distributor)
	if err != nil {
		return fmt.Errorf("worker %q: dial distributor: %w", w.taskType, err)
	}
	w.meter.track(dist)
	defer w.meter.release(dist)
	sess := &session{
		conn:  dist,
		hello: transport.Envelope{Kind: transport.KindHello, Role: transport.RoleWorker, TaskType: w.taskType, Count: uint32(w.s.concurrency)},
		codec: w.s.codec, log: w.log, meter: &w.meter,
	}
	md, err := w.join(ctx, sess)
	for {
		switch {
		case errors.Is(err, errRunOver):
			w.log.Info("the run was already over when this worker joined")
			return nil
		case err != nil && w.drainCtx.Err() != nil && ctx.Err() == nil:
			w.log.Info("drained before it joined a run")
			return nil
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("worker %q: %w", w.taskType, err)
		}
		w.joined.fire()
		r := &workerRun{w: w, sess: sess, coll: coll, md: md, held: make(map[*jobBatch]struct{})}
		sess.progress = func() uint32 { return uint32(r.finished.Load()) }
		err = r.run(ctx)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errGone):
			// Its items already went to other workers: it dropped them.
			w.log.Warn("the distributor took this worker for gone; it dropped what it held and joins again")
			md, err = w.join(ctx, sess)
		case errors.Is(err, ErrDistributorLost):
			md, err = sess.rejoin(ctx, w.s.rejoin, err)
		default:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("worker %q: %w", w.taskType, err)
		}
	}
}

// join joins the distributor's run, unless the worker is asked to drain
// first.
func (w *Worker) join(ctx context.Context, sess *session) (Metadata, error) {
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(w.drainCtx, cancel)()
	return sess.join(jctx)
}

type workerRun struct {
	w    *Worker
	sess *session
	coll transport.Conn
	md   Metadata

	mu   sync.Mutex
	held map[*jobBatch]struct{} // batches with items received, not yet finished

	finished atomic.Int64 // items finished in this run: the heartbeats' progress
	// received counts the items received in this run, receivedBytes their
	// payloads: what an item weighs, on average, when the window grows.
	received, receivedBytes atomic.Int64

	growMu    sync.Mutex   // serialises grow
	window    atomic.Int64 // credits announced: goroutines plus prefetch
	maxWindow int
}

func (r *workerRun) run(ctx context.Context) error {
	w := r.w
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var alive sync.WaitGroup
	defer alive.Wait()
	alive.Go(func() { r.sess.keepAlive(ctx, cancel) })
	defer cancel(nil) // stops keepAlive before alive.Wait
	if w.s.workerInit != nil {
		if err := protect(func() error { return w.s.workerInit(ctx, r.md) }); err != nil {
			r.leave(ctx)
			return fmt.Errorf("init hook: %w", err)
		}
	}

	prefetch, maxPrefetch := w.s.prefetch, w.s.prefetch
	if prefetch == DefaultPrefetch {
		prefetch = w.s.concurrency
		maxPrefetch = max(prefetch, maxAutoPrefetch)
	}
	window := w.s.concurrency + prefetch
	r.maxWindow = w.s.concurrency + maxPrefetch
	r.window.Store(int64(window))
	jobs := newJobQueue()
	var (
		execs   sync.WaitGroup
		initErr = make(chan error, w.s.concurrency)
	)
	// Executors hand what they finished to one reporter (through the
	// outbox), which encodes and sends it while they go on to their next
	// item: after a handler returns, the next one starts without waiting
	// for the send.
	box := newOutbox()
	defer box.stop()
	executed := make(chan struct{}) // closed once every executor returned
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		r.report(ctx, cancel, box, executed)
	}()
	for i := range w.s.concurrency {
		execs.Go(func() { r.execute(ctx, i, jobs, box, initErr) })
	}
	stop := func() {
		jobs.close()
		execs.Wait()
		close(executed)
		<-reported
	}
	for range w.s.concurrency {
		if err := <-initErr; err != nil {
			cancel(err)
			stop()
			r.leave(ctx)
			return err
		}
	}
	if err := r.sess.send(ctx, transport.Envelope{Kind: transport.KindReady, Count: uint32(window)}); err != nil {
		cancel(err)
		stop()
		return fmt.Errorf("announce capacity: %w", err)
	}
	w.log.Info("worker ready", "run", runName(r.sess.run), "concurrency", w.s.concurrency, "prefetch", prefetch, "max_prefetch", maxPrefetch)

	loopCtx, stopLoop := context.WithCancelCause(ctx)
	defer stopLoop(nil)
	drainer := context.AfterFunc(w.drainCtx, func() { stopLoop(errDraining) })
	defer drainer()
	err := r.loop(loopCtx, jobs)
	if errors.Is(context.Cause(loopCtx), errDraining) && ctx.Err() == nil {
		return r.drain(ctx, cancel, stop)
	}
	if err != nil {
		cancel(err)
	}
	stop()
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause // an executor's failure, or the distributor's silence, is the real reason
	}
	switch {
	case errors.Is(err, errGone), errors.Is(err, ErrDistributorLost):
		// The distributor handed its items to others, or is gone.
	case errors.Is(err, ErrAborted):
		r.sess.bye(ctx, nil, false) // confirm; the distributor is going away
	default:
		r.leave(ctx)
	}
	return err
}

// errDraining stops the loop of a worker asked to drain.
var errDraining = errors.New("engine: worker draining")

// drain finishes a worker asked to leave: it takes no more items, lets its
// goroutines finish those it holds within the grace period, interrupts
// them after it, and says goodbye with what is left, which goes to other
// workers.
func (r *workerRun) drain(ctx context.Context, cancel context.CancelCauseFunc, stop func()) error {
	w := r.w
	w.log.Info("draining: finishing the items held", "grace", w.grace())
	if err := r.sess.send(ctx, transport.Envelope{Kind: transport.KindReady, Flags: transport.FlagDraining}); err != nil {
		w.log.Warn("could not tell the distributor this worker drains", "err", err)
	}
	graceOver := time.AfterFunc(w.grace(), func() { cancel(errors.New("engine: grace period over")) })
	stop() // the goroutines take what is queued, then end
	graceOver.Stop()
	r.leave(context.WithoutCancel(ctx))
	w.log.Info("drained", "executed", w.executed.Load())
	return nil
}

// loop receives items until the end of the run.
func (r *workerRun) loop(ctx context.Context, jobs *jobQueue) error {
	w := r.w
	debug := w.log.Enabled(ctx, slog.LevelDebug)
	for {
		env, err := r.sess.recv(ctx)
		if err != nil {
			return err
		}
		switch env.Kind {
		case transport.KindWork:
			if len(env.Items) == 0 {
				w.meter.ignore(w.log, IgnoredMalformed, "work message without items from the distributor; dropped")
				continue
			}
			if err := r.take(ctx, jobs, env, debug); err != nil {
				return err
			}
		case transport.KindEnd:
			return endError(env)
		case transport.KindReject:
			if transport.RejectCode(env.Count) == transport.RejectGone {
				return errGone
			}
			w.meter.ignore(w.log, IgnoredUnexpected, "unexpected reject from the distributor; dropped", "reason", string(env.Payload))
		default:
			w.meter.ignore(w.log, IgnoredUnexpected, "unexpected message from the distributor; dropped", "kind", env.Kind)
		}
	}
}

// take queues a batch of work items for the executing goroutines, after
// the prepare hook if the worker has one.
func (r *workerRun) take(ctx context.Context, jobs *jobQueue, env transport.Envelope, debug bool) error {
	w := r.w
	jb := &jobBatch{jobs: make([]Job, len(env.Items)), open: len(env.Items), codec: w.s.codec, run: env.Run, limit: env.Count} // one allocation for the batch
	batch := jb.jobs
	queued := make([]*Job, 0, len(batch))
	size := 0
	for i := range env.Items {
		it := &env.Items[i]
		size += len(it.Payload)
		trace, payload, _ := it.SplitTrace() // the transport checked it
		batch[i] = Job{TaskType: env.TaskType, ItemID: it.ID, Attempt: int(it.Attempt), trace: decodeTrace(trace),
			payload: payload, token: it.Token, batch: jb}
	}
	putItems(env.Items) // read: the jobs keep the payloads, not the items
	r.mu.Lock()
	r.held[jb] = struct{}{}
	r.mu.Unlock()
	r.received.Add(int64(len(batch)))
	r.receivedBytes.Add(int64(size))
	for i := range batch {
		job := &batch[i]
		if debug {
			w.log.Debug("item received", "item", job.ItemID, "attempt", job.Attempt)
		}
		if w.s.prepare == nil {
			queued = append(queued, job)
			continue
		}
		// With a prepare hook, each item goes to the goroutines as soon as
		// it is prepared.
		var v any
		err := protect(func() (err error) { v, err = w.s.prepare(ctx, job); return err })
		if err != nil {
			if err := r.finish(ctx, []outcome{{job: job, err: fmt.Errorf("prepare hook: %w", err)}}); err != nil {
				return err
			}
			continue
		}
		job.Value = v
		jobs.push(job)
	}
	if len(queued) > 0 {
		jobs.push(queued...)
	}
	return nil
}

// execute is one executing goroutine. It adds each outcome to the outbox
// as it finishes the item, and tells the reporter to take them before it
// waits for an item (see outbox). Every few items it checks how long they
// take: the outcomes of items that take more than an eighth of
// maxResultHold go at once, and it grows the window while it holds less
// than minWindowWork of items that short, so that they go many to a
// message.
func (r *workerRun) execute(ctx context.Context, index int, jobs *jobQueue, box *outbox, initErr chan<- error) {
	w := r.w
	if w.s.goroutineInit != nil {
		if err := protect(func() error { return w.s.goroutineInit(ctx, index, r.md) }); err != nil {
			initErr <- fmt.Errorf("goroutine %d init hook: %w", index, err)
			return
		}
	}
	initErr <- nil
	// A streak is the items taken one after another, without a wait;
	// short, that the last full streak's items were short enough to be
	// worth sending many to a message (until one is timed, they are not).
	var (
		streakStart time.Time
		streak      int
		short       bool
	)
	idle := func() {
		box.signal()
		streak = 0
	}
	afterItem := false
	var mine fifo[*Job]
	var actx *attemptContext // the attempts' context, under a deadline
	defer func() {
		if actx != nil {
			actx.release()
		}
	}()
	for {
		job, ok, starved := r.next(jobs, &mine, afterItem, idle)
		if !ok {
			return
		}
		if starved {
			r.grow(ctx)
		}
		afterItem = true
		if ctx.Err() != nil {
			continue // drain: the run is over; these stay in held
		}
		job.Goroutine = index
		if streak == 0 {
			streakStart = time.Now()
		}
		out, err := r.attempt(ctx, job, &actx)
		if ctx.Err() != nil {
			continue // cancelled mid-item: report it unfinished, not failed
		}
		box.add(ctx, outcome{job: job, out: out, err: err}, r.flushAt(), !short)
		if streak++; streak == streakCheck {
			perItem := time.Since(streakStart) / streakCheck
			short = perItem < maxResultHold/streakCheck
			if window := r.window.Load(); window < int64(r.maxWindow) && perItem*time.Duration(window) < minWindowWork {
				r.grow(ctx)
			}
			streak = 0
		}
	}
}

// streakCheck is how many items in a row an executing goroutine times at
// once, to tell whether the window holds too little work.
const streakCheck = 8

// attempt runs the handler on job, within the execution deadline if the
// task type has one: an attempt that runs past it fails, whatever the
// handler returned.
func (r *workerRun) attempt(ctx context.Context, job *Job, actx **attemptContext) (out any, err error) {
	d := r.sess.deadline
	if d <= 0 {
		err = protect(func() (err error) { out, err = r.w.handler.Handle(ctx, job); return err })
		return out, err
	}
	if *actx == nil {
		*actx = newAttemptContext(ctx)
	}
	a := *actx
	a.arm(d)
	err = protect(func() (err error) { out, err = r.w.handler.Handle(a, job); return err })
	if a.disarm() {
		a.release()
		*actx = nil // ended: the next attempt gets a new one
		if ctx.Err() == nil {
			return nil, fmt.Errorf("the attempt ran past its deadline of %v", d)
		}
	}
	return out, err
}

// flushAt is how many outcomes make the outbox call the reporter at once:
// an eighth of the window, so that several batches are on their way at
// any time and the distributor, the worker and the collector work at once
// rather than in turn.
func (r *workerRun) flushAt() int {
	return min(max(int(r.window.Load())/8, 1), maxResultBatch)
}

// next takes the next job: from mine, the goroutine's share of the queue,
// which it refills with a share of what is queued (taking items a few at a
// time costs less than one by one); before it waits for one, it calls idle.
// starved reports that a goroutine which had just finished an item found
// none waiting and the next came soon after: the window is too small for
// items this short.
func (r *workerRun) next(jobs *jobQueue, mine *fifo[*Job], afterItem bool, idle func()) (job *Job, ok, starved bool) {
	if mine.len() == 0 {
		mine.items = jobs.takeShare(mine.items, r.w.s.concurrency)
	}
	if mine.len() > 0 {
		return mine.pop(), true, false
	}
	idle()
	if !afterItem || r.window.Load() >= int64(r.maxWindow) {
		job, ok = jobs.pop()
		return job, ok, false
	}
	waited := time.Now()
	job, ok = jobs.pop()
	return job, ok, ok && time.Since(waited) < starvedWithin
}

// grow doubles the worker's window, up to its maximum, by announcing more
// credit to the distributor.
func (r *workerRun) grow(ctx context.Context) {
	r.growMu.Lock()
	defer r.growMu.Unlock()
	cur := int(r.window.Load())
	if cur >= r.maxWindow {
		return
	}
	next := min(2*cur, r.maxWindow)
	if items := r.received.Load(); items > 0 && int64(next)*(r.receivedBytes.Load()/items) > maxAutoPrefetchBytes {
		return // a window of items this large would hold too much memory
	}
	if err := r.sess.send(ctx, transport.Envelope{Kind: transport.KindReady, Count: uint32(next - cur)}); err != nil {
		return // the run is ending; the loop sees why
	}
	r.window.Store(int64(next))
	r.w.log.Debug("window grown: items are shorter than a round trip", "window", next)
}

// outcome is an executed item on its way to the collector.
type outcome struct {
	job *Job
	out any
	err error
}

// maxResultBatch bounds the outcomes a worker sends in one message, and
// maxResultHold how long an outcome waits in the outbox at most.
const (
	maxResultBatch = 256
	maxResultHold  = 500 * time.Microsecond
)

// report sends what the executing goroutines finished to the collector,
// all that the outbox holds, in one message each time it is told to (see
// outbox), until executed is closed; then it sends what is left. The
// first failure to send stops the run (the rest stay held and are handed
// back on leaving).
func (r *workerRun) report(ctx context.Context, fail context.CancelCauseFunc, box *outbox, executed <-chan struct{}) {
	var spare []outcome
	send := func() {
		batch := box.take(spare)
		for rest := batch; len(rest) > 0 && ctx.Err() == nil; {
			n := min(len(rest), maxResultBatch)
			if err := r.finish(ctx, rest[:n]); err != nil {
				fail(err)
				break
			}
			rest = rest[n:]
		}
		clear(batch)
		spare = batch[:0]
	}
	for {
		select {
		case <-box.ready:
			send()
		case <-executed:
			send()
			return
		}
	}
}

// finish sends the outcomes of a batch of items (results or failures) to
// the collector in one message, whose memory it hands over to the
// transport (Envelope.Handover). The distributor returns the credits when
// the collector's ACKs reach it.
func (r *workerRun) finish(ctx context.Context, batch []outcome) error {
	// The message repeats what the collector needs to tell attempts and
	// runs apart (the run, the task type, each item and attempt, the
	// attempt limit) and each item's token, which shows it was handed out.
	job := batch[0].job
	env := transport.Envelope{Kind: transport.KindResult, TaskType: job.TaskType, Run: job.batch.run, Count: job.batch.limit,
		Items: getItems(len(batch))[:len(batch)], Handover: true}
	var buf []byte
	for i, o := range batch {
		env.Items[i], buf = r.outcomeItem(o, buf)
	}
	err := r.coll.Send(ctx, env)
	if errors.Is(err, transport.ErrTooLarge) {
		// A result cannot travel: send them one by one, and each that is
		// too large fails, for good, saying why.
		err = nil
		for i := range env.Items {
			if err = r.sendOne(ctx, env, env.Items[i]); err != nil {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("send the results of %d items: %w", len(batch), err)
	}
	r.mu.Lock()
	for _, o := range batch {
		o.job.finished = true
		jb := o.job.batch
		if jb.open--; jb.open == 0 {
			delete(r.held, jb)
		}
	}
	r.mu.Unlock()
	r.w.executed.Add(int64(len(batch)))
	r.finished.Add(int64(len(batch)))
	return nil
}

// outcomeItem encodes an outcome as the item of a result message; its
// payload is appended to buf.
func (r *workerRun) outcomeItem(o outcome, buf []byte) (transport.Item, []byte) {
	w := r.w
	it := transport.Item{ID: o.job.ItemID, Attempt: uint32(o.job.Attempt), Token: o.job.token}
	herr := o.err
	var trace []byte
	if o.job.trace != nil {
		var err error
		if trace, err = o.job.trace.encode(); err != nil && herr == nil {
			herr = fmt.Errorf("the handler's Job.SetTrace: %w", err)
		}
	}
	if herr == nil {
		start := len(buf)
		if trace != nil {
			buf = transport.AppendTrace(buf, trace)
			it.Flags = transport.FlagTraced
		}
		b, err := transport.AppendMarshal(w.s.codec, buf, o.out)
		if err != nil {
			herr = fmt.Errorf("encode result with %s: %w", w.s.codec.Name(), err)
			buf = buf[:start] // failedItem puts the trace before the error instead
		} else {
			buf = b
			it.Payload = buf[start:len(buf):len(buf)]
		}
	}
	if herr != nil {
		it = failedItem(it, trace, herr.Error(), errors.Is(herr, ErrPermanent))
		w.log.Debug("item failed", "item", o.job.ItemID, "err", herr)
	}
	return it, buf
}

// failedItem returns it as a failure: the error text msg as its payload,
// after trace (if any).
func failedItem(it transport.Item, trace []byte, msg string, permanent bool) transport.Item {
	it.Flags = transport.FlagFailed
	if permanent {
		it.Flags |= transport.FlagPermanent
	}
	if trace != nil {
		it.Flags |= transport.FlagTraced
		it.Payload = transport.TracedPayload(trace, []byte(msg))
	} else {
		it.Payload = []byte(msg)
	}
	return it
}

// sendOne sends one item of a result message on its own; a result too
// large to travel is sent as a permanent failure instead.
func (r *workerRun) sendOne(ctx context.Context, env transport.Envelope, it transport.Item) error {
	env.Items = []transport.Item{it}
	err := r.coll.Send(ctx, env)
	if errors.Is(err, transport.ErrTooLarge) && it.Flags&transport.FlagFailed == 0 {
		trace, payload, _ := it.SplitTrace()
		it = failedItem(it, trace, fmt.Sprintf("result of %d bytes: %v", len(payload), err), true)
		env.Items[0] = it
		err = r.coll.Send(ctx, env)
	}
	if err != nil {
		return fmt.Errorf("send result of item %d: %w", it.ID, err)
	}
	return nil
}

// leave says goodbye with the items this worker will not finish, and
// waits for the distributor to confirm.
func (r *workerRun) leave(ctx context.Context) {
	r.mu.Lock()
	var unfinished []uint64
	for jb := range r.held {
		for i := range jb.jobs {
			if !jb.jobs[i].finished {
				unfinished = append(unfinished, jb.jobs[i].ItemID)
			}
		}
	}
	r.mu.Unlock()
	r.sess.bye(ctx, unfinished, true)
}
