package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
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

	"github.com/zmqpipeline/zmqpipeline/engine/cli"
)

// processDeadline bounds every multi-process run; a working run of the
// sizes below takes well under a second.
const processDeadline = 60 * time.Second

// buildExample builds this example into a temporary directory.
func buildExample(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dependencies")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

func freeTCPEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return fmt.Sprintf("tcp://127.0.0.1:%d", l.Addr().(*net.TCPAddr).Port)
}

// proc is one example process; its stdout and stderr go to one buffer the
// test can wait on.
type proc struct {
	name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	out     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out.Write(b)
	close(p.changed)
	p.changed = make(chan struct{})
	return len(b), nil
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor returns the first match of re in the output, once it appears.
func (p *proc) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(processDeadline)
	for {
		p.mu.Lock()
		m := re.FindStringSubmatch(p.out.String())
		changed := p.changed
		p.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s did not print %q in time:\n%s", p.name, re, p.output())
		}
	}
}

// listening returns the endpoint a distributor or collector process says
// it listens on.
func (p *proc) listening(t *testing.T, role string) string {
	return p.waitFor(t, regexp.MustCompile(role+` listening on (\S+)`))[1]
}

func start(t *testing.T, ctx context.Context, bin, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, changed: make(chan struct{}), cmd: exec.CommandContext(ctx, bin, args...)}
	p.cmd.Stdout = p
	p.cmd.Stderr = p
	p.cmd.WaitDelay = 5 * time.Second
	require.NoError(t, p.cmd.Start(), name)
	return p
}

// TestSeparateProcesses runs the distributor, the collector and two worker
// processes (each with a worker per task type, of two goroutines) over ipc
// and tcp, once with the workers started first and once with the
// distributor first. With the distributor first, over tcp, the distributor
// and the collector bind ports the system picks and say which.
func TestSeparateProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example and starts processes; skipped with -short")
	}
	bin := buildExample(t)
	const items = 60
	ipc := func(t *testing.T) (string, string) {
		dir := t.TempDir()
		return "ipc://" + filepath.Join(dir, "d.ipc"), "ipc://" + filepath.Join(dir, "c.ipc")
	}
	for _, tc := range []struct {
		name         string
		endpoints    func(t *testing.T) (string, string)
		workersFirst bool
	}{
		{"ipc/workers-first", ipc, true},
		{"ipc/distributor-first", ipc, false},
		// The workers dial before anything listens, so the ports must be
		// known up front: picked free a moment before.
		{"tcp/workers-first", func(t *testing.T) (string, string) { return freeTCPEndpoint(t), freeTCPEndpoint(t) }, true},
		{"tcp/distributor-first", func(t *testing.T) (string, string) { return "tcp://127.0.0.1:0", "tcp://127.0.0.1:0" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), processDeadline)
			defer cancel()
			d, c := tc.endpoints(t)
			args := func(r string, extra ...string) []string {
				return append([]string{"-role", r, "-n", fmt.Sprint(items), "-delay", "1ms", "-distributor", d, "-collector", c}, extra...)
			}
			var procs []*proc
			startWorkers := func() {
				for i := range 2 {
					procs = append(procs, start(t, ctx, bin, fmt.Sprintf("worker%d", i), args("worker", "-goroutines", "2")...))
				}
			}
			if tc.workersFirst {
				startWorkers()
			}
			// Four workers (two processes, one per task type each) must
			// join before any work goes out, whoever started first.
			dist := start(t, ctx, bin, "distributor", args("distributor", "-quorum", "4")...)
			procs = append(procs, dist)
			if !tc.workersFirst {
				d = dist.listening(t, "distributor")
			}
			coll := start(t, ctx, bin, "collector", args("collector")...)
			procs = append(procs, coll)
			if !tc.workersFirst {
				c = coll.listening(t, "collector")
				startWorkers()
			}
			for _, p := range procs {
				err := p.cmd.Wait()
				require.NoError(t, err, "%s exited with an error:\n%s", p.name, p.output())
			}
			out := coll.output()
			assert.Contains(t, out, fmt.Sprintf("collected %d first and %d second results", items, items))
			assert.Contains(t, out, "dependency order held")
			executed := 0
			for _, p := range procs {
				if strings.HasPrefix(p.name, "worker") {
					for _, line := range strings.Split(p.output(), "\n") {
						var tt string
						var n int
						if _, err := fmt.Sscanf(line, "%s worker finished - handled %d executions", &tt, &n); err == nil {
							executed += n
						}
					}
				}
			}
			assert.Equal(t, 2*items, executed, "every item executed exactly once across the worker processes")
		})
	}
}

// TestWorkerWithoutPeersExitsOnSignal: a worker whose distributor never
// comes still stops cleanly when told to, and says it was stopped.
func TestWorkerWithoutPeersExitsOnSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process; skipped with -short")
	}
	bin := buildExample(t)
	ctx, cancel := context.WithTimeout(context.Background(), processDeadline)
	defer cancel()
	dir := t.TempDir()
	p := start(t, ctx, bin, "worker", "-role", "worker", "-log", "info",
		"-distributor", "ipc://"+filepath.Join(dir, "d.ipc"), "-collector", "ipc://"+filepath.Join(dir, "c.ipc"))
	// Once it logs that it runs, its signal handling is in place; then it
	// waits for a distributor forever.
	p.waitFor(t, regexp.MustCompile("msg=running"))
	assert.Contains(t, p.output(), "running - role: worker")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	err := p.cmd.Wait()
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr, "a stopped run is not a success")
	assert.Equal(t, cli.ExitStopped, exitErr.ExitCode())
	assert.Contains(t, p.output(), "stopped by a signal before the run completed")
}
