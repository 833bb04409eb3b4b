package seed

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
	// ipc:// and tcp:// endpoints, for running one role per process.
	_ "github.com/zmqpipeline/zmqpipeline/transport/zmqtransport"
)

// Roles a process can take.
const (
	RoleAll         = "all"
	RoleDistributor = "distributor"
	RoleCollector   = "collector"
	RoleWorker      = "worker"
	RoleMetadata    = "metadata"
)

// Environment variables that set the endpoints when the flags are not given.
const (
	EnvDistributor = "ZMQPIPELINE_DISTRIBUTOR"
	EnvCollector   = "ZMQPIPELINE_COLLECTOR"
)

// Config is an example's command line.
type Config struct {
	Items      int
	Delay      time.Duration
	Workers    int
	Goroutines int
	Prefetch   int
	Quorum     int
	Role       string
	Endpoints  engine.Endpoints
	Verbose    bool
	LogLevel   string
	// Log logs to stderr at LogLevel; ParseFlags sets it.
	Log *slog.Logger
}

// ParseFlags parses args (without the program name) over defaults. The
// endpoint flags fall back to the environment, then to inproc endpoints
// named after the example.
func ParseFlags(example string, args []string, defaults Config) (*Config, error) {
	c := defaults
	fs := flag.NewFlagSet(example, flag.ContinueOnError)
	fs.IntVar(&c.Items, "n", c.Items, "number of work items (per task type)")
	fs.DurationVar(&c.Delay, "delay", c.Delay, "simulated work per item")
	fs.IntVar(&c.Workers, "workers", c.Workers, "workers (per task type) this process runs")
	fs.IntVar(&c.Goroutines, "goroutines", c.Goroutines, "goroutines per worker")
	fs.IntVar(&c.Prefetch, "prefetch", engine.DefaultPrefetch, "items a worker holds beyond those it executes (-1: one per goroutine)")
	fs.IntVar(&c.Quorum, "quorum", 0, "distributor: hand out nothing until this many workers joined")
	fs.StringVar(&c.Role, "role", RoleAll, "what this process runs: all, distributor, collector, worker or metadata")
	fs.StringVar(&c.Endpoints.Distributor, "distributor", envOr(EnvDistributor, "inproc://"+example+"/distributor"), "distributor endpoint (inproc://name, ipc:///path, tcp://host:port)")
	fs.StringVar(&c.Endpoints.Collector, "collector", envOr(EnvCollector, "inproc://"+example+"/collector"), "collector endpoint")
	fs.BoolVar(&c.Verbose, "v", c.Verbose, "print a line per item, as the original's examples did")
	fs.StringVar(&c.LogLevel, "log", "error", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case c.Items < 0:
		return nil, fmt.Errorf("-n %d: want 0 or more items", c.Items)
	case c.Delay < 0:
		return nil, fmt.Errorf("-delay %v: want 0 or more", c.Delay)
	case c.Workers < 1:
		return nil, fmt.Errorf("-workers %d: want at least 1", c.Workers)
	case c.Goroutines < 1:
		return nil, fmt.Errorf("-goroutines %d: want at least 1", c.Goroutines)
	case c.Prefetch < engine.DefaultPrefetch:
		return nil, fmt.Errorf("-prefetch %d: want -1 (one per goroutine) or more", c.Prefetch)
	}
	switch c.Role {
	case RoleAll, RoleDistributor, RoleCollector, RoleWorker, RoleMetadata:
	default:
		return nil, fmt.Errorf("-role %q: want all, distributor, collector, worker or metadata", c.Role)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("-log %q: %w", c.LogLevel, err)
	}
	c.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if c.Role != RoleAll && (strings.HasPrefix(c.Endpoints.Distributor, "inproc://") || strings.HasPrefix(c.Endpoints.Collector, "inproc://")) {
		return nil, fmt.Errorf("-role %s runs one part of the pipeline in this process, so the others must reach it: give ipc:// or tcp:// endpoints (-distributor, -collector)", c.Role)
	}
	return &c, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// WorkerOptions returns the worker options the flags set, with log.
func (c *Config) WorkerOptions(log *slog.Logger) []engine.WorkerOption {
	return []engine.WorkerOption{engine.WithConcurrency(c.Goroutines), engine.WithPrefetch(c.Prefetch), engine.WithLogger(log)}
}

// DistributorOptions returns the distributor options the flags set, with
// log.
func (c *Config) DistributorOptions(log *slog.Logger) []engine.DistributorOption {
	return []engine.DistributorOption{engine.WithQuorum(c.Quorum), engine.WithLogger(log)}
}

// SignalContext returns a context that ends on Ctrl-C or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Pipeline is every component an example builds. A process runs the ones
// of its role.
type Pipeline struct {
	Distributor *engine.Distributor
	Collector   *engine.Collector
	Workers     []*engine.Worker
	Metadata    *engine.MetadataSource
}

// Run runs the components of c.Role and returns how long that took.
func (c *Config) Run(ctx context.Context, p Pipeline) (time.Duration, error) {
	var comps []engine.Runner
	mine := func(role string) bool { return c.Role == RoleAll || c.Role == role }
	if p.Distributor != nil && mine(RoleDistributor) {
		comps = append(comps, p.Distributor)
	}
	if p.Collector != nil && mine(RoleCollector) {
		comps = append(comps, p.Collector)
	}
	if mine(RoleWorker) {
		for _, w := range p.Workers {
			comps = append(comps, w)
		}
	}
	if p.Metadata != nil && mine(RoleMetadata) {
		comps = append(comps, p.Metadata)
	}
	if len(comps) == 0 {
		return 0, errors.New("this example has no " + c.Role)
	}
	start := time.Now()
	err := engine.RunAll(ctx, comps...)
	return time.Since(start), err
}

// TaskTypeCalc is the task type of the seed's Examples 2 and 3.
const TaskTypeCalc = "C"

// Calc builds the seed's Examples 2 and 3: one task type of c.Items items of
// c.Delay work each, c.Workers workers of c.Goroutines goroutines running
// handler (Sleep when nil), and a stopwatch collector. workerOpts are added
// to every worker's options.
func Calc(c *Config, log *slog.Logger, handler engine.HandlerFunc, workerOpts ...engine.WorkerOption) (Pipeline, *Stopwatch, error) {
	var p Pipeline
	if handler == nil {
		handler = Sleep
	}
	var err error
	p.Distributor, err = engine.NewDistributor(c.Endpoints, []engine.TaskSpec{{Type: TaskTypeCalc, Task: WorkItems(c.Items, c.Delay)}}, c.DistributorOptions(log)...)
	if err != nil {
		return p, nil, err
	}
	watch := &Stopwatch{}
	p.Collector, err = engine.NewCollector(c.Endpoints, watch, engine.WithFinished(watch.Finished), engine.WithLogger(log))
	if err != nil {
		return p, nil, err
	}
	for range c.Workers {
		w, err := engine.NewWorker(c.Endpoints, TaskTypeCalc, handler, append(c.WorkerOptions(log), workerOpts...)...)
		if err != nil {
			return p, nil, err
		}
		p.Workers = append(p.Workers, w)
	}
	return p, watch, nil
}
