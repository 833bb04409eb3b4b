package zmqtransport_test

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/zmqpipeline/zmqpipeline/transport/transporttest"
	"github.com/zmqpipeline/zmqpipeline/transport/zmqtransport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ipcEndpoint returns an ipc endpoint in the test's temporary directory.
func ipcEndpoint(t testing.TB) string {
	return "ipc://" + filepath.Join(t.TempDir(), "p.ipc")
}

// tcpEndpoint returns a loopback tcp endpoint on a port that was free a
// moment ago, for tests that must know the port before anyone listens.
func tcpEndpoint(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprintf("tcp://127.0.0.1:%d", l.Addr().(*net.TCPAddr).Port)
}

// ephemeralTCP asks for a port when listening; the Listener reports it.
func ephemeralTCP(testing.TB) string { return "tcp://127.0.0.1:0" }

// suiteMaxMessage is the size limit the conformance suite runs with, small
// enough that its oversize test sends little.
const suiteMaxMessage = 1 << 20

func TestConformance(t *testing.T) {
	tr := zmqtransport.New(zmqtransport.Options{MaxMessageSize: suiteMaxMessage})
	features := transporttest.Features{MaxMessageSize: suiteMaxMessage}
	t.Run("ipc", func(t *testing.T) {
		transporttest.Run(t, transporttest.Suite{Transport: tr, NewEndpoint: ipcEndpoint, Features: features})
	})
	t.Run("tcp", func(t *testing.T) {
		transporttest.Run(t, transporttest.Suite{Transport: tr, NewEndpoint: ephemeralTCP, Features: features})
	})
}
