package zmqtransport_test

import (
	"testing"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/enginetest"
)

// TestEngineSuite holds the whole engine, over real ZeroMQ sockets in one
// process, to the behaviour it has in memory.
func TestEngineSuite(t *testing.T) {
	t.Run("ipc", func(t *testing.T) {
		enginetest.Run(t, enginetest.Suite{NewEndpoints: func(t testing.TB) engine.Endpoints {
			return engine.Endpoints{Distributor: ipcEndpoint(t), Collector: ipcEndpoint(t)}
		}})
	})
	t.Run("tcp", func(t *testing.T) {
		enginetest.Run(t, enginetest.Suite{NewEndpoints: func(t testing.TB) engine.Endpoints {
			return engine.Endpoints{Distributor: tcpEndpoint(t), Collector: tcpEndpoint(t)}
		}})
	})
}
