// Command singlethread is the seed document's Example 2: one task type, "C",
// whose n items each ask for delay of work, executed by single-goroutine
// workers (the original's SingleThreadedWorker), with a stopwatch collector.
//
// In one process (the default, over inproc endpoints):
//
//	go run ./examples/singlethread -n 1000 -workers 2
//
// The same binary runs one role per process when given ipc:// or tcp://
// endpoints (-role distributor|collector|worker, -distributor, -collector;
// see package engine/cli for every flag).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/cli"
	"github.com/zmqpipeline/zmqpipeline/examples/internal/seed"
	_ "github.com/zmqpipeline/zmqpipeline/transport/zmqtransport" // ipc:// and tcp://
)

func main() { cli.Main(program(flag.CommandLine)) }

// program registers the example's flags on fs and returns its pipeline.
func program(fs *flag.FlagSet) func(*cli.Config) (*cli.Pipeline, error) {
	s := seed.Register(fs, seed.Settings{Items: 100, Delay: 10 * time.Millisecond, Goroutines: 1})
	return func(cfg *cli.Config) (*cli.Pipeline, error) {
		if err := s.Check(); err != nil {
			return nil, err
		}
		// A line per item would break up the progress bar's lines.
		cfg.Quiet = cfg.Quiet || s.Verbose
		// The worker's execution hook: do the work. Returning nothing
		// forwards nothing extra to the collector.
		work := seed.Sleep
		if s.Verbose {
			work = func(ctx context.Context, job *engine.Job) (any, error) {
				fmt.Printf("worker - item %d\n", job.ItemID)
				return seed.Sleep(ctx, job)
			}
		}
		p, watch := seed.Calc(s, work)
		p.Done = func(proc *cli.Process) error {
			for i, w := range proc.Workers {
				fmt.Printf("worker %d finished - handled %d executions\n", i, w.Executed())
			}
			return seed.ReportRun(os.Stdout, proc, s, watch)
		}
		fmt.Printf("running - role: %s - items: %d - delay: %.3f - workers: %d - goroutines: %d\n",
			cfg.Role, s.Items, s.Delay.Seconds(), cfg.Workers, s.Goroutines)
		return p, nil
	}
}
