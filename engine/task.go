package engine

import (
	"context"
	"time"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// Task produces the work items of one task type, lazily: the distributor
// calls Next only when a worker of that type has announced capacity, the
// type's dependencies are complete, and the task is not waiting for an ACK.
//
// All methods of a task (Next and the optional TaskInitializer and
// AckHandler) are called from the distributor's goroutine, never
// concurrently, so a task needs no locking. A slow Next holds up the
// distributor for every type.
type Task interface {
	// Next returns the next item. Set Item.Last on the last one, or return
	// ErrNoMoreItems when asked past the end; return ErrNotReady to wait for
	// an ACK. Any other error, or a panic, aborts the run.
	Next(ctx context.Context) (Item, error)
}

// Item is one unit of work as a task produces it.
type Item struct {
	// Payload is encoded with the pipeline's codec and reaches the worker
	// as Job.Decode's input. nil is fine.
	Payload any
	// Last marks the task's last item.
	Last bool
	// Trace, if set, is the item's trace context: its worker's handler
	// finds it with Job.Trace. A run resumed from its journal hands out
	// the items it had produced before without it.
	Trace TraceContext
}

// TaskFunc adapts a function to Task.
type TaskFunc func(ctx context.Context) (Item, error)

// Next calls f.
func (f TaskFunc) Next(ctx context.Context) (Item, error) { return f(ctx) }

// TaskInitializer is implemented by tasks that want the run's metadata. Init
// runs once, before the first Next: at the start of the run, or when the
// metadata arrives if the distributor waits for it. An error aborts the run.
type TaskInitializer interface {
	Init(ctx context.Context, md Metadata) error
}

// AckHandler is implemented by tasks that want each of their items'
// acknowledgements, with the data the collector's result handler returned
// (the original's get_ack_data). Together with ErrNotReady it lets a task
// hold back its next item until a given ACK arrived. An error aborts the run.
type AckHandler interface {
	HandleAck(ctx context.Context, ack *Ack) error
}

// AckHandlerFunc adapts a function to AckHandler, for WithAckHandler.
type AckHandlerFunc func(ctx context.Context, ack *Ack) error

// HandleAck calls f.
func (f AckHandlerFunc) HandleAck(ctx context.Context, ack *Ack) error { return f(ctx, ack) }

// TaskSpec registers a task with a distributor.
type TaskSpec struct {
	// Type names the task type; workers connect for a type.
	Type string
	// Task produces the type's items.
	Task Task
	// DependsOn lists the types that must be complete (last item produced
	// and every item acknowledged) before this type's first item goes out.
	DependsOn []string
	// MaxAttempts is how many times an item of this type may be tried
	// when its handler fails (DefaultMaxAttempts if 0): a failure with
	// attempts left sends the item out again after a backoff
	// (WithRetryBackoff); the last failure, or one the handler marks
	// permanent (ErrPermanent), goes to the collector's failure handler.
	// An item handed out again because its worker was lost counts an
	// attempt too, so the limit also bounds how often an item that kills
	// its worker is tried.
	MaxAttempts int
	// Timeout, if set, bounds one attempt: the handler's context ends
	// after it, and an attempt that runs past it fails. It also lets the
	// distributor tell a worker that sits on items from a busy one: a
	// worker that holds items of the type and finishes none for Timeout
	// plus the liveness timeout (a handler that ignores its context, or a
	// peer that hoards) is taken for gone, and its items go to others.
	Timeout time.Duration
}

// Ack is the acknowledgement of one item, as a task's AckHandler sees it.
type Ack struct {
	TaskType string
	ItemID   uint64
	Attempt  int
	// Failed says the item failed; Error says why.
	Failed bool
	Error  string
	data   []byte
	codec  transport.Codec
}

// HasData reports whether the collector attached data to the ACK.
func (a *Ack) HasData() bool { return len(a.data) > 0 }

// Decode decodes the data the collector's result handler returned into v.
func (a *Ack) Decode(v any) error { return a.codec.Unmarshal(a.data, v) }

// Metadata is the map a MetadataSource hands to the run. After the trip
// through the codec, numbers are int64, uint64 or float64 and nested maps
// are map[string]any.
type Metadata map[string]any

// Items returns a Task that produces n items, the i-th (from 0) with the
// payload that payload(i) returns; n of 0 produces none. An error from
// payload aborts the run. It knows its total (Sized).
func Items(n int, payload func(i int) (any, error)) Task {
	return &itemsTask{n: n, payload: payload}
}

type itemsTask struct {
	n, next int
	payload func(i int) (any, error)
}

func (t *itemsTask) Next(context.Context) (Item, error) {
	if t.next >= t.n {
		return Item{}, ErrNoMoreItems
	}
	p, err := t.payload(t.next)
	if err != nil {
		return Item{}, err
	}
	t.next++
	return Item{Payload: p, Last: t.next == t.n}, nil
}

func (t *itemsTask) Total() int64 { return int64(max(t.n, 0)) }

// Sized is implemented by a Task that knows how many items it produces in
// all. With it, a distributor's Status counts the items left and
// estimates the time left.
type Sized interface {
	Total() int64
}
