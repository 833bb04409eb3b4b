package main

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine/cli"
	"github.com/zmqpipeline/zmqpipeline/engine/cli/clitest"
)

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

func start(t *testing.T, bin, name string, args ...string) *clitest.Process {
	t.Helper()
	return clitest.Start(t, name, exec.Command(bin, args...))
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
			d, c := tc.endpoints(t)
			args := func(r string, extra ...string) []string {
				return append([]string{"-role", r, "-n", fmt.Sprint(items), "-delay", "1ms", "-distributor", d, "-collector", c}, extra...)
			}
			var procs []*clitest.Process
			startWorkers := func() {
				for i := range 2 {
					procs = append(procs, start(t, bin, fmt.Sprintf("worker%d", i), args("worker", "-goroutines", "2")...))
				}
			}
			if tc.workersFirst {
				startWorkers()
			}
			// Four workers (two processes, one per task type each) must
			// join before any work goes out, whoever started first.
			dist := start(t, bin, "distributor", args("distributor", "-quorum", "4")...)
			procs = append(procs, dist)
			if !tc.workersFirst {
				d = dist.Listening(t, "distributor")
			}
			coll := start(t, bin, "collector", args("collector")...)
			procs = append(procs, coll)
			if !tc.workersFirst {
				c = coll.Listening(t, "collector")
				startWorkers()
			}
			for _, p := range procs {
				require.Zero(t, p.ExitCode(t), "%s exited with an error:\n%s", p.Name(), p.Output())
			}
			out := coll.Output()
			assert.Contains(t, out, fmt.Sprintf("collected %d first and %d second results", items, items))
			assert.Contains(t, out, "dependency order held")
			executed := 0
			for _, p := range procs {
				if strings.HasPrefix(p.Name(), "worker") {
					for _, line := range strings.Split(p.Output(), "\n") {
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

// TestWorkerWithoutPeersDrainsOnSignal: a worker whose distributor never
// comes holds nothing, so a SIGTERM drains it at once and it exits 0.
func TestWorkerWithoutPeersDrainsOnSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process; skipped with -short")
	}
	bin := buildExample(t)
	dir := t.TempDir()
	p := start(t, bin, "worker", "-role", "worker", "-log", "info",
		"-distributor", "ipc://"+filepath.Join(dir, "d.ipc"), "-collector", "ipc://"+filepath.Join(dir, "c.ipc"))
	// Once it logs that it runs, its signal handling is in place; then it
	// waits for a distributor forever.
	p.WaitFor(t, "msg=running")
	assert.Contains(t, p.Output(), "running - role: worker")
	p.Signal(t, syscall.SIGTERM)
	assert.Equal(t, cli.ExitOK, p.ExitCode(t), p.Output())
	assert.Contains(t, p.Output(), "draining")
	assert.Contains(t, p.Output(), "worker finished - handled 0 executions", "it prints its tally")
}

// TestKillWorkerOfTheFirstType: the items a killed worker of the first
// type held go to the other worker of that type, so the first type still
// completes and the second type starts after it.
func TestKillWorkerOfTheFirstType(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes; skipped with -short")
	}
	bin := buildExample(t)
	dir := t.TempDir()
	const items = 200
	args := func(role string, extra ...string) []string {
		return append([]string{"-role", role, "-n", fmt.Sprint(items), "-delay", "2ms", "-heartbeat", "50ms", "-liveness", "400ms",
			"-distributor", "ipc://" + filepath.Join(dir, "d.ipc"), "-collector", "ipc://" + filepath.Join(dir, "c.ipc")}, extra...)
	}
	collector := start(t, bin, "collector", args("collector")...)
	distributor := start(t, bin, "distributor", args("distributor", "-quorum", "3")...)
	victim := start(t, bin, "victim", args("worker", "-types", "first", "-v")...)
	first := start(t, bin, "first", args("worker", "-types", "first")...)
	second := start(t, bin, "second", args("worker", "-types", "second")...)
	victim.WaitForCount(t, "first worker - working", 20)
	victim.Signal(t, syscall.SIGKILL)
	for _, p := range []*clitest.Process{distributor, collector, first, second} {
		require.Zero(t, p.ExitCode(t), "%s:\n%s", p.Name(), p.Output())
	}
	out := collector.Output()
	assert.Contains(t, out, fmt.Sprintf("collected %d first and %d second results", items, items))
	assert.Contains(t, out, "dependency order held")
	assert.Contains(t, out, "each item handled once")
}
