// Package oteltrace joins a pipeline's items to OpenTelemetry traces. An
// item carries a W3C trace context (engine.TraceContext) from its task
// through the worker's handler to the collector; this package makes the
// spans at each step and passes their contexts on, so that what the task,
// the handler and the collector's handler record joins one trace per item,
// across processes:
//
//	tr := oteltrace.New() // the global TracerProvider; WithTracerProvider for another
//	// the task: each item starts a trace, or joins the caller's
//	item := tr.Item(ctx, "resize", payload)
//	// the worker: a "work" span per attempt, the child of the item's
//	w, _ := engine.NewWorker(ep, "resize", tr.Handler(handler))
//	// the collector: a "collect" span, the child of the attempt's
//	c, _ := engine.NewCollector(ep, tr.ResultHandler(collect))
//
// A handler's own spans, made from the context it is given, are children
// of its work span. Spans are named "zmqpipeline produce TYPE",
// "zmqpipeline work TYPE", "zmqpipeline collect TYPE" and "zmqpipeline
// fail TYPE", with the attributes zmqpipeline.task_type,
// zmqpipeline.item_id and zmqpipeline.attempt. The engine itself does not
// import OpenTelemetry; only this package does.
package oteltrace

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/zmqpipeline/zmqpipeline/engine"
)

// instrumentation is the tracer's name.
const instrumentation = "github.com/zmqpipeline/zmqpipeline/engine/oteltrace"

// Tracing makes the spans of a pipeline's items.
type Tracing struct {
	tracer trace.Tracer
}

// Option configures Tracing.
type Option func(*settings)

type settings struct {
	provider trace.TracerProvider
}

// WithTracerProvider makes the spans with tp rather than the global
// provider (otel.GetTracerProvider).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(s *settings) { s.provider = tp }
}

// New returns a Tracing with the given options.
func New(opts ...Option) *Tracing {
	s := settings{}
	for _, o := range opts {
		o(&s)
	}
	if s.provider == nil {
		s.provider = otel.GetTracerProvider()
	}
	return &Tracing{tracer: s.provider.Tracer(instrumentation)}
}

// propagator reads and writes the W3C trace context the wire carries,
// whatever propagator the program set globally.
var propagator = propagation.TraceContext{}

// Inject returns the trace context of ctx's span, for Item.Trace (zero
// when ctx has no valid span).
func Inject(ctx context.Context) engine.TraceContext {
	var tc engine.TraceContext
	propagator.Inject(ctx, &tc)
	return tc
}

// Extract returns ctx with tc as its remote parent span context (ctx
// itself when tc is zero or malformed).
func Extract(ctx context.Context, tc engine.TraceContext) context.Context {
	if tc.IsZero() {
		return ctx
	}
	return propagator.Extract(ctx, &tc)
}

func attrs(taskType string, id uint64, attempt int) trace.SpanStartOption {
	kv := []attribute.KeyValue{attribute.String("zmqpipeline.task_type", taskType)}
	if id != 0 {
		kv = append(kv, attribute.Int64("zmqpipeline.item_id", int64(id)), attribute.Int("zmqpipeline.attempt", attempt))
	}
	return trace.WithAttributes(kv...)
}

// Item returns an item of taskType with payload whose trace context is
// that of a "produce" span: the child of ctx's span if it has one (the
// request that asked for the work, say), the root of a new trace
// otherwise. The span ends at once; the item's ID is not known yet.
func (t *Tracing) Item(ctx context.Context, taskType string, payload any) engine.Item {
	ctx, span := t.tracer.Start(ctx, "zmqpipeline produce "+taskType, trace.WithSpanKind(trace.SpanKindProducer), attrs(taskType, 0, 0))
	defer span.End()
	return engine.Item{Payload: payload, Trace: Inject(ctx)}
}

// Handler returns h wrapped in a "work" span per attempt, the child of
// the item's trace context; the handler's context carries the span, and
// the result carries its trace context (Job.SetTrace) to the collector. An
// error from h sets the span's status.
func (t *Tracing) Handler(h engine.Handler) engine.Handler {
	return engine.HandlerFunc(func(ctx context.Context, job *engine.Job) (any, error) {
		ctx, span := t.tracer.Start(Extract(ctx, job.Trace()), "zmqpipeline work "+job.TaskType,
			trace.WithSpanKind(trace.SpanKindConsumer), attrs(job.TaskType, job.ItemID, job.Attempt))
		defer span.End()
		job.SetTrace(Inject(ctx))
		out, err := h.Handle(ctx, job)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		return out, err
	})
}

// ResultHandler returns h wrapped in a "collect" span, the child of the
// attempt's work span (or of the item's trace context when the worker did
// not trace).
func (t *Tracing) ResultHandler(h engine.ResultHandler) engine.ResultHandler {
	return engine.ResultFunc(func(ctx context.Context, res *engine.Result) (any, error) {
		ctx, span := t.tracer.Start(Extract(ctx, res.Trace()), "zmqpipeline collect "+res.TaskType,
			trace.WithSpanKind(trace.SpanKindConsumer), attrs(res.TaskType, res.ItemID, res.Attempt))
		defer span.End()
		out, err := h.HandleResult(ctx, res)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		return out, err
	})
}

// FailureHandler returns fn (for engine.WithFailureHandler) wrapped in a
// "fail" span with an error status, the child of the failed attempt's
// work span.
func (t *Tracing) FailureHandler(fn func(ctx context.Context, failure *engine.ItemError)) func(ctx context.Context, failure *engine.ItemError) {
	return func(ctx context.Context, failure *engine.ItemError) {
		ctx, span := t.tracer.Start(Extract(ctx, failure.Trace), "zmqpipeline fail "+failure.TaskType,
			trace.WithSpanKind(trace.SpanKindConsumer), attrs(failure.TaskType, failure.ItemID, failure.Attempt))
		defer span.End()
		span.SetStatus(codes.Error, failure.Message)
		if fn != nil {
			fn(ctx, failure)
		}
	}
}
