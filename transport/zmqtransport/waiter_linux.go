//go:build cgo && linux

package zmqtransport

import (
	"fmt"
	"sync"
	"syscall"
	"time"
)

// waiter puts a socket's owner to sleep until libzmq signals the socket
// (its ZMQ_FD) or another goroutine calls wake, whose eventfd sits in the
// same epoll set.
//
// The owner sleeps in epoll_wait on its own OS thread, outside Go's network
// poller. Parking it in Go's poller was tried: the owner then held no
// thread, and items without work went about 1.5 times faster, but every
// message broke the poller's sleep, and the poller sleeps in whole
// milliseconds, so each break moved the wake-up of the process's timers
// (time.Sleep in the user's handlers) by up to a millisecond. A worker of
// one goroutine doing 10 ms items lost about 4 points of overhead to it.
type waiter struct {
	epfd int
	efd  int // eventfd written by wake
	evs  [4]syscall.EpollEvent

	// mu keeps close from releasing the eventfd under a wake: a Send or
	// Close racing with the owner's exit must not write to a descriptor
	// number that may already belong to another file.
	mu     sync.RWMutex
	closed bool
}

// newWaiter returns a waiter on libzmq's descriptors of one or more
// sockets (their ZMQ_FD) and an eventfd of its own.
func newWaiter(zmqFDs ...int) (w *waiter, err error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	efd, _, errno := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errno != 0 {
		_ = syscall.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", errno)
	}
	w = &waiter{epfd: epfd, efd: int(efd)}
	for _, fd := range append(zmqFDs, w.efd) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
		if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			w.close()
			return nil, fmt.Errorf("epoll_ctl: %w", err)
		}
	}
	return w, nil
}

var one = [8]byte{1}

// wake ends the owner's current or next wait. Safe from any goroutine.
func (w *waiter) wake() {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if !w.closed {
		_, _ = syscall.Write(w.efd, one[:])
	}
}

// wait sleeps until libzmq signals the socket, wake is called, or timeout
// passes, then clears the wake-ups it consumed.
func (w *waiter) wait(timeout time.Duration) error {
	ms := int(timeout / time.Millisecond)
	if ms < 1 {
		ms = 1
	}
	for {
		_, err := syscall.EpollWait(w.epfd, w.evs[:], ms)
		if err == syscall.EINTR { // the Go runtime's preemption signals
			continue
		}
		if err != nil {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		var buf [8]byte
		_, _ = syscall.Read(w.efd, buf[:]) // reset the wake-up counter
		return nil
	}
}

// close releases the epoll set and the eventfd; libzmq's descriptor stays
// libzmq's.
func (w *waiter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	_ = syscall.Close(w.efd)
	_ = syscall.Close(w.epfd)
}
