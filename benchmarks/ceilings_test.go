package benchmarks

import (
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// reportCeiling reports a benchmark's rate, in items/s, beside its ceiling
// measured in the same run, and what share of the ceiling it reached, so
// each line of output stands on its own.
func reportCeiling(b *testing.B, rate, ceiling float64) {
	b.ReportMetric(rate, "items/s")
	b.ReportMetric(ceiling, "ceiling-items/s")
	b.ReportMetric(100*rate/ceiling, "pct-of-ceiling")
}

// ceilingOf measures the ceiling of n items on the given transport, with
// slots executing goroutines in process: a plain Go worker pool in
// process, bare PUSH/PULL over ipc and tcp. The timer is stopped meanwhile.
func ceilingOf(b *testing.B, tr string, n, slots int) float64 {
	b.StopTimer()
	defer b.StartTimer()
	if tr == "inproc" {
		return plainPool(n, slots)
	}
	return rawPushPull(b, tr, n)
}

// plainPool returns the items/s of a plain Go worker pool: slots
// goroutines take n items from a buffered channel and hand each back on
// another, where one goroutine counts them. It is what a program without
// a pipeline engine does in process, with nothing acknowledged, retried or
// checked.
func plainPool(n, slots int) float64 { return plainPoolOf(n, slots, plainPoolBuffer) }

// plainPoolBuffer is the size of the plain pool's channels.
const plainPoolBuffer = 1024

func plainPoolOf(n, slots, buffer int) float64 {
	items := make(chan uint64, buffer)
	done := make(chan uint64, buffer)
	var wg sync.WaitGroup
	start := time.Now()
	for range slots {
		wg.Go(func() {
			for id := range items {
				done <- id
			}
		})
	}
	go func() {
		for i := range n {
			items <- uint64(i)
		}
		close(items)
	}()
	for range n {
		<-done
	}
	took := time.Since(start)
	wg.Wait()
	return float64(n) / took.Seconds()
}

// rawPushPull returns the msgs/s of bare libzmq PUSH to PULL over a fresh
// endpoint of tr: n messages the size of a work message of one no-op item,
// one way, with no pipeline at all.
func rawPushPull(b testing.TB, tr string, n int) float64 {
	size := noopWork.EncodedLen()
	pull, push, closeAll := rawPair(b, tr, zmq.PULL, zmq.PUSH)
	defer closeAll()
	msg := make([]byte, size)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		for range n {
			if _, err := pull.RecvBytes(0); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range n {
		if _, err := push.SendBytes(msg, 0); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return float64(n) / time.Since(start).Seconds()
}
