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
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/examples/seed"
)

// The example's task types.
const (
	TaskTypeFirst  = "first"
	TaskTypeSecond = "second"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dependencies:", err)
		os.Exit(1)
	}
}

// orderCheck is the collector's result handler: it counts first results
// and notes whether any second result came before the last first one.
type orderCheck struct {
	seed.Stopwatch
	mu            sync.Mutex
	first, second int
	broken        bool // a second result came while first results were missing
	n             int
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

func run(args []string) error {
	cfg, err := seed.ParseFlags("dependencies", args, seed.Config{Items: 100, Delay: 10 * time.Millisecond, Workers: 1, Goroutines: 1})
	if err != nil {
		return err
	}
	log := cfg.Log
	ctx, stop := seed.SignalContext()
	defer stop()

	dist, err := engine.NewDistributor(cfg.Endpoints, []engine.TaskSpec{
		{Type: TaskTypeFirst, Task: seed.WorkItems(cfg.Items, cfg.Delay)},
		{Type: TaskTypeSecond, Task: seed.WorkItems(cfg.Items, cfg.Delay), DependsOn: []string{TaskTypeFirst}},
	}, cfg.DistributorOptions(log)...)
	if err != nil {
		return err
	}
	check := &orderCheck{n: cfg.Items}
	coll, err := engine.NewCollector(cfg.Endpoints, check, engine.WithFinished(check.Finished), engine.WithLogger(log))
	if err != nil {
		return err
	}
	var workers []*engine.Worker
	for _, tt := range []string{TaskTypeFirst, TaskTypeSecond} {
		for range cfg.Workers {
			h := func(ctx context.Context, job *engine.Job) (any, error) {
				if cfg.Verbose {
					fmt.Printf("%s worker - working for %f seconds\n", tt, cfg.Delay.Seconds())
				}
				return seed.Sleep(ctx, job)
			}
			w, err := engine.NewWorker(cfg.Endpoints, tt, engine.HandlerFunc(h), cfg.WorkerOptions(log)...)
			if err != nil {
				return err
			}
			workers = append(workers, w)
		}
	}

	fmt.Printf("running - role: %s - items: %d per type - delay: %.3f - workers: %d per type - goroutines: %d\n",
		cfg.Role, cfg.Items, cfg.Delay.Seconds(), cfg.Workers, cfg.Goroutines)
	took, err := cfg.Run(ctx, seed.Pipeline{Distributor: dist, Collector: coll, Workers: workers})
	if err != nil {
		return err
	}
	if cfg.Role == seed.RoleAll || cfg.Role == seed.RoleWorker {
		for i, w := range workers {
			fmt.Printf("%s worker finished - handled %d executions\n", []string{TaskTypeFirst, TaskTypeSecond}[i/cfg.Workers], w.Executed())
		}
	}
	if cfg.Role == seed.RoleAll || cfg.Role == seed.RoleCollector {
		check.mu.Lock()
		defer check.mu.Unlock()
		fmt.Printf("collected %d first and %d second results\n", check.first, check.second)
		if check.broken {
			return fmt.Errorf("dependency order broken: a second result arrived before every first result")
		}
		fmt.Println("dependency order held: every first result was collected before the first second result")
		// The two types run one after the other.
		ideal := 2 * seed.Ideal(cfg.Items, cfg.Delay, cfg.Workers*cfg.Goroutines)
		seed.Report(os.Stdout, "pipeline execution", ideal, took)
	}
	return nil
}
