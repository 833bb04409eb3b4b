package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/examples/internal/seed/seedtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRun(t *testing.T) { seedtest.Run(t, "metadata", program) }

// Metadata comes off the wire, so a peer may send any multiplier: the
// collector refuses a bad one at Init instead of dividing by it later.
func TestCheckerRefusesBadMultiplier(t *testing.T) {
	for _, md := range []engine.Metadata{
		{},
		{"multiplier": "7"},
		{"multiplier": int64(0)},
		{"multiplier": int64(-3)},
	} {
		err := (&checker{}).Init(t.Context(), md)
		assert.Error(t, err, "metadata %v", md)
		assert.ErrorContains(t, err, "multiplier", "metadata %v", md)
	}
	m, err := multiplierOf(engine.Metadata{"multiplier": int64(7)})
	require.NoError(t, err)
	assert.Equal(t, int64(7), m)
}
