//go:build cgo && linux

package zmqtransport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	zmq "github.com/pebbe/zmq4"

	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/auth"
)

// An ipc endpoint is a socket file, which libzmq handles carelessly: a
// bind takes the path over from a live listener, and a close leaves the
// file behind. So a Listener claims the path with the directory locked
// (flock): only if nothing answers there does it bind. It remembers which
// file it made, and on Close removes the path only if it is still that
// file. Two listeners racing for one path therefore never both succeed,
// and a Listener never removes another's socket. Abstract names ("@…")
// have no file and are only checked for a live listener.

// ipcFile is the socket file a Listener bound.
type ipcFile struct {
	path     string
	dev, ino uint64
}

// lockDir takes an exclusive lock on the directory of path and returns
// the function that releases it.
func lockDir(path string) (unlock func(), err error) {
	fd, err := syscall.Open(filepath.Dir(path), syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(fd, syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = syscall.Close(fd)
		return nil, err
	}
	return func() {
		_ = syscall.Flock(fd, syscall.LOCK_UN)
		_ = syscall.Close(fd)
	}, nil
}

// listenIPC binds a ROUTER to an ipc endpoint as described above.
func (t *Transport) listenIPC(ctx context.Context, ep transport.Endpoint) (*listener, error) {
	path := ep.Address
	abstract := strings.HasPrefix(path, "@")
	if !abstract {
		unlock, err := lockDir(path)
		if err != nil {
			return nil, fmt.Errorf("zmqtransport: bind %q: lock its directory: %w", ep, err)
		}
		defer unlock()
	}
	var d net.Dialer
	if c, err := d.DialContext(ctx, "unix", path); err == nil {
		_ = c.Close()
		return nil, fmt.Errorf("zmqtransport: bind %q: another listener answers there: %w", ep, transport.ErrAddrInUse)
	}
	p, err := open(zmq.ROUTER, ep, t.opts, auth.Key{})
	if err != nil {
		return nil, err
	}
	l := &listener{p: p}
	if !abstract {
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err == nil {
			l.file = &ipcFile{path: path, dev: st.Dev, ino: st.Ino}
		}
	}
	return l, nil
}

// remove deletes the socket file if the path still names it.
func (f *ipcFile) remove() {
	unlock, err := lockDir(f.path)
	if err != nil {
		return
	}
	defer unlock()
	var st syscall.Stat_t
	if err := syscall.Stat(f.path, &st); err == nil && st.Dev == f.dev && st.Ino == f.ino {
		_ = os.Remove(f.path)
	}
}
