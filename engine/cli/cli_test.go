package cli_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/cli"
	_ "github.com/zmqpipeline/zmqpipeline/transport/zmqtransport" // ipc:// for the process tests
)

// programEnv makes the test binary run testProgram through cli.Main
// instead of the tests: the process tests start it as a pipeline program.
const programEnv = "CLI_TEST_PROGRAM"

func TestMain(m *testing.M) {
	if os.Getenv(programEnv) == "1" {
		testProgram()
		return
	}
	goleak.VerifyTestMain(m)
}

// squares is a pipeline of n items whose results the collector sums.
type squares struct {
	mu   sync.Mutex
	sum  int
	seen int
}

func (s *squares) pipeline(n int, handler engine.HandlerFunc) *cli.Pipeline {
	return &cli.Pipeline{
		Tasks:   []engine.TaskSpec{{Type: "square", Task: engine.Items(n, func(i int) (any, error) { return i + 1, nil })}},
		Workers: []cli.Worker{{Type: "square", Handler: handler, Options: []engine.WorkerOption{engine.WithConcurrency(2)}}},
		Collector: engine.ResultFunc(func(ctx context.Context, res *engine.Result) (any, error) {
			var v int
			err := res.Decode(&v)
			s.mu.Lock()
			defer s.mu.Unlock()
			s.sum += v
			s.seen++
			return nil, err
		}),
	}
}

func square(ctx context.Context, job *engine.Job) (any, error) {
	var n int
	err := job.Decode(&n)
	return n * n, err
}

func run(t *testing.T, args []string, build func(*cli.Config) (*cli.Pipeline, error)) (*cli.Process, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fs := flag.NewFlagSet("clitest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return cli.Run(ctx, fs, args, build)
}

func TestRunsEveryRoleInOneProcessByDefault(t *testing.T) {
	var s squares
	var done *cli.Process
	proc, err := run(t, nil, func(cfg *cli.Config) (*cli.Pipeline, error) {
		assert.Equal(t, cli.RoleAll, cfg.Role)
		assert.Equal(t, "inproc://clitest/distributor", cfg.Endpoints.Distributor)
		p := s.pipeline(10, square)
		p.Done = func(p *cli.Process) error { done = p; return nil }
		return p, nil
	})
	require.NoError(t, err)
	assert.Equal(t, 385, s.sum, "1² + … + 10²")
	assert.Same(t, proc, done, "Done saw what ran")
	assert.NotNil(t, proc.Distributor)
	assert.NotNil(t, proc.Collector)
	assert.Len(t, proc.Workers, 1)
	assert.Nil(t, proc.Metadata, "the pipeline has no metadata")
	assert.Positive(t, proc.Elapsed)
}

func TestWorkersTypesAndMetadata(t *testing.T) {
	var s squares
	var got atomic.Int64
	proc, err := run(t, []string{"-workers", "3", "-types", "square", "-quorum", "3"}, func(cfg *cli.Config) (*cli.Pipeline, error) {
		p := s.pipeline(30, func(ctx context.Context, job *engine.Job) (any, error) { return square(ctx, job) })
		p.Workers = append(p.Workers, cli.Worker{Type: "unused", Handler: engine.HandlerFunc(square)})
		p.Metadata = func(context.Context) (engine.Metadata, error) { return engine.Metadata{"k": 1}, nil }
		p.Workers[0].Options = append(p.Workers[0].Options, engine.WithWorkerInit(func(ctx context.Context, md engine.Metadata) error {
			got.Add(md["k"].(int64))
			return nil
		}))
		return p, nil
	})
	require.NoError(t, err)
	assert.Len(t, proc.Workers, 3, "-workers 3 of the one type -types picked")
	assert.NotNil(t, proc.Metadata)
	assert.Equal(t, int64(3), got.Load(), "every worker got the metadata")
	assert.Equal(t, 30, s.seen)
}

func TestItemTimeoutAndLimits(t *testing.T) {
	var s squares
	t.Setenv(cli.EnvMaxInFlight, "3")
	var deadlines atomic.Int64
	proc, err := run(t, []string{"-item-timeout", "1m", "-max-peers", "2"}, func(cfg *cli.Config) (*cli.Pipeline, error) {
		assert.Equal(t, time.Minute, cfg.ItemTimeout)
		assert.Equal(t, 2, cfg.MaxPeers)
		assert.Equal(t, 3, cfg.MaxInFlight, "from the environment")
		return s.pipeline(10, func(ctx context.Context, job *engine.Job) (any, error) {
			if d, ok := ctx.Deadline(); ok && time.Until(d) <= time.Minute {
				deadlines.Add(1)
			}
			return square(ctx, job)
		}), nil
	})
	require.NoError(t, err)
	assert.Equal(t, int64(10), deadlines.Load(), "every attempt ran within -item-timeout")
	assert.Equal(t, 10, s.seen)
	assert.NotNil(t, proc.Distributor)
}

func TestEnvironmentAndFlags(t *testing.T) {
	t.Setenv(cli.EnvRole, "worker")
	t.Setenv(cli.EnvDistributor, "ipc:///tmp/env-d.ipc")
	t.Setenv(cli.EnvCollector, "ipc:///tmp/env-c.ipc")
	t.Setenv(cli.EnvWorkers, "4")
	var cfg *cli.Config
	stop := errors.New("stop before running")
	_, err := run(t, []string{"-collector", "tcp://127.0.0.1:7000"}, func(c *cli.Config) (*cli.Pipeline, error) {
		cfg = c
		return nil, stop
	})
	require.ErrorIs(t, err, stop)
	assert.Equal(t, cli.RoleWorker, cfg.Role)
	assert.Equal(t, "ipc:///tmp/env-d.ipc", cfg.Endpoints.Distributor)
	assert.Equal(t, "tcp://127.0.0.1:7000", cfg.Endpoints.Collector, "a flag beats the environment")
	assert.Equal(t, 4, cfg.Workers)
	assert.True(t, cfg.Runs(cli.RoleWorker))
	assert.False(t, cfg.Runs(cli.RoleCollector))
}

func TestUsageErrors(t *testing.T) {
	var s squares
	build := func(*cli.Config) (*cli.Pipeline, error) { return s.pipeline(1, square), nil }
	noMetadata := build
	for _, tt := range []struct {
		name string
		args []string
		env  [2]string
		want string
	}{
		{"unknown role", []string{"-role", "boss"}, [2]string{}, `-role "boss"`},
		{"no workers", []string{"-workers", "0"}, [2]string{}, "-workers 0"},
		{"negative quorum", []string{"-quorum", "-1"}, [2]string{}, "-quorum -1"},
		{"bad log level", []string{"-log", "loud"}, [2]string{}, `-log "loud"`},
		{"negative item timeout", []string{"-item-timeout", "-1s"}, [2]string{}, "-item-timeout -1s"},
		{"one peer", []string{"-max-peers", "1"}, [2]string{}, "-max-peers 1"},
		{"nothing in flight", []string{"-max-in-flight", "0"}, [2]string{}, "-max-in-flight 0"},
		{"bad environment duration", nil, [2]string{cli.EnvItemTimeout, "soon"}, `ZMQPIPELINE_ITEM_TIMEOUT="soon"`},
		{"one role in process", []string{"-role", "worker"}, [2]string{}, "ipc:// or tcp://"},
		{"unknown type", []string{"-types", "cube"}, [2]string{}, `task type "cube" (it has: square)`},
		{"metadata role without metadata", []string{"-role", "metadata", "-distributor", "ipc:///tmp/x.ipc", "-collector", "ipc:///tmp/y.ipc"}, [2]string{}, "no metadata"},
		{"bad environment number", nil, [2]string{cli.EnvWorkers, "many"}, `ZMQPIPELINE_WORKERS="many"`},
		{"unknown flag", []string{"-bogus"}, [2]string{}, "bogus"},
		{"stray argument", []string{"extra"}, [2]string{}, "extra"},
		{"bad endpoint", []string{"-distributor", "tcp://nowhere"}, [2]string{}, "tcp://nowhere"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env[0] != "" {
				t.Setenv(tt.env[0], tt.env[1])
			}
			_, err := run(t, tt.args, noMetadata)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Equal(t, cli.ExitUsage, cli.ExitCode(err), "%v", err)
		})
	}
	_, err := run(t, []string{"-h"}, build)
	assert.ErrorIs(t, err, flag.ErrHelp)
	assert.Equal(t, cli.ExitOK, cli.ExitCode(err))
}

func TestExitCodes(t *testing.T) {
	assert.Equal(t, cli.ExitOK, cli.ExitCode(nil))
	assert.Equal(t, cli.ExitStopped, cli.ExitCode(fmt.Errorf("worker: %w", context.Canceled)))
	assert.Equal(t, cli.ExitAborted, cli.ExitCode(fmt.Errorf("worker: %w: shutting down", engine.ErrAborted)))
	assert.Equal(t, cli.ExitUsage, cli.ExitCode(fmt.Errorf("x: %w", engine.ErrInvalidConfig)))
	assert.Equal(t, cli.ExitFailed, cli.ExitCode(errors.New("disk full")))
}

// ExampleRun runs a whole pipeline in one process, as a program's main
// does with cli.Main; with -role and ipc:// or tcp:// endpoints the same
// program runs one role per process.
func ExampleRun() {
	sum := 0
	build := func(cfg *cli.Config) (*cli.Pipeline, error) {
		return &cli.Pipeline{
			Tasks: []engine.TaskSpec{{Type: "square", Task: engine.Items(4, func(i int) (any, error) { return i + 1, nil })}},
			Workers: []cli.Worker{{Type: "square", Handler: engine.HandlerFunc(func(ctx context.Context, job *engine.Job) (any, error) {
				var n int
				err := job.Decode(&n)
				return n * n, err
			})}},
			Collector: engine.ResultFunc(func(ctx context.Context, res *engine.Result) (any, error) {
				var sq int
				err := res.Decode(&sq)
				sum += sq
				return nil, err
			}),
			Done: func(p *cli.Process) error {
				fmt.Println("role", p.Config.Role, "- sum of squares", sum)
				return nil
			},
		}, nil
	}
	_, err := cli.Run(context.Background(), flag.NewFlagSet("squares", flag.ContinueOnError), nil, build)
	fmt.Println("exit code", cli.ExitCode(err))
	// Output:
	// role all - sum of squares 30
	// exit code 0
}

// -metrics serves the components' Prometheus metrics while they run, on
// the address given, and stops with them.
func TestMetricsFlagServesTheRun(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	url := "http://" + addr + "/metrics"
	get := func() (string, error) {
		resp, err := http.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	release := make(chan struct{})
	scraped := make(chan string, 1)
	go func() {
		defer close(release)
		// Scrape until the nine items before the held one show as complete.
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if body, err := get(); err == nil && strings.Contains(body, `zmqpipeline_items_completed_total{task_type="square"} 9`) {
				scraped <- body
				return
			}
		}
	}()
	var s squares
	proc, err := run(t, []string{"-metrics", addr}, func(cfg *cli.Config) (*cli.Pipeline, error) {
		return s.pipeline(10, func(ctx context.Context, job *engine.Job) (any, error) {
			if job.ItemID == 10 {
				<-release
			}
			return square(ctx, job)
		}), nil
	})
	require.NoError(t, err)
	assert.Equal(t, addr, proc.MetricsAddr)
	var body string
	select {
	case body = <-scraped:
	default:
		t.Fatal("no scrape showed the run under way")
	}
	for _, line := range []string{
		`zmqpipeline_items_total{task_type="square"} 10`,
		`zmqpipeline_items_in_flight{task_type="square"} 1`,
		`zmqpipeline_collector_results_total{task_type="square"} 9`,
		`zmqpipeline_worker_items_executed_total{task_type="square"} 9`,
		`zmqpipeline_task_state{state="running",task_type="square"} 1`,
	} {
		assert.Contains(t, body, line)
	}
	_, err = get()
	assert.Error(t, err, "the metrics stop with the components")
}
