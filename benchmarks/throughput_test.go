package benchmarks

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/examples/seed"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// BenchmarkNoopItems measures no-op items through a whole in-process
// pipeline (distributor, workers, collector, ACKs): b.N items per run,
// reported as items/s.
func BenchmarkNoopItems(b *testing.B) {
	for _, tc := range []struct{ workers, goroutines int }{{1, 1}, {2, 1}, {1, 10}} {
		b.Run(fmt.Sprintf("transport=inproc/workers=%d/goroutines=%d", tc.workers, tc.goroutines), func(b *testing.B) {
			ep := engine.InProcess(fmt.Sprintf("%s-%d", b.Name(), b.N))
			b.ReportAllocs()
			b.ResetTimer()
			took, err := RunNoop(context.Background(), ep, b.N, tc.workers, tc.goroutines)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/took.Seconds(), "items/s")
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
// the run took.
func RunNoop(ctx context.Context, ep engine.Endpoints, n, workers, goroutines int) (time.Duration, error) {
	d, err := engine.NewDistributor(ep, []engine.TaskSpec{{Type: "noop", Task: engine.Items(n, func(int) (any, error) { return nil, nil })}})
	if err != nil {
		return 0, err
	}
	watch := &seed.Stopwatch{}
	c, err := engine.NewCollector(ep, watch)
	if err != nil {
		return 0, err
	}
	comps := []engine.Runner{d, c}
	for range workers {
		w, err := engine.NewWorker(ep, "noop", engine.HandlerFunc(func(context.Context, *engine.Job) (any, error) { return nil, nil }), engine.WithConcurrency(goroutines))
		if err != nil {
			return 0, err
		}
		comps = append(comps, w)
	}
	start := time.Now()
	if err := engine.RunAll(ctx, comps...); err != nil {
		return 0, err
	}
	if watch.Results() != n {
		return 0, fmt.Errorf("collected %d of %d results", watch.Results(), n)
	}
	return time.Since(start), nil
}
