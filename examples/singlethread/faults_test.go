package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine/cli"
	"github.com/zmqpipeline/zmqpipeline/engine/cli/clitest"
)

// These tests run the example as operators do, one role per process over
// ipc and tcp, and hurt the processes: kill -9, SIGSTOP and SIGCONT,
// SIGTERM, replacements. Each run must end, with every item collected and
// none handled twice by its collector. The figures they log (items, time
// from the fault to the end, duplicates suppressed) are what the README
// quotes.

const (
	faultItems = 900
	// The liveness settings of these runs: short, so that a run with a
	// dead peer ends soon, and loose enough for a loaded machine.
	heartbeat = "50ms"
	liveness  = "400ms"
)

// faultRun is one run of the example with a process per role.
type faultRun struct {
	t          *testing.T
	bin        string
	scheme     string
	dist, coll string // endpoints, once the listeners said where they are
}

func newFaultRun(t *testing.T, bin, scheme string) *faultRun {
	r := &faultRun{t: t, bin: bin, scheme: scheme}
	if scheme == "ipc" {
		dir := t.TempDir()
		r.dist, r.coll = "ipc://"+filepath.Join(dir, "d.ipc"), "ipc://"+filepath.Join(dir, "c.ipc")
	}
	return r
}

func (r *faultRun) args(role string, extra ...string) []string {
	args := []string{"-role", role, "-n", strconv.Itoa(faultItems), "-delay", "2ms", "-workers", "1",
		"-heartbeat", heartbeat, "-liveness", liveness, "-log", "info", "-distributor", r.dist, "-collector", r.coll}
	return append(args, extra...)
}

func (r *faultRun) start(name, role string, extra ...string) *clitest.Process {
	r.t.Helper()
	return clitest.Start(r.t, name, exec.Command(r.bin, r.args(role, extra...)...))
}

// distributor starts the distributor, then the collector: over tcp on
// ports the system picks, which the rest then dial.
func (r *faultRun) begin(distExtra, collExtra []string) (d, c *clitest.Process) {
	r.t.Helper()
	if r.scheme == "tcp" {
		r.dist, r.coll = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
	}
	d = r.start("distributor", "distributor", distExtra...)
	if r.scheme == "tcp" {
		r.dist = d.Listening(r.t, "distributor")
	}
	c = r.start("collector", "collector", collExtra...)
	if r.scheme == "tcp" {
		r.coll = c.Listening(r.t, "collector")
	}
	return d, c
}

// took waits until a worker started with -v has taken n items.
func took(t *testing.T, w *clitest.Process, n int) {
	t.Helper()
	w.WaitForCount(t, "worker - item ", n)
}

// collected checks a collector's report: every item, none twice.
func collected(t *testing.T, c *clitest.Process, n int) (duplicates int) {
	t.Helper()
	out := c.Output()
	assert.Contains(t, out, fmt.Sprintf("collected %d results", n), "every item collected")
	assert.Contains(t, out, "each item handled once")
	if m := regexp.MustCompile(`duplicate results suppressed: (\d+)`).FindStringSubmatch(out); m != nil {
		duplicates, _ = strconv.Atoi(m[1])
	}
	return duplicates
}

func exitsOK(t *testing.T, ps ...*clitest.Process) {
	t.Helper()
	for _, p := range ps {
		assert.Equal(t, cli.ExitOK, p.ExitCode(t), "%s:\n%s", p.Name(), p.Output())
	}
}

func forEachTransport(t *testing.T, fn func(t *testing.T, r *faultRun)) {
	if testing.Short() {
		t.Skip("starts processes and hurts them; skipped with -short")
	}
	bin := buildExample(t)
	for _, scheme := range []string{"ipc", "tcp"} {
		t.Run(scheme, func(t *testing.T) { fn(t, newFaultRun(t, bin, scheme)) })
	}
}

func buildExample(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "singlethread")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

func TestKillWorker(t *testing.T) {
	forEachTransport(t, func(t *testing.T, r *faultRun) {
		for _, after := range []int{5, 60, 120} {
			t.Run(fmt.Sprintf("after %d items", after), func(t *testing.T) {
				d, c := r.begin([]string{"-quorum", "3"}, nil)
				victim := r.start("victim", "worker", "-v")
				w1, w2 := r.start("worker 1", "worker"), r.start("worker 2", "worker")
				took(t, victim, after)
				killed := time.Now()
				victim.Signal(t, syscall.SIGKILL)
				exitsOK(t, d, c, w1, w2)
				dups := collected(t, c, faultItems)
				t.Logf("%s, kill -9 a worker after %d items: %d items, none lost, none handled twice, %d duplicates suppressed, %v from the kill to the end",
					r.scheme, after, faultItems, dups, time.Since(killed).Round(time.Millisecond))
			})
		}
	})
}

func TestKillWorkerAndStartAnother(t *testing.T) {
	forEachTransport(t, func(t *testing.T, r *faultRun) {
		d, c := r.begin([]string{"-quorum", "2"}, nil)
		victim := r.start("victim", "worker", "-v")
		steady := r.start("steady", "worker")
		took(t, victim, 40)
		killed := time.Now()
		victim.Signal(t, syscall.SIGKILL)
		replacement := r.start("replacement", "worker")
		exitsOK(t, d, c, steady, replacement)
		dups := collected(t, c, faultItems)
		assert.Regexp(t, `worker 0 finished - handled [1-9]\d* executions`, replacement.Output(), "the replacement got work")
		t.Logf("%s, kill -9 a worker and start another: %d items, none lost, none handled twice, %d duplicates suppressed, %v from the kill to the end",
			r.scheme, faultItems, dups, time.Since(killed).Round(time.Millisecond))
	})
}

func TestStopWorkerPastTheTimeoutThenContinue(t *testing.T) {
	forEachTransport(t, func(t *testing.T, r *faultRun) {
		d, c := r.begin([]string{"-quorum", "2"}, nil)
		victim := r.start("victim", "worker", "-v")
		steady := r.start("steady", "worker")
		took(t, victim, 20)
		stopped := time.Now()
		victim.Signal(t, syscall.SIGSTOP)
		d.WaitFor(t, `msg="worker lost"`)
		victim.Signal(t, syscall.SIGCONT)
		exitsOK(t, d, c, steady, victim)
		assert.Contains(t, victim.Output(), "took this worker for gone", "the worker that came back was told, and joined again")
		dups := collected(t, c, faultItems)
		t.Logf("%s, SIGSTOP a worker past the timeout, then SIGCONT: %d items, none lost, none handled twice, %d duplicates suppressed, %v from the stop to the end",
			r.scheme, faultItems, dups, time.Since(stopped).Round(time.Millisecond))
	})
}

func TestKillCollectorAndStartAnother(t *testing.T) {
	forEachTransport(t, func(t *testing.T, r *faultRun) {
		d, c := r.begin([]string{"-quorum", "2"}, nil)
		w1 := r.start("worker 1", "worker", "-v")
		w2 := r.start("worker 2", "worker")
		took(t, w1, 60)
		killed := time.Now()
		c.Signal(t, syscall.SIGKILL)
		c2 := r.start("new collector", "collector")
		exitsOK(t, d, c2, w1, w2)
		out := c2.Output()
		assert.Contains(t, out, "each item handled once", "the new collector handles each item it gets once")
		assert.Regexp(t, `collected [1-9]\d* results`, out)
		t.Logf("%s, kill -9 the collector and start another: the run completed (every item acknowledged), %v from the kill to the end",
			r.scheme, time.Since(killed).Round(time.Millisecond))
	})
}

func TestKillDistributor(t *testing.T) {
	t.Run("peers give up", func(t *testing.T) {
		forEachTransport(t, func(t *testing.T, r *faultRun) {
			d, c := r.begin(nil, nil)
			w := r.start("worker", "worker", "-v")
			took(t, w, 30)
			killed := time.Now()
			d.Signal(t, syscall.SIGKILL)
			for _, p := range []*clitest.Process{w, c} {
				assert.Equal(t, cli.ExitFailed, p.ExitCode(t), p.Output())
				assert.Contains(t, p.Output(), "distributor lost")
			}
			t.Logf("%s, kill -9 the distributor: its peers gave up %v after the kill", r.scheme, time.Since(killed).Round(time.Millisecond))
		})
	})
	t.Run("peers join the next one", func(t *testing.T) {
		forEachTransport(t, func(t *testing.T, r *faultRun) {
			d, c := r.begin(nil, []string{"-rejoin", "30s"})
			w := r.start("worker", "worker", "-v", "-rejoin", "30s")
			took(t, w, 30)
			killed := time.Now()
			d.Signal(t, syscall.SIGKILL)
			d2 := r.start("new distributor", "distributor")
			exitsOK(t, d2, c, w)
			collected(t, c, faultItems) // the new run, whole
			t.Logf("%s, kill -9 the distributor and start another: its peers joined the new run, %d items collected once, %v from the kill to the end",
				r.scheme, faultItems, time.Since(killed).Round(time.Millisecond))
		})
	})
}

func TestTerminateEachRole(t *testing.T) {
	t.Run("worker", func(t *testing.T) {
		forEachTransport(t, func(t *testing.T, r *faultRun) {
			d, c := r.begin([]string{"-quorum", "2"}, nil)
			leaving := r.start("leaving", "worker", "-v")
			steady := r.start("steady", "worker")
			took(t, leaving, 30)
			leaving.Signal(t, syscall.SIGTERM)
			assert.Equal(t, cli.ExitOK, leaving.ExitCode(t), "a worker drains and exits 0:\n%s", leaving.Output())
			assert.Regexp(t, `worker 0 finished - handled [1-9]\d* executions`, leaving.Output(), "with its tally")
			exitsOK(t, d, c, steady)
			collected(t, c, faultItems)
		})
	})
	t.Run("collector", func(t *testing.T) {
		forEachTransport(t, func(t *testing.T, r *faultRun) {
			d, c := r.begin([]string{"-quorum", "1"}, nil)
			w := r.start("worker", "worker", "-v")
			took(t, w, 30)
			c.Signal(t, syscall.SIGTERM)
			assert.Equal(t, cli.ExitStopped, c.ExitCode(t), c.Output())
			assert.Contains(t, c.Output(), "stopped by terminated before the run completed")
			c2 := r.start("new collector", "collector")
			exitsOK(t, d, c2, w)
			assert.Contains(t, c2.Output(), "each item handled once")
		})
	})
	t.Run("distributor", func(t *testing.T) {
		forEachTransport(t, func(t *testing.T, r *faultRun) {
			d, c := r.begin(nil, nil)
			w := r.start("worker", "worker", "-v")
			took(t, w, 30)
			d.Signal(t, syscall.SIGTERM)
			assert.Equal(t, cli.ExitStopped, d.ExitCode(t))
			assert.Regexp(t, `stopped by terminated before the run completed \(\d+ items done of \d+ produced\)`, d.Output())
			assert.Equal(t, cli.ExitAborted, w.ExitCode(t), w.Output())
			assert.Equal(t, cli.ExitAborted, c.ExitCode(t), c.Output())
		})
	})
}
