// Command sequential is the seed document's Example 1: the baseline. It
// sleeps the given delay n times in a plain loop and prints how far that is
// from n times the delay. Whatever overhead it shows (timer slack, the loop)
// is the floor every pipeline example is measured against.
//
//	go run ./examples/sequential -n 1000 -delay 10ms
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/zmqpipeline/zmqpipeline/examples/internal/seed"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sequential:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("sequential", flag.ContinueOnError)
	n := fs.Int("n", 100, "iterations")
	delay := fs.Duration("delay", 10*time.Millisecond, "sleep per iteration")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *delay <= 0 {
		return fmt.Errorf("-n %d and -delay %v must be positive", *n, *delay)
	}
	fmt.Printf("running - iterations: %d - delay: %.3f\n", *n, delay.Seconds())
	took := seed.Sequential(*n, *delay)
	seed.Report(os.Stdout, "sequential execution", seed.Ideal(*n, *delay, 1), took)
	return nil
}
