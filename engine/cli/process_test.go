package cli_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/cli"
	"github.com/zmqpipeline/zmqpipeline/engine/cli/clitest"
)

// testProgram is a pipeline program, run by the process tests in a child
// process: 1² + … + n² summed by its collector, with a handler that
// squares, at once or after 5 ms ("slow"), or one that holds its item
// until stopped ("stuck"), or one that holds it and ignores being stopped
// ("deaf").
func testProgram() {
	n := flag.Int("n", 20, "items")
	handler := flag.String("handler", "square", "square, slow, stuck or deaf")
	var s squares
	cli.Main(func(cfg *cli.Config) (*cli.Pipeline, error) {
		var once sync.Once
		took := func() { once.Do(func() { fmt.Println("took an item") }) }
		h := square
		switch *handler {
		case "slow":
			h = func(ctx context.Context, job *engine.Job) (any, error) {
				took()
				time.Sleep(5 * time.Millisecond)
				return square(ctx, job)
			}
		case "stuck":
			h = func(ctx context.Context, job *engine.Job) (any, error) {
				took()
				<-ctx.Done()
				return nil, ctx.Err()
			}
		case "deaf":
			h = func(ctx context.Context, job *engine.Job) (any, error) {
				took()
				select {} // never returns: only a second signal ends the process
			}
		}
		p := s.pipeline(*n, h)
		p.Done = func(p *cli.Process) error {
			if p.Collector != nil {
				fmt.Printf("sum %d of %d results\n", s.sum, s.seen)
			}
			for _, w := range p.Workers {
				fmt.Printf("worker executed %d items\n", w.Executed())
			}
			return nil
		}
		return p, nil
	})
}

// start runs the test program with args.
func start(t *testing.T, name string, args ...string) *clitest.Process {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), programEnv+"=1")
	return clitest.Start(t, name, cmd)
}

func ipcPair(t *testing.T) (string, string) {
	dir := t.TempDir()
	return "ipc://" + filepath.Join(dir, "d.ipc"), "ipc://" + filepath.Join(dir, "c.ipc")
}

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts pipeline programs as processes; skipped with -short")
	}
}

// TestOneRolePerProcessOverIPC runs the program three times, once per role.
func TestOneRolePerProcessOverIPC(t *testing.T) {
	skipShort(t)
	d, c := ipcPair(t)
	ends := []string{"-distributor", d, "-collector", c}
	worker := start(t, "worker", append([]string{"-role", "worker"}, ends...)...)
	collector := start(t, "collector", append([]string{"-role", "collector"}, ends...)...)
	distributor := start(t, "distributor", append([]string{"-role", "distributor"}, ends...)...)
	for _, p := range []*clitest.Process{worker, collector, distributor} {
		assert.Equal(t, cli.ExitOK, p.ExitCode(t), "%s:\n%s", p.Name(), p.Output())
	}
	assert.Contains(t, collector.Output(), "sum 2870 of 20 results")
	assert.Contains(t, distributor.Output(), "distributor listening on "+d)
}

// TestEphemeralPortsAcrossProcesses: the distributor and the collector
// bind ports the system picks, say which, and the others dial those.
func TestEphemeralPortsAcrossProcesses(t *testing.T) {
	skipShort(t)
	const free = "tcp://127.0.0.1:0"
	distributor := start(t, "distributor", "-role", "distributor", "-distributor", free, "-collector", "tcp://127.0.0.1:1")
	d := distributor.Listening(t, "distributor")
	assert.Regexp(t, `^tcp://127\.0\.0\.1:[1-9]\d*$`, d)
	collector := start(t, "collector", "-role", "collector", "-distributor", d, "-collector", free)
	c := collector.Listening(t, "collector")
	worker := start(t, "worker", "-role", "worker", "-distributor", d, "-collector", c)
	for _, p := range []*clitest.Process{worker, collector, distributor} {
		assert.Equal(t, cli.ExitOK, p.ExitCode(t), "%s:\n%s", p.Name(), p.Output())
	}
	assert.Contains(t, collector.Output(), "sum 2870 of 20 results")
}

func TestExitCodesOfProcesses(t *testing.T) {
	skipShort(t)
	t.Run("usage", func(t *testing.T) {
		p := start(t, "bad", "-role", "boss")
		assert.Equal(t, cli.ExitUsage, p.ExitCode(t))
		assert.Contains(t, p.Output(), `-role "boss"`)
	})
	t.Run("worker drains while waiting", func(t *testing.T) {
		d, c := ipcPair(t)
		p := start(t, "worker", "-role", "worker", "-distributor", d, "-collector", c, "-log", "info")
		p.WaitFor(t, "msg=running") // past the set-up, signals are handled
		p.Signal(t, syscall.SIGTERM)
		assert.Equal(t, cli.ExitOK, p.ExitCode(t), "a worker that holds nothing drains at once:\n%s", p.Output())
		assert.Contains(t, p.Output(), "drained before it joined a run")
	})
	t.Run("worker drains what it holds", func(t *testing.T) {
		d, c := ipcPair(t)
		ends := []string{"-distributor", d, "-collector", c, "-handler", "slow", "-n", "200", "-log", "info"}
		collector := start(t, "collector", append([]string{"-role", "collector"}, ends...)...)
		distributor := start(t, "distributor", append([]string{"-role", "distributor", "-quorum", "2"}, ends...)...)
		leaving := start(t, "leaving worker", append([]string{"-role", "worker"}, ends...)...)
		steady := start(t, "steady worker", append([]string{"-role", "worker"}, ends...)...)
		leaving.WaitFor(t, "took an item")
		leaving.Signal(t, syscall.SIGTERM)
		assert.Equal(t, cli.ExitOK, leaving.ExitCode(t), "a drained worker exits 0:\n%s", leaving.Output())
		assert.Regexp(t, `executed [1-9]\d*`, leaving.Output(), "it prints its tally")
		for _, p := range []*clitest.Process{steady, collector, distributor} {
			assert.Equal(t, cli.ExitOK, p.ExitCode(t), "%s:\n%s", p.Name(), p.Output())
		}
		assert.Contains(t, collector.Output(), "sum 2686700 of 200 results", "every item collected once")
	})
	t.Run("distributor stopped says how far the run got", func(t *testing.T) {
		d, c := ipcPair(t)
		ends := []string{"-distributor", d, "-collector", c, "-handler", "stuck", "-log", "info"}
		collector := start(t, "collector", append([]string{"-role", "collector"}, ends...)...)
		distributor := start(t, "distributor", append([]string{"-role", "distributor"}, ends...)...)
		worker := start(t, "worker", append([]string{"-role", "worker", "-grace", "100ms"}, ends...)...)
		collector.WaitFor(t, "collector ready")
		worker.WaitFor(t, "took an item")
		distributor.Signal(t, syscall.SIGTERM)
		assert.Equal(t, cli.ExitStopped, distributor.ExitCode(t))
		assert.Regexp(t, `stopped by terminated before the run completed \(0 items done of \d+ produced\)`, distributor.Output(),
			"the message names the signal and the progress, not a context")
		assert.NotContains(t, distributor.Output(), "context canceled")
		assert.Equal(t, cli.ExitAborted, worker.ExitCode(t), worker.Output())
		assert.Equal(t, cli.ExitAborted, collector.ExitCode(t), collector.Output())
	})
	t.Run("aborted by the distributor", func(t *testing.T) {
		d, c := ipcPair(t)
		ends := []string{"-distributor", d, "-collector", c, "-handler", "stuck", "-log", "info"}
		collector := start(t, "collector", append([]string{"-role", "collector"}, ends...)...)
		distributor := start(t, "distributor", append([]string{"-role", "distributor"}, ends...)...)
		worker := start(t, "worker", append([]string{"-role", "worker"}, ends...)...)
		collector.WaitFor(t, "collector ready") // welcomed: the distributor knows to tell it
		worker.WaitFor(t, "took an item")
		distributor.Signal(t, syscall.SIGTERM)
		assert.Equal(t, cli.ExitStopped, distributor.ExitCode(t), distributor.Output())
		assert.Equal(t, cli.ExitAborted, worker.ExitCode(t), worker.Output())
		assert.Equal(t, cli.ExitAborted, collector.ExitCode(t), collector.Output())
		assert.Contains(t, worker.Output(), "run aborted")
	})
	t.Run("second signal exits at once", func(t *testing.T) {
		d, c := ipcPair(t)
		ends := []string{"-distributor", d, "-collector", c, "-handler", "deaf", "-log", "info"}
		collector := start(t, "collector", append([]string{"-role", "collector"}, ends...)...)
		distributor := start(t, "distributor", append([]string{"-role", "distributor"}, ends...)...)
		worker := start(t, "worker", append([]string{"-role", "worker"}, ends...)...)
		collector.WaitFor(t, "collector ready")
		worker.WaitFor(t, "took an item")
		// The first signal asks the worker to drain; its handler never
		// returns, so only the second ends it ("exiting now" is printed on
		// the second signal alone).
		worker.Signal(t, syscall.SIGTERM)
		worker.WaitFor(t, "draining") // the first signal was handled: the next is not merged with it
		worker.Signal(t, syscall.SIGTERM)
		assert.Equal(t, cli.ExitStopped, worker.ExitCode(t))
		assert.Contains(t, worker.Output(), "second terminated: exiting now")
		distributor.Signal(t, syscall.SIGTERM)
		assert.Equal(t, cli.ExitStopped, distributor.ExitCode(t), distributor.Output())
		assert.Equal(t, cli.ExitAborted, collector.ExitCode(t), collector.Output())
	})
}

func TestAllInOneStoppedSaysHowFarTheRunGot(t *testing.T) {
	skipShort(t)
	p := start(t, "all", "-handler", "slow", "-n", "5000")
	p.WaitFor(t, "took an item")
	p.Signal(t, syscall.SIGTERM)
	assert.Equal(t, cli.ExitStopped, p.ExitCode(t))
	assert.Regexp(t, `stopped by terminated before the run completed \(\d+ items done of \d+ produced\)`, p.Output())
	assert.NotContains(t, p.Output(), "context canceled")
}
