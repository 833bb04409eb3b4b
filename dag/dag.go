// Package dag holds the dependency graph between task types: validation
// (duplicates, unknown dependencies, cycles named as a path), a stable
// topological order, and a readiness tracker that says which nodes may start
// once others are complete.
//
// It is pure logic with no I/O and no goroutines. A Graph is not safe for
// concurrent use; the engine owns one per distributor and touches it from a
// single goroutine.
package dag

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Sentinel errors callers can match with errors.Is.
var (
	// ErrEmptyName is returned when a node or dependency name is empty.
	ErrEmptyName = errors.New("dag: empty name")
	// ErrDuplicate is returned when a node is added twice.
	ErrDuplicate = errors.New("dag: duplicate node")
	// ErrUnknownDependency is returned by Validate when a node depends on a
	// name that was never added.
	ErrUnknownDependency = errors.New("dag: unknown dependency")
	// ErrCycle is returned (inside a *CycleError) by Validate when the
	// dependencies form a cycle.
	ErrCycle = errors.New("dag: dependency cycle")
)

// CycleError reports a dependency cycle. Path starts and ends with the same
// node, each element depending on the next: [a b c a] means a depends on b,
// b on c and c on a.
type CycleError struct {
	Path []string
}

// Error names the cycle as a path.
func (e *CycleError) Error() string {
	return fmt.Sprintf("%v: %s", ErrCycle, strings.Join(e.Path, " -> "))
}

// Unwrap lets errors.Is(err, ErrCycle) match.
func (e *CycleError) Unwrap() error { return ErrCycle }

// Graph is a set of named nodes, each with the names it depends on.
// The zero value is not usable; call New.
type Graph struct {
	deps  map[string][]string
	order []string // insertion order, for deterministic output
}

// New returns an empty graph.
func New() *Graph {
	return &Graph{deps: make(map[string][]string)}
}

// Add adds a node with its dependencies. Dependencies may name nodes added
// later; Validate checks that they all exist. Repeated dependencies are
// collapsed.
func (g *Graph) Add(name string, dependsOn ...string) error {
	if name == "" {
		return ErrEmptyName
	}
	if _, ok := g.deps[name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicate, name)
	}
	deps := make([]string, 0, len(dependsOn))
	for _, d := range dependsOn {
		if d == "" {
			return fmt.Errorf("%w: dependency of %q", ErrEmptyName, name)
		}
		if !slices.Contains(deps, d) {
			deps = append(deps, d)
		}
	}
	g.deps[name] = deps
	g.order = append(g.order, name)
	return nil
}

// Len returns the number of nodes.
func (g *Graph) Len() int { return len(g.order) }

// Nodes returns the node names in the order they were added.
func (g *Graph) Nodes() []string { return slices.Clone(g.order) }

// Has reports whether name was added.
func (g *Graph) Has(name string) bool {
	_, ok := g.deps[name]
	return ok
}

// Dependents returns the nodes that depend directly on name, in insertion
// order.
func (g *Graph) Dependents(name string) []string {
	var out []string
	for _, n := range g.order {
		if slices.Contains(g.deps[n], name) {
			out = append(out, n)
		}
	}
	return out
}

// Validate checks that every dependency names a node and that there is no
// cycle. The first problem found is returned: an error wrapping
// ErrUnknownDependency that names both nodes, or a *CycleError.
func (g *Graph) Validate() error {
	for _, n := range g.order {
		for _, d := range g.deps[n] {
			if !g.Has(d) {
				return fmt.Errorf("%w: %q depends on %q, which is not registered", ErrUnknownDependency, n, d)
			}
		}
	}
	_, err := g.TopoOrder()
	return err
}

// TopoOrder returns every node after all of its dependencies. Among nodes
// whose dependencies are satisfied, insertion order decides, so the result is
// deterministic. It returns a *CycleError if there is a cycle and assumes
// unknown dependencies were already rejected by Validate (they are ignored
// here).
func (g *Graph) TopoOrder() ([]string, error) {
	const (
		unseen = iota
		onStack
		done
	)
	state := make(map[string]int, len(g.order))
	out := make([]string, 0, len(g.order))
	var stack []string
	var visit func(n string) error
	visit = func(n string) error {
		switch state[n] {
		case done:
			return nil
		case onStack:
			i := slices.Index(stack, n)
			path := append(slices.Clone(stack[i:]), n)
			return &CycleError{Path: path}
		}
		state[n] = onStack
		stack = append(stack, n)
		for _, d := range g.deps[n] {
			if !g.Has(d) {
				continue
			}
			if err := visit(d); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		out = append(out, n)
		return nil
	}
	for _, n := range g.order {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}
