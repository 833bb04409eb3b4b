package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/auth"
)

// ResultHandler handles one successful result in the collector. What it
// returns is attached to the item's ACK and reaches the task's AckHandler
// (nil attaches nothing). An error, or a panic, turns the item into a
// failure. Results are handled one at a time, in arrival order.
type ResultHandler interface {
	HandleResult(ctx context.Context, res *Result) (ackData any, err error)
}

// ResultFunc adapts a function to ResultHandler.
type ResultFunc func(ctx context.Context, res *Result) (any, error)

// HandleResult calls f.
func (f ResultFunc) HandleResult(ctx context.Context, res *Result) (any, error) { return f(ctx, res) }

// Result is one item's result as the collector sees it.
type Result struct {
	TaskType string
	ItemID   uint64
	Attempt  int
	payload  []byte
	trace    *TraceContext // nil for none
	codec    transport.Codec
}

// Trace returns the trace context the result carries: the item's own
// (Item.Trace), or what the worker's handler set with Job.SetTrace; zero
// for none.
func (r *Result) Trace() TraceContext {
	if r.trace == nil {
		return TraceContext{}
	}
	return *r.trace
}

// Decode decodes the value the worker's handler returned into v.
func (r *Result) Decode(v any) error { return r.codec.Unmarshal(r.payload, v) }

// Payload returns the encoded result. The caller must not modify it.
func (r *Result) Payload() []byte { return r.payload }

// Summary counts what a collector handled in its run.
type Summary struct {
	Results  int
	Failures int
	// Duplicates counts results that came for items already handled (a
	// worker taken for gone delivered after all, or an attempt raced its
	// retry): acknowledged, not handled again.
	Duplicates int
	ByType     map[string]TypeSummary
}

// TypeSummary counts one task type's results, failures and duplicates
// (see Summary).
type TypeSummary struct {
	Results    int
	Failures   int
	Duplicates int
}

// Collector receives every result from the workers, hands it to the user's
// handler and acknowledges it to the distributor.
type Collector struct {
	ep      Endpoints
	handler ResultHandler
	s       *collectorSettings
	log     *slog.Logger
	started atomic.Bool
	binding binding
	joined  *signal
	meter   meter

	mu      sync.Mutex
	summary Summary
}

// NewCollector returns a collector. Errors wrap ErrInvalidConfig: a nil
// handler, an endpoint the transport refuses, a bad option.
func NewCollector(ep Endpoints, h ResultHandler, opts ...CollectorOption) (*Collector, error) {
	if h == nil {
		return nil, invalid("collector: nil result handler")
	}
	s, err := newCollectorSettings(opts)
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	if err := ep.distinct("collector"); err != nil {
		return nil, err
	}
	if err := s.checkEndpoint("collector", "collector", ep.Collector, transport.ForListen); err != nil {
		return nil, err
	}
	if err := s.checkEndpoint("collector", "distributor", ep.Distributor, transport.ForDial); err != nil {
		return nil, err
	}
	return &Collector{
		ep: ep, handler: h, s: s,
		log:     s.logger.With("component", "collector"),
		binding: newBinding(),
		joined:  newSignal(),
		summary: Summary{ByType: map[string]TypeSummary{}},
	}, nil
}

// Bound returns a channel that is closed once the collector is bound to
// its endpoint, so workers can reach it. It is never closed if Run fails
// before that.
func (c *Collector) Bound() <-chan struct{} { return c.binding.bound.ch }

// Addr returns the endpoint the collector is bound to, as its transport
// reports it (a tcp port given as 0 is the port the system picked), or ""
// before Bound is closed. Workers dial it.
func (c *Collector) Addr() string {
	return c.binding.endpoint()
}

// Joined returns a channel that is closed once the distributor welcomed
// the collector, before its init hook runs. It is never closed if Run ends
// before that.
func (c *Collector) Joined() <-chan struct{} { return c.joined.ch }

// Stats returns what the collector's transports dropped and what it
// ignored. Safe to call concurrently with Run.
func (c *Collector) Stats() Stats { return c.meter.stats() }

// Summary returns what the collector handled so far. Safe to call
// concurrently with Run.
func (c *Collector) Summary() Summary {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.summary
	s.ByType = maps.Clone(c.summary.ByType)
	return s
}

// Run binds the collector endpoint, joins the distributor and handles
// results until the distributor ends the run; then it calls the finished
// hook and returns nil. A Collector runs once.
func (c *Collector) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer c.meter.summarize(c.log) // after the transports below are closed
	err := c.run(ctx)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	return nil
}

func (c *Collector) run(ctx context.Context) error {
	results, err := c.s.listen(ctx, c.ep.Collector)
	if err != nil {
		return err
	}
	c.meter.track(results)
	defer c.meter.release(results)
	addr := results.Addr().String()
	warnIfExposed(c.log, results)
	c.binding.set(addr)
	dist, err := c.s.dial(ctx, c.ep.Distributor)
	if err != nil {
		return fmt.Errorf("dial distributor: %w", err)
	}
	c.meter.track(dist)
	defer c.meter.release(dist)
	sess := &session{
		conn:  dist,
		hello: transport.Envelope{Kind: transport.KindHello, Role: transport.RoleCollector},
		codec: c.s.codec, log: c.log, meter: &c.meter,
		standby: true, // a collector started while another is connected takes over when it leaves
	}
	var cr *collectorRun // the run this collector takes part in
	md, err := sess.join(ctx)
	for {
		switch {
		case errors.Is(err, errRunOver):
			return nil
		case cr != nil && errors.Is(err, ErrRejected):
			return fmt.Errorf("%w: %w", ErrReplaced, err)
		case err != nil:
			return err
		}
		if cr == nil || sess.run != cr.run {
			// A new run: its item ids start again, its key and metadata
			// differ. The finished hook of an earlier run that did not
			// complete never runs.
			cr = &collectorRun{run: sess.run, signer: newTokenSigner(sess.tokenKey)}
			c.resetSummary()
			if c.s.collectorInit != nil {
				if err := protect(func() error { return c.s.collectorInit(ctx, md) }); err != nil {
					sess.bye(ctx, nil, true)
					return fmt.Errorf("init hook: %w", err)
				}
			}
		}
		if sess.doneUpTo > 0 {
			// Joining a run under way: what the distributor has an ACK
			// for is never handed to the handler.
			if err := cr.done.addAllBut(sess.doneUpTo, sess.doneOpen); err != nil {
				c.log.Warn("too many items complete past the oldest open one to record; late results for them may be handled", "up_to", sess.doneUpTo)
			}
		}
		c.joined.fire()
		c.log.Info("collector ready", "endpoint", addr, "run", runName(cr.run))
		cr.auth = authorizerOf(results)
		err = c.serve(ctx, sess, results, cr)
		switch {
		case err == nil:
			summary := c.Summary()
			if c.s.onFinished != nil {
				if err := protect(func() error { c.s.onFinished(ctx, summary); return nil }); err != nil {
					c.log.Error("finished hook failed", "err", err)
				}
			}
			c.log.Info("run complete", "results", summary.Results, "failures", summary.Failures, "duplicates", summary.Duplicates)
			sess.bye(ctx, nil, true)
			return nil
		case errors.Is(err, errGone):
			c.log.Warn("the distributor took this collector for gone; it joins again")
			sess.standby = false // if another took its place, it was replaced
			md, err = sess.join(ctx)
		case errors.Is(err, ErrDistributorLost):
			md, err = sess.rejoin(ctx, c.s.rejoin, err)
		case errors.Is(err, ErrAborted):
			sess.bye(ctx, nil, false) // confirm; the distributor is going away
			return err
		case ctx.Err() != nil:
			sess.bye(ctx, nil, true) // results not acknowledged go out again
			return err
		default:
			return err
		}
	}
}

// collectorRun is what a collector keeps of one run: the items it handled
// and the key that checks the assignment tokens. Only the result loop
// touches it.
type collectorRun struct {
	run    uint64
	done   doneSet
	signer *tokenSigner
	auth   auth.Authorizer // nil when the listener trusts every peer
}

// errEnded: the distributor ended the run, complete.
var errEnded = errors.New("engine: the run ended")

// serve handles results until the distributor ends the run (nil), takes
// this collector for gone, falls silent, or ctx ends.
func (c *Collector) serve(ctx context.Context, sess *session, results transport.Listener, cr *collectorRun) error {
	sctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var helpers sync.WaitGroup
	helpers.Go(func() { sess.keepAlive(sctx, stop) })
	// The distributor's end stops the result loop. Every result was
	// acknowledged before the end was sent, so none is left behind.
	helpers.Go(func() {
		for {
			env, err := sess.recv(sctx)
			if err != nil {
				stop(fmt.Errorf("connection to the distributor: %w", err))
				return
			}
			switch env.Kind {
			case transport.KindEnd:
				if err := endError(env); err != nil {
					stop(err)
				} else {
					stop(errEnded)
				}
				return
			case transport.KindReject:
				if transport.RejectCode(env.Count) == transport.RejectGone {
					stop(errGone)
					return
				}
			}
			c.meter.ignore(c.log, IgnoredUnexpected, "unexpected message from the distributor; dropped", "kind", env.Kind)
		}
	})
	loopErr := c.loop(sctx, sess, results, cr)
	stop(loopErr)
	helpers.Wait()
	cause := context.Cause(sctx)
	switch {
	case errors.Is(cause, errEnded):
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return cause
}

// loop handles results until ctx ends; it returns nil then, or the error
// that stopped it.
func (c *Collector) loop(ctx context.Context, sess *session, results transport.Listener, cr *collectorRun) error {
	debug := c.log.Enabled(ctx, slog.LevelDebug)
	for {
		_, env, err := results.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if env.Kind != transport.KindResult {
			c.meter.ignore(c.log, IgnoredUnexpected, "unexpected message from a worker; dropped", "kind", env.Kind)
			continue
		}
		if cr.auth != nil {
			if err := cr.auth.Authorize(env.Principal, transport.RoleWorker, env.TaskType); err != nil {
				c.meter.ignore(c.log, IgnoredForbidden, "results from a key that is not a worker of their task type; dropped", "task_type", env.TaskType, "items", len(env.Items), "err", err)
				continue
			}
		}
		if env.Run != cr.run {
			c.meter.ignore(c.log, IgnoredOtherRun, "results of another run; dropped", "run", runName(env.Run), "items", len(env.Items))
			continue
		}
		acks := c.collectAll(ctx, env, cr, debug)
		if len(acks) == 0 {
			continue
		}
		if err := sess.send(ctx, transport.Envelope{Kind: transport.KindAck, Items: acks, Handover: true}); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("acknowledge %d items: %w", len(acks), err)
		}
	}
}

// collectAll handles the items of one result message and returns their
// ACKs, in order. Items without the token of their hand-out, or with an
// id out of range, are dropped and counted.
func (c *Collector) collectAll(ctx context.Context, env transport.Envelope, cr *collectorRun, debug bool) []transport.Item {
	// The items that check come first, so that what is allocated for
	// them is bounded by the hand-outs, not by what a peer sends.
	valid := env.Items[:0]
	tokens := cr.signer.verifier(env.TaskType)
	for i := range env.Items {
		it := env.Items[i]
		if !tokens.check(&it) {
			c.meter.ignore(c.log, IgnoredBadToken, "result without the token of a hand-out; dropped", "task_type", env.TaskType, "item", it.ID, "attempt", it.Attempt)
			continue
		}
		if it.ID == 0 || !cr.done.fits(it.ID) {
			c.meter.ignore(c.log, IgnoredUnknownItem, "result for an item id out of range; dropped", "item", it.ID)
			continue
		}
		valid = append(valid, it)
	}
	acks := getItems(len(valid))          // handed over with the ACK message
	results := make([]Result, len(valid)) // one allocation for the batch
	for i := range valid {
		it := &valid[i]
		res := &results[i]
		trace, payload, _ := it.SplitTrace() // the transport checked it
		*res = Result{TaskType: env.TaskType, ItemID: it.ID, Attempt: int(it.Attempt), trace: decodeTrace(trace), payload: payload, codec: c.s.codec}
		ack := c.collect(ctx, res, it, env.Count, &cr.done)
		if debug {
			c.log.Debug("item collected", "task_type", env.TaskType, "item", it.ID, "attempt", it.Attempt, "flags", ack.Flags)
		}
		acks = append(acks, ack)
	}
	c.count(env.TaskType, acks)
	putItems(env.Items) // read: the results keep their payloads, not the items
	return acks
}

// collect handles one attempt's result or failure, at most once per item,
// and returns its ACK for the distributor. A result of an item it handled
// before is acknowledged as a duplicate and not handled again; a failure
// with attempts left is acknowledged for the distributor to try again, and
// not handled either. limit is the item's attempt limit.
func (c *Collector) collect(ctx context.Context, res *Result, it *transport.Item, limit uint32, done *doneSet) transport.Item {
	ack := transport.Item{ID: it.ID, Attempt: it.Attempt}
	if done.has(it.ID) {
		ack.Flags = transport.FlagDuplicate
		return ack
	}
	if it.Flags&transport.FlagFailed != 0 {
		return c.fail(ctx, res, string(it.Payload), it.Flags&transport.FlagPermanent != 0 || it.Attempt >= limit, done)
	}
	var data any
	err := protect(func() (err error) { data, err = c.handler.HandleResult(ctx, res); return err })
	if err != nil {
		return c.fail(ctx, res, "result handler: "+err.Error(), errors.Is(err, ErrPermanent) || it.Attempt >= limit, done)
	}
	if data != nil {
		b, err := c.s.codec.Marshal(data)
		if err != nil {
			return c.fail(ctx, res, fmt.Sprintf("encode ack data with %s: %v", c.s.codec.Name(), err), true, done)
		}
		ack.Payload = b
	}
	_ = done.add(it.ID) // in range: checked on arrival
	return ack
}

// fail handles a failed attempt: the item's last (final: no attempt left,
// or a permanent error) goes to the failure handler, once; another is
// only acknowledged, for the distributor to try again.
func (c *Collector) fail(ctx context.Context, res *Result, msg string, final bool, done *doneSet) transport.Item {
	ack := transport.Item{ID: res.ItemID, Attempt: uint32(res.Attempt), Flags: transport.FlagFailed, Payload: []byte(msg)}
	if !final {
		c.log.Debug("attempt failed; the distributor tries again", "task_type", res.TaskType, "item", res.ItemID, "attempt", res.Attempt, "err", msg)
		return ack
	}
	ack.Flags |= transport.FlagFinal
	ie := &ItemError{TaskType: res.TaskType, ItemID: res.ItemID, Attempt: res.Attempt, Message: msg, Trace: res.Trace()}
	if c.s.onFailure != nil {
		if err := protect(func() error { c.s.onFailure(ctx, ie); return nil }); err != nil {
			c.log.Error("failure handler failed", "err", err)
		}
	} else {
		c.log.Warn("item failed", "task_type", res.TaskType, "item", res.ItemID, "attempts", res.Attempt, "err", msg)
	}
	_ = done.add(res.ItemID)
	return ack
}

// resetSummary starts the counts of a new run.
func (c *Collector) resetSummary() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.summary = Summary{ByType: map[string]TypeSummary{}}
}

// count adds what one result message's ACKs say to the summary: results
// handled, items failed for good, duplicates.
func (c *Collector) count(taskType string, acks []transport.Item) {
	var results, failures, duplicates int
	for _, a := range acks {
		switch {
		case a.Flags == 0:
			results++
		case a.Flags&transport.FlagDuplicate != 0:
			duplicates++
		case a.Flags&transport.FlagFinal != 0:
			failures++
		}
	}
	if duplicates > 0 {
		c.meter.duplicates.Add(uint64(duplicates))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.summary.Duplicates += duplicates
	if results+failures+duplicates == 0 {
		return
	}
	ts := c.summary.ByType[taskType]
	ts.Results += results
	ts.Failures += failures
	ts.Duplicates += duplicates
	c.summary.Results += results
	c.summary.Failures += failures
	c.summary.ByType[taskType] = ts
}
