package benchmarks

import (
	"context"
	"testing"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
)

// TestRunNoop keeps the benchmark's pipeline honest: every item collected.
func TestRunNoop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct{ workers, goroutines int }{{1, 1}, {2, 1}, {1, 10}} {
		if _, err := RunNoop(ctx, engine.InProcess(t.Name()), 2000, tc.workers, tc.goroutines); err != nil {
			t.Fatalf("workers=%d goroutines=%d: %v", tc.workers, tc.goroutines, err)
		}
	}
}
