package engine

import "sync"

// jobQueue hands a worker's items to its executing goroutines. The
// receiving loop adds a whole batch under one lock, and each goroutine
// takes items one at a time: a batch costs one wake-up, not one channel
// operation per item. Its length is bounded by the worker's window, which
// bounds what the distributor hands out.
type jobQueue struct {
	mu       sync.Mutex
	nonEmpty sync.Cond
	q        fifo[*Job]
	closed   bool
	waiting  int // goroutines waiting in pop
}

func newJobQueue() *jobQueue {
	q := &jobQueue{}
	q.nonEmpty.L = &q.mu
	return q
}

// push adds jobs at the back and wakes as many waiting goroutines as it
// can keep busy.
func (q *jobQueue) push(jobs ...*Job) {
	q.mu.Lock()
	for _, j := range jobs {
		q.q.push(j)
	}
	waiting := q.waiting
	q.mu.Unlock()
	switch {
	case waiting == 0:
	case waiting == 1 || len(jobs) == 1:
		q.nonEmpty.Signal()
	default:
		q.nonEmpty.Broadcast()
	}
}

// takeShare appends to dst, without waiting, the oldest jobs: a share
// of those queued for one of takers goroutines, at most maxTake.
func (q *jobQueue) takeShare(dst []*Job, takers int) []*Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(max(q.q.len()/takers, 1), q.q.len(), maxTake)
	for range n {
		dst = append(dst, q.q.pop())
	}
	return dst
}

// maxTake bounds the jobs a goroutine takes from the queue at once.
const maxTake = 32

// pop takes the oldest job, waiting for one; ok is false once the queue
// is closed and empty.
func (q *jobQueue) pop() (job *Job, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.q.len() == 0 && !q.closed {
		q.waiting++
		q.nonEmpty.Wait()
		q.waiting--
	}
	if q.q.len() == 0 {
		return nil, false
	}
	return q.q.pop(), true
}

// close lets the goroutines take what is queued, after which pop returns
// false.
func (q *jobQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.nonEmpty.Broadcast()
}
