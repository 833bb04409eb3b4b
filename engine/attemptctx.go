package engine

import (
	"context"
	"sync"
	"time"
)

// attemptContext is the context of an executing goroutine's attempts
// under an execution deadline. context.WithTimeout per item costs an
// allocation, a timer and a registration with the parent, more than a
// short item itself; this one serves attempt after attempt with one
// timer, re-armed for each. It ends when its attempt's deadline passes
// (Err is context.DeadlineExceeded) or its parent ends; once ended it
// stays ended, as a context must, and the goroutine takes a new one for
// its next attempt.
type attemptContext struct {
	parent     context.Context
	timer      *time.Timer
	stopParent func() bool

	mu       sync.Mutex
	deadline time.Time
	done     chan struct{}
	err      error
}

func newAttemptContext(parent context.Context) *attemptContext {
	a := &attemptContext{parent: parent, done: make(chan struct{})}
	a.timer = time.AfterFunc(time.Hour, a.expire)
	a.timer.Stop()
	a.stopParent = context.AfterFunc(parent, func() { a.end(parent.Err()) })
	return a
}

// Deadline returns the attempt's deadline, or the parent's if that is
// sooner.
func (a *attemptContext) Deadline() (time.Time, bool) {
	a.mu.Lock()
	d := a.deadline
	a.mu.Unlock()
	if pd, ok := a.parent.Deadline(); ok && pd.Before(d) {
		return pd, true
	}
	return d, true
}

func (a *attemptContext) Done() <-chan struct{} { return a.done }

func (a *attemptContext) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

func (a *attemptContext) Value(key any) any { return a.parent.Value(key) }

// arm starts an attempt that may take d.
func (a *attemptContext) arm(d time.Duration) {
	a.mu.Lock()
	a.deadline = time.Now().Add(d)
	a.mu.Unlock()
	a.timer.Reset(d)
}

// disarm ends an attempt; it reports whether the context ended (its
// deadline passed, or the parent ended), after which it is not used again.
func (a *attemptContext) disarm() (ended bool) {
	a.timer.Stop()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err != nil
}

// expire is the timer's: it ends the context if the deadline has passed
// (a timer that fired for an earlier attempt finds a later deadline).
func (a *attemptContext) expire() {
	a.mu.Lock()
	passed := !time.Now().Before(a.deadline)
	a.mu.Unlock()
	if passed {
		a.end(context.DeadlineExceeded)
	}
}

func (a *attemptContext) end(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err == nil {
		a.err = err
		close(a.done)
	}
}

// release stops what the context holds; call it when the goroutine no
// longer uses it.
func (a *attemptContext) release() {
	a.timer.Stop()
	a.stopParent()
}
