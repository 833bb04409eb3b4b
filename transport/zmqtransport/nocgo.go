//go:build !cgo

package zmqtransport

import (
	"context"
	"fmt"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// Listen fails: there is no libzmq without cgo.
func (t *Transport) Listen(ctx context.Context, ep transport.Endpoint) (transport.Listener, error) {
	return nil, fmt.Errorf("listen %q: %w", ep, ErrNoCgo)
}

// Dial fails: there is no libzmq without cgo.
func (t *Transport) Dial(ctx context.Context, ep transport.Endpoint) (transport.Conn, error) {
	return nil, fmt.Errorf("dial %q: %w", ep, ErrNoCgo)
}
