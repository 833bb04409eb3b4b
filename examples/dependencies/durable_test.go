package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine/cli/clitest"
)

// TestKillTheDistributorOfADurableRun runs the example with a journal,
// one role per process over ipc, and kills the distributor with SIGKILL at
// 20 points spread over its 2000 items, starting another on the same
// journal each time. The collector and the workers wait for it (-rejoin)
// and take part in the same run: the run completes, every item is
// collected exactly once by the collector that saw every restart, and no
// item of the dependent type comes before the last of the type it
// depends on.
func TestKillTheDistributorOfADurableRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills processes; skipped with -short")
	}
	bin := buildExample(t)
	const (
		perType = 1000
		kills   = 20
	)
	dir := t.TempDir()
	journal := filepath.Join(dir, "run.journal")
	dist, coll := "ipc://"+filepath.Join(dir, "d.ipc"), "ipc://"+filepath.Join(dir, "c.ipc")
	args := func(role string, extra ...string) []string {
		return append([]string{"-role", role, "-n", fmt.Sprint(perType), "-delay", "500us", "-log", "info",
			"-heartbeat", "50ms", "-liveness", "1s", "-distributor", dist, "-collector", coll}, extra...)
	}
	distributor := func(i int) *clitest.Process {
		return start(t, bin, fmt.Sprintf("distributor %d", i), args("distributor", "-journal", journal)...)
	}
	c := start(t, bin, "collector", args("collector", "-rejoin", "1m")...)
	workers := []*clitest.Process{
		start(t, bin, "first worker", args("worker", "-types", "first", "-rejoin", "1m", "-v")...),
		start(t, bin, "second worker", args("worker", "-types", "second", "-rejoin", "1m", "-v")...),
	}
	progress := func() int {
		n := 0
		for _, w := range workers {
			n += strings.Count(w.Output(), "worker - working")
		}
		return n
	}
	var resumeTimes []time.Duration
	d := distributor(0)
	for k := 1; k <= kills; k++ {
		// Spread over the run, a kill every 2000/22 items executed, so
		// that the last leaves the run enough to do.
		want := k * 2 * perType / (kills + 2)
		deadline := time.Now().Add(clitest.Deadline)
		for progress() < want {
			require.True(t, time.Now().Before(deadline), "%d items executed before kill %d, after %v:\n%s", progress(), k, clitest.Deadline, d.Output())
			select {
			case <-d.Exited():
				require.Failf(t, "the distributor exited", "before kill %d:\n%s", k, d.Output())
			case <-time.After(5 * time.Millisecond):
			}
		}
		d.Signal(t, syscall.SIGKILL)
		killed := time.Now()
		<-d.Exited()
		d = distributor(k)
		d.WaitFor(t, `msg="run resumed from its journal"`)
		resumeTimes = append(resumeTimes, time.Since(killed))
	}
	assert.Zero(t, d.ExitCode(t), d.Output())
	assert.Zero(t, c.ExitCode(t), c.Output())
	for _, w := range workers {
		assert.Zero(t, w.ExitCode(t), w.Output())
	}
	out := c.Output()
	assert.Contains(t, out, fmt.Sprintf("collected %d first and %d second results", perType, perType))
	assert.Contains(t, out, "each item handled once")
	assert.Contains(t, out, "dependency order held")
	dups := regexp.MustCompile(`duplicate results suppressed: (\d+)`).FindStringSubmatch(out)
	require.NotNil(t, dups, out)
	executed := progress()
	slices.Sort(resumeTimes)
	t.Logf("%d kill -9s of the distributor over %d items: every item collected once, %d executions in all (%d again), %s duplicate results suppressed; from a kill to the new distributor resuming: median %v, max %v",
		kills, 2*perType, executed, executed-2*perType, dups[1], resumeTimes[len(resumeTimes)/2].Round(time.Millisecond), resumeTimes[len(resumeTimes)-1].Round(time.Millisecond))
}
