package engine

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// Status is a live view of a distributor's run, for an operator: how far
// each task type is, which workers are connected and what they did, and
// how long the run should take yet. Distributor.Status returns it at any
// time; reading it costs the run nothing per item (the counters are kept
// with atomic adds as the run goes, and the peers are as of the last
// heartbeat interval).
type Status struct {
	// Run is the run's id as logs show it; "" before the run began.
	Run string
	// Started is when the run began (zero before); Elapsed how long it
	// has run, or ran.
	Started time.Time
	Elapsed time.Duration
	// Total is the number of items the run has in all, when every task
	// knows its own (Sized); -1 otherwise.
	Total int64
	// Produced, InFlight, Completed, Failed, Retried and Redelivered sum
	// the task types' (see TaskStatus).
	Produced, InFlight, Completed, Failed, Retried, Redelivered int64
	// Rate is items completed per second over the last few heartbeat
	// intervals (0 before there are two), and Remaining the time the
	// items left take at that rate, when Total is known (0 otherwise).
	Rate      float64
	Remaining time.Duration
	// Tasks are the task types, in the order they were registered.
	Tasks []TaskStatus
	// Workers are the workers connected at the last heartbeat interval
	// (or status request), and Collector the collector's peer id, as
	// WorkerStatus.Peer gives it ("" while there is none).
	Workers   []WorkerStatus
	Collector string
	// Stats is what the distributor dropped and ignored (Stats).
	Stats Stats
}

// TaskState is where a task type is in its run.
type TaskState int

// Task states.
const (
	// TaskWaiting: a type this one depends on is not complete yet.
	TaskWaiting TaskState = iota
	// TaskRunning: its items may go out.
	TaskRunning
	// TaskComplete: its last item was produced and every one of its
	// items acknowledged.
	TaskComplete
)

// String returns the state's name: waiting, running or complete.
func (s TaskState) String() string {
	switch s {
	case TaskWaiting:
		return "waiting"
	case TaskRunning:
		return "running"
	case TaskComplete:
		return "complete"
	}
	return "unknown"
}

// MarshalText returns the state's name, as String.
func (s TaskState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText sets s from its name.
func (s *TaskState) UnmarshalText(b []byte) error {
	for _, st := range []TaskState{TaskWaiting, TaskRunning, TaskComplete} {
		if string(b) == st.String() {
			*s = st
			return nil
		}
	}
	return fmt.Errorf("task state %q: want waiting, running or complete", b)
}

// TaskStatus is one task type's part of a Status.
type TaskStatus struct {
	Type      string
	DependsOn []string
	State     TaskState
	// Total is the number of items the task produces in all, if it knows
	// (Sized); -1 otherwise.
	Total int64
	// Produced counts the items the task produced; InFlight those not yet
	// complete; Completed those complete (acknowledged, succeeded or
	// failed for good); Failed those failed for good (dead: the
	// collector's failure handler saw them). Retried counts failed
	// attempts sent out again after their backoff, Redelivered items
	// handed out again because their worker or the collector was lost.
	Produced, InFlight, Completed, Failed, Retried, Redelivered int64
}

// WorkerStatus is one connected worker's part of a Status.
type WorkerStatus struct {
	// Peer is the worker's id on the distributor's listener as the logs
	// print it, a ZeroMQ peer's cut to its first 16 hex digits (enough to
	// find it in the logs, not to pose as it); TaskType the type it
	// executes.
	Peer     string
	TaskType string
	// Window is the credit the worker announced (its goroutines and
	// prefetch), Granted the part of it the distributor gives it now
	// (see WithLimits).
	Window, Granted int
	// Handed counts the items handed to it in this run, Finished those
	// it reported finished in its heartbeats, and Rate is how many it
	// finished per second over the last few heartbeat intervals.
	Handed, Finished uint32
	Rate             float64
	// LastSeen is when a message from it last arrived, to within a
	// heartbeat interval.
	LastSeen time.Time
	// Draining says it takes no more items and leaves once it finished
	// those it holds.
	Draining bool
}

// taskCounts are one task type's counters for Status, written by the
// run's goroutine only.
type taskCounts struct {
	produced, completed, failed, retried, redelivered atomic.Int64
	state                                             atomic.Int32 // a TaskState
}

// peerView is what the run publishes of its peers every heartbeat
// interval, with the progress samples Status estimates the rate from.
type peerView struct {
	workers   []WorkerStatus
	collector string
	samples   []progressSample // oldest first
}

type progressSample struct {
	at        time.Time
	completed int64
}

// peerName is how Status names a peer: its id as the logs print it, cut
// to its first 8 bytes (16 hex digits) when the id is binary, as a
// ZeroMQ peer's 16 random bytes are. That tells peers apart and finds
// them in the logs, and, since a status answer goes to whoever asks (see
// QueryStatus), does not hand out what would let a peer without keys
// pose as another once it is gone.
func peerName(id transport.PeerID) string {
	s := id.String()
	if s != string(id) && len(s) > 16 {
		return s[:16]
	}
	return s
}

// workerRate measures a worker's rate from the items it said it finished,
// over the last rateSamples heartbeat intervals.
type workerRate struct {
	at       [rateSamples]time.Time
	finished [rateSamples]uint32
	n        int     // samples taken; the newest is at (n-1) % rateSamples
	last     float64 // the rate, in items per second, as of the newest
}

// add takes a sample and measures the rate (0 until there are two).
func (w *workerRate) add(at time.Time, finished uint32) {
	i := w.n % rateSamples
	w.at[i], w.finished[i] = at, finished
	w.n++
	oldest := 0
	if w.n > rateSamples {
		oldest = w.n % rateSamples
	}
	w.last = 0
	if span := at.Sub(w.at[oldest]).Seconds(); span > 0 {
		w.last = float64(finished-w.finished[oldest]) / span // uint32: a count that wrapped still subtracts right
	}
}

// rateSamples is how many heartbeat intervals the rate is measured over.
const rateSamples = 10

// publishPeers publishes the peers for Status; the run's goroutine calls
// it every heartbeat interval, with sample set (the rates are measured
// from those calls), and before it answers a status request.
func (r *distRun) publishPeers(now time.Time, sample bool) {
	v := &peerView{}
	if r.collector != "" {
		v.collector = peerName(r.collector)
	}
	for _, p := range r.peers {
		if p.role != transport.RoleWorker || !p.welcomed {
			continue
		}
		if sample {
			p.rate.add(now, p.progress)
		}
		v.workers = append(v.workers, WorkerStatus{
			Peer: peerName(p.id), TaskType: p.taskType, Window: int(p.window), Granted: p.granted,
			Handed: p.handed, Finished: p.progress, Rate: p.rate.last, Draining: p.draining,
			LastSeen: now.Add(-time.Duration(r.tick-p.seen) * r.d.s.heartbeat),
		})
	}
	slices.SortFunc(v.workers, func(a, b WorkerStatus) int {
		if a.TaskType != b.TaskType {
			if a.TaskType < b.TaskType {
				return -1
			}
			return 1
		}
		if a.Peer < b.Peer {
			return -1
		}
		if a.Peer > b.Peer {
			return 1
		}
		return 0
	})
	old := r.d.peers.Load()
	switch {
	case !sample && old != nil:
		v.samples = old.samples // read only, as every view is once published
	case sample:
		if old != nil {
			v.samples = append(v.samples, old.samples[max(len(old.samples)-rateSamples+1, 0):]...)
		}
		v.samples = append(v.samples, progressSample{at: now, completed: r.d.done.Load()})
	}
	r.d.peers.Store(v)
}

// Status returns a live view of the run; safe to call at any time,
// concurrently with Run. Before Run begins it lists the task types
// waiting.
func (d *Distributor) Status() Status {
	st := Status{Stats: d.Stats()}
	r := d.live.Load()
	if r != nil {
		st.Run = runName(r.runID)
		st.Started = r.started
		if end := d.ended.Load(); end != nil {
			st.Elapsed = end.Sub(r.started)
		} else {
			st.Elapsed = time.Since(r.started)
		}
	}
	for i, spec := range d.specs {
		ts := TaskStatus{Type: spec.Type, DependsOn: slices.Clone(spec.DependsOn), Total: -1}
		if sized, ok := spec.Task.(Sized); ok {
			ts.Total = sized.Total()
		}
		if r != nil {
			c := &r.order[i].counts
			ts.State = TaskState(c.state.Load())
			ts.Produced, ts.Completed = c.produced.Load(), c.completed.Load()
			ts.Failed, ts.Retried, ts.Redelivered = c.failed.Load(), c.retried.Load(), c.redelivered.Load()
			ts.InFlight = ts.Produced - ts.Completed
		} else if len(spec.DependsOn) == 0 {
			ts.State = TaskRunning
		}
		st.Tasks = append(st.Tasks, ts)
		switch {
		case st.Total < 0:
		case ts.Total < 0:
			st.Total = -1
		default:
			st.Total += ts.Total
		}
		st.Produced += ts.Produced
		st.InFlight += ts.InFlight
		st.Completed += ts.Completed
		st.Failed += ts.Failed
		st.Retried += ts.Retried
		st.Redelivered += ts.Redelivered
	}
	if v := d.peers.Load(); v != nil {
		st.Workers = slices.Clone(v.workers)
		st.Collector = v.collector
		if n := len(v.samples); n >= 2 {
			first, last := v.samples[0], v.samples[n-1]
			if span := last.at.Sub(first.at).Seconds(); span > 0 {
				st.Rate = float64(last.completed-first.completed) / span
			}
		}
	}
	if st.Total >= 0 && st.Rate > 0 && st.Completed < st.Total {
		st.Remaining = time.Duration(float64(st.Total-st.Completed) / st.Rate * float64(time.Second))
	}
	return st
}
