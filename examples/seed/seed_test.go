package seed

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestIdealAndOverhead(t *testing.T) {
	assert.Equal(t, 10*time.Second, Ideal(1000, 10*time.Millisecond, 1))
	assert.Equal(t, 500*time.Millisecond, Ideal(1000, 10*time.Millisecond, 20))
	assert.Equal(t, 30*time.Millisecond, Ideal(25, 10*time.Millisecond, 10), "a partial last round still takes a round")
	assert.InDelta(t, 2.0, Overhead(102*time.Millisecond, 100*time.Millisecond), 1e-9)
	var b bytes.Buffer
	Report(&b, "x", time.Second, 1100*time.Millisecond)
	assert.Equal(t, "expected execution time: 1000.0\nx took: 1100.0 milliseconds\noverhead: 10.0%\n", b.String())
}

func TestParseFlagsEndpointsFromEnvironment(t *testing.T) {
	t.Setenv(EnvDistributor, "tcp://127.0.0.1:5551")
	t.Setenv(EnvCollector, "ipc:///tmp/c.ipc")
	c, err := ParseFlags("x", []string{"-role", "worker"}, Config{Workers: 1, Goroutines: 1})
	require.NoError(t, err)
	assert.Equal(t, "tcp://127.0.0.1:5551", c.Endpoints.Distributor)
	assert.Equal(t, "ipc:///tmp/c.ipc", c.Endpoints.Collector)
	c, err = ParseFlags("x", []string{"-distributor", "tcp://127.0.0.1:7000"}, Config{Workers: 1, Goroutines: 1})
	require.NoError(t, err)
	assert.Equal(t, "tcp://127.0.0.1:7000", c.Endpoints.Distributor, "a flag beats the environment")
}

func TestParseFlagsDefaultsToInproc(t *testing.T) {
	c, err := ParseFlags("demo", nil, Config{Workers: 1, Goroutines: 1})
	require.NoError(t, err)
	assert.Equal(t, "inproc://demo/distributor", c.Endpoints.Distributor)
	assert.Equal(t, RoleAll, c.Role)
}
