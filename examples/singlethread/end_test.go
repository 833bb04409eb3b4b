package main

import (
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine/cli/clitest"
)

// endRuns is how many one-item runs TestOneItemRunsEndCleanly makes per
// transport.
const endRuns = 200

// TestOneItemRunsEndCleanly starts the example's roles as processes at
// once, each run handing out a single item, over and over: the end of a
// run must be deterministic. Every process exits 0, and no role waits on a
// confirmation that did not come (which once held a worker a second in 4
// runs of 30). It logs how long after the last ACK (the distributor's
// "task type complete") the last process exited; no timing is asserted.
func TestOneItemRunsEndCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hundreds of processes; skipped with -short")
	}
	bin := buildExample(t)
	completeAt := regexp.MustCompile(`time=(\S+) level=INFO msg="task type complete"`)
	for _, scheme := range []string{"ipc", "tcp"} {
		t.Run(scheme, func(t *testing.T) {
			var after []time.Duration
			for i := range endRuns {
				r := newFaultRun(t, bin, scheme)
				args := func(role string) []string {
					return []string{"-role", role, "-n", "1", "-delay", "0s", "-log", "info", "-distributor", r.dist, "-collector", r.coll}
				}
				var d, c, w *clitest.Process
				if scheme == "tcp" {
					// Ports the system picks: the distributor, then the
					// collector, say where they listen.
					r.dist, r.coll = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
					d = clitest.Start(t, "distributor", exec.Command(bin, args("distributor")...))
					r.dist = d.Listening(t, "distributor")
					c = clitest.Start(t, "collector", exec.Command(bin, args("collector")...))
					r.coll = c.Listening(t, "collector")
					w = clitest.Start(t, "worker", exec.Command(bin, args("worker")...))
				} else {
					// All three at once, in the order that loses most often.
					c = clitest.Start(t, "collector", exec.Command(bin, args("collector")...))
					w = clitest.Start(t, "worker", exec.Command(bin, args("worker")...))
					d = clitest.Start(t, "distributor", exec.Command(bin, args("distributor")...))
				}
				exitsOK(t, d, c, w)
				exited := time.Now()
				for _, p := range []*clitest.Process{d, c, w} {
					require.NotContains(t, p.Output(), "did not confirm", "run %d, %s:\n%s", i, p.Name(), p.Output())
				}
				collected(t, c, 1)
				m := completeAt.FindStringSubmatch(d.Output())
				require.NotNil(t, m, "the distributor logs the task type's completion:\n%s", d.Output())
				at, err := time.Parse(time.RFC3339Nano, m[1])
				require.NoError(t, err)
				after = append(after, exited.Sub(at))
				if t.Failed() {
					return
				}
			}
			slices.Sort(after)
			t.Logf("%s: %d one-item runs, every process exited 0 without waiting on a confirmation; last exit after the last ACK: median %v, 99th percentile %v, max %v",
				scheme, endRuns, ms(after[len(after)/2]), ms(after[len(after)*99/100]), ms(after[len(after)-1]))
		})
	}
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
}
