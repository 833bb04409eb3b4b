package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// runDeadline bounds one run of an example beyond its ideal time.
const runDeadline = 2 * time.Minute

// examples are the seed's example programs, built once into a temporary
// directory, and how to run them: every role in one process ("inproc"),
// or one process per role over "ipc" or "tcp".
type examples struct {
	transport string
	dir       string // binaries and ipc files
	bins      map[string]string
}

// buildExamples builds the examples the table needs; close removes them.
func buildExamples(ctx context.Context, transport string) (*examples, error) {
	if transport != "inproc" && transport != "ipc" && transport != "tcp" {
		return nil, fmt.Errorf("-transport %q: want inproc, ipc or tcp", transport)
	}
	dir, err := os.MkdirTemp("", "seedtable-")
	if err != nil {
		return nil, err
	}
	e := &examples{transport: transport, dir: dir, bins: map[string]string{}}
	names := []string{"sequential"}
	for _, rw := range rows {
		names = append(names, rw.name)
	}
	for _, name := range names {
		if _, ok := e.bins[name]; ok {
			continue
		}
		bin := filepath.Join(dir, name)
		pkg := "github.com/zmqpipeline/zmqpipeline/examples/" + name
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			e.close()
			return nil, fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
		e.bins[name] = bin
	}
	return e, nil
}

func (e *examples) close() { _ = os.RemoveAll(e.dir) }

// report is what an example printed: the ideal time and the time taken.
type report struct {
	expected, took time.Duration
}

func (r report) overhead() float64 { return overhead(r.took, r.expected) }

// sequential runs Example 1, the plain loop of sleeps.
func (e *examples) sequential(ctx context.Context, n int, delay time.Duration) (report, error) {
	ctx, cancel := context.WithTimeout(ctx, runDeadline+time.Duration(n)*delay)
	defer cancel()
	out, err := exec.CommandContext(ctx, e.bins["sequential"], "-n", strconv.Itoa(n), "-delay", delay.String()).CombinedOutput()
	if err != nil {
		return report{}, fmt.Errorf("sequential: %w\n%s", err, out)
	}
	return parseReport(string(out), "sequential execution", -1)
}

// pipeline runs one row's example and returns its report.
func (e *examples) pipeline(ctx context.Context, rw row, n int, delay time.Duration, prefetch, run int) (report, error) {
	ctx, cancel := context.WithTimeout(ctx, runDeadline+time.Duration(n)*delay)
	defer cancel()
	size := []string{"-n", strconv.Itoa(n), "-delay", delay.String(), "-workers", strconv.Itoa(rw.workers),
		"-goroutines", strconv.Itoa(rw.goroutines), "-prefetch", strconv.Itoa(prefetch)}
	if e.transport == "inproc" {
		out, err := exec.CommandContext(ctx, e.bins[rw.name], size...).CombinedOutput()
		if err != nil {
			return report{}, fmt.Errorf("%w\n%s", err, out)
		}
		return parseReport(string(out), "pipeline execution", n)
	}
	return e.processes(ctx, rw, size, n, run)
}

// processes runs a row with every role in its own process, as the seed
// did: collector and workers first, then the distributor, and the
// collector's stopwatch times the run from its first result to the end.
func (e *examples) processes(ctx context.Context, rw row, size []string, n, run int) (report, error) {
	dist, coll, err := e.endpoints(run)
	if err != nil {
		return report{}, err
	}
	common := append(size, "-distributor", dist, "-collector", coll)
	var procs []*exec.Cmd
	var outs []*bytes.Buffer
	startRole := func(args ...string) error {
		cmd := exec.CommandContext(ctx, e.bins[rw.name], append(common, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Start(); err != nil {
			return err
		}
		procs = append(procs, cmd)
		outs = append(outs, &out)
		return nil
	}
	// Every process is waited for, whatever happens to the others.
	defer func() {
		for _, cmd := range procs {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		}
	}()
	err = startRole("-role", "collector")
	for i := 0; err == nil && i < rw.workers; i++ {
		err = startRole("-role", "worker", "-workers", "1")
	}
	if err == nil {
		err = startRole("-role", "distributor", "-quorum", strconv.Itoa(rw.workers))
	}
	if err != nil {
		return report{}, err
	}
	var errs []error
	for i, cmd := range procs {
		if err := cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w\n%s", cmd.Args[1:3], err, outs[i]))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return report{}, err
	}
	return parseReport(outs[0].String(), "collection after the first result", n)
}

// endpoints returns fresh distributor and collector endpoints. Over tcp
// the workers start before the distributor binds, so the ports are picked
// free beforehand.
func (e *examples) endpoints(run int) (dist, coll string, err error) {
	if e.transport == "ipc" {
		return fmt.Sprintf("ipc://%s/d%d.ipc", e.dir, run), fmt.Sprintf("ipc://%s/c%d.ipc", e.dir, run), nil
	}
	if dist, err = freeTCP(); err != nil {
		return "", "", err
	}
	coll, err = freeTCP()
	return dist, coll, err
}

func freeTCP() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return "tcp://" + l.Addr().String(), nil
}

// parseReport reads an example's report: "expected execution time: X",
// "<what> took: Y milliseconds" and, unless results is negative,
// "collected <results> results".
func parseReport(out, what string, results int) (report, error) {
	var r report
	collected := -1
	sawExpected := false
	msec := func(v string) time.Duration {
		f, err := strconv.ParseFloat(strings.TrimSuffix(v, " milliseconds"), 64)
		if err != nil {
			return 0
		}
		return time.Duration(f * float64(time.Millisecond))
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "expected execution time: "); ok {
			r.expected, sawExpected = msec(v), true
		}
		if v, ok := strings.CutPrefix(line, what+" took: "); ok {
			r.took = msec(v)
		}
		if v, ok := strings.CutPrefix(line, "collected "); ok {
			collected, _ = strconv.Atoi(strings.TrimSuffix(v, " results"))
		}
	}
	if !sawExpected || r.took <= 0 {
		return report{}, fmt.Errorf("no %q report in:\n%s", what, out)
	}
	if results >= 0 && collected != results {
		return report{}, fmt.Errorf("collected %d of %d results:\n%s", collected, results, out)
	}
	return r, nil
}
