package dag_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/zmqpipeline/zmqpipeline/dag"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func build(t *testing.T, edges map[string][]string, order ...string) *dag.Graph {
	t.Helper()
	g := dag.New()
	for _, n := range order {
		require.NoError(t, g.Add(n, edges[n]...))
	}
	return g
}

func TestAddRejectsBadNames(t *testing.T) {
	g := dag.New()
	require.NoError(t, g.Add("a"))
	assert.ErrorIs(t, g.Add(""), dag.ErrEmptyName)
	err := g.Add("a")
	assert.ErrorIs(t, err, dag.ErrDuplicate)
	assert.Contains(t, err.Error(), `"a"`)
	assert.ErrorIs(t, g.Add("b", ""), dag.ErrEmptyName)
	assert.Equal(t, 1, g.Len())
}

func TestValidateUnknownDependency(t *testing.T) {
	g := build(t, map[string][]string{"b": {"a", "ghost"}}, "a", "b")
	err := g.Validate()
	require.ErrorIs(t, err, dag.ErrUnknownDependency)
	assert.Contains(t, err.Error(), `"b"`)
	assert.Contains(t, err.Error(), `"ghost"`)
}

func TestValidateCycleNamesPath(t *testing.T) {
	tests := []struct {
		name  string
		edges map[string][]string
		order []string
		path  []string
	}{
		{"self", map[string][]string{"a": {"a"}}, []string{"a"}, []string{"a", "a"}},
		{"two", map[string][]string{"a": {"b"}, "b": {"a"}}, []string{"a", "b"}, []string{"a", "b", "a"}},
		{
			"three behind a root",
			map[string][]string{"root": {"x"}, "x": {"y"}, "y": {"z"}, "z": {"x"}},
			[]string{"root", "x", "y", "z"},
			[]string{"x", "y", "z", "x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := build(t, tt.edges, tt.order...).Validate()
			var cyc *dag.CycleError
			require.ErrorAs(t, err, &cyc)
			assert.ErrorIs(t, err, dag.ErrCycle)
			assert.Equal(t, tt.path, cyc.Path)
			assert.Contains(t, err.Error(), "->")
		})
	}
}

func TestTopoOrderDiamond(t *testing.T) {
	g := build(t, map[string][]string{"b": {"a"}, "c": {"a"}, "d": {"b", "c"}}, "d", "c", "b", "a")
	order, err := g.TopoOrder()
	require.NoError(t, err)
	pos := map[string]int{}
	for i, n := range order {
		pos[n] = i
	}
	assert.Len(t, order, 4)
	assert.Less(t, pos["a"], pos["b"])
	assert.Less(t, pos["a"], pos["c"])
	assert.Less(t, pos["b"], pos["d"])
	assert.Less(t, pos["c"], pos["d"])
}

func TestTrackerReleasesDependentsOnlyWhenAllDepsComplete(t *testing.T) {
	// a -> b, a -> c, (b, c) -> d; e independent.
	g := build(t, map[string][]string{"b": {"a"}, "c": {"a"}, "d": {"b", "c"}}, "a", "b", "c", "d", "e")
	tr, err := dag.NewTracker(g)
	require.NoError(t, err)

	assert.True(t, tr.Ready("a"))
	assert.True(t, tr.Ready("e"))
	assert.False(t, tr.Ready("b"))
	assert.False(t, tr.Ready("ghost"))

	rel, err := tr.Complete("a")
	require.NoError(t, err)
	assert.Equal(t, []string{"b", "c"}, rel)

	rel, err = tr.Complete("b")
	require.NoError(t, err)
	assert.Empty(t, rel)
	assert.False(t, tr.Ready("d"))

	rel, err = tr.Complete("c")
	require.NoError(t, err)
	assert.Equal(t, []string{"d"}, rel)

	_, err = tr.Complete("c")
	assert.Error(t, err, "completing twice is a bookkeeping error")
	assert.False(t, tr.AllComplete())
	for _, n := range []string{"d", "e"} {
		_, err = tr.Complete(n)
		require.NoError(t, err)
	}
	assert.True(t, tr.AllComplete())
}

func TestTrackerRefusesNotReadyAndUnknown(t *testing.T) {
	g := build(t, map[string][]string{"b": {"a"}}, "a", "b")
	tr, err := dag.NewTracker(g)
	require.NoError(t, err)
	_, err = tr.Complete("b")
	assert.Error(t, err)
	_, err = tr.Complete("nope")
	assert.Error(t, err)
}

func TestNewTrackerValidates(t *testing.T) {
	g := build(t, map[string][]string{"a": {"b"}, "b": {"a"}}, "a", "b")
	_, err := dag.NewTracker(g)
	assert.True(t, errors.Is(err, dag.ErrCycle))
}

func TestDeepChain(t *testing.T) {
	g := dag.New()
	const depth = 200
	for i := range depth {
		var deps []string
		if i > 0 {
			deps = []string{fmt.Sprint(i - 1)}
		}
		require.NoError(t, g.Add(fmt.Sprint(i), deps...))
	}
	tr, err := dag.NewTracker(g)
	require.NoError(t, err)
	for i := range depth {
		require.True(t, tr.Ready(fmt.Sprint(i)))
		_, err := tr.Complete(fmt.Sprint(i))
		require.NoError(t, err)
	}
	assert.True(t, tr.AllComplete())
}

func ExampleGraph_Validate() {
	g := dag.New()
	_ = g.Add("load")
	_ = g.Add("parse", "load", "report")
	_ = g.Add("report", "parse")
	fmt.Println(g.Validate())
	// Output: dag: dependency cycle: parse -> report -> parse
}
