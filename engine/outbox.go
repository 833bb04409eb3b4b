package engine

import (
	"context"
	"sync"
	"time"
)

// outbox gathers a worker's outcomes for its reporter. Executing
// goroutines add each outcome as they finish it; the reporter takes all
// there is, into one result message, when there are an eighth of the
// window, when a goroutine is about to wait for an item, when an item
// that is not short ends, or once the oldest has waited maxResultHold,
// whichever comes first. A timer sees to
// the last even while every goroutine is inside a long item: it sends
// early; nothing holds an outcome back until a later item ends, however
// long that item takes.
type outbox struct {
	mu      sync.Mutex
	pending []outcome
	oldest  time.Time // when the first of pending was added
	armed   bool      // the timer will fire
	timer   *time.Timer
	ready   chan struct{} // the reporter has something to take; capacity 1
	taken   chan struct{} // closed (and replaced) when the reporter takes
}

func newOutbox() *outbox {
	o := &outbox{ready: make(chan struct{}, 1), taken: make(chan struct{})}
	o.timer = time.AfterFunc(time.Hour, o.expire)
	o.timer.Stop()
	return o
}

// add adds an outcome; the one that makes flushAt pending tells the
// reporter (once: those after it go with them, as the reporter takes all
// there is), and so does any with now set: the outcome of an item too long
// to be worth batching. While twice flushAt wait for the reporter, add
// waits for it to take them (or for ctx to end): goroutines that finish
// items faster than they can be sent give way to the one that sends them.
func (o *outbox) add(ctx context.Context, oc outcome, flushAt int, now bool) {
	o.mu.Lock()
	for len(o.pending) >= 2*flushAt && ctx.Err() == nil {
		taken := o.taken
		o.mu.Unlock()
		o.signal()
		select {
		case <-taken:
		case <-ctx.Done():
		}
		o.mu.Lock()
	}
	o.pending = append(o.pending, oc)
	n := len(o.pending)
	send := n == flushAt || now
	if n == 1 {
		o.oldest = time.Now()
		if !send && !o.armed {
			// Only an outcome left to wait needs the timer: arming one
			// that the reporter then stops would still wake the process.
			o.armed = true
			o.timer.Reset(maxResultHold)
		}
	}
	o.mu.Unlock()
	if send {
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
	close(o.taken)
	o.taken = make(chan struct{})
	if o.armed && o.timer.Stop() {
		// Nothing is left to wait for: a timer that fired now would only
		// wake the process (and late wake-ups delay the handlers' own
		// timers; see README "The seed's workloads").
		o.armed = false
	}
	return taken
}

// stop stops the timer for good.
func (o *outbox) stop() { o.timer.Stop() }
