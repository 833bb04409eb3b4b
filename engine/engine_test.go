package engine_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/enginetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var seq atomic.Int64

// TestSuite runs the engine's behavioural suite on the in-process
// transport. The ZeroMQ transport's tests run the same suite over ipc and
// tcp.
func TestSuite(t *testing.T) {
	enginetest.Run(t, enginetest.Suite{NewEndpoints: func(t testing.TB) engine.Endpoints {
		return engine.InProcess(fmt.Sprintf("%s-%d", t.Name(), seq.Add(1)))
	}})
}
