package engine

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// Stats counts what a component threw away: what its transports dropped
// (malformed or oversize input, messages for departed peers) and what the
// component itself ignored. On a healthy run every count is zero; a
// growing one means a misbehaving or hostile peer, or a network that
// loses connections. Every component has a Stats method, safe to call
// while it runs and after.
type Stats struct {
	// Transport sums the counters of the component's listener and
	// connections, for transports that keep them
	// (transport.StatsReporter): the peers connected to its listener now,
	// and the messages dropped, by reason, over the component's life.
	Transport transport.Stats
	// Ignored counts, by reason, the well-formed messages the component
	// dropped because they did not fit the run, and the handshakes it
	// refused: a result without a valid assignment token, an ACK for an
	// item not in flight, credit from a peer that is not a welcomed
	// worker, a kind the component never receives. The Ignored* constants
	// are the reasons; nil means none.
	Ignored map[transport.DropReason]uint64
	// PeersLost counts the peers a distributor took for gone without a
	// goodbye: silent for the liveness timeout, or their connection
	// closed; for a worker or collector, the distributors it lost.
	PeersLost uint64
	// Redelivered counts the items a distributor handed out again because
	// their worker (or the collector) was lost.
	Redelivered uint64
	// Retried counts the failed attempts a distributor sent out again
	// after their backoff.
	Retried uint64
	// Duplicates counts the results a collector acknowledged without
	// handling them, because it had handled a result of the item already.
	Duplicates uint64
}

// TotalIgnored returns the sum of Ignored over every reason.
func (s Stats) TotalIgnored() uint64 {
	var n uint64
	for _, i := range s.Ignored {
		n += i
	}
	return n
}

// Reasons a component ignores a well-formed message (Stats.Ignored). Like
// the transport's drops, each is logged at most once per
// transport.DropLogInterval, with the count.
const (
	// IgnoredNotInRun: a message from a peer the distributor does not
	// know (it never said hello, or was taken for gone); the peer is told
	// to say hello again.
	IgnoredNotInRun transport.DropReason = "not a peer of the run"
	// IgnoredOtherRun: a message stamped with another run's id.
	IgnoredOtherRun transport.DropReason = "another run"
	// IgnoredBadToken: a result or failure without the assignment token
	// of a hand-out: a forgery, or a corrupted result.
	IgnoredBadToken transport.DropReason = "no valid assignment token"
	// IgnoredWrongRole: a message the sender's role may not send, such as
	// an ACK from a peer that is not the welcomed collector or credit
	// from one that is not a welcomed worker.
	IgnoredWrongRole transport.DropReason = "not allowed for the sender's role"
	// IgnoredUnknownItem: an ACK for an item or attempt never handed
	// out, or a result for an item id out of the collector's range.
	IgnoredUnknownItem transport.DropReason = "item or attempt never handed out"
	// IgnoredUnexpected: a kind of message the receiver never gets, or
	// gets only at another point of the run.
	IgnoredUnexpected transport.DropReason = "unexpected message"
	// IgnoredMalformed: a payload the receiver cannot decode, such as the
	// list of unfinished items in a goodbye.
	IgnoredMalformed transport.DropReason = "malformed payload"
	// IgnoredForbidden: a message whose sender's key may not send it: a
	// result from a key without a worker grant for its task type, or a
	// message under another key than its peer's hello.
	IgnoredForbidden transport.DropReason = "forbidden for the sender's key"
	// IgnoredRefused: a handshake the distributor refused (and answered):
	// an unknown task type or role, a key without the role, a second
	// collector, metadata it did not ask for or already has.
	IgnoredRefused transport.DropReason = "handshake refused"
	// IgnoredFlood: a hello, goodbye or metadata past the few a peer may
	// send the distributor in one heartbeat interval; an honest peer
	// sends one or two.
	IgnoredFlood transport.DropReason = "too many handshakes"
)

// meter keeps a component's Stats: the transports it has open, the final
// counts of those it closed, and what it ignored.
type meter struct {
	mu      sync.Mutex
	open    []any           // Listeners and Conns in use
	closed  transport.Stats // drops counted by those closed
	ignored transport.DropCounter

	peersLost, redelivered, retried, duplicates atomic.Uint64
}

// track adds a Listener or Conn whose counters belong to the component.
func (m *meter) track(x any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.open = append(m.open, x)
}

// release closes a tracked Listener or Conn and keeps its final drop
// counts.
func (m *meter) release(x interface{ Close() error }) {
	_ = x.Close()
	final := transport.StatsOf(x)
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, o := range m.open {
		if o == x {
			m.open = append(m.open[:i], m.open[i+1:]...)
			break
		}
	}
	m.closed.Add(transport.Stats{Dropped: final.Dropped})
}

func (m *meter) stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Stats{
		Transport: m.closed.Clone(), Ignored: m.ignored.Counts(),
		PeersLost: m.peersLost.Load(), Redelivered: m.redelivered.Load(), Retried: m.retried.Load(), Duplicates: m.duplicates.Load(),
	}
	for _, x := range m.open {
		s.Transport.Add(transport.StatsOf(x))
	}
	return s
}

// summarize logs, at the end of a Run, what the component dropped or
// ignored, if anything: one line, so that it shows at the warn level
// without reading every line before it.
func (m *meter) summarize(log *slog.Logger) {
	s := m.stats()
	if s.Transport.TotalDropped() > 0 || len(s.Ignored) > 0 {
		log.Warn("messages dropped or ignored during the run", "dropped", s.Transport.Dropped, "ignored", s.Ignored)
	}
}

// ignore counts a message that did not fit the run and logs it, sparingly
// (see transport.DropCounter), since a peer can send any number of them.
func (m *meter) ignore(log *slog.Logger, reason transport.DropReason, msg string, args ...any) {
	m.ignored.Drop(log, reason, msg, args...)
}
