// Command multithread is the seed document's Example 3: Example 2's task
// executed by workers that run several goroutines each (the original's
// MultiThreadedWorker). The worker's main hook counts the item and forwards
// it; each goroutine does the work, knowing its index.
//
//	go run ./examples/multithread -n 1000 -workers 2 -goroutines 10
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/cli"
	"github.com/zmqpipeline/zmqpipeline/examples/internal/seed"
	_ "github.com/zmqpipeline/zmqpipeline/transport/zmqtransport" // ipc:// and tcp://
)

func main() { cli.Main(program(flag.CommandLine)) }

// program registers the example's flags on fs and returns its pipeline.
func program(fs *flag.FlagSet) func(*cli.Config) (*cli.Pipeline, error) {
	s := seed.Register(fs, seed.Settings{Items: 100, Delay: 10 * time.Millisecond, Goroutines: 10})
	return func(cfg *cli.Config) (*cli.Pipeline, error) {
		if err := s.Check(); err != nil {
			return nil, err
		}
		// A line per item would break up the progress bar's lines.
		cfg.Quiet = cfg.Quiet || s.Verbose
		// The goroutine hook: does the work; job.Goroutine is its index.
		work := func(ctx context.Context, job *engine.Job) (any, error) {
			if s.Verbose {
				fmt.Printf("goroutine %d - item %d\n", job.Goroutine, job.ItemID)
			}
			return seed.Sleep(ctx, job)
		}
		// The main hook: counts the execution and forwards the item
		// unchanged (what it returned would be the goroutine's Job.Value).
		var executions atomic.Int64
		prepare := engine.WithPrepare(func(ctx context.Context, job *engine.Job) (any, error) {
			executions.Add(1)
			return nil, nil
		})
		p, watch := seed.Calc(s, work, prepare)
		p.Done = func(proc *cli.Process) error {
			for i, w := range proc.Workers {
				fmt.Printf("worker %d finished - handled %d executions\n", i, w.Executed())
			}
			if len(proc.Workers) > 0 {
				fmt.Printf("main hook ran %d times\n", executions.Load())
			}
			return seed.ReportRun(os.Stdout, proc, s, watch)
		}
		fmt.Printf("running - role: %s - items: %d - delay: %.3f - workers: %d - goroutines: %d\n",
			cfg.Role, s.Items, s.Delay.Seconds(), cfg.Workers, s.Goroutines)
		return p, nil
	}
}
