package engine

import (
	"sync"
	"time"
)

// outbox gathers a worker's outcomes for its reporter. Executing
// goroutines add each outcome as they finish it; the reporter takes all
// there is, into one result message, when there are an eighth of the
// window, when a goroutine is about to wait for an item, or once the
// oldest has waited maxResultHold, whichever comes first. A timer sees to
// the last even while every goroutine is inside a long item: it sends
// early; nothing holds an outcome back until a later item ends, however
// long that item takes.
type outbox struct {
	mu      sync.Mutex
	taken   sync.Cond // the reporter took what was pending
	pending []outcome
	oldest  time.Time // when the first of pending was added
	armed   bool      // the timer will fire; it is not stopped, only re-armed
	timer   *time.Timer
	ready   chan struct{} // the reporter has something to take; capacity 1
}

func newOutbox() *outbox {
	o := &outbox{ready: make(chan struct{}, 1)}
	o.taken.L = &o.mu
	o.timer = time.AfterFunc(time.Hour, o.expire)
	o.timer.Stop()
	return o
}

// add adds an outcome; the one that makes flushAt pending tells the
// reporter (once: those after it go with them, as the reporter takes all
// there is). While twice that many wait for the reporter, add waits for
// it to take them: the outbox is bounded, and goroutines that finish
// items faster than they can be sent give way to the goroutines that send
// them.
func (o *outbox) add(oc outcome, flushAt int) {
	o.mu.Lock()
	for len(o.pending) >= 2*flushAt {
		o.taken.Wait()
	}
	o.pending = append(o.pending, oc)
	n := len(o.pending)
	if n == 1 {
		o.oldest = time.Now()
		if !o.armed {
			// Armed once per hold at most, however many batches go out
			// meanwhile: a batch taken early leaves the timer to fire,
			// and expire arms it again for what is pending then.
			o.armed = true
			o.timer.Reset(maxResultHold)
		}
	}
	o.mu.Unlock()
	if n == flushAt {
		o.signal()
	}
}

// expire is the timer's: it tells the reporter to take what has waited
// maxResultHold, and waits again for what has not.
func (o *outbox) expire() {
	o.mu.Lock()
	o.armed = false
	due := false
	if len(o.pending) > 0 {
		if wait := maxResultHold - time.Since(o.oldest); wait > 0 {
			o.armed = true
			o.timer.Reset(wait)
		} else {
			due = true
		}
	}
	o.mu.Unlock()
	if due {
		o.signal()
	}
}

// signal tells the reporter to take what is pending.
func (o *outbox) signal() {
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

// take returns what is pending and empties the outbox, which goes on in
// spare (an empty slice the caller is done with): the goroutines that add
// wait for no copy.
func (o *outbox) take(spare []outcome) []outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	taken := o.pending
	o.pending = spare[:0]
	o.taken.Broadcast()
	return taken
}

// stop stops the timer for good.
func (o *outbox) stop() { o.timer.Stop() }
