package transport

import (
	"log/slog"
	"sync"
	"time"
)

// DropLogInterval is how often a DropCounter logs one reason, at most.
const DropLogInterval = 10 * time.Second

// DropCounter counts the messages a component throws away, by reason, and
// logs them without letting a hostile peer flood the log: the first drop
// of a reason at once, then at most one line per reason per
// DropLogInterval, which says how many were dropped since the line before.
// The zero value is ready to use; it is safe for concurrent use.
type DropCounter struct {
	mu      sync.Mutex
	reasons map[DropReason]*dropTally
	now     func() time.Time // for tests; time.Now if nil
}

type dropTally struct {
	total    uint64
	unlogged uint64    // dropped since the last line
	logged   time.Time // when the last line was written
}

// Drop counts one message dropped for reason. If the reason's line is
// due, it logs msg at the warn level with args (which describe this
// message), the reason, how many were dropped for it since its last line
// ("dropped") and in all ("dropped_total").
func (c *DropCounter) Drop(log *slog.Logger, reason DropReason, msg string, args ...any) {
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	t := now()
	c.mu.Lock()
	if c.reasons == nil {
		c.reasons = make(map[DropReason]*dropTally)
	}
	d := c.reasons[reason]
	if d == nil {
		d = &dropTally{}
		c.reasons[reason] = d
	}
	d.total++
	d.unlogged++
	if !d.logged.IsZero() && t.Sub(d.logged) < DropLogInterval {
		c.mu.Unlock()
		return
	}
	n, total := d.unlogged, d.total
	d.unlogged, d.logged = 0, t
	c.mu.Unlock()
	if log != nil {
		log.Warn(msg, append(args, "reason", string(reason), "dropped", n, "dropped_total", total)...)
	}
}

// Counts returns how many messages were dropped, by reason; reasons that
// never happened are absent, and nil means none at all.
func (c *DropCounter) Counts() map[DropReason]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.reasons) == 0 {
		return nil
	}
	m := make(map[DropReason]uint64, len(c.reasons))
	for r, d := range c.reasons {
		m[r] = d.total
	}
	return m
}

// Total returns how many messages were dropped in all.
func (c *DropCounter) Total() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n uint64
	for _, d := range c.reasons {
		n += d.total
	}
	return n
}
