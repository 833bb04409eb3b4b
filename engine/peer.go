package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/auth"
)

// errRunOver: the distributor answered a handshake with a completed run's
// end, so there is nothing left for this peer to do.
var errRunOver = errors.New("engine: the run is already over")

// errGone: the distributor does not know this peer any more (it took it for
// gone); the peer drops what it holds for the run and joins again.
var errGone = errors.New("engine: the distributor took this peer for gone")

// byeTimeout bounds the farewell a peer sends after its context ended, so a
// vanished distributor cannot hold up shutdown.
const byeTimeout = time.Second

// helloRetry is how often a peer says hello again while no welcome comes:
// the distributor may have restarted in between and never heard it.
const helloRetry = time.Second

// session is a peer's membership in a distributor's run: the handshake,
// heartbeats both ways, the distributor's liveness and the goodbye. One
// goroutine reads (recv); keepAlive runs in another.
type session struct {
	conn  transport.Conn
	hello transport.Envelope
	codec transport.Codec
	log   *slog.Logger
	meter *meter
	// standby: a collector waits while another is connected.
	standby bool
	// progress, for a worker, counts the items it finished in this run;
	// its heartbeats carry it, so the distributor can tell a working
	// worker from one that holds items and does nothing. Set before
	// keepAlive starts.
	progress func() uint32

	// From the welcome.
	run      uint64
	interval time.Duration
	timeout  time.Duration
	deadline time.Duration   // a worker's execution deadline; 0 for none
	tokenKey transport.Token // the collector's: checks assignment tokens
	// done is what the distributor said was complete before a collector's
	// welcome (KindDone): every id up to doneUpTo but those in doneOpen.
	doneUpTo uint64
	doneOpen []uint64

	// Liveness counts keepAlive's ticks. The distributor is silent if,
	// while the reader waits in Recv, nothing came for the timeout: time
	// the reader spent elsewhere (a slow prepare hook) is not silence.
	tick    atomic.Uint64
	heard   atomic.Uint64 // the tick of the last message
	waiting atomic.Uint64 // the tick the reader began to wait; 0 while it does not
}

// join says hello, again every helloRetry, until the distributor welcomes,
// refuses or ends; it returns the run's metadata. A session with standby
// set takes "a collector is already connected" for "not yet" and waits for
// that collector to leave.
func (s *session) join(ctx context.Context) (Metadata, error) {
	s.run = 0
	waited := false
	for {
		if err := s.conn.Send(ctx, s.hello); err != nil {
			return nil, fmt.Errorf("send hello: %w", err)
		}
		actx, cancel := context.WithTimeout(ctx, helloRetry)
		md, err := s.awaitWelcome(actx)
		if s.standby && errors.Is(err, errOccupied) {
			if !waited {
				s.log.Warn("another collector is connected; standing by until it leaves")
				waited = true
			}
			<-actx.Done() // ask again after helloRetry
			err = actx.Err()
		}
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return md, err
		}
	}
}

// errOccupied: the distributor has a collector already.
var errOccupied = errors.New("engine: a collector is already connected")

func (s *session) awaitWelcome(ctx context.Context) (Metadata, error) {
	s.doneUpTo, s.doneOpen = 0, nil
	for {
		env, err := s.conn.Recv(ctx)
		if err != nil {
			return nil, fmt.Errorf("wait for the distributor's welcome: %w", err)
		}
		switch env.Kind {
		case transport.KindDone:
			var open []uint64
			if err := s.codec.Unmarshal(env.Payload, &open); err != nil || !slices.IsSorted(open) {
				s.meter.ignore(s.log, IgnoredMalformed, "malformed list of open items from the distributor; dropped", "err", err)
				continue
			}
			s.doneUpTo, s.doneOpen = env.ItemID, open
		case transport.KindWelcome:
			md, err := decodeMetadata(s.codec, env.Payload)
			if err != nil {
				return nil, err
			}
			s.run = env.Run
			s.interval = max(time.Duration(env.Count)*time.Millisecond, time.Millisecond)
			s.timeout = max(time.Duration(env.Attempt)*time.Millisecond, 2*s.interval)
			s.deadline = time.Duration(env.ItemID) * time.Millisecond
			s.tokenKey = env.Token
			s.heard.Store(s.tick.Load())
			return md, nil
		case transport.KindReject:
			switch transport.RejectCode(env.Count) {
			case transport.RejectGone:
				continue // an answer to a message of an earlier membership
			case transport.RejectDuplicate:
				if s.standby {
					return nil, errOccupied
				}
			}
			return nil, rejectError(env)
		case transport.KindEnd:
			if err := endError(env); err != nil {
				return nil, err
			}
			return nil, errRunOver
		case transport.KindHeartbeat, transport.KindWork, transport.KindBye:
			// Left from an earlier membership.
		default:
			s.meter.ignore(s.log, IgnoredUnexpected, "unexpected message before the welcome; dropped", "kind", env.Kind)
		}
	}
}

// send sends env, stamped with the run.
func (s *session) send(ctx context.Context, env transport.Envelope) error {
	env.Run = s.run
	return s.conn.Send(ctx, env)
}

// recv returns the distributor's next message of this run. Heartbeats and
// messages of another run are taken in here.
func (s *session) recv(ctx context.Context) (transport.Envelope, error) {
	for {
		s.waiting.Store(max(s.tick.Load(), 1))
		env, err := s.conn.Recv(ctx)
		s.waiting.Store(0)
		if err != nil {
			return env, err
		}
		s.heard.Store(s.tick.Load())
		switch {
		case env.Kind == transport.KindHeartbeat:
			continue
		case env.Run != s.run && env.Kind != transport.KindReject:
			s.meter.ignore(s.log, IgnoredOtherRun, "message of another run; dropped", "kind", env.Kind, "run", runName(env.Run))
			continue
		}
		return env, nil
	}
}

// keepAlive sends a heartbeat every interval until ctx ends, and calls lost
// once the distributor was silent for the timeout while the reader waited.
// A heartbeat the transport cannot take at once is skipped: the other side
// is not reading, and a queue of heartbeats tells it nothing.
func (s *session) keepAlive(ctx context.Context, lost func(error)) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	limit := uint64((s.timeout + s.interval - 1) / s.interval)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tick := s.tick.Add(1)
		beat := transport.Envelope{Kind: transport.KindHeartbeat, Role: s.hello.Role}
		if s.progress != nil {
			beat.Count = s.progress()
		}
		_ = s.send(doneCtx, beat)
		if since := s.waiting.Load(); since != 0 && tick-max(since, s.heard.Load()) > limit {
			s.meter.peersLost.Add(1)
			lost(fmt.Errorf("%w: nothing from it for %v", ErrDistributorLost, s.timeout))
			return
		}
	}
}

// rejoin waits, up to within, for a distributor to welcome this peer again
// after the last one was lost.
func (s *session) rejoin(ctx context.Context, within time.Duration, cause error) (Metadata, error) {
	if within <= 0 {
		return nil, cause
	}
	s.log.Warn("distributor lost; waiting for one to come back", "within", within, "err", cause)
	jctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	md, err := s.join(jctx)
	if err != nil && ctx.Err() == nil && jctx.Err() != nil {
		return nil, fmt.Errorf("%w, and none came back within %v", cause, within)
	}
	return md, err
}

func decodeMetadata(codec transport.Codec, b []byte) (Metadata, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var md map[string]any
	if err := codec.Unmarshal(b, &md); err != nil {
		return nil, fmt.Errorf("decode metadata: %w", err)
	}
	return Metadata(md), nil
}

func rejectError(env transport.Envelope) error {
	reason := string(env.Payload)
	switch transport.RejectCode(env.Count) {
	case transport.RejectUnknownTaskType:
		return fmt.Errorf("%w: %s", ErrUnknownTaskType, reason)
	case transport.RejectGone:
		return errGone
	case transport.RejectForbidden:
		return fmt.Errorf("%w: %w: %s", ErrRejected, auth.ErrForbidden, reason)
	}
	return fmt.Errorf("%w: %s", ErrRejected, reason)
}

// endError is nil for the end of a completed run and ErrAborted with the
// distributor's reason otherwise.
func endError(env transport.Envelope) error {
	if len(env.Payload) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrAborted, env.Payload)
}

// bye tells the distributor this peer is leaving, listing the items it
// received but did not finish so they can go to another worker. Unless
// the run was aborted, it waits for the distributor to confirm, so the
// goodbye is known to have arrived before the connection closes; items
// that arrive while it waits were sent before the distributor saw the
// goodbye, and are handed back in a second one. It uses its own short
// deadline: ctx may already be over, and the distributor may be gone.
func (s *session) bye(ctx context.Context, unfinished []uint64, wait bool) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), byeTimeout)
	defer cancel()
	for range 2 {
		env := transport.Envelope{Kind: transport.KindBye, Role: s.hello.Role}
		if len(unfinished) > 0 {
			b, err := s.codec.Marshal(unfinished)
			if err != nil {
				s.log.Error("encode unfinished items for goodbye", "err", err)
			} else {
				env.Payload = b
			}
		}
		if err := s.send(bctx, env); err != nil {
			s.log.Warn("could not say goodbye to the distributor", "err", err)
			return
		}
		if !wait {
			return
		}
		unfinished = unfinished[:0]
	confirm:
		for {
			env, err := s.conn.Recv(bctx)
			if err != nil {
				s.log.Warn("the distributor did not confirm the goodbye", "err", err)
				return
			}
			switch env.Kind {
			case transport.KindBye:
				break confirm
			case transport.KindWork:
				if env.Run == s.run {
					for _, it := range env.Items {
						unfinished = append(unfinished, it.ID)
					}
				}
			case transport.KindEnd:
				if len(env.Payload) > 0 {
					return // aborted: the distributor is going away
				}
			}
		}
		if len(unfinished) == 0 {
			return
		}
	}
}
