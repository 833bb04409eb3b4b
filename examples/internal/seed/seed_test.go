package seed

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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
