package oteltrace_test

import (
	"context"
	"fmt"
	"slices"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/oteltrace"
)

// Each item is one trace: the task's produce span, the attempt's work span
// around the handler, and the collector's collect span. A program gives
// its own TracerProvider (an exporter to Jaeger, Tempo, …); the recorder
// here keeps the spans in memory.
func Example() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := oteltrace.New(oteltrace.WithTracerProvider(tp))

	ep := engine.InProcess("example-oteltrace")
	n := 0
	task := engine.TaskFunc(func(ctx context.Context) (engine.Item, error) {
		n++
		item := tr.Item(ctx, "resize", n) // a trace of its own, or the child of ctx's span
		item.Last = n == 3
		return item, nil
	})
	dist, err := engine.NewDistributor(ep, []engine.TaskSpec{{Type: "resize", Task: task}})
	if err != nil {
		panic(err)
	}
	worker, err := engine.NewWorker(ep, "resize", tr.Handler(engine.HandlerFunc(func(ctx context.Context, job *engine.Job) (any, error) {
		return nil, nil // spans made from ctx here are children of the work span
	})))
	if err != nil {
		panic(err)
	}
	collector, err := engine.NewCollector(ep, tr.ResultHandler(engine.ResultFunc(func(context.Context, *engine.Result) (any, error) {
		return nil, nil
	})))
	if err != nil {
		panic(err)
	}
	if err := engine.RunAll(context.Background(), dist, worker, collector); err != nil {
		panic(err)
	}
	if err := tp.Shutdown(context.Background()); err != nil {
		panic(err)
	}

	traces := map[string][]string{}
	for _, s := range rec.Ended() {
		id := s.SpanContext().TraceID().String()
		traces[id] = append(traces[id], s.Name())
	}
	fmt.Println(len(traces), "traces")
	for _, names := range traces {
		slices.Sort(names)
		fmt.Println(names)
		break
	}
	// Output:
	// 3 traces
	// [zmqpipeline collect resize zmqpipeline produce resize zmqpipeline work resize]
}
