package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// MetadataSource delivers the run's metadata map to a distributor created
// with WithMetadata (the original's MetaDataWorker). The distributor hands
// it to every task's Init, to every worker in its handshake and to the
// collector, and gives out no work before it arrived.
type MetadataSource struct {
	ep      Endpoints
	fetch   func(ctx context.Context) (Metadata, error)
	s       *commonSettings
	log     *slog.Logger
	started atomic.Bool
	meter   meter
}

// NewMetadataSource returns a source that calls fetch once per Run to get
// the map. Errors wrap ErrInvalidConfig: a nil fetch function, an endpoint
// the transport refuses, a bad option.
func NewMetadataSource(ep Endpoints, fetch func(ctx context.Context) (Metadata, error), opts ...MetadataOption) (*MetadataSource, error) {
	if fetch == nil {
		return nil, invalid("metadata source: nil fetch function")
	}
	s, err := newMetadataSettings(opts)
	if err != nil {
		return nil, fmt.Errorf("metadata source: %w", err)
	}
	if err := s.checkEndpoint("metadata source", "distributor", ep.Distributor, transport.ForDial); err != nil {
		return nil, err
	}
	return &MetadataSource{ep: ep, fetch: fetch, s: s, log: s.logger.With("component", "metadata")}, nil
}

// Stats returns what the source's transport dropped and what it ignored.
// Safe to call concurrently with Run.
func (m *MetadataSource) Stats() Stats { return m.meter.stats() }

// Run fetches the metadata, sends it to the distributor and returns nil once
// the distributor confirmed it. A distributor that did not ask for metadata,
// or already has it, rejects it (ErrRejected). A MetadataSource runs once.
func (m *MetadataSource) Run(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer m.meter.summarize(m.log) // after the transports below are closed
	if err := m.run(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("metadata source: %w", err)
	}
	return nil
}

func (m *MetadataSource) run(ctx context.Context) error {
	var md Metadata
	if err := protect(func() (err error) { md, err = m.fetch(ctx); return err }); err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if md == nil {
		md = Metadata{}
	}
	payload, err := m.s.codec.Marshal(md)
	if err != nil {
		return fmt.Errorf("encode with %s: %w", m.s.codec.Name(), err)
	}
	conn, err := m.s.dial(ctx, m.ep.Distributor)
	if err != nil {
		return fmt.Errorf("dial distributor: %w", err)
	}
	m.meter.track(conn)
	defer m.meter.release(conn)
	// The metadata goes again every helloRetry while no answer comes: a
	// distributor that restarted meanwhile never heard it.
	msg := transport.Envelope{Kind: transport.KindMetadata, Role: transport.RoleMetadata, Payload: payload}
	resent := false
	for {
		if err := conn.Send(ctx, msg); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		wctx, cancel := context.WithTimeout(ctx, helloRetry)
		err := m.awaitConfirmation(wctx, conn, resent)
		cancel()
		if err == nil {
			m.log.Info("metadata delivered", "keys", len(md))
			return nil
		}
		if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		resent = true
	}
}

// awaitConfirmation waits for the distributor's answer to the metadata.
// After a resend, "already delivered" means an earlier copy arrived.
func (m *MetadataSource) awaitConfirmation(ctx context.Context, conn transport.Conn, resent bool) error {
	for {
		env, err := conn.Recv(ctx)
		if err != nil {
			return fmt.Errorf("wait for the distributor's confirmation: %w", err)
		}
		switch env.Kind {
		case transport.KindMetadata:
			return nil
		case transport.KindReject:
			if resent && transport.RejectCode(env.Count) == transport.RejectDuplicate {
				return nil
			}
			return rejectError(env)
		case transport.KindEnd:
			if err := endError(env); err != nil {
				return err
			}
			return fmt.Errorf("%w: the run was already over", ErrRejected)
		default:
			m.meter.ignore(m.log, IgnoredUnexpected, "unexpected message from the distributor; dropped", "kind", env.Kind)
		}
	}
}
