package oteltrace_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/oteltrace"
	_ "github.com/zmqpipeline/zmqpipeline/transport/zmqtransport" // ipc://
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestEveryItemIsOneTrace runs a pipeline whose task, handler and
// collector are traced, in process and over ipc: each item's spans (the
// task's, the attempt's, the handler's own and the collector's) form one
// trace, each the child of the one before; a failed attempt's fail span
// joins it too.
func TestEveryItemIsOneTrace(t *testing.T) {
	for _, transport := range []string{"inproc", "ipc"} {
		t.Run(transport, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			defer func() { require.NoError(t, tp.Shutdown(context.Background())) }()
			tr := oteltrace.New(oteltrace.WithTracerProvider(tp))

			ep := engine.Endpoints{Distributor: "inproc://oteltrace/d", Collector: "inproc://oteltrace/c"}
			if transport == "ipc" {
				dir := t.TempDir()
				ep = engine.Endpoints{Distributor: "ipc://" + filepath.Join(dir, "d"), Collector: "ipc://" + filepath.Join(dir, "c")}
			}
			const items = 20
			var n atomic.Int64
			task := engine.TaskFunc(func(ctx context.Context) (engine.Item, error) {
				i := n.Add(1)
				item := tr.Item(ctx, "calc", i)
				item.Last = i == items
				return item, nil
			})
			d, err := engine.NewDistributor(ep, []engine.TaskSpec{{Type: "calc", Task: task, MaxAttempts: 1}})
			require.NoError(t, err)
			w, err := engine.NewWorker(ep, "calc", tr.Handler(engine.HandlerFunc(func(ctx context.Context, job *engine.Job) (any, error) {
				_, inner := tp.Tracer("test").Start(ctx, "inner")
				defer inner.End()
				var i int64
				if err := job.Decode(&i); err != nil {
					return nil, err
				}
				if i == items {
					return nil, fmt.Errorf("the last one fails: %w", engine.ErrPermanent)
				}
				return i * i, nil
			})))
			require.NoError(t, err)
			c, err := engine.NewCollector(ep, tr.ResultHandler(engine.ResultFunc(func(context.Context, *engine.Result) (any, error) {
				return nil, nil
			})), engine.WithFailureHandler(tr.FailureHandler(nil)))
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, engine.RunAll(ctx, d, w, c))

			byTrace := map[trace.TraceID]map[string]sdktrace.ReadOnlySpan{}
			for _, s := range rec.Ended() {
				id := s.SpanContext().TraceID()
				if byTrace[id] == nil {
					byTrace[id] = map[string]sdktrace.ReadOnlySpan{}
				}
				name := s.Name()
				require.NotContains(t, byTrace[id], name, "two %q spans in one trace", name)
				byTrace[id][name] = s
			}
			require.Len(t, byTrace, items, "one trace per item")
			failed := 0
			for _, spans := range byTrace {
				produce, work, inner := spans["zmqpipeline produce calc"], spans["zmqpipeline work calc"], spans["inner"]
				require.NotNil(t, produce)
				require.NotNil(t, work)
				require.NotNil(t, inner)
				assert.False(t, produce.Parent().IsValid(), "the task's span starts the trace")
				assert.Equal(t, produce.SpanContext().SpanID(), work.Parent().SpanID(), "work is the child of produce")
				assert.True(t, work.Parent().IsRemote(), "across the transport")
				assert.Equal(t, work.SpanContext().SpanID(), inner.Parent().SpanID(), "the handler's span is the child of work")
				last := spans["zmqpipeline collect calc"]
				if last == nil {
					last = spans["zmqpipeline fail calc"]
					require.NotNil(t, last, "neither collected nor failed: %v", spans)
					failed++
				}
				assert.Equal(t, work.SpanContext().SpanID(), last.Parent().SpanID(), "the collector's span is the child of work")
			}
			assert.Equal(t, 1, failed)
		})
	}
}

func TestInjectAndExtract(t *testing.T) {
	assert.True(t, oteltrace.Inject(context.Background()).IsZero(), "no span, no context")
	assert.Equal(t, context.Background(), oteltrace.Extract(context.Background(), engine.TraceContext{}))
	tc := engine.TraceContext{Parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", State: "congo=t61rcWkgMzE"}
	ctx := oteltrace.Extract(context.Background(), tc)
	sc := trace.SpanContextFromContext(ctx)
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", sc.TraceID().String())
	assert.Equal(t, "00f067aa0ba902b7", sc.SpanID().String())
	assert.Equal(t, "congo=t61rcWkgMzE", sc.TraceState().String())
	assert.Equal(t, tc, oteltrace.Inject(ctx))
	bad := oteltrace.Extract(context.Background(), engine.TraceContext{Parent: "not a trace context"})
	assert.False(t, trace.SpanContextFromContext(bad).IsValid())
}
