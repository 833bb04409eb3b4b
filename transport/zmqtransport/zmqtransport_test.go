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
// moment ago.
func tcpEndpoint(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprintf("tcp://127.0.0.1:%d", l.Addr().(*net.TCPAddr).Port)
}

func TestConformance(t *testing.T) {
	for name, newEndpoint := range map[string]func(testing.TB) string{"ipc": ipcEndpoint, "tcp": tcpEndpoint} {
		t.Run(name, func(t *testing.T) {
			transporttest.Run(t, transporttest.Suite{Transport: zmqtransport.Default, NewEndpoint: func(t *testing.T) string { return newEndpoint(t) }})
		})
	}
}
