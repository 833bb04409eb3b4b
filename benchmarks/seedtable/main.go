// Command seedtable re-runs the seed document's benchmark tables: the
// sequential baseline (Example 1), single-goroutine workers (Example 2) and
// workers of several goroutines (Example 3), each n items of delay work,
// and prints for each the ideal time, the measured time, the overhead and
// how many percentage points the pipeline adds over the sequential loop
// measured in the same run.
//
// Beside the sequential loop it measures plain goroutines doing the same
// sleeps with the same parallelism and no pipeline at all, since timer slack
// on a busy machine grows with parallelism and is not the pipeline's doing.
// Each repetition measures all three back to back; the "added" columns are
// medians of those paired differences, which the machine's drift over
// minutes does not skew.
//
// Every figure comes from the example programs themselves, built once and
// run as a user runs them, and read from the reports they print: by
// default with every role in one process (-role all), timed over the
// whole run; with -transport ipc or tcp with every role in its own OS
// process, started as the seed did (collector and workers, then the
// distributor), timed by the collector's stopwatch from its first result
// to the end, against the ideal time less one item.
//
//	go run ./benchmarks/seedtable -n 1000 -delay 10ms -repeat 3
//	go run ./benchmarks/seedtable -transport ipc -repeat 3
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"text/tabwriter"
	"time"
)

type row struct {
	name                string
	workers, goroutines int
}

var rows = []row{
	{"singlethread", 1, 1},
	{"singlethread", 2, 1},
	{"multithread", 1, 10},
	{"multithread", 2, 10},
}

func main() {
	n := flag.Int("n", 1000, "items per run")
	delay := flag.Duration("delay", 10*time.Millisecond, "work per item")
	repeat := flag.Int("repeat", 1, "runs of each row; the median is shown")
	prefetch := flag.Int("prefetch", -1, "worker prefetch (-1: one per goroutine, growing for short items)")
	tr := flag.String("transport", "inproc", "inproc (one process), or ipc or tcp (a process per role)")
	verbose := flag.Bool("v", false, "print every run's figures to stderr as it ends")
	flag.Parse()
	if *n < 1 || *delay <= 0 || *repeat < 1 {
		fmt.Fprintln(os.Stderr, "seedtable: -n, -delay and -repeat must be positive")
		os.Exit(2)
	}
	if err := run(os.Stdout, options{n: *n, delay: *delay, repeat: *repeat, prefetch: *prefetch, transport: *tr, verbose: *verbose}); err != nil {
		fmt.Fprintln(os.Stderr, "seedtable:", err)
		os.Exit(1)
	}
}

type options struct {
	n         int
	delay     time.Duration
	repeat    int
	prefetch  int
	transport string
	verbose   bool
}

func run(out io.Writer, o options) error {
	ctx := context.Background()
	n, delay := o.n, o.delay
	ex, err := buildExamples(ctx, o.transport)
	if err != nil {
		return err
	}
	defer ex.close()
	type sample struct {
		overhead, seq, plain float64
		ideal                time.Duration
	}
	samples := make([][]sample, len(rows))
	var seqs []float64
	// Each repetition measures the sequential loop, then per row the plain
	// goroutines and the pipeline back to back, so the machine's drift
	// cancels out of the differences.
	for r := range o.repeat {
		s, err := ex.sequential(ctx, n, delay)
		if err != nil {
			return err
		}
		seq := s.overhead()
		seqs = append(seqs, seq)
		for i, rw := range rows {
			p := rw.workers * rw.goroutines
			plain := overhead(plainGoroutines(n, delay, p), ideal(n, delay, p))
			rep, err := ex.pipeline(ctx, rw, n, delay, o.prefetch, r)
			if err != nil {
				return fmt.Errorf("%s workers=%d goroutines=%d: %w", rw.name, rw.workers, rw.goroutines, err)
			}
			samples[i] = append(samples[i], sample{rep.overhead(), seq, plain, rep.expected})
			if o.verbose {
				fmt.Fprintf(os.Stderr, "run %d: %s %d×%d: overhead %.2f%%, sequential %.2f%%, plain goroutines %.2f%%\n",
					r+1, rw.name, rw.workers, rw.goroutines, rep.overhead(), seq, plain)
			}
		}
	}
	where := "inproc, one process, timed over the whole run"
	if o.transport != "inproc" {
		where = o.transport + ", a process per role, timed by the collector from its first result"
	}
	fmt.Fprintf(out, "items: %d, delay: %v, runs per row: %d (medians), prefetch: %d\ntransport: %s\n", n, delay, o.repeat, o.prefetch, where)
	fmt.Fprintf(out, "sequential loop (Example 1): overhead %.2f%%\n\n", median(seqs))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "example\tworkers\tgoroutines\tideal ms\tmeasured ms\toverhead %\tplain goroutines %\tadded vs sequential (points)\tadded vs plain (points)\t")
	for i, rw := range rows {
		ideal := samples[i][0].ideal
		var ov, pl, dSeq, dPlain []float64
		for _, s := range samples[i] {
			ov = append(ov, s.overhead)
			pl = append(pl, s.plain)
			dSeq = append(dSeq, s.overhead-s.seq)
			dPlain = append(dPlain, s.overhead-s.plain)
		}
		took := time.Duration(float64(ideal) * (1 + median(ov)/100))
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%.2f\t%.2f\t%+.2f\t%+.2f\t\n",
			rw.name, rw.workers, rw.goroutines, ms(ideal), ms(took), median(ov), median(pl), median(dSeq), median(dPlain))
	}
	return tw.Flush()
}

// plainGoroutines does the same sleeps on p goroutines with no pipeline.
func plainGoroutines(n int, delay time.Duration, p int) time.Duration {
	items := make(chan struct{}, n)
	for range n {
		items <- struct{}{}
	}
	close(items)
	start := time.Now()
	var wg sync.WaitGroup
	for range p {
		wg.Go(func() {
			for range items {
				time.Sleep(delay)
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ideal is the time n items of delay take on p executors with no
// overhead: whole rounds of p items.
func ideal(n int, delay time.Duration, p int) time.Duration {
	return time.Duration((n+p-1)/p) * delay
}

// overhead is measured over expected less one, in percent.
func overhead(measured, expected time.Duration) float64 {
	return (float64(measured)/float64(expected) - 1) * 100
}
