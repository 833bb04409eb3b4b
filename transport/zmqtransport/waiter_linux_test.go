//go:build cgo && linux

package zmqtransport

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func newEventfd(t *testing.T) int {
	t.Helper()
	fd, _, errno := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	require.Zero(t, errno)
	return int(fd)
}

func TestWaiterWakesAndTimesOut(t *testing.T) {
	other := newEventfd(t) // stands in for libzmq's ZMQ_FD
	defer syscall.Close(other)
	w, err := newWaiter(other)
	require.NoError(t, err)
	defer w.close()

	w.wake()
	start := time.Now()
	require.NoError(t, w.wait(10*time.Second))
	require.Less(t, time.Since(start), 5*time.Second, "a wake-up before the wait must end it")

	// The wait consumed the wake-up: nothing is left to end the next one.
	var buf [8]byte
	_, err = syscall.Read(w.efd, buf[:])
	require.ErrorIs(t, err, syscall.EAGAIN)
}

// TestWakeAfterCloseTouchesNoOtherFile: a Send racing with the owner's exit
// calls wake after close; the descriptor number may already be another
// file's by then.
func TestWakeAfterCloseTouchesNoOtherFile(t *testing.T) {
	other := newEventfd(t)
	defer syscall.Close(other)
	w, err := newWaiter(other)
	require.NoError(t, err)
	old := w.efd
	w.close()

	// The kernel hands out the lowest free numbers: the epoll set's, then
	// the eventfd's.
	reused := -1
	for range 2 {
		fd := newEventfd(t)
		defer syscall.Close(fd)
		if fd == old {
			reused = fd
		}
	}
	if reused < 0 {
		t.Skipf("descriptor %d was not reused", old)
	}
	w.wake()
	var buf [8]byte
	_, err = syscall.Read(reused, buf[:])
	require.ErrorIs(t, err, syscall.EAGAIN, "wake wrote to a file the waiter no longer owns")
}
