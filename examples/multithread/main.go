// Command multithread is the seed document's Example 3: Example 2's task
// executed by workers that run several goroutines each (the original's
// MultiThreadedWorker). The worker's main hook counts the item and forwards
// it; each goroutine does the work, knowing its index.
//
//	go run ./examples/multithread -n 1000 -workers 2 -goroutines 10
package main

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/examples/seed"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "multithread:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, err := seed.ParseFlags("multithread", args, seed.Config{Items: 100, Delay: 10 * time.Millisecond, Workers: 1, Goroutines: 10})
	if err != nil {
		return err
	}
	log := cfg.Log
	ctx, stop := seed.SignalContext()
	defer stop()

	// The goroutine hook: does the work; job.Goroutine is its index.
	work := func(ctx context.Context, job *engine.Job) (any, error) {
		if cfg.Verbose {
			fmt.Printf("goroutine %d - item %d\n", job.Goroutine, job.ItemID)
		}
		return seed.Sleep(ctx, job)
	}
	// The main hook: counts the execution and forwards the item unchanged
	// (what it returned would be the goroutine's Job.Value).
	var executions atomic.Int64
	prepare := engine.WithPrepare(func(ctx context.Context, job *engine.Job) (any, error) {
		executions.Add(1)
		return nil, nil
	})
	p, watch, err := seed.Calc(cfg, log, work, prepare)
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
		fmt.Printf("main hook ran %d times\n", executions.Load())
	}
	if cfg.Role == seed.RoleAll {
		fmt.Printf("collected %d results\n", watch.Results())
	}
	seed.ReportRun(os.Stdout, cfg, took, watch)
	return nil
}
