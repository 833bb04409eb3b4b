//go:build !cgo || !linux

package zmqtransport

import (
	"context"
	"fmt"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// Listen fails: there is no libzmq without cgo (or off Linux).
func (t *Transport) Listen(ctx context.Context, ep transport.Endpoint) (transport.Listener, error) {
	if err := t.CheckEndpoint(ep, transport.ForListen); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("listen %q: %w", ep, ErrNoCgo)
}

// Dial fails: there is no libzmq without cgo (or off Linux).
func (t *Transport) Dial(ctx context.Context, ep transport.Endpoint) (transport.Conn, error) {
	if err := t.CheckEndpoint(ep, transport.ForDial); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("dial %q: %w", ep, ErrNoCgo)
}
