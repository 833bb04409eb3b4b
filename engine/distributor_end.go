package engine

import (
	"context"
	"time"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// startEnd tells the collector and every worker that the run is over, once
// the collector is there to hear it. Each confirms with a goodbye; the
// collector after its finished hook.
func (r *distRun) startEnd(ctx context.Context) error {
	if r.ending {
		return nil
	}
	if c := r.peers[r.collector]; c == nil || !c.welcomed {
		r.d.log.Info("all task types complete; waiting for the collector to join")
		return nil
	}
	r.ending = true
	r.graceDeadline = time.Now().Add(r.d.s.endGrace)
	for id, p := range r.peers {
		if p.welcomed {
			r.bye[id] = true
		}
	}
	for _, p := range r.peers {
		if !p.welcomed {
			continue
		}
		if err := r.post(ctx, p, transport.Envelope{Kind: transport.KindEnd}); err != nil {
			return err
		}
	}
	return nil
}

// abort tells every peer the run ended early, with why, and waits a little
// for each to confirm. ctx may be over: the wait has its own bound. A peer
// that does not hear it notices the distributor's silence after its
// liveness timeout.
func (r *distRun) abort(ctx context.Context, cause error) {
	r.stopped = true
	reason := cause.Error()
	if ctx.Err() != nil {
		reason = "the distributor was stopped"
		done, produced := r.d.Progress()
		r.d.log.Info("run stopped before it completed", "done", done, "produced", produced)
	} else {
		r.d.log.Error("run aborted", "err", cause)
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(max(r.d.s.liveness, 100*time.Millisecond), 2*time.Second))
	defer cancel()
	unconfirmed := make(map[transport.PeerID]bool, len(r.peers))
	for id, p := range r.peers {
		unconfirmed[id] = true
		if err := r.post(actx, p, transport.Envelope{Kind: transport.KindEnd, Payload: []byte(reason)}); err != nil {
			r.d.log.Warn("could not tell a peer of the abort", "peer", id, "err", err)
		}
	}
	for len(unconfirmed) > 0 && actx.Err() == nil {
		if err := r.flush(actx); err != nil {
			break
		}
		rctx, rcancel := actx, context.CancelFunc(func() {})
		if len(r.backlog) > 0 {
			rctx, rcancel = context.WithTimeout(actx, flushEvery)
		}
		from, env, err := r.l.Recv(rctx)
		rcancel()
		if err != nil {
			if rctx.Err() != nil && actx.Err() == nil {
				continue // time to try the backlog again
			}
			break
		}
		if env.Kind == transport.KindBye {
			delete(unconfirmed, from)
			r.tell(from, transport.Envelope{Kind: transport.KindBye})
		}
	}
	if len(unconfirmed) > 0 {
		r.d.log.Warn("peers did not confirm the abort; they give up when the distributor falls silent", "peers", len(unconfirmed))
	}
}
