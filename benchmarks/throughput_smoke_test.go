package benchmarks

import (
	"context"
	"testing"
	"time"
)

// TestRunNoop keeps the benchmark's pipeline honest: every item collected.
func TestRunNoop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tr := range []string{"inproc", "ipc", "tcp"} {
		for _, tc := range []struct{ workers, goroutines int }{{1, 1}, {2, 1}, {1, 10}} {
			if _, err := RunNoop(ctx, endpoints(t, tr), 2000, tc.workers, tc.goroutines, nil); err != nil {
				t.Fatalf("%s workers=%d goroutines=%d: %v", tr, tc.workers, tc.goroutines, err)
			}
		}
	}
}
