// Package seedtest holds the checks every runnable example passes: it runs
// in one process with small sizes (the example checks its own results and
// returns an error when they are wrong) and refuses bad flags.
package seedtest

import "testing"

// Run checks an example's run function.
func Run(t *testing.T, run func(args []string) error) {
	t.Helper()
	for _, args := range [][]string{
		{"-n", "40", "-delay", "1ms"},
		{"-n", "40", "-delay", "1ms", "-workers", "2", "-goroutines", "3"},
		{"-n", "0"},
	} {
		if err := run(args); err != nil {
			t.Errorf("run %v: %v", args, err)
		}
	}
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
