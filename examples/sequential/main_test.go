package main

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRun(t *testing.T) {
	if err := run([]string{"-n", "5", "-delay", "1ms"}); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-n", "0"}); err == nil {
		t.Fatal("-n 0: no error")
	}
}
