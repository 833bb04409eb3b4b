// Command singlethread is the seed document's Example 2: one task type, "C",
// whose n items each ask for delay of work, executed by single-goroutine
// workers (the original's SingleThreadedWorker), with a stopwatch collector.
//
// In one process (the default, over inproc endpoints):
//
//	go run ./examples/singlethread -n 1000 -workers 2
//
// The same binary runs one role per process when given ipc:// or tcp://
// endpoints (-role distributor|collector|worker, -distributor, -collector).
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/examples/seed"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "singlethread:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, err := seed.ParseFlags("singlethread", args, seed.Config{Items: 100, Delay: 10 * time.Millisecond, Workers: 1, Goroutines: 1})
	if err != nil {
		return err
	}
	log := cfg.Log
	ctx, stop := seed.SignalContext()
	defer stop()

	// The worker's execution hook: do the work. Returning nothing forwards
	// nothing extra to the collector.
	work := seed.Sleep
	if cfg.Verbose {
		work = func(ctx context.Context, job *engine.Job) (any, error) {
			fmt.Printf("worker - item %d\n", job.ItemID)
			return seed.Sleep(ctx, job)
		}
	}
	p, watch, err := seed.Calc(cfg, log, work)
	if err != nil {
		return err
	}
	fmt.Printf("running - role: %s - items: %d - delay: %.3f - workers: %d - goroutines: %d\n",
		cfg.Role, cfg.Items, cfg.Delay.Seconds(), cfg.Workers, cfg.Goroutines)
	took, err := cfg.Run(ctx, p)
	if err != nil {
		return err
	}
	if cfg.Role == seed.RoleAll || cfg.Role == seed.RoleWorker {
		for i, w := range p.Workers {
			fmt.Printf("worker %d finished - handled %d executions\n", i, w.Executed())
		}
	}
	if cfg.Role == seed.RoleAll {
		fmt.Printf("collected %d results\n", watch.Results())
	}
	seed.ReportRun(os.Stdout, cfg, took, watch)
	return nil
}
