package benchmarks

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
	"go.uber.org/goleak"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/transport"
	_ "github.com/zmqpipeline/zmqpipeline/transport/zmqtransport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// BenchmarkNoopItems measures no-op items through a whole pipeline
// (distributor, workers, collector, ACKs), all in this process, over each
// transport: b.N items per run, reported as items/s beside the ceiling
// measured in the same run (see reportCeiling): a plain Go worker pool of
// the same goroutines in process, bare PUSH/PULL over ipc and tcp.
func BenchmarkNoopItems(b *testing.B) {
	for _, tr := range []string{"inproc", "ipc", "tcp"} {
		for _, tc := range []struct{ workers, goroutines, prefetch int }{
			{1, 1, engine.DefaultPrefetch}, {2, 1, engine.DefaultPrefetch}, {1, 10, engine.DefaultPrefetch}, {1, 1, 64},
		} {
			b.Run(fmt.Sprintf("transport=%s/workers=%d/goroutines=%d/prefetch=%d", tr, tc.workers, tc.goroutines, tc.prefetch), func(b *testing.B) {
				ceiling := ceilingOf(b, tr, b.N, tc.workers*tc.goroutines)
				ep := endpoints(b, tr)
				b.ReportAllocs()
				b.ResetTimer()
				took, err := RunNoop(context.Background(), ep, b.N, tc.workers, tc.goroutines, nil, engine.WithPrefetch(tc.prefetch))
				if err != nil {
					b.Fatal(err)
				}
				reportCeiling(b, float64(b.N)/took.Seconds(), ceiling)
			})
		}
	}
}

// BenchmarkDurableRun measures what a journal (engine.WithJournal) costs:
// no-op items with one worker of one goroutine, without a journal, with
// one synced every 50 ms (the default) and with one synced before every
// hand-out, in process and over ipc, in the same run.
func BenchmarkDurableRun(b *testing.B) {
	for _, tr := range []string{"inproc", "ipc"} {
		for _, j := range []struct {
			name string
			sync time.Duration
		}{{"off", -1}, {"sync=50ms", 50 * time.Millisecond}, {"sync=every-batch", 0}} {
			b.Run(fmt.Sprintf("transport=%s/journal=%s", tr, j.name), func(b *testing.B) {
				ep := endpoints(b, tr)
				var opts []engine.DistributorOption
				if j.sync >= 0 {
					opts = append(opts, engine.WithJournal(filepath.Join(b.TempDir(), "run.journal")), engine.WithJournalSync(j.sync))
				}
				b.ReportAllocs()
				b.ResetTimer()
				took, err := RunNoop(context.Background(), ep, b.N, 1, 1, opts)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/took.Seconds(), "items/s")
			})
		}
	}
}

// endpoints returns fresh endpoints of the given transport.
func endpoints(b testing.TB, tr string) engine.Endpoints {
	switch tr {
	case "ipc":
		dir := b.TempDir()
		return engine.Endpoints{Distributor: "ipc://" + filepath.Join(dir, "d.ipc"), Collector: "ipc://" + filepath.Join(dir, "c.ipc")}
	case "tcp":
		return engine.Endpoints{Distributor: freeTCP(b), Collector: freeTCP(b)}
	}
	return engine.InProcess(fmt.Sprintf("%s-%d", b.Name(), time.Now().UnixNano()))
}

func freeTCP(b testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprintf("tcp://127.0.0.1:%d", l.Addr().(*net.TCPAddr).Port)
}

// noopWork is a work message of one no-op item: the size the bare ZeroMQ
// benchmarks compare with, so that their messages/s are items/s if every
// item travelled alone.
var noopWork = transport.Envelope{Kind: transport.KindWork, TaskType: "noop", Count: 3, Items: []transport.Item{{ID: 1, Attempt: 1, Payload: []byte{0xc0}}}}

// rawPair binds a bare libzmq socket of type bind to a fresh endpoint of tr
// and connects one of type conn to it, in a context of their own; closeAll
// closes both and terminates the context, from the calling goroutine.
func rawPair(b testing.TB, tr string, bind, conn zmq.Type) (bound, connected *zmq.Socket, closeAll func()) {
	b.Helper()
	ep := endpoints(b, tr).Distributor
	zctx, err := zmq.NewContext()
	if err != nil {
		b.Fatal(err)
	}
	if bound, err = zctx.NewSocket(bind); err == nil {
		connected, err = zctx.NewSocket(conn)
	}
	if err == nil {
		err = bound.Bind(ep)
	}
	if err == nil {
		err = connected.Connect(ep)
	}
	closeAll = func() {
		for _, s := range []*zmq.Socket{bound, connected} {
			if s != nil {
				_ = s.SetLinger(0)
				_ = s.Close()
			}
		}
		_ = zctx.Term()
	}
	if err != nil {
		closeAll()
		b.Fatal(err)
	}
	return bound, connected, closeAll
}

// BenchmarkRawPushPull is the ZeroMQ ceiling of the benchmarks over ipc
// and tcp on its own: bare PUSH to PULL of messages the size of a work
// message of one item, one way, with no pipeline at all.
func BenchmarkRawPushPull(b *testing.B) {
	for _, tr := range []string{"ipc", "tcp"} {
		b.Run("transport="+tr, func(b *testing.B) {
			b.ReportMetric(rawPushPull(b, tr, b.N), "msgs/s")
		})
	}
}

// BenchmarkPlainPool is the in-process ceiling on its own: a plain Go
// worker pool (see plainPool) of 1 and 10 goroutines, on buffered channels
// as the ceiling uses, and on unbuffered ones for comparison.
func BenchmarkPlainPool(b *testing.B) {
	for _, buffer := range []int{0, plainPoolBuffer} {
		for _, goroutines := range []int{1, 10} {
			b.Run(fmt.Sprintf("buffer=%d/goroutines=%d", buffer, goroutines), func(b *testing.B) {
				b.ReportMetric(plainPoolOf(b.N, goroutines, buffer), "items/s")
			})
		}
	}
}

// RunNoop runs n no-op items through a pipeline on ep and returns how long
// the run took. workerOpts go to every worker.
func RunNoop(ctx context.Context, ep engine.Endpoints, n, workers, goroutines int, distOpts []engine.DistributorOption, workerOpts ...engine.WorkerOption) (time.Duration, error) {
	return runItems(ctx, ep, n, workers, goroutines, 0, distOpts, workerOpts...)
}

// runItems runs n items of work each (see busy) through a pipeline on ep,
// with workers of goroutines each, and returns how long the run took.
func runItems(ctx context.Context, ep engine.Endpoints, n, workers, goroutines int, work time.Duration, distOpts []engine.DistributorOption, workerOpts ...engine.WorkerOption) (time.Duration, error) {
	p, err := newItemsPipeline(ep, n, workers, goroutines, work, distOpts, workerOpts...)
	if err != nil {
		return 0, err
	}
	return p.run(ctx)
}

// itemsPipeline is the pipeline runItems runs.
type itemsPipeline struct {
	d       *engine.Distributor
	c       *engine.Collector
	workers []*engine.Worker
	watch   *stopwatch
	n       int
}

func newItemsPipeline(ep engine.Endpoints, n, workers, goroutines int, work time.Duration, distOpts []engine.DistributorOption, workerOpts ...engine.WorkerOption) (*itemsPipeline, error) {
	d, err := engine.NewDistributor(ep, []engine.TaskSpec{{Type: "noop", Task: engine.Items(n, func(int) (any, error) { return nil, nil })}}, distOpts...)
	if err != nil {
		return nil, err
	}
	watch := &stopwatch{}
	c, err := engine.NewCollector(ep, watch, engine.WithFinished(watch.finished))
	if err != nil {
		return nil, err
	}
	handler := engine.HandlerFunc(func(context.Context, *engine.Job) (any, error) {
		busy(work)
		return nil, nil
	})
	p := &itemsPipeline{d: d, c: c, watch: watch, n: n}
	for range workers {
		w, err := engine.NewWorker(ep, "noop", handler, append(workerOpts, engine.WithConcurrency(goroutines))...)
		if err != nil {
			return nil, err
		}
		p.workers = append(p.workers, w)
	}
	return p, nil
}

// run runs the pipeline and returns how long it took.
func (p *itemsPipeline) run(ctx context.Context) (time.Duration, error) {
	comps := []engine.Runner{p.d, p.c}
	for _, w := range p.workers {
		comps = append(comps, w)
	}
	start := time.Now()
	if err := engine.RunAll(ctx, comps...); err != nil {
		return 0, err
	}
	if got := p.watch.results(); got != p.n {
		return 0, fmt.Errorf("collected %d of %d results", got, p.n)
	}
	return time.Since(start), nil
}

// stopwatch is a collector that counts results and notes when the first
// came and when the run finished.
type stopwatch struct {
	mu          sync.Mutex
	n           int
	first, done time.Time
}

func (s *stopwatch) HandleResult(context.Context, *engine.Result) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		s.first = time.Now()
	}
	s.n++
	return nil, nil
}

func (s *stopwatch) finished(context.Context, engine.Summary) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = time.Now()
}

func (s *stopwatch) results() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// span returns the time from the first result to the end of the run.
func (s *stopwatch) span() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done.Sub(s.first)
}
