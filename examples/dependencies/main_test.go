package main

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRun runs the example in one process, small and fast; the example
// checks its own results and returns an error if they are wrong.
func TestRun(t *testing.T) {
	for _, args := range [][]string{
		{"-n", "40", "-delay", "1ms"},
		{"-n", "40", "-delay", "1ms", "-workers", "2", "-goroutines", "3"},
		{"-n", "0"},
	} {
		if err := run(args); err != nil {
			t.Errorf("run %v: %v", args, err)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-workers", "0"},
		{"-role", "boss"},
		{"-role", "worker"}, // one role in a process needs ipc or tcp endpoints
		{"-distributor", "tcp://nowhere"},
	} {
		if err := run(args); err == nil {
			t.Errorf("run %v: no error", args)
		}
	}
}
