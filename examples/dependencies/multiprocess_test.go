package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

type proc struct {
	name string
	cmd  *exec.Cmd
	out  bytes.Buffer // read only after Wait
}

func start(t *testing.T, ctx context.Context, bin, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.CommandContext(ctx, bin, args...)}
	p.cmd.Stdout = &p.out
	p.cmd.Stderr = &p.out
	p.cmd.WaitDelay = 5 * time.Second
	require.NoError(t, p.cmd.Start(), name)
	return p
}

// TestSeparateProcesses runs the distributor, the collector and two worker
// processes (one per task type, each with two goroutines) over ipc and tcp,
// once with the workers started first and once with the distributor first.
func TestSeparateProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example and starts processes; skipped with -short")
	}
	bin := buildExample(t)
	const items = 60
	for _, tc := range []struct {
		name         string
		endpoints    func(t *testing.T) (string, string)
		workersFirst bool
	}{
		{"ipc/workers-first", func(t *testing.T) (string, string) {
			dir := t.TempDir()
			return "ipc://" + filepath.Join(dir, "d.ipc"), "ipc://" + filepath.Join(dir, "c.ipc")
		}, true},
		{"ipc/distributor-first", func(t *testing.T) (string, string) {
			dir := t.TempDir()
			return "ipc://" + filepath.Join(dir, "d.ipc"), "ipc://" + filepath.Join(dir, "c.ipc")
		}, false},
		{"tcp/workers-first", func(t *testing.T) (string, string) { return freeTCPEndpoint(t), freeTCPEndpoint(t) }, true},
		{"tcp/distributor-first", func(t *testing.T) (string, string) { return freeTCPEndpoint(t), freeTCPEndpoint(t) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), processDeadline)
			defer cancel()
			d, c := tc.endpoints(t)
			common := []string{"-n", fmt.Sprint(items), "-delay", "1ms", "-distributor", d, "-collector", c}
			role := func(r string, extra ...string) []string {
				return append(append([]string{"-role", r}, common...), extra...)
			}
			var procs []*proc
			startWorkers := func() {
				for i := range 2 {
					procs = append(procs, start(t, ctx, bin, fmt.Sprintf("worker%d", i), role("worker", "-goroutines", "2")...))
				}
			}
			if tc.workersFirst {
				startWorkers()
			}
			procs = append(procs, start(t, ctx, bin, "collector", role("collector")...))
			// Four workers (two processes, one per task type each) must
			// join before any work goes out, whoever started first.
			procs = append(procs, start(t, ctx, bin, "distributor", role("distributor", "-quorum", "4")...))
			if !tc.workersFirst {
				startWorkers()
			}
			for _, p := range procs {
				err := p.cmd.Wait()
				require.NoError(t, err, "%s exited with an error:\n%s", p.name, p.out.String())
			}
			var collector *proc
			for _, p := range procs {
				if p.name == "collector" {
					collector = p
				}
			}
			out := collector.out.String()
			assert.Contains(t, out, fmt.Sprintf("collected %d first and %d second results", items, items))
			assert.Contains(t, out, "dependency order held")
			executed := 0
			for _, p := range procs {
				if strings.HasPrefix(p.name, "worker") {
					var n int
					for _, line := range strings.Split(p.out.String(), "\n") {
						var tt string
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
// comes still stops cleanly when told to.
func TestWorkerWithoutPeersExitsOnSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process; skipped with -short")
	}
	bin := buildExample(t)
	ctx, cancel := context.WithTimeout(context.Background(), processDeadline)
	defer cancel()
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, "-role", "worker",
		"-distributor", "ipc://"+filepath.Join(dir, "d.ipc"), "-collector", "ipc://"+filepath.Join(dir, "c.ipc"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	// The first line says it runs; then it waits for a distributor forever.
	first, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	assert.Contains(t, first, "running - role: worker")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	err = cmd.Wait()
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr, "a cancelled run is not a success")
	assert.Contains(t, stderr.String(), "context canceled", "it says why it stopped")
}
