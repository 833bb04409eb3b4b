package benchmarks

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
)

// calcItems are the items the singlethread example's workers execute:
// task type "C", each asking for a workload in seconds (none here).
func calcItems(n int) []engine.TaskSpec {
	work := map[string]any{"workload": 0.0}
	return []engine.TaskSpec{{Type: "C", Task: engine.Items(n, func(int) (any, error) { return work, nil })}}
}

// BenchmarkWorkerProcesses measures no-op items with the distributor and
// the collector here and the workers in separate processes (the
// singlethread example's worker role), over ipc and tcp. Items per second
// are timed from the first result to the end, so process start-up is left
// out, and reported beside bare PUSH/PULL in the same run.
func BenchmarkWorkerProcesses(b *testing.B) {
	bin := buildSinglethread(b)
	for _, tr := range []string{"ipc", "tcp"} {
		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("transport=%s/worker_processes=%d", tr, workers), func(b *testing.B) {
				runWorkerProcesses(b, bin, tr, workers, 1)
			})
		}
	}
}

// BenchmarkScale measures no-op items against the number of workers: 1, 4,
// 16 and 64 single-goroutine workers, spread over up to 4 worker processes
// over ipc. The distributor's cost per item must not grow with its peers,
// so items/s should not fall as workers are added.
func BenchmarkScale(b *testing.B) {
	bin := buildSinglethread(b)
	for _, workers := range []int{1, 4, 16, 64} {
		procs := min(workers, 4)
		b.Run(fmt.Sprintf("transport=ipc/workers=%d/worker_processes=%d", workers, procs), func(b *testing.B) {
			runWorkerProcesses(b, bin, "ipc", procs, workers/procs)
		})
	}
}

// buildSinglethread builds the singlethread example, whose worker role the
// process benchmarks start.
func buildSinglethread(b *testing.B) string {
	bin := filepath.Join(b.TempDir(), "singlethread")
	if out, err := exec.Command("go", "build", "-o", bin, "../examples/singlethread").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runWorkerProcesses runs b.N no-op items with the distributor and the
// collector in this process and procs worker processes of perProc
// workers each. Items per second are timed from the first result to the
// end, so process start-up is left out.
func runWorkerProcesses(b *testing.B, bin, tr string, procs, perProc int) {
	ceiling := ceilingOf(b, tr, b.N, procs*perProc)
	ep := endpoints(b, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for range procs {
		cmd := exec.CommandContext(ctx, bin, "-role", "worker", "-workers", fmt.Sprint(perProc), "-distributor", ep.Distributor, "-collector", ep.Collector)
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		cmds = append(cmds, cmd)
		outs = append(outs, out)
	}
	d, err := engine.NewDistributor(ep, calcItems(b.N), engine.WithQuorum(procs*perProc))
	if err != nil {
		b.Fatal(err)
	}
	watch := &stopwatch{}
	c, err := engine.NewCollector(ep, watch, engine.WithFinished(watch.finished))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if err := engine.RunAll(ctx, d, c); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			b.Fatalf("worker process: %v\n%s", err, outs[i])
		}
	}
	if got := watch.results(); got != b.N {
		b.Fatalf("collected %d of %d", got, b.N)
	}
	if span := watch.span(); b.N > 1 && span > 0 {
		reportCeiling(b, float64(b.N-1)/span.Seconds(), ceiling)
	}
}
