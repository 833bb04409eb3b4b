package engine

import (
	"iter"
	"maps"
	"slices"
)

// itemTable holds the flights of the items in flight, by id. Ids are
// issued in increasing order and most items complete soon after, so the
// open ids are nearly a window: the table keeps them in a ring indexed by
// id from the oldest open one (a look-up is an index, not a hash), and
// moves the stragglers (an item retried, or held by a slow worker) to a
// map when the window would otherwise grow past what it holds.
type itemTable struct {
	ring  []*flight // power-of-two length; the id base+i is at (head+i)&mask
	head  int
	base  uint64 // the lowest id the ring covers
	span  int    // ids the ring covers: base .. base+span-1
	count int    // flights in the ring
	old   map[uint64]*flight
}

const itemTableMin = 1024

// get returns the flight of id, or nil.
func (t *itemTable) get(id uint64) *flight {
	if id >= t.base && id-t.base < uint64(t.span) {
		return t.ring[(t.head+int(id-t.base))&(len(t.ring)-1)]
	}
	if id < t.base {
		return t.old[id]
	}
	return nil
}

// len returns the number of flights.
func (t *itemTable) len() int { return t.count + len(t.old) }

// put adds f under f.id. Ids come in increasing order (one that does not
// goes to the map).
func (t *itemTable) put(f *flight) {
	if t.ring == nil {
		t.ring = make([]*flight, itemTableMin)
		t.base = f.id
	}
	if t.span == 0 {
		t.base, t.head = f.id, 0
	}
	if f.id < t.base {
		if t.old == nil {
			t.old = make(map[uint64]*flight)
		}
		t.old[f.id] = f
		return
	}
	for f.id-t.base >= uint64(len(t.ring)) {
		t.makeRoom(f.id)
	}
	off := int(f.id - t.base)
	t.ring[(t.head+off)&(len(t.ring)-1)] = f
	t.span = max(t.span, off+1)
	t.count++
}

// makeRoom makes the ring cover id: it moves the oldest flights to the
// map while the ring is mostly empty, and grows it otherwise.
func (t *itemTable) makeRoom(id uint64) {
	if t.count*2 < len(t.ring) {
		// Sparse: the window is long because of a few stragglers.
		for id-t.base >= uint64(len(t.ring)/2) && t.span > 0 {
			if f := t.ring[t.head]; f != nil {
				if t.old == nil {
					t.old = make(map[uint64]*flight)
				}
				t.old[t.base] = f
				t.ring[t.head] = nil
				t.count--
			}
			t.advance()
		}
		if t.span == 0 {
			t.base, t.head = id, 0
		}
		return
	}
	grown := make([]*flight, 2*len(t.ring))
	for i := range t.span {
		grown[i] = t.ring[(t.head+i)&(len(t.ring)-1)]
	}
	t.ring, t.head = grown, 0
}

// advance drops the ring's oldest position.
func (t *itemTable) advance() {
	t.head = (t.head + 1) & (len(t.ring) - 1)
	t.base++
	t.span--
}

// remove takes out the flight of id.
func (t *itemTable) remove(id uint64) {
	if id < t.base {
		delete(t.old, id)
		return
	}
	if id-t.base >= uint64(t.span) {
		return
	}
	i := (t.head + int(id-t.base)) & (len(t.ring) - 1)
	if t.ring[i] == nil {
		return
	}
	t.ring[i] = nil
	t.count--
	for t.span > 0 && t.ring[t.head] == nil {
		t.advance()
	}
}

// all yields every flight, in no particular order.
func (t *itemTable) all() iter.Seq[*flight] {
	return func(yield func(*flight) bool) {
		for _, f := range t.old {
			if !yield(f) {
				return
			}
		}
		for i := range t.span {
			if f := t.ring[(t.head+i)&(len(t.ring)-1)]; f != nil && !yield(f) {
				return
			}
		}
	}
}

// ids returns the ids of every flight, in increasing order.
func (t *itemTable) ids() []uint64 {
	ids := slices.Sorted(maps.Keys(t.old))
	for f := range t.all() {
		if f.id >= t.base {
			ids = append(ids, f.id)
		}
	}
	return ids
}
