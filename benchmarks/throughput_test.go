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
// transport: b.N items per run, reported as items/s.
func BenchmarkNoopItems(b *testing.B) {
	for _, tr := range []string{"inproc", "ipc", "tcp"} {
		for _, tc := range []struct{ workers, goroutines, prefetch int }{
			{1, 1, engine.DefaultPrefetch}, {2, 1, engine.DefaultPrefetch}, {1, 10, engine.DefaultPrefetch}, {1, 1, 64},
		} {
			b.Run(fmt.Sprintf("transport=%s/workers=%d/goroutines=%d/prefetch=%d", tr, tc.workers, tc.goroutines, tc.prefetch), func(b *testing.B) {
				ep := endpoints(b, tr)
				b.ReportAllocs()
				b.ResetTimer()
				took, err := RunNoop(context.Background(), ep, b.N, tc.workers, tc.goroutines, nil, engine.WithPrefetch(tc.prefetch))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/took.Seconds(), "items/s")
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

// noopWork is a work item as the no-op benchmarks send it: the size the
// bare ZeroMQ benchmarks compare with.
var noopWork = transport.Envelope{Kind: transport.KindWork, TaskType: "noop", ItemID: 1, Payload: []byte{0xc0}}

// rawPair binds a bare libzmq socket of type bind to a fresh endpoint of tr
// and connects one of type conn to it, in a context of their own; closeAll
// closes both and terminates the context, from the calling goroutine.
func rawPair(b *testing.B, tr string, bind, conn zmq.Type) (bound, connected *zmq.Socket, closeAll func()) {
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

// BenchmarkRawPushPull is the ZeroMQ ceiling for BenchmarkNoopItems: bare
// PUSH to PULL of messages the size of an encoded work item, one way, with
// no pipeline at all.
func BenchmarkRawPushPull(b *testing.B) {
	size := noopWork.EncodedLen()
	for _, tr := range []string{"ipc", "tcp"} {
		b.Run("transport="+tr, func(b *testing.B) {
			pull, push, closeAll := rawPair(b, tr, zmq.PULL, zmq.PUSH)
			msg := make([]byte, size)
			done := make(chan error, 1)
			b.ResetTimer()
			start := time.Now()
			go func() {
				for range b.N {
					if _, err := pull.RecvBytes(0); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			for range b.N {
				if _, err := push.SendBytes(msg, 0); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			closeAll()
		})
	}
}

// BenchmarkRawChannel is the ceiling for BenchmarkNoopItems: the same number
// of hops an item takes in the pipeline (distributor -> worker -> collector
// -> distributor), as bare channel sends between goroutines, one item in
// flight per hop buffer.
func BenchmarkRawChannel(b *testing.B) {
	b.ReportAllocs()
	toWorker := make(chan uint64, 2)
	toCollector := make(chan uint64, 1024)
	toDistributor := make(chan uint64, 1024)
	credits := make(chan struct{}, 1024)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	wg.Go(func() { // worker
		for id := range toWorker {
			toCollector <- id
			credits <- struct{}{}
		}
		close(toCollector)
	})
	wg.Go(func() { // collector
		for id := range toCollector {
			toDistributor <- id
		}
		close(toDistributor)
	})
	// distributor: hand out on credit, count ACKs
	window := 2
	sent, acked := 0, 0
	for acked < b.N {
		for window > 0 && sent < b.N {
			toWorker <- uint64(sent)
			sent++
			window--
		}
		select {
		case <-credits:
			window++
		case <-toDistributor:
			acked++
		}
	}
	close(toWorker)
	for range toDistributor {
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "items/s")
}

// RunNoop runs n no-op items through a pipeline on ep and returns how long
// the run took. workerOpts go to every worker.
func RunNoop(ctx context.Context, ep engine.Endpoints, n, workers, goroutines int, distOpts []engine.DistributorOption, workerOpts ...engine.WorkerOption) (time.Duration, error) {
	d, err := engine.NewDistributor(ep, []engine.TaskSpec{{Type: "noop", Task: engine.Items(n, func(int) (any, error) { return nil, nil })}}, distOpts...)
	if err != nil {
		return 0, err
	}
	watch := &stopwatch{}
	c, err := engine.NewCollector(ep, watch, engine.WithFinished(watch.finished))
	if err != nil {
		return 0, err
	}
	comps := []engine.Runner{d, c}
	for range workers {
		w, err := engine.NewWorker(ep, "noop", engine.HandlerFunc(func(context.Context, *engine.Job) (any, error) { return nil, nil }), append(workerOpts, engine.WithConcurrency(goroutines))...)
		if err != nil {
			return 0, err
		}
		comps = append(comps, w)
	}
	start := time.Now()
	if err := engine.RunAll(ctx, comps...); err != nil {
		return 0, err
	}
	if got := watch.results(); got != n {
		return 0, fmt.Errorf("collected %d of %d results", got, n)
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
