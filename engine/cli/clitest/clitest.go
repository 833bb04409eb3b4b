// Package clitest runs pipeline programs (programs built on package cli)
// as child processes in tests: it captures what they print, waits for a
// line to appear (such as where a distributor listens, or that a worker
// took an item), signals them and reads their exit codes. Every wait is
// bounded, and a process still running when its test ends is killed by
// its PID.
package clitest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Deadline bounds every wait on a process.
const Deadline = 60 * time.Second

// Process is a running child process whose stdout and stderr go to one
// buffer.
type Process struct {
	name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	out     strings.Builder
	changed chan struct{} // closed and replaced on every write
	exited  chan struct{}
	code    int
	err     error
	peakRSS atomic.Int64 // bytes: VmHWM, sampled while it runs
}

// Start starts cmd, named name in failure messages, capturing its output.
// cmd must not have Stdout or Stderr set.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{name: name, cmd: cmd, changed: make(chan struct{}), exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p, p
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		err := cmd.Wait()
		var exit *exec.ExitError
		p.mu.Lock()
		switch {
		case err == nil:
		case errors.As(err, &exit):
			p.code = exit.ExitCode()
		default:
			p.code, p.err = -1, err
		}
		p.mu.Unlock()
		close(p.exited)
	}()
	go p.sampleMemory(cmd.Process.Pid)
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// Write collects the process's output.
func (p *Process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out.Write(b)
	close(p.changed)
	p.changed = make(chan struct{})
	return len(b), nil
}

// Name returns the process's name.
func (p *Process) Name() string { return p.name }

// Output returns what the process printed so far, stdout and stderr
// interleaved.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Exited returns a channel closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// WaitFor waits until the output matches re and returns the match and its
// groups. The test fails if the process exits first, or Deadline passes.
func (p *Process) WaitFor(t testing.TB, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	p.await(t, re, func(out string) bool {
		m = rx.FindStringSubmatch(out)
		return m != nil
	})
	return m
}

// WaitForCount waits until s appears n times in the output (a line per
// item, say). The test fails if the process exits first, or Deadline
// passes.
func (p *Process) WaitForCount(t testing.TB, s string, n int) {
	t.Helper()
	p.await(t, fmt.Sprintf("%d times %q", n, s), func(out string) bool { return strings.Count(out, s) >= n })
}

// await waits until done holds of the output.
func (p *Process) await(t testing.TB, what string, done func(out string) bool) {
	t.Helper()
	deadline := time.NewTimer(Deadline)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		ok := done(p.out.String())
		changed := p.changed
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-p.exited:
			if done(p.Output()) {
				return
			}
			t.Fatalf("%s exited without printing %s:\n%s", p.name, what, p.Output())
		case <-deadline.C:
			t.Fatalf("%s did not print %s within %v:\n%s", p.name, what, Deadline, p.Output())
		}
	}
}

// Listening waits for a process that runs role ("distributor" or
// "collector") to say where it listens, and returns that endpoint: the one
// to give the other processes when the port was left to the system.
func (p *Process) Listening(t testing.TB, role string) string {
	t.Helper()
	return p.WaitFor(t, role+` listening on (\S+)`)[1]
}

// Signal sends s to the process.
func (p *Process) Signal(t testing.TB, s os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		t.Fatalf("signal %s: %v", p.name, err)
	}
}

// ExitCode waits for the process to exit and returns its exit code; the
// test fails if Deadline passes first.
func (p *Process) ExitCode(t testing.TB) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(Deadline):
		t.Fatalf("%s did not exit within %v:\n%s", p.name, Deadline, p.Output())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		t.Fatalf("%s: %v", p.name, p.err)
	}
	return p.code
}

// PeakRSS waits for the process to exit and returns the most memory it
// had resident, in bytes: the kernel's high-water mark (VmHWM in
// /proc/PID/status, what /usr/bin/time -v reports as the maximum resident
// set size), read every 10 ms while it ran, so a peak in its last
// milliseconds may be missed. 0 where /proc is not there.
func (p *Process) PeakRSS(t testing.TB) int64 {
	t.Helper()
	p.ExitCode(t)
	return p.peakRSS.Load()
}

// sampleMemory records the process's VmHWM until it exits. (The rusage
// of a child is no use here: its maximum counts the test process, which it
// was forked from.)
func (p *Process) sampleMemory(pid int) {
	status := fmt.Sprintf("/proc/%d/status", pid)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if hwm, ok := readHWM(status); ok && hwm > p.peakRSS.Load() {
			p.peakRSS.Store(hwm)
		}
		select {
		case <-p.exited:
			return
		case <-tick.C:
		}
	}
}

// readHWM reads VmHWM from a /proc status file, in bytes.
func readHWM(status string) (int64, bool) {
	data, err := os.ReadFile(status)
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024, err == nil
		}
	}
	return 0, false
}
