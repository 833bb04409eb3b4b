package engine

import (
	"fmt"
	"strings"
)

// TraceContext is a W3C trace context (https://www.w3.org/TR/trace-context/)
// that an item carries from its task through the worker's handler to the
// collector, so that spans made along the way join one trace. The engine
// carries it and never reads it: a task sets Item.Trace, the handler finds
// it with Job.Trace (and may replace it with its own span's, with
// Job.SetTrace, which the result then carries), and the collector finds
// it with Result.Trace (a failure's in ItemError.Trace). An item without
// one costs nothing: no byte on the wire, no allocation.
// Package engine/oteltrace does all three with OpenTelemetry; the engine
// itself does not import OpenTelemetry.
//
// Its Get, Set and Keys methods make a *TraceContext an OpenTelemetry
// propagation.TextMapCarrier of the "traceparent" and "tracestate" keys.
type TraceContext struct {
	// Parent is the traceparent value, such as
	// "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; empty for
	// none.
	Parent string
	// State is the tracestate value; may be empty.
	State string
}

// The header names of a W3C trace context.
const (
	traceParentKey = "traceparent"
	traceStateKey  = "tracestate"
)

// MaxTraceLen bounds a trace context: the traceparent value and the
// tracestate value, with one byte between them. W3C's own bounds (55 and
// 512 bytes) fit well within it.
const MaxTraceLen = 1024

// Get returns the value of the traceparent or tracestate key.
func (t *TraceContext) Get(key string) string {
	switch strings.ToLower(key) {
	case traceParentKey:
		return t.Parent
	case traceStateKey:
		return t.State
	}
	return ""
}

// Set sets the traceparent or tracestate key; others are ignored.
func (t *TraceContext) Set(key, value string) {
	switch strings.ToLower(key) {
	case traceParentKey:
		t.Parent = value
	case traceStateKey:
		t.State = value
	}
}

// Keys returns the keys that are set.
func (t *TraceContext) Keys() []string {
	var keys []string
	if t.Parent != "" {
		keys = append(keys, traceParentKey)
	}
	if t.State != "" {
		keys = append(keys, traceStateKey)
	}
	return keys
}

// IsZero reports whether t carries nothing.
func (t TraceContext) IsZero() bool { return t.Parent == "" && t.State == "" }

// encode returns t as an item carries it on the wire: the traceparent
// value, then, if there is one, a newline and the tracestate value; nil
// for none.
func (t TraceContext) encode() ([]byte, error) {
	if t.IsZero() {
		return nil, nil
	}
	n := len(t.Parent)
	if t.State != "" {
		n += 1 + len(t.State)
	}
	if n > MaxTraceLen {
		return nil, fmt.Errorf("trace context of %d bytes, over %d", n, MaxTraceLen)
	}
	if strings.ContainsRune(t.Parent, '\n') {
		return nil, fmt.Errorf("trace context: traceparent %q holds a newline", t.Parent)
	}
	b := make([]byte, 0, n)
	b = append(b, t.Parent...)
	if t.State != "" {
		b = append(b, '\n')
		b = append(b, t.State...)
	}
	return b, nil
}

// decodeTrace is the reverse of encode, nil for none; it never fails: a
// peer's trace context is carried on, not checked (a tracer ignores a
// malformed one).
func decodeTrace(b []byte) *TraceContext {
	if len(b) == 0 {
		return nil
	}
	parent, state, _ := strings.Cut(string(b), "\n")
	return &TraceContext{Parent: parent, State: state}
}
