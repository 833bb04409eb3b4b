package engine

// fifo is a first-in, first-out queue on a slice that reuses its space:
// taking from the front does not leak capacity, as reslicing would, so a
// queue that empties and fills again in a steady state stops allocating.
type fifo[T any] struct {
	items []T
	head  int
}

func (q *fifo[T]) len() int { return len(q.items) - q.head }

func (q *fifo[T]) push(v T) { q.items = append(q.items, v) }

// front returns the oldest element; the queue must not be empty.
func (q *fifo[T]) front() T { return q.items[q.head] }

// pop removes the oldest element; the queue must not be empty.
func (q *fifo[T]) pop() T {
	var zero T
	v := q.items[q.head]
	q.items[q.head] = zero
	q.head++
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head >= 1024 && q.head >= len(q.items)/2:
		// Mostly taken: move what is left to the front.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return v
}
