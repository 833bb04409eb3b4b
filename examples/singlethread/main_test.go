package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/zmqpipeline/zmqpipeline/examples/internal/seed/seedtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRun(t *testing.T) { seedtest.Run(t, "singlethread", program) }
