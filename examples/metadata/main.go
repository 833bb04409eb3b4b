// Command metadata re-creates the seed document's Example 5, which the
// original left "forthcoming": a metadata source hands the distributor a map
// before any work goes out, and the task, every worker and the collector
// get it. Here the metadata carries the workload per item and a multiplier:
// the task builds its items from the workload, the workers multiply each
// item's number by the multiplier, and the collector checks the products.
//
//	go run ./examples/metadata -n 200 -workers 2
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/examples/seed"
)

// TaskTypeScale is the example's task type.
const TaskTypeScale = "scale"

// Number is one item: a number and the work it stands for.
type Number struct {
	N        int     `msgpack:"n"`
	Workload float64 `msgpack:"workload"`
}

// scaleTask produces n items whose workload comes from the metadata.
type scaleTask struct {
	n, next  int
	workload float64
}

func (t *scaleTask) Init(ctx context.Context, md engine.Metadata) error {
	w, ok := md["workload"].(float64)
	if !ok {
		return fmt.Errorf("metadata: workload is %T, want a number of seconds", md["workload"])
	}
	t.workload = w
	return nil
}

func (t *scaleTask) Next(ctx context.Context) (engine.Item, error) {
	if t.next >= t.n {
		return engine.Item{}, engine.ErrNoMoreItems
	}
	t.next++
	return engine.Item{Payload: Number{N: t.next, Workload: t.workload}, Last: t.next == t.n}, nil
}

// checker is the collector: it takes the multiplier from the metadata and
// checks every product.
type checker struct {
	seed.Stopwatch
	mu         sync.Mutex
	multiplier int64
	sum        int64
	wrong      int
}

func (c *checker) Init(ctx context.Context, md engine.Metadata) error {
	m, ok := md["multiplier"].(int64)
	if !ok {
		return errors.New("metadata: no integer multiplier")
	}
	c.multiplier = m
	fmt.Printf("collector got metadata: %v\n", md)
	return nil
}

func (c *checker) HandleResult(ctx context.Context, res *engine.Result) (any, error) {
	var product int64
	if err := res.Decode(&product); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if product%c.multiplier != 0 {
		c.wrong++
	}
	c.sum += product
	c.mu.Unlock()
	return c.Stopwatch.HandleResult(ctx, res)
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "metadata:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, err := seed.ParseFlags("metadata", args, seed.Config{Items: 100, Delay: 10 * time.Millisecond, Workers: 1, Goroutines: 1})
	if err != nil {
		return err
	}
	log := cfg.Log
	ctx, stop := seed.SignalContext()
	defer stop()

	const multiplier = 7
	source, err := engine.NewMetadataSource(cfg.Endpoints, func(ctx context.Context) (engine.Metadata, error) {
		// A real source would read a database or a config service here.
		return engine.Metadata{"workload": cfg.Delay.Seconds(), "multiplier": multiplier, "run": "example-5"}, nil
	}, engine.WithLogger(log))
	if err != nil {
		return err
	}
	dist, err := engine.NewDistributor(cfg.Endpoints, []engine.TaskSpec{{Type: TaskTypeScale, Task: &scaleTask{n: cfg.Items}}},
		engine.WithMetadata(), engine.WithLogger(log))
	if err != nil {
		return err
	}
	check := &checker{}
	coll, err := engine.NewCollector(cfg.Endpoints, check, engine.WithCollectorInit(check.Init), engine.WithFinished(check.Finished), engine.WithLogger(log))
	if err != nil {
		return err
	}
	var workers []*engine.Worker
	for range cfg.Workers {
		var mult int64 // set by the init hook, from the metadata, before any item
		w, err := engine.NewWorker(cfg.Endpoints, TaskTypeScale,
			engine.HandlerFunc(func(ctx context.Context, job *engine.Job) (any, error) {
				var j Number
				if err := job.Decode(&j); err != nil {
					return nil, err
				}
				if _, err := seed.Sleep(ctx, job); err != nil {
					return nil, err
				}
				return int64(j.N) * mult, nil
			}),
			append(cfg.WorkerOptions(log), engine.WithWorkerInit(func(ctx context.Context, md engine.Metadata) error {
				m, ok := md["multiplier"].(int64)
				if !ok {
					return errors.New("metadata: no integer multiplier")
				}
				mult = m
				return nil
			}))...)
		if err != nil {
			return err
		}
		workers = append(workers, w)
	}

	fmt.Printf("running - role: %s - items: %d - delay from metadata: %.3f - workers: %d - goroutines: %d\n",
		cfg.Role, cfg.Items, cfg.Delay.Seconds(), cfg.Workers, cfg.Goroutines)
	took, err := cfg.Run(ctx, seed.Pipeline{Distributor: dist, Collector: coll, Workers: workers, Metadata: source})
	if err != nil {
		return err
	}
	if cfg.Role == seed.RoleAll || cfg.Role == seed.RoleCollector {
		check.mu.Lock()
		defer check.mu.Unlock()
		want := int64(multiplier) * int64(cfg.Items) * int64(cfg.Items+1) / 2
		fmt.Printf("collected %d results, sum %d (want %d), %d not multiples of %d\n", check.Results(), check.sum, want, check.wrong, multiplier)
		if check.sum != want || check.wrong != 0 {
			return errors.New("the workers did not all use the metadata")
		}
		seed.Report(os.Stdout, "pipeline execution", seed.Ideal(cfg.Items, cfg.Delay, cfg.Workers*cfg.Goroutines), took)
	}
	return nil
}
