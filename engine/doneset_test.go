package engine

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDoneSetRecordsEachIDOnce(t *testing.T) {
	var s doneSet
	ids := rand.Perm(10000)
	for _, i := range ids {
		id := uint64(i + 1)
		require.False(t, s.has(id))
		require.NoError(t, s.add(id))
		require.True(t, s.has(id))
	}
	assert.Equal(t, uint64(10000), s.len())
	for id := uint64(1); id <= 10000; id++ {
		assert.True(t, s.has(id), "id %d", id)
	}
	assert.False(t, s.has(10001))
	assert.False(t, s.has(1<<40))
}

// TestDoneSetStaysSmallWhenResultsComeInOrder: a million items whose
// results come back a little out of order, as a window of workers returns
// them, keep the set to a few words.
func TestDoneSetStaysSmallWhenResultsComeInOrder(t *testing.T) {
	var s doneSet
	const n, window = 1_000_000, 128
	pending := make([]uint64, 0, window)
	most := 0
	for id := uint64(1); id <= n; id++ {
		pending = append(pending, id)
		if len(pending) == window || id == n {
			rand.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
			for _, p := range pending {
				require.NoError(t, s.add(p))
				most = max(most, s.bytes())
			}
			pending = pending[:0]
		}
	}
	assert.Equal(t, uint64(n), s.len())
	assert.LessOrEqual(t, most, 1024, "the bitmap grew to %d bytes for a window of %d", most, window)
	t.Logf("1,000,000 items, results out of order within %d: at most %d bytes", window, most)
}

// TestDoneSetWithAStragglerIsBounded: one item handled last, after a
// million others, costs one bit per item in between.
func TestDoneSetWithAStragglerIsBounded(t *testing.T) {
	var s doneSet
	const n = 1_000_000
	for id := uint64(2); id <= n; id++ {
		require.NoError(t, s.add(id))
	}
	assert.False(t, s.has(1))
	before := s.bytes()
	assert.LessOrEqual(t, before, 2*n/8+64, "about one bit per id")
	require.NoError(t, s.add(1))
	assert.Equal(t, uint64(n), s.len())
	assert.LessOrEqual(t, s.bytes(), 64*8+64, "once the straggler is in, the set shrinks")
	t.Logf("a straggler behind 1,000,000 items: %d bytes before it came, %d after", before, s.bytes())
}

func TestDoneSetRefusesIDsFarAhead(t *testing.T) {
	var s doneSet
	require.ErrorIs(t, s.add(maxDoneSpan+5), errOutOfWindow)
	assert.Zero(t, s.bytes(), "a refused id allocates nothing")
}

func TestDoneSetAddAllBut(t *testing.T) {
	for _, tc := range []struct {
		name       string
		before     []uint64
		high       uint64
		open       []uint64
		wantBase   uint64
		wantLenMax int // words
	}{
		{"nothing open", nil, 1000, nil, 960, 1},
		{"a few open", []uint64{3, 500}, 1000, []uint64{7, 130, 999}, 0, 16},
		{"open far below", nil, 200, []uint64{70}, 64, 3},
		{"open above high", nil, 100, []uint64{150}, 64, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s doneSet
			for _, id := range tc.before {
				require.NoError(t, s.add(id))
			}
			require.NoError(t, s.addAllBut(tc.high, tc.open))
			for id := uint64(1); id <= tc.high+70; id++ {
				want := id <= tc.high && !slices.Contains(tc.open, id) || slices.Contains(tc.before, id)
				require.Equal(t, want, s.has(id), "id %d", id)
			}
			assert.Equal(t, tc.wantBase, s.base)
			assert.LessOrEqual(t, len(s.words), tc.wantLenMax)
		})
	}
	var s doneSet
	assert.ErrorIs(t, s.addAllBut(maxDoneSpan+10, []uint64{1}), errOutOfWindow)
}
