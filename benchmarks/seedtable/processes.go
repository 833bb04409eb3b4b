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

// processRunDeadline bounds one multi-process run beyond its ideal time.
const processRunDeadline = 2 * time.Minute

// processes runs the seed's examples with every role in its own OS
// process, over ipc or tcp, as the seed did: collector and workers first,
// then the distributor, and the collector's stopwatch times the run from
// its first result to the end.
type processes struct {
	scheme string // "ipc" or "tcp"
	dir    string // built examples and ipc files
	bins   map[string]string
}

// newProcesses builds the examples the rows need into a new temporary
// directory; close removes it.
func newProcesses(ctx context.Context, scheme string) (*processes, error) {
	if scheme != "ipc" && scheme != "tcp" {
		return nil, fmt.Errorf("-transport %q: want inproc, ipc or tcp", scheme)
	}
	dir, err := os.MkdirTemp("", "seedtable-")
	if err != nil {
		return nil, err
	}
	p := &processes{scheme: scheme, dir: dir, bins: map[string]string{}}
	for _, rw := range rows {
		if _, ok := p.bins[rw.name]; ok {
			continue
		}
		bin := filepath.Join(dir, rw.name)
		pkg := "github.com/zmqpipeline/zmqpipeline/examples/" + rw.name
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			p.close()
			return nil, fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
		p.bins[rw.name] = bin
	}
	return p, nil
}

func (p *processes) close() { _ = os.RemoveAll(p.dir) }

// endpoints returns fresh distributor and collector endpoints.
func (p *processes) endpoints(run int) (dist, coll string, err error) {
	if p.scheme == "ipc" {
		return fmt.Sprintf("ipc://%s/d%d.ipc", p.dir, run), fmt.Sprintf("ipc://%s/c%d.ipc", p.dir, run), nil
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

// run runs one row and returns the collector's time from its first result
// to the end of the run.
func (p *processes) run(ctx context.Context, n int, delay time.Duration, rw row, prefetch, run int) (time.Duration, error) {
	dist, coll, err := p.endpoints(run)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, processRunDeadline+time.Duration(n)*delay)
	defer cancel()
	common := []string{"-n", strconv.Itoa(n), "-delay", delay.String(), "-workers", strconv.Itoa(rw.workers),
		"-goroutines", strconv.Itoa(rw.goroutines), "-prefetch", strconv.Itoa(prefetch), "-distributor", dist, "-collector", coll}
	bin := p.bins[rw.name]
	var procs []*exec.Cmd
	var outs []*bytes.Buffer
	startRole := func(args ...string) error {
		cmd := exec.CommandContext(ctx, bin, append(common, args...)...)
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
		return 0, err
	}
	var errs []error
	for i, cmd := range procs {
		if err := cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w\n%s", cmd.Args[1:3], err, outs[i]))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return collectionTime(outs[0].String(), n)
}

// collectionTime reads the collector's report.
func collectionTime(out string, n int) (time.Duration, error) {
	var took time.Duration
	results := -1
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "collection after the first result took: "); ok {
			ms, err := strconv.ParseFloat(strings.TrimSuffix(v, " milliseconds"), 64)
			if err != nil {
				return 0, fmt.Errorf("collector report %q: %w", line, err)
			}
			took = time.Duration(ms * float64(time.Millisecond))
		}
		if v, ok := strings.CutPrefix(line, "collected "); ok {
			results, _ = strconv.Atoi(strings.TrimSuffix(v, " results"))
		}
	}
	if results != n || took <= 0 {
		return 0, fmt.Errorf("collector collected %d of %d results (took %v):\n%s", results, n, took, out)
	}
	return took, nil
}
