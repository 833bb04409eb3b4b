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

// BenchmarkStartup measures how soon a pipeline gets going: a run of one
// no-op item, from starting its roles to the first result collected in
// one process (the roles as goroutines over channels), and to the end of
// the run with a process per role over ipc (the singlethread example's
// roles, started together), whose last few milliseconds are the end
// handshake. Each is reported in ms per run.
func BenchmarkStartup(b *testing.B) {
	b.Run("transport=inproc/roles=goroutines", func(b *testing.B) {
		var total time.Duration
		for i := 0; b.Loop(); i++ {
			ep := engine.InProcess(fmt.Sprintf("startup-%d-%d", i, time.Now().UnixNano()))
			start := time.Now()
			d, err := engine.NewDistributor(ep, []engine.TaskSpec{{Type: "noop", Task: engine.Items(1, func(int) (any, error) { return nil, nil })}})
			if err != nil {
				b.Fatal(err)
			}
			watch := &stopwatch{}
			c, err := engine.NewCollector(ep, watch, engine.WithFinished(watch.finished))
			if err != nil {
				b.Fatal(err)
			}
			w, err := engine.NewWorker(ep, "noop", engine.HandlerFunc(func(context.Context, *engine.Job) (any, error) { return nil, nil }))
			if err != nil {
				b.Fatal(err)
			}
			if err := engine.RunAll(context.Background(), d, c, w); err != nil {
				b.Fatal(err)
			}
			watch.mu.Lock()
			total += watch.first.Sub(start)
			watch.mu.Unlock()
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms-to-first-result")
	})
	b.Run("transport=ipc/roles=processes", func(b *testing.B) {
		bin := buildSinglethread(b)
		var total time.Duration
		for b.Loop() {
			dir := b.TempDir()
			args := func(role string) []string {
				return []string{"-role", role, "-n", "1", "-delay", "0s",
					"-distributor", "ipc://" + filepath.Join(dir, "d.ipc"), "-collector", "ipc://" + filepath.Join(dir, "c.ipc")}
			}
			start := time.Now()
			var cmds []*exec.Cmd
			var outs []*bytes.Buffer
			for _, role := range []string{"distributor", "collector", "worker"} {
				cmd := exec.Command(bin, args(role)...)
				out := &bytes.Buffer{}
				cmd.Stdout, cmd.Stderr = out, out
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				cmds = append(cmds, cmd)
				outs = append(outs, out)
			}
			for i, cmd := range cmds {
				if err := cmd.Wait(); err != nil {
					b.Fatalf("%v\n%s", err, outs[i])
				}
			}
			total += time.Since(start)
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms-to-end")
	})
}
