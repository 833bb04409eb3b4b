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
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/cli"
	"github.com/zmqpipeline/zmqpipeline/examples/internal/seed"
	_ "github.com/zmqpipeline/zmqpipeline/transport/zmqtransport" // ipc:// and tcp://
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

// multiplierOf reads the run's multiplier from the metadata. A peer may
// send anything, so a missing, non-integer or non-positive one is refused
// here rather than trusted into a division.
func multiplierOf(md engine.Metadata) (int64, error) {
	m, ok := md["multiplier"].(int64)
	if !ok {
		return 0, fmt.Errorf("metadata: multiplier %v (%T) is not an integer", md["multiplier"], md["multiplier"])
	}
	if m <= 0 {
		return 0, fmt.Errorf("metadata: multiplier %d is not positive", m)
	}
	return m, nil
}

func (c *checker) Init(ctx context.Context, md engine.Metadata) error {
	m, err := multiplierOf(md)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.multiplier, c.sum, c.wrong = m, 0, 0 // a new run starts the counts afresh
	c.mu.Unlock()
	fmt.Printf("collector got metadata: %v\n", md)
	return c.Stopwatch.Start(ctx, md)
}

func (c *checker) HandleResult(ctx context.Context, res *engine.Result) (any, error) {
	var product int64
	if err := res.Decode(&product); err != nil {
		return nil, err
	}
	c.tally(product)
	return c.Stopwatch.HandleResult(ctx, res)
}

// tally counts one product; the deferred unlock keeps the mutex free even
// if something in it panics.
func (c *checker) tally(product int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.multiplier > 0 && product%c.multiplier != 0 {
		c.wrong++
	}
	c.sum += product
}

func main() { cli.Main(program(flag.CommandLine)) }

// program registers the example's flags on fs and returns its pipeline.
func program(fs *flag.FlagSet) func(*cli.Config) (*cli.Pipeline, error) {
	s := seed.Register(fs, seed.Settings{Items: 100, Delay: 10 * time.Millisecond, Goroutines: 1})
	return func(cfg *cli.Config) (*cli.Pipeline, error) {
		if err := s.Check(); err != nil {
			return nil, err
		}
		const multiplier = 7
		check := &checker{}
		// Set by the workers' init hook, from the metadata, before any
		// item; every worker of this process shares it.
		var mult atomic.Int64
		p := &cli.Pipeline{
			Tasks: []engine.TaskSpec{{Type: TaskTypeScale, Task: &scaleTask{n: s.Items}, Timeout: s.Timeout()}},
			Metadata: func(ctx context.Context) (engine.Metadata, error) {
				// A real source would read a database or a config service here.
				return engine.Metadata{"workload": s.Delay.Seconds(), "multiplier": multiplier, "run": "example-5"}, nil
			},
			Workers: []cli.Worker{{
				Type: TaskTypeScale,
				Handler: engine.HandlerFunc(func(ctx context.Context, job *engine.Job) (any, error) {
					var j Number
					if err := job.Decode(&j); err != nil {
						return nil, err
					}
					if _, err := seed.Sleep(ctx, job); err != nil {
						return nil, err
					}
					return int64(j.N) * mult.Load(), nil
				}),
				Options: append(s.WorkerOptions(), engine.WithWorkerInit(func(ctx context.Context, md engine.Metadata) error {
					m, err := multiplierOf(md)
					if err != nil {
						return err
					}
					mult.Store(m)
					return nil
				})),
			}},
			Collector:        check,
			CollectorOptions: []engine.CollectorOption{engine.WithCollectorInit(check.Init), engine.WithFinished(check.Finished)},
		}
		p.Done = func(proc *cli.Process) error {
			if proc.Collector == nil {
				return nil
			}
			if err := check.ReportCollected(os.Stdout); err != nil {
				return err
			}
			check.mu.Lock()
			defer check.mu.Unlock()
			want := int64(multiplier) * int64(s.Items) * int64(s.Items+1) / 2
			fmt.Printf("collected %d results, sum %d (want %d), %d not multiples of %d\n", check.Results(), check.sum, want, check.wrong, multiplier)
			if check.sum != want || check.wrong != 0 {
				return errors.New("the workers did not all use the metadata")
			}
			seed.Report(os.Stdout, "pipeline execution", seed.Ideal(s.Items, s.Delay, cfg.Workers*s.Goroutines), proc.Elapsed)
			return nil
		}
		fmt.Printf("running - role: %s - items: %d - delay from metadata: %.3f - workers: %d - goroutines: %d\n",
			cfg.Role, s.Items, s.Delay.Seconds(), cfg.Workers, s.Goroutines)
		return p, nil
	}
}
