package engine

import (
	"errors"
	"math/bits"
)

// doneSet is the set of item ids of one run that a collector handled.
// Item ids are dense and handed out in order, and results come back
// roughly in order, so the set is a bitmap that starts near its lowest id
// not yet handled: ids start at 1, every id up to base was handled, and bit
// i of the words says whether id base+1+i was. Its size follows how far
// apart the oldest unhandled item and the newest handled one are, not the
// run's length.
type doneSet struct {
	base  uint64   // a multiple of 64
	words []uint64 // from base+1
}

// maxDoneSpan bounds how far above base an id may lie: 2^28 ids, a 32 MiB
// bitmap at most. An id past it is refused rather than allowed to grow the
// set without bound.
const maxDoneSpan = 1 << 28

// errOutOfWindow: an id too far past the oldest one not yet handled.
var errOutOfWindow = errors.New("engine: item id too far past the oldest item not yet handled")

// has reports whether id was handled. Id 0 is never an item's.
func (s *doneSet) has(id uint64) bool {
	if id <= s.base {
		return true
	}
	off := id - s.base - 1
	w := off / 64
	return w < uint64(len(s.words)) && s.words[w]&(1<<(off%64)) != 0
}

// fits reports whether id is close enough to the ids not yet handled to be
// recorded.
func (s *doneSet) fits(id uint64) bool { return id <= s.base || id-s.base-1 < maxDoneSpan }

// add records id as handled.
func (s *doneSet) add(id uint64) error {
	if id <= s.base {
		return nil
	}
	off := id - s.base - 1
	if off >= maxDoneSpan {
		return errOutOfWindow
	}
	w := off / 64
	if w >= uint64(len(s.words)) {
		s.words = append(s.words, make([]uint64, w+1-uint64(len(s.words)))...)
	}
	s.words[w] |= 1 << (off % 64)
	s.compact()
	return nil
}

// addAllBut records every id up to high as handled, except those in open
// (ascending): what the distributor says is complete when a collector
// joins during a run. It refuses a span past maxDoneSpan, as add does.
func (s *doneSet) addAllBut(high uint64, open []uint64) error {
	lo := high + 1 // the lowest id not complete
	if len(open) > 0 && open[0] <= high {
		lo = open[0]
	}
	if lo > s.base+1 {
		// Every id below lo is complete: move base up past them.
		newBase := (lo - 1) / 64 * 64
		shift := (newBase - s.base) / 64
		if shift >= uint64(len(s.words)) {
			s.words = nil
		} else {
			s.words = s.words[shift:]
		}
		s.base = newBase
	}
	if high > s.base && high-s.base-1 >= maxDoneSpan {
		return errOutOfWindow
	}
	next := 0
	for id := s.base + 1; id <= high; id++ {
		for next < len(open) && open[next] < id {
			next++
		}
		if next < len(open) && open[next] == id {
			continue
		}
		off := id - s.base - 1
		w := off / 64
		if w >= uint64(len(s.words)) {
			s.words = append(s.words, make([]uint64, w+1-uint64(len(s.words)))...)
		}
		s.words[w] |= 1 << (off % 64)
	}
	s.compact()
	return nil
}

// compact drops the leading words whose ids were all handled.
func (s *doneSet) compact() {
	full := 0
	for full < len(s.words) && s.words[full] == ^uint64(0) {
		full++
	}
	if full == 0 {
		return
	}
	s.base += uint64(full) * 64
	s.words = s.words[full:]
	if cap(s.words) > 64 && len(s.words) < cap(s.words)/4 {
		s.words = append([]uint64(nil), s.words...) // let the old array go
	}
}

// len returns how many ids are recorded, for tests.
func (s *doneSet) len() uint64 {
	n := s.base
	for _, w := range s.words {
		n += uint64(bits.OnesCount64(w))
	}
	return n
}

// bytes returns the memory the bitmap holds.
func (s *doneSet) bytes() int { return 8 * cap(s.words) }
