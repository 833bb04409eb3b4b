package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// QueryStatus asks the distributor at endpoint how its run is, without
// taking part in it: the view an operator's tool shows of a pipeline that
// runs in other processes (the role runner's -role status prints it as a
// table). It connects, sends a status request (see PROTOCOL.md), and
// returns the distributor's Status, as of its last heartbeat interval at
// most; it asks again every second while no answer comes, until ctx ends.
// With keys (WithTransport of a secured transport), the distributor
// answers only a key whose access list entry has the status role (or
// all); others get ErrRejected wrapping auth.ErrForbidden.
//
// Of opts, only the transport counts.
func QueryStatus(ctx context.Context, endpoint string, opts ...Option) (Status, error) {
	s := defaultCommon()
	for i, o := range opts {
		if err := o.apply(&s); err != nil {
			return Status{}, fmt.Errorf("%w: option %d: %w", ErrInvalidConfig, i, err)
		}
	}
	if err := s.checkEndpoint("status", "distributor", endpoint, transport.ForDial); err != nil {
		return Status{}, err
	}
	conn, err := s.dial(ctx, endpoint)
	if err != nil {
		return Status{}, fmt.Errorf("status: dial distributor: %w", err)
	}
	defer conn.Close()
	for {
		if err := conn.Send(ctx, transport.Envelope{Kind: transport.KindStatus, Role: transport.RoleObserver}); err != nil {
			return Status{}, fmt.Errorf("status: send the request to %s: %w", endpoint, err)
		}
		wctx, cancel := context.WithTimeout(ctx, helloRetry)
		st, err := awaitStatus(wctx, conn)
		cancel()
		switch {
		case err == nil:
			return st, nil
		case ctx.Err() != nil:
			return Status{}, fmt.Errorf("status: no answer from the distributor at %s: %w", endpoint, context.Cause(ctx))
		case !errors.Is(err, context.DeadlineExceeded):
			return Status{}, fmt.Errorf("status: %s: %w", endpoint, err)
		}
	}
}

// awaitStatus waits for the distributor's answer to a status request.
func awaitStatus(ctx context.Context, conn transport.Conn) (Status, error) {
	for {
		env, err := conn.Recv(ctx)
		if err != nil {
			return Status{}, err
		}
		switch env.Kind {
		case transport.KindStatus:
			var st Status
			if err := json.Unmarshal(env.Payload, &st); err != nil {
				return Status{}, fmt.Errorf("the distributor's answer is not a status: %w", err)
			}
			return st, nil
		case transport.KindReject:
			return Status{}, rejectError(env)
		}
		// Anything else (a heartbeat, an end meant for a peer that
		// had this routing id) is not the answer.
	}
}
