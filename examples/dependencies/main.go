// Command dependencies is the seed document's Example 4: two task types,
// "first" and "second", where second depends on first, each of n items of
// delay work, each with its own single-goroutine workers. No item of second
// starts before every item of first was acknowledged; the collector checks
// that from the order results arrive in, which holds however the roles are
// spread over processes.
//
//	go run ./examples/dependencies -n 500 -v
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/cli"
	"github.com/zmqpipeline/zmqpipeline/examples/internal/seed"
	_ "github.com/zmqpipeline/zmqpipeline/transport/zmqtransport" // ipc:// and tcp://
)

// The example's task types.
const (
	TaskTypeFirst  = "first"
	TaskTypeSecond = "second"
)

func main() { cli.Main(program(flag.CommandLine)) }

// orderCheck is the collector's result handler: it counts first results
// and notes whether any second result came before the last first one.
type orderCheck struct {
	seed.Stopwatch
	mu            sync.Mutex
	first, second int
	broken        bool // a second result came while first results were missing
	n             int
}

// Start is the collector's init hook; a new run starts the counts afresh.
func (o *orderCheck) Start(ctx context.Context, md engine.Metadata) error {
	o.mu.Lock()
	o.first, o.second, o.broken = 0, 0, false
	o.mu.Unlock()
	return o.Stopwatch.Start(ctx, md)
}

func (o *orderCheck) HandleResult(ctx context.Context, res *engine.Result) (any, error) {
	o.mu.Lock()
	switch res.TaskType {
	case TaskTypeFirst:
		o.first++
	case TaskTypeSecond:
		if o.first < o.n {
			o.broken = true
		}
		o.second++
	}
	o.mu.Unlock()
	return o.Stopwatch.HandleResult(ctx, res)
}

// program registers the example's flags on fs and returns its pipeline.
func program(fs *flag.FlagSet) func(*cli.Config) (*cli.Pipeline, error) {
	s := seed.Register(fs, seed.Settings{Items: 100, Delay: 10 * time.Millisecond, Goroutines: 1})
	return func(cfg *cli.Config) (*cli.Pipeline, error) {
		if err := s.Check(); err != nil {
			return nil, err
		}
		// A line per item would break up the progress bar's lines.
		cfg.Quiet = cfg.Quiet || s.Verbose
		check := &orderCheck{n: s.Items}
		p := &cli.Pipeline{
			Tasks: []engine.TaskSpec{
				{Type: TaskTypeFirst, Task: seed.WorkItems(s.Items, s.Delay), Timeout: s.Timeout()},
				{Type: TaskTypeSecond, Task: seed.WorkItems(s.Items, s.Delay), DependsOn: []string{TaskTypeFirst}, Timeout: s.Timeout()},
			},
			Collector:        check,
			CollectorOptions: []engine.CollectorOption{engine.WithCollectorInit(check.Start), engine.WithFinished(check.Finished)},
		}
		for _, tt := range []string{TaskTypeFirst, TaskTypeSecond} {
			h := func(ctx context.Context, job *engine.Job) (any, error) {
				if s.Verbose {
					fmt.Printf("%s worker - working for %f seconds\n", tt, s.Delay.Seconds())
				}
				return seed.Sleep(ctx, job)
			}
			p.Workers = append(p.Workers, cli.Worker{Type: tt, Handler: engine.HandlerFunc(h), Options: s.WorkerOptions()})
		}
		p.Done = func(proc *cli.Process) error {
			for _, w := range proc.Workers {
				fmt.Printf("%s worker finished - handled %d executions\n", w.TaskType(), w.Executed())
			}
			if proc.Collector == nil {
				return nil
			}
			if err := check.ReportCollected(os.Stdout); err != nil {
				return err
			}
			check.mu.Lock()
			defer check.mu.Unlock()
			fmt.Printf("collected %d first and %d second results\n", check.first, check.second)
			if check.broken {
				return fmt.Errorf("dependency order broken: a second result arrived before every first result")
			}
			fmt.Println("dependency order held: every first result was collected before the first second result")
			// The two types run one after the other.
			ideal := 2 * seed.Ideal(s.Items, s.Delay, cfg.Workers*s.Goroutines)
			seed.Report(os.Stdout, "pipeline execution", ideal, proc.Elapsed)
			return nil
		}
		fmt.Printf("running - role: %s - items: %d per type - delay: %.3f - workers: %d per type - goroutines: %d\n",
			cfg.Role, s.Items, s.Delay.Seconds(), cfg.Workers, s.Goroutines)
		return p, nil
	}
}
