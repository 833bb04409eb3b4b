package dag

import "fmt"

// Tracker follows a run over a validated Graph: which nodes are complete and
// which may start. A node is ready when every node it depends on is complete.
// It is not safe for concurrent use.
type Tracker struct {
	g        *Graph
	complete map[string]bool
	waiting  map[string]int // node -> number of incomplete dependencies
}

// NewTracker validates g and returns a tracker with nothing complete.
// The graph must not change afterwards.
func NewTracker(g *Graph) (*Tracker, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	t := &Tracker{
		g:        g,
		complete: make(map[string]bool, g.Len()),
		waiting:  make(map[string]int, g.Len()),
	}
	for _, n := range g.order {
		t.waiting[n] = len(g.deps[n])
	}
	return t, nil
}

// Ready reports whether every dependency of name is complete.
func (t *Tracker) Ready(name string) bool {
	w, ok := t.waiting[name]
	return ok && w == 0
}

// AllComplete reports whether every node is complete.
func (t *Tracker) AllComplete() bool { return len(t.complete) == t.g.Len() }

// Complete marks name complete and returns the nodes that became ready
// because of it, in insertion order. Completing a node twice, or one that is
// not ready, is an error: it would mean the caller's bookkeeping is wrong.
func (t *Tracker) Complete(name string) ([]string, error) {
	if !t.g.Has(name) {
		return nil, fmt.Errorf("dag: complete %q: not in the graph", name)
	}
	if t.complete[name] {
		return nil, fmt.Errorf("dag: complete %q: already complete", name)
	}
	if !t.Ready(name) {
		return nil, fmt.Errorf("dag: complete %q: its dependencies are not complete", name)
	}
	t.complete[name] = true
	var released []string
	for _, d := range t.g.Dependents(name) {
		t.waiting[d]--
		if t.waiting[d] == 0 {
			released = append(released, d)
		}
	}
	return released, nil
}
