package engine

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrInvalidConfig is wrapped by every construction error: a nil or
	// duplicate task, an empty task type, an option with a bad value, an
	// endpoint that no transport serves or that its transport refuses.
	ErrInvalidConfig = errors.New("engine: invalid configuration")
	// ErrUnknownTaskType: a worker connected for a task type the distributor
	// has not registered.
	ErrUnknownTaskType = errors.New("engine: unknown task type")
	// ErrRejected: the distributor refused a peer's handshake (a second
	// collector, metadata that was not asked for or came twice).
	ErrRejected = errors.New("engine: rejected by the distributor")
	// ErrAborted: the distributor ended the run before it completed; the
	// error text says why.
	ErrAborted = errors.New("engine: run aborted")
	// ErrAlreadyRunning: Run was called on a component that already ran.
	ErrAlreadyRunning = errors.New("engine: Run called twice")
	// ErrDistributorLost: a worker or collector heard nothing from its
	// distributor for the liveness timeout (and found no other within
	// WithRejoin's bound).
	ErrDistributorLost = errors.New("engine: distributor lost")
	// ErrReplaced: a collector that was taken for gone came back to find
	// another collector in its place.
	ErrReplaced = errors.New("engine: replaced by another collector")
	// ErrPermanent, wrapped in a handler's error, says that another
	// attempt would fail the same way: the item fails at once, whatever
	// attempts it has left.
	ErrPermanent = errors.New("engine: permanent failure")

	// ErrNoMoreItems is returned by Task.Next when the task has no item left.
	// Returning the last item with Item.Last set says the same one call
	// earlier.
	ErrNoMoreItems = errors.New("engine: no more items")
	// ErrNotReady is returned by Task.Next when the task cannot produce its
	// next item until one of its items is acknowledged. The distributor asks
	// again after the next ACK of that task type. Returning it while none of
	// the type's items is in flight aborts the run, since no ACK could come.
	ErrNotReady = errors.New("engine: task not ready until an ACK arrives")
)

// ItemError is one failed work item, as the collector's failure handler sees
// it: the worker's handler returned an error or panicked, or the collector's
// result handler did.
type ItemError struct {
	TaskType string
	ItemID   uint64
	Attempt  int
	// Message is the error text: it crossed the wire, so the original error
	// value is not kept.
	Message string
	// Trace is the failed attempt's trace context (see Result.Trace).
	Trace TraceContext
}

// Error names the item and says what went wrong.
func (e *ItemError) Error() string {
	return fmt.Sprintf("task %q item %d (attempt %d): %s", e.TaskType, e.ItemID, e.Attempt, e.Message)
}

// PanicError is a panic in user code (a handler, a hook, a task), turned
// into an error at the boundary so one bad item does not stop the process.
// Panics in the engine itself are not recovered.
type PanicError struct {
	Value any
	Stack []byte
}

// Error gives the panic value and the stack it was raised on.
func (e *PanicError) Error() string {
	return fmt.Sprintf("panic: %v\n%s", e.Value, e.Stack)
}

// protect runs fn, turning a panic into a *PanicError.
func protect(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return fn()
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}
