// Package seed holds what the runnable examples share: the original
// library's simulated workload (each item sleeps a while), a stopwatch
// collector, the expected/measured/overhead report the seed document
// prints, and the flags that size a run. The role and the endpoints are
// package cli's business, as in any user's program.
//
// The seed-table runner in benchmarks/ runs the example binaries and reads
// their reports, so the numbers in the README and the examples come from
// the same code.
package seed

import (
	"context"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/cli"
)

// Work is one item's payload, as in the original: how long to work, in
// seconds.
type Work struct {
	Workload float64 `msgpack:"workload"`
}

// Duration returns the workload as a time.Duration.
func (w Work) Duration() time.Duration { return time.Duration(w.Workload * float64(time.Second)) }

// WorkItems returns a task of n items, each asking for delay of work.
func WorkItems(n int, delay time.Duration) engine.Task {
	w := Work{Workload: delay.Seconds()}
	return engine.Items(n, func(int) (any, error) { return w, nil })
}

// interruptibleAbove is the workload from which Sleep waits on a timer and
// the context instead of calling time.Sleep. A timer channel in a select
// wakes later than time.Sleep on a busy machine (about 0.7 percentage
// points of a 10 ms item on the 2-core machines here, with or without a
// pipeline), so short items sleep plainly and can delay a cancellation by
// at most their own length.
const interruptibleAbove = 100 * time.Millisecond

// Sleep is the examples' execution hook: it does the item's work by
// sleeping. Work above 100 ms stops early when ctx ends. It returns
// nothing: nothing extra goes to the collector.
func Sleep(ctx context.Context, job *engine.Job) (any, error) {
	var w Work
	if err := job.Decode(&w); err != nil {
		return nil, fmt.Errorf("decode work: %w", err)
	}
	d := w.Duration()
	switch {
	case d <= 0:
		return nil, nil
	case d <= interruptibleAbove:
		time.Sleep(d)
		return nil, ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Stopwatch is a collector result handler that times the run from the first
// result to the finished hook, like the original's StopWatchCollector,
// counts results, and checks that no item is handled twice: the engine
// promises that of one collector, and the examples show it.
type Stopwatch struct {
	mu       sync.Mutex
	first    time.Time
	finished time.Time
	results  int
	seen     []uint64 // a bit per item id
	twice    int
	summary  engine.Summary
}

// HandleResult implements engine.ResultHandler.
func (s *Stopwatch) HandleResult(ctx context.Context, res *engine.Result) (any, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first.IsZero() {
		s.first = now
	}
	s.results++
	w, bit := res.ItemID/64, uint64(1)<<(res.ItemID%64)
	for uint64(len(s.seen)) <= w {
		s.seen = append(s.seen, 0)
	}
	if s.seen[w]&bit != 0 {
		s.twice++
	}
	s.seen[w] |= bit
	return nil, nil
}

// Start is the collector's init hook: a collector that joins a new run
// (its distributor was restarted) starts counting afresh, since item ids
// start again with every run.
func (s *Stopwatch) Start(ctx context.Context, _ engine.Metadata) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.first, s.finished, s.results, s.seen, s.twice, s.summary = time.Time{}, time.Time{}, 0, nil, 0, engine.Summary{}
	return nil
}

// Twice returns how many results were for items handled before.
func (s *Stopwatch) Twice() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.twice
}

// ReportCollected prints what the collector handled: the results, that
// no item was handled twice (or how many were, an error), and the
// duplicates the engine acknowledged without handling them.
func (s *Stopwatch) ReportCollected(w io.Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(w, "collected %d results\n", s.results)
	fmt.Fprintf(w, "duplicate results suppressed: %d\n", s.summary.Duplicates)
	if s.twice > 0 {
		return fmt.Errorf("%d items were handled twice", s.twice)
	}
	fmt.Fprintln(w, "each item handled once")
	return nil
}

// Finished is the collector's finished hook.
func (s *Stopwatch) Finished(ctx context.Context, summary engine.Summary) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finished = time.Now()
	s.summary = summary
}

// FinishedAt returns when the finished hook ran (zero before).
func (s *Stopwatch) FinishedAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.finished
}

// Results returns the number of results handled.
func (s *Stopwatch) Results() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.results
}

// Ideal returns the time n items of delay each take on slots parallel
// executors with no overhead at all.
func Ideal(n int, delay time.Duration, slots int) time.Duration {
	if slots < 1 {
		slots = 1
	}
	rounds := (n + slots - 1) / slots
	return time.Duration(rounds) * delay
}

// Overhead returns measured over expected less one, in percent.
func Overhead(measured, expected time.Duration) float64 {
	if expected <= 0 {
		return math.Inf(1)
	}
	return (float64(measured)/float64(expected) - 1) * 100
}

// Report prints the seed document's three lines: the expected time, what the
// run took and the overhead.
func Report(w io.Writer, what string, expected, measured time.Duration) {
	fmt.Fprintf(w, "expected execution time: %.1f\n", ms(expected))
	fmt.Fprintf(w, "%s took: %.1f milliseconds\n", what, ms(measured))
	fmt.Fprintf(w, "overhead: %.1f%%\n", Overhead(measured, expected))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Sequential sleeps delay n times in a loop and returns how long it took:
// the seed's Example 1, the baseline for every pipeline run.
func Sequential(n int, delay time.Duration) time.Duration {
	start := time.Now()
	for range n {
		time.Sleep(delay)
	}
	return time.Since(start)
}

// FirstResult returns when the first result arrived (zero before).
func (s *Stopwatch) FirstResult() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first
}

// ReportRun prints the seed's report for what this process ran. In one
// process it times the whole run. A collector process on its own times from
// its first result to the end, against the ideal less the first round; a
// distributor process on its own times its whole run, which is the run's
// time when the other roles were started first.
func ReportRun(w io.Writer, p *cli.Process, s *Settings, watch *Stopwatch) error {
	ideal := Ideal(s.Items, s.Delay, p.Config.Workers*s.Goroutines)
	if p.Collector != nil {
		if err := watch.ReportCollected(w); err != nil {
			return err
		}
	}
	switch p.Config.Role {
	case cli.RoleAll, cli.RoleDistributor:
		Report(w, "pipeline execution", ideal, p.Elapsed)
	case cli.RoleCollector:
		if first := watch.FirstResult(); !first.IsZero() {
			Report(w, "collection after the first result", ideal-s.Delay, watch.FinishedAt().Sub(first))
		}
	}
	return nil
}
