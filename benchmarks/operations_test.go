package benchmarks

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/metrics"
)

// observeEvery is how often BenchmarkObserved looks at the run: far more
// often than an operator or Prometheus (every 15 s by default) does.
const observeEvery = 100 * time.Millisecond

// BenchmarkObserved measures what watching a run costs: no-op items, one
// worker of one goroutine over ipc (every role in this process), with
// nothing looking, with the Prometheus exporter scraped, and with a status
// request (engine.QueryStatus, over the transport), every observeEvery.
func BenchmarkObserved(b *testing.B) {
	for _, watch := range []string{"off", "metrics", "status"} {
		b.Run(fmt.Sprintf("transport=ipc/watch=%s", watch), func(b *testing.B) {
			ep := endpoints(b, "ipc")
			p, err := newItemsPipeline(ep, b.N, 1, 1, 0, nil)
			if err != nil {
				b.Fatal(err)
			}
			look := func(context.Context) error { return nil }
			switch watch {
			case "metrics":
				exp := metrics.New()
				exp.AddDistributor(p.d)
				exp.AddCollector(p.c)
				exp.AddWorker(p.workers[0])
				h := exp.Handler()
				look = func(context.Context) error {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
					if rec.Code != 200 {
						return fmt.Errorf("scrape: %d", rec.Code)
					}
					return nil
				}
			case "status":
				look = func(ctx context.Context) error {
					_, err := engine.QueryStatus(ctx, ep.Distributor)
					return err
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			var looker sync.WaitGroup
			looks := 0
			looker.Go(func() {
				tick := time.NewTicker(observeEvery)
				defer tick.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
						if err := look(ctx); err != nil && ctx.Err() == nil {
							b.Error(err)
							return
						}
						looks++
					}
				}
			})
			b.ResetTimer()
			took, err := p.run(context.Background())
			b.StopTimer()
			cancel()
			looker.Wait()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/took.Seconds(), "items/s")
			b.ReportMetric(float64(looks), "looks")
		})
	}
}
