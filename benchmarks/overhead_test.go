package benchmarks

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// itemDurations are the works per item that BenchmarkOverhead runs: none,
// then from shorter than a round trip to the seed's 10 ms.
var itemDurations = []time.Duration{0, 10 * time.Microsecond, 100 * time.Microsecond, time.Millisecond, 10 * time.Millisecond}

// BenchmarkOverhead measures what the pipeline adds to items of each
// duration: b.N items, each busy for the duration (it spins: work that
// takes a core, for which sleeps shorter than a millisecond cannot stand
// in, as they overshoot by more than they last), on 2 workers of 1
// goroutine in process (a goroutine per core of the 2-core machines these
// figures come from), timed over the whole run. Beside it, in the same
// run, plain goroutines do the same work with the same parallelism and no
// pipeline: overhead-pct and plain-overhead-pct are each over the ideal
// time, added-points the pipeline's share. Items of no work have no ideal
// time and are reported as items/s beside the plain goroutines'.
func BenchmarkOverhead(b *testing.B) {
	const workers, goroutines = 2, 1
	for _, d := range itemDurations {
		b.Run(fmt.Sprintf("transport=inproc/item=%s/work=cpu/workers=%d/goroutines=%d", durationName(d), workers, goroutines), func(b *testing.B) {
			slots := workers * goroutines
			b.StopTimer()
			plain := plainGoroutines(b.N, d, slots)
			b.StartTimer()
			took, err := runItems(context.Background(), endpoints(b, "inproc"), b.N, workers, goroutines, d, nil)
			if err != nil {
				b.Fatal(err)
			}
			if d == 0 {
				reportCeiling(b, float64(b.N)/took.Seconds(), float64(b.N)/plain.Seconds())
				return
			}
			ideal := time.Duration((b.N+slots-1)/slots) * d
			over, plainOver := overheadPct(took, ideal), overheadPct(plain, ideal)
			b.ReportMetric(over, "overhead-pct")
			b.ReportMetric(plainOver, "plain-overhead-pct")
			b.ReportMetric(over-plainOver, "added-points")
		})
	}
}

// plainGoroutines does n items of work d (see busy) on slots goroutines
// fed by a channel, with no pipeline, and returns how long it took.
func plainGoroutines(n int, d time.Duration, slots int) time.Duration {
	items := make(chan struct{}, plainPoolBuffer)
	var wg sync.WaitGroup
	start := time.Now()
	for range slots {
		wg.Go(func() {
			for range items {
				busy(d)
			}
		})
	}
	for range n {
		items <- struct{}{}
	}
	close(items)
	wg.Wait()
	return time.Since(start)
}

// busy keeps the goroutine busy for d.
func busy(d time.Duration) {
	if d <= 0 {
		return
	}
	for start := time.Now(); time.Since(start) < d; {
	}
}

// overheadPct is measured over ideal less one, in percent.
func overheadPct(measured, ideal time.Duration) float64 {
	return (float64(measured)/float64(ideal) - 1) * 100
}

// durationName names a duration for a benchmark: 0, 10us, 1ms.
func durationName(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%dus", d.Microseconds())
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}
