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
	codec    transport.Codec
}

// Decode decodes the value the worker's handler returned into v.
func (r *Result) Decode(v any) error { return r.codec.Unmarshal(r.payload, v) }

// Payload returns the encoded result. The caller must not modify it.
func (r *Result) Payload() []byte { return r.payload }

// Summary counts what a collector handled.
type Summary struct {
	Results  int
	Failures int
	ByType   map[string]TypeSummary
}

// TypeSummary counts one task type's results and failures.
type TypeSummary struct {
	Results  int
	Failures int
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
	c.binding.set(addr)
	dist, err := c.s.dial(ctx, c.ep.Distributor)
	if err != nil {
		return fmt.Errorf("dial distributor: %w", err)
	}
	c.meter.track(dist)
	defer c.meter.release(dist)
	hello := transport.Envelope{Kind: transport.KindHello, Role: transport.RoleCollector}
	md, err := handshake(ctx, dist, hello, c.s.codec, c.log, &c.meter)
	if errors.Is(err, errRunOver) {
		return nil
	}
	if err != nil {
		return err
	}
	c.joined.fire()
	if c.s.collectorInit != nil {
		if err := protect(func() error { return c.s.collectorInit(ctx, md) }); err != nil {
			sendBye(ctx, dist, transport.RoleCollector, nil, c.s.codec, c.log)
			return fmt.Errorf("init hook: %w", err)
		}
	}
	c.log.Info("collector ready", "endpoint", addr)

	// The distributor's end stops the result loop. Every result was
	// acknowledged before the end was sent, so none is left behind.
	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	var (
		end       *transport.Envelope
		readerErr error
		reader    sync.WaitGroup
	)
	reader.Go(func() {
		defer stopLoop()
		for {
			env, err := dist.Recv(loopCtx)
			if err != nil {
				readerErr = err
				return
			}
			if env.Kind == transport.KindEnd {
				end = &env
				return
			}
			c.meter.ignore(c.log, "unexpected message from the distributor; dropped", "kind", env.Kind)
		}
	})
	loopErr := c.loop(loopCtx, results, dist)
	stopLoop()
	reader.Wait()
	if end == nil {
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case loopErr != nil:
			return loopErr
		}
		return fmt.Errorf("connection to the distributor: %w", readerErr)
	}
	if err := endError(*end); err != nil {
		return err // aborted: the distributor is going away, no goodbye
	}
	summary := c.Summary()
	if c.s.onFinished != nil {
		if err := protect(func() error { c.s.onFinished(ctx, summary); return nil }); err != nil {
			c.log.Error("finished hook failed", "err", err)
		}
	}
	c.log.Info("run complete", "results", summary.Results, "failures", summary.Failures)
	sendBye(ctx, dist, transport.RoleCollector, nil, c.s.codec, c.log)
	return nil
}

// loop handles results until ctx ends; it returns nil then, or the error
// that stopped it.
func (c *Collector) loop(ctx context.Context, results transport.Listener, dist transport.Conn) error {
	debug := c.log.Enabled(ctx, slog.LevelDebug)
	for {
		_, env, err := results.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		var ack transport.Envelope
		switch env.Kind {
		case transport.KindResult:
			ack = c.handleResult(ctx, env)
		case transport.KindFailure:
			ack = c.handleFailure(ctx, env.TaskType, env.ItemID, env.Attempt, string(env.Payload))
		default:
			c.meter.ignore(c.log, "unexpected message from a worker; dropped", "kind", env.Kind)
			continue
		}
		if debug {
			c.log.Debug("item collected", "task_type", env.TaskType, "item", env.ItemID, "failed", ack.Flags&transport.FlagFailed != 0)
		}
		if err := dist.Send(ctx, ack); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("acknowledge item %d: %w", env.ItemID, err)
		}
	}
}

func (c *Collector) handleResult(ctx context.Context, env transport.Envelope) transport.Envelope {
	res := &Result{TaskType: env.TaskType, ItemID: env.ItemID, Attempt: int(env.Attempt), payload: env.Payload, codec: c.s.codec}
	var data any
	err := protect(func() (err error) { data, err = c.handler.HandleResult(ctx, res); return err })
	if err != nil {
		return c.handleFailure(ctx, env.TaskType, env.ItemID, env.Attempt, "result handler: "+err.Error())
	}
	ack := transport.Envelope{Kind: transport.KindAck, TaskType: env.TaskType, ItemID: env.ItemID, Attempt: env.Attempt}
	if data != nil {
		b, err := c.s.codec.Marshal(data)
		if err != nil {
			return c.handleFailure(ctx, env.TaskType, env.ItemID, env.Attempt, fmt.Sprintf("encode ack data with %s: %v", c.s.codec.Name(), err))
		}
		ack.Payload = b
	}
	c.count(env.TaskType, false)
	return ack
}

func (c *Collector) handleFailure(ctx context.Context, taskType string, id uint64, attempt uint32, msg string) transport.Envelope {
	ie := &ItemError{TaskType: taskType, ItemID: id, Attempt: int(attempt), Message: msg}
	if c.s.onFailure != nil {
		if err := protect(func() error { c.s.onFailure(ctx, ie); return nil }); err != nil {
			c.log.Error("failure handler failed", "err", err)
		}
	} else {
		c.log.Warn("item failed", "task_type", taskType, "item", id, "err", msg)
	}
	c.count(taskType, true)
	return transport.Envelope{Kind: transport.KindAck, Flags: transport.FlagFailed, TaskType: taskType, ItemID: id, Attempt: attempt, Payload: []byte(msg)}
}

func (c *Collector) count(taskType string, failed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.summary.ByType[taskType]
	if failed {
		ts.Failures++
		c.summary.Failures++
	} else {
		ts.Results++
		c.summary.Results++
	}
	c.summary.ByType[taskType] = ts
}
