package seed

import (
	"flag"
	"fmt"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/cli"
)

// Settings are the flags every seed example has beside package cli's
// (-role, -distributor, -collector, -types, -workers, -quorum, -log).
type Settings struct {
	Items      int
	Delay      time.Duration
	Goroutines int
	Prefetch   int
	Verbose    bool
}

// Register adds -n, -delay, -goroutines, -prefetch and -v to fs, with d's
// values as defaults, and returns the Settings that parsing fills.
func Register(fs *flag.FlagSet, d Settings) *Settings {
	s := &d
	fs.IntVar(&s.Items, "n", d.Items, "number of work items (per task type)")
	fs.DurationVar(&s.Delay, "delay", d.Delay, "simulated work per item")
	fs.IntVar(&s.Goroutines, "goroutines", max(d.Goroutines, 1), "goroutines per worker")
	fs.IntVar(&s.Prefetch, "prefetch", engine.DefaultPrefetch, "items a worker holds beyond those it executes (-1: one per goroutine, growing for short items)")
	fs.BoolVar(&s.Verbose, "v", d.Verbose, "print a line per item, as the original's examples did")
	return s
}

// Check validates the settings after parsing; errors wrap cli.ErrUsage.
func (s *Settings) Check() error {
	switch {
	case s.Items < 0:
		return fmt.Errorf("%w: -n %d: want 0 or more items", cli.ErrUsage, s.Items)
	case s.Delay < 0:
		return fmt.Errorf("%w: -delay %v: want 0 or more", cli.ErrUsage, s.Delay)
	case s.Goroutines < 1:
		return fmt.Errorf("%w: -goroutines %d: want at least 1", cli.ErrUsage, s.Goroutines)
	case s.Prefetch < engine.DefaultPrefetch:
		return fmt.Errorf("%w: -prefetch %d: want -1 (one per goroutine) or more", cli.ErrUsage, s.Prefetch)
	}
	return nil
}

// MinTimeout is the least execution deadline the examples give an item.
const MinTimeout = 10 * time.Second

// Timeout is the execution deadline of the examples' task types: ten
// times -delay, and at least MinTimeout. An attempt that runs past it
// fails, and a worker that holds items and finishes none for it plus the
// liveness timeout is taken for gone, so a peer that takes items and sits
// on them cannot stall a run. The role runner's -item-timeout replaces it.
func (s *Settings) Timeout() time.Duration { return max(10*s.Delay, MinTimeout) }

// WorkerOptions returns the worker options the flags set.
func (s *Settings) WorkerOptions() []engine.WorkerOption {
	return []engine.WorkerOption{engine.WithConcurrency(s.Goroutines), engine.WithPrefetch(s.Prefetch)}
}

// TaskTypeCalc is the task type of the seed's Examples 2 and 3.
const TaskTypeCalc = "C"

// Calc builds the seed's Examples 2 and 3: one task type of s.Items items
// of s.Delay work each, workers of s.Goroutines goroutines running handler,
// and a stopwatch collector. workerOpts are added to the workers' options.
func Calc(s *Settings, handler engine.HandlerFunc, workerOpts ...engine.WorkerOption) (*cli.Pipeline, *Stopwatch) {
	watch := &Stopwatch{}
	return &cli.Pipeline{
		Tasks:            []engine.TaskSpec{{Type: TaskTypeCalc, Task: WorkItems(s.Items, s.Delay), Timeout: s.Timeout()}},
		Workers:          []cli.Worker{{Type: TaskTypeCalc, Handler: handler, Options: append(s.WorkerOptions(), workerOpts...)}},
		Collector:        watch,
		CollectorOptions: []engine.CollectorOption{engine.WithCollectorInit(watch.Start), engine.WithFinished(watch.Finished)},
	}, watch
}
