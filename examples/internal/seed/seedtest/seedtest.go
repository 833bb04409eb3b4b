// Package seedtest holds the checks every runnable example passes: it runs
// in one process with small sizes (the example checks its own results and
// returns an error when they are wrong) and refuses bad flags.
package seedtest

import (
	"context"
	"flag"
	"io"
	"testing"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine/cli"
)

// Program is an example's main, less cli.Main: it registers the example's
// flags on fs and returns its build function.
type Program func(fs *flag.FlagSet) func(*cli.Config) (*cli.Pipeline, error)

// Run checks an example's program, as cli.Main would run it.
func Run(t *testing.T, name string, program Program) {
	t.Helper()
	run := func(args []string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		_, err := cli.Run(ctx, fs, args, program(fs))
		return err
	}
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
		{"-goroutines", "0"},
		{"-n", "-1"},
		{"-role", "boss"},
		{"-role", "worker"}, // one role in a process needs ipc or tcp endpoints
		{"-distributor", "tcp://nowhere"},
	} {
		err := run(args)
		if err == nil {
			t.Errorf("run %v: no error", args)
		} else if code := cli.ExitCode(err); code != cli.ExitUsage {
			t.Errorf("run %v: exit code %d, want %d (usage): %v", args, code, cli.ExitUsage, err)
		}
	}
}
