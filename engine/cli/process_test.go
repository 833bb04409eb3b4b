package cli_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/cli"
)

// testProgram is a pipeline program, run by the process tests in a child
// process: 1² + … + n² summed by its collector, with a handler that
// squares, or one that holds its item until stopped ("stuck"), or one that
// holds it and ignores being stopped ("deaf").
func testProgram() {
	n := flag.Int("n", 20, "items")
	handler := flag.String("handler", "square", "square, stuck or deaf")
	var s squares
	cli.Main(func(cfg *cli.Config) (*cli.Pipeline, error) {
		var once sync.Once
		took := func() { once.Do(func() { fmt.Println("took an item") }) }
		h := square
		switch *handler {
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
			return nil
		}
		return p, nil
	})
}

// processDeadline bounds every wait on a child process.
const processDeadline = 30 * time.Second

// child is one running test program. Its stdout and stderr go to one
// buffer that the test can wait on.
type child struct {
	name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	out     strings.Builder
	changed chan struct{} // closed and replaced on every write
	exited  chan struct{}
	code    int
}

func (c *child) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.Write(b)
	close(c.changed)
	c.changed = make(chan struct{})
	return len(b), nil
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// start runs the test program with args. The child is killed, by its PID,
// if the test ends first.
func start(t *testing.T, name string, args ...string) *child {
	t.Helper()
	c := &child{name: name, changed: make(chan struct{}), exited: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], args...)
	c.cmd.Env = append(os.Environ(), programEnv+"=1")
	c.cmd.Stdout, c.cmd.Stderr = c, c
	require.NoError(t, c.cmd.Start(), name)
	go func() {
		err := c.cmd.Wait()
		var exit *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exit):
			c.code = exit.ExitCode()
		default:
			c.code = -1
		}
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	})
	return c
}

// waitFor returns the first match of re in the child's output, waiting for
// it to appear.
func (c *child) waitFor(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(processDeadline)
	for {
		c.mu.Lock()
		m := rx.FindStringSubmatch(c.out.String())
		changed := c.changed
		c.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-changed:
		case <-c.exited:
			if m := rx.FindStringSubmatch(c.output()); m != nil {
				return m
			}
			t.Fatalf("%s exited without printing %q:\n%s", c.name, re, c.output())
		case <-deadline:
			t.Fatalf("%s did not print %q in time:\n%s", c.name, re, c.output())
		}
	}
}

// exitCode waits for the child to exit.
func (c *child) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-c.exited:
		return c.code
	case <-time.After(processDeadline):
		t.Fatalf("%s did not exit in time:\n%s", c.name, c.output())
		return 0
	}
}

func (c *child) signal(t *testing.T, s os.Signal) {
	t.Helper()
	require.NoError(t, c.cmd.Process.Signal(s), c.name)
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
	for _, p := range []*child{worker, collector, distributor} {
		assert.Equal(t, cli.ExitOK, p.exitCode(t), "%s:\n%s", p.name, p.output())
	}
	assert.Contains(t, collector.output(), "sum 2870 of 20 results")
	assert.Contains(t, distributor.output(), "distributor listening on "+d)
}

// TestEphemeralPortsAcrossProcesses: the distributor and the collector
// bind ports the system picks, say which, and the others dial those.
func TestEphemeralPortsAcrossProcesses(t *testing.T) {
	skipShort(t)
	const free = "tcp://127.0.0.1:0"
	distributor := start(t, "distributor", "-role", "distributor", "-distributor", free, "-collector", "tcp://127.0.0.1:1")
	d := distributor.waitFor(t, `distributor listening on (tcp://127\.0\.0\.1:\d+)`)[1]
	collector := start(t, "collector", "-role", "collector", "-distributor", d, "-collector", free)
	c := collector.waitFor(t, `collector listening on (tcp://127\.0\.0\.1:\d+)`)[1]
	worker := start(t, "worker", "-role", "worker", "-distributor", d, "-collector", c)
	for _, p := range []*child{worker, collector, distributor} {
		assert.Equal(t, cli.ExitOK, p.exitCode(t), "%s:\n%s", p.name, p.output())
	}
	assert.Contains(t, collector.output(), "sum 2870 of 20 results")
}

func TestExitCodesOfProcesses(t *testing.T) {
	skipShort(t)
	t.Run("usage", func(t *testing.T) {
		p := start(t, "bad", "-role", "boss")
		assert.Equal(t, cli.ExitUsage, p.exitCode(t))
		assert.Contains(t, p.output(), `-role "boss"`)
	})
	t.Run("stopped while waiting", func(t *testing.T) {
		d, c := ipcPair(t)
		p := start(t, "worker", "-role", "worker", "-distributor", d, "-collector", c, "-log", "info")
		p.waitFor(t, "msg=running") // past the set-up, signals are handled
		p.signal(t, syscall.SIGTERM)
		assert.Equal(t, cli.ExitStopped, p.exitCode(t))
		assert.Contains(t, p.output(), "stopped by a signal before the run completed")
	})
	t.Run("aborted by the distributor", func(t *testing.T) {
		d, c := ipcPair(t)
		ends := []string{"-distributor", d, "-collector", c, "-handler", "stuck", "-log", "info"}
		collector := start(t, "collector", append([]string{"-role", "collector"}, ends...)...)
		distributor := start(t, "distributor", append([]string{"-role", "distributor"}, ends...)...)
		worker := start(t, "worker", append([]string{"-role", "worker"}, ends...)...)
		collector.waitFor(t, "collector ready") // welcomed: the distributor knows to tell it
		worker.waitFor(t, "took an item")
		distributor.signal(t, syscall.SIGTERM)
		assert.Equal(t, cli.ExitStopped, distributor.exitCode(t), distributor.output())
		assert.Equal(t, cli.ExitAborted, worker.exitCode(t), worker.output())
		assert.Equal(t, cli.ExitAborted, collector.exitCode(t), collector.output())
		assert.Contains(t, worker.output(), "run aborted")
	})
	t.Run("second signal exits at once", func(t *testing.T) {
		d, c := ipcPair(t)
		ends := []string{"-distributor", d, "-collector", c, "-handler", "deaf", "-log", "info"}
		collector := start(t, "collector", append([]string{"-role", "collector"}, ends...)...)
		distributor := start(t, "distributor", append([]string{"-role", "distributor"}, ends...)...)
		worker := start(t, "worker", append([]string{"-role", "worker"}, ends...)...)
		collector.waitFor(t, "collector ready")
		worker.waitFor(t, "took an item")
		// The first signal asks the worker to stop; its handler ignores
		// that, so only the second ends it ("exiting now" is printed on
		// the second signal alone).
		worker.signal(t, syscall.SIGTERM)
		worker.waitFor(t, "stopping") // the first signal was handled: the next is not merged with it
		worker.signal(t, syscall.SIGTERM)
		assert.Equal(t, cli.ExitStopped, worker.exitCode(t))
		assert.Contains(t, worker.output(), "second terminated: exiting now")
		distributor.signal(t, syscall.SIGTERM)
		assert.Equal(t, cli.ExitStopped, distributor.exitCode(t), distributor.output())
		assert.Equal(t, cli.ExitAborted, collector.exitCode(t), collector.output())
	})
}
