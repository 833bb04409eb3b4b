package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// errRunOver: the distributor answered a handshake with a completed run's
// end, so there is nothing left for this peer to do.
var errRunOver = errors.New("engine: the run is already over")

// byeTimeout bounds the farewell a peer sends after its context ended, so a
// vanished distributor cannot hold up shutdown.
const byeTimeout = time.Second

// handshake greets the distributor on conn: hello, then welcome (with
// the metadata), reject or end.
func handshake(ctx context.Context, conn transport.Conn, hello transport.Envelope, codec transport.Codec, log *slog.Logger, m *meter) (Metadata, error) {
	if err := conn.Send(ctx, hello); err != nil {
		return nil, fmt.Errorf("send hello: %w", err)
	}
	for {
		env, err := conn.Recv(ctx)
		if err != nil {
			return nil, fmt.Errorf("wait for the distributor's welcome: %w", err)
		}
		switch env.Kind {
		case transport.KindWelcome:
			return decodeMetadata(codec, env.Payload)
		case transport.KindReject:
			return nil, rejectError(env)
		case transport.KindEnd:
			if err := endError(env); err != nil {
				return nil, err
			}
			return nil, errRunOver
		default:
			m.ignore(log, "unexpected message before the welcome; dropped", "kind", env.Kind)
		}
	}
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
	if transport.RejectCode(env.Count) == transport.RejectUnknownTaskType {
		return fmt.Errorf("%w: %s", ErrUnknownTaskType, reason)
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

// sendBye tells the distributor this peer is leaving, listing the items it
// received but did not finish so they can go to another worker, and waits
// for the distributor to confirm, so the goodbye is known to have arrived
// before the connection closes. Items that arrive while it waits were sent
// before the distributor saw the goodbye; they are handed back in a second
// goodbye. It uses its own short deadline: ctx may already be over, and the
// distributor may be gone.
func sendBye(ctx context.Context, conn transport.Conn, role transport.Role, unfinished []uint64, codec transport.Codec, log *slog.Logger) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), byeTimeout)
	defer cancel()
	for range 2 {
		env := transport.Envelope{Kind: transport.KindBye, Role: role}
		if len(unfinished) > 0 {
			b, err := codec.Marshal(unfinished)
			if err != nil {
				log.Error("encode unfinished items for goodbye", "err", err)
			} else {
				env.Payload = b
			}
		}
		if err := conn.Send(bctx, env); err != nil {
			log.Warn("could not say goodbye to the distributor", "err", err)
			return
		}
		unfinished = unfinished[:0]
	wait:
		for {
			env, err := conn.Recv(bctx)
			if err != nil {
				log.Warn("the distributor did not confirm the goodbye", "err", err)
				return
			}
			switch env.Kind {
			case transport.KindBye:
				break wait
			case transport.KindWork:
				unfinished = append(unfinished, env.ItemID)
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
