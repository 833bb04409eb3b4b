package engine

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestItemTableMatchesAMap drives the table and a map with the same puts
// and removes, in a distributor's pattern (ids in order, most completing
// soon, a few straggling long), and checks they agree throughout.
func TestItemTableMatchesAMap(t *testing.T) {
	for seed := range uint64(10) {
		rng := rand.New(rand.NewPCG(seed, 7))
		var tab itemTable
		want := map[uint64]*flight{}
		var open []uint64
		next := uint64(1 + rng.IntN(1000))
		for step := range 10000 {
			if rng.IntN(3) > 0 || len(open) == 0 {
				f := &flight{id: next}
				next += 1 + uint64(rng.IntN(2)) // gaps, as a resumed run's ids have
				tab.put(f)
				want[f.id] = f
				open = append(open, f.id)
			} else {
				// Mostly the oldest few, sometimes any: stragglers stay.
				i := rng.IntN(min(len(open), 8))
				if rng.IntN(50) == 0 {
					i = rng.IntN(len(open))
				}
				id := open[i]
				open = slices.Delete(open, i, i+1)
				tab.remove(id)
				delete(want, id)
			}
			require.Equal(t, len(want), tab.len(), "seed %d step %d", seed, step)
			if step%197 == 0 {
				for id, f := range want {
					require.Same(t, f, tab.get(id), "seed %d step %d id %d", seed, step, id)
				}
				require.Equal(t, slices.Sorted(func(yield func(uint64) bool) {
					for id := range want {
						if !yield(id) {
							return
						}
					}
				}), tab.ids())
				require.Nil(t, tab.get(next), "an id not yet issued")
				require.Nil(t, tab.get(0))
			}
		}
		n := 0
		for f := range tab.all() {
			require.Same(t, want[f.id], f)
			n++
		}
		require.Equal(t, len(want), n)
		require.LessOrEqual(t, len(tab.ring), 4*max(len(want), itemTableMin), "the ring stays near the open items, seed %d", seed)
	}
}
