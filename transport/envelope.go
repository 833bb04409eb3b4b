package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the wire format version written in every encoded envelope.
// Version 2 added the run id and the liveness rules (heartbeats both ways
// on the distributor's connections); a version-1 peer would not heartbeat
// and would be declared gone, so it is refused instead. Version 3 added
// the assignment token, without which a collector handles no result.
const Version byte = 3

// Kind says what an envelope is for. The numeric values are part of the wire
// format and never change meaning.
type Kind uint8

// The kinds of message that pass between the roles.
const (
	// KindHello: worker, collector or metadata source -> distributor; the
	// first message of a peer. Role says which; TaskType is a worker's type.
	KindHello Kind = 1
	// KindWelcome: distributor -> peer; the handshake reply. Run is the
	// run's id, Count the heartbeat interval and Attempt the liveness
	// timeout (both in milliseconds); Payload is the encoded metadata map
	// (empty without metadata). To a worker, ItemID is the execution
	// deadline in milliseconds (0 for none); to the collector, Token is
	// the run's assignment key, with which it checks the tokens of
	// results.
	KindWelcome Kind = 2
	// KindReady: worker -> distributor; Count more items may be sent. The
	// engine's worker sends it after its handshake and again when its
	// window grows; each ACK returns one credit.
	KindReady Kind = 3
	// KindWork: distributor -> worker; one work item. Count is the
	// item's attempt limit; Token is the assignment token the result must
	// carry.
	KindWork Kind = 4
	// KindResult: worker -> collector; the item's result value. It repeats
	// the work's run, task type, item id, attempt, count and token.
	KindResult Kind = 5
	// KindFailure: worker -> collector; the item failed, Payload is the
	// error text. It repeats the work's fields, like KindResult;
	// FlagPermanent says the handler ruled out another attempt.
	KindFailure Kind = 6
	// KindAck: collector -> distributor; the collector is done with one
	// attempt's result. FlagFailed marks a failure (FlagFinal: the item's
	// last), FlagDuplicate a result the collector had already handled;
	// Payload is the collector's ack data, or the error text.
	KindAck Kind = 7
	// KindMetadata: metadata source -> distributor with the metadata map;
	// distributor -> source, with an empty payload, to confirm it.
	KindMetadata Kind = 8
	// KindHeartbeat: liveness, both ways between the distributor and each
	// peer it welcomed, every heartbeat interval.
	KindHeartbeat Kind = 9
	// KindEnd: distributor -> peer; the run is over. An empty payload means
	// it completed; otherwise Payload is why it was aborted.
	KindEnd Kind = 10
	// KindBye: peer -> distributor; the peer saw KindEnd, or is leaving
	// early. Distributor -> peer: the goodbye arrived.
	KindBye Kind = 11
	// KindReject: distributor -> peer; a handshake was refused, or (with
	// RejectGone) a message came from a peer the distributor does not
	// know. Count is a RejectCode, Payload the reason.
	KindReject Kind = 12
	// KindDone: distributor -> collector, just before its welcome; every
	// item id up to ItemID is complete, but those in Payload (the codec's
	// array of ids). A collector started during a run so handles no item
	// the distributor already has an ACK for.
	KindDone Kind = 13

	maxKind = KindDone
)

var kindNames = [...]string{
	KindHello: "hello", KindWelcome: "welcome", KindReady: "ready", KindWork: "work",
	KindResult: "result", KindFailure: "failure", KindAck: "ack", KindMetadata: "metadata",
	KindHeartbeat: "heartbeat", KindEnd: "end", KindBye: "bye", KindReject: "reject",
	KindDone: "done",
}

// String returns the kind's name.
func (k Kind) String() string {
	if k >= 1 && k <= maxKind {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Role says which component a peer is.
type Role uint8

// Roles, as carried by KindHello.
const (
	RoleWorker    Role = 1
	RoleCollector Role = 2
	RoleMetadata  Role = 3
)

// String returns the role's name.
func (r Role) String() string {
	switch r {
	case RoleWorker:
		return "worker"
	case RoleCollector:
		return "collector"
	case RoleMetadata:
		return "metadata"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// RejectCode says why a handshake was refused (KindReject's Count).
type RejectCode uint32

// Reject codes.
const (
	RejectUnknownTaskType RejectCode = 1
	RejectDuplicate       RejectCode = 2
	RejectUnexpected      RejectCode = 3
	// RejectGone: the distributor does not know the peer (it was declared
	// gone, or never said hello): it must drop what it holds for the run
	// and say hello again.
	RejectGone RejectCode = 4
	// RejectForbidden: the sender's key may not take the role it asked
	// for (see package auth).
	RejectForbidden RejectCode = 5
	// RejectFull: the distributor has as many peers as it takes.
	RejectFull RejectCode = 6
)

// Flags on an envelope.
const (
	// FlagFailed on KindAck: the attempt failed.
	FlagFailed uint8 = 1 << 0
	// FlagFinal on a failed KindAck: no attempt is left, and the
	// collector's failure handler saw it.
	FlagFinal uint8 = 1 << 1
	// FlagDuplicate on KindAck: the collector had already handled a
	// result of this item, so it handled this one not at all.
	FlagDuplicate uint8 = 1 << 2
	// FlagPermanent on KindFailure: the handler said another attempt
	// would fail the same way.
	FlagPermanent uint8 = 1 << 3
	// FlagDraining on KindReady: the worker takes no more items; it
	// finishes those it holds, then says goodbye.
	FlagDraining uint8 = 1 << 4
)

// Envelope is one message between roles. The transport moves envelopes; the
// engine gives them meaning. Payload is opaque to the transport (the engine
// encodes user values with a Codec).
type Envelope struct {
	Kind    Kind
	Role    Role
	Flags   uint8
	Attempt uint32
	Count   uint32
	// Run is the id of the run the message belongs to (0 before a peer
	// was welcomed): item ids start again with every run.
	Run    uint64
	ItemID uint64
	// Token is the assignment token of a work item, repeated by its
	// result or failure, and the run's assignment key in a collector's
	// welcome; zero in every other message. See PROTOCOL.md.
	Token    Token
	TaskType string
	Payload  []byte
	// Principal is who sent the message, as a Listener that
	// authenticates its peers (auth.Authorizer) knows it: the client's
	// public key in Z85. It is set on receipt, never sent; empty when the
	// Listener does not authenticate.
	Principal string
}

// TokenLen is the size of an assignment token.
const TokenLen = 16

// Token is an assignment token: a message authentication code, made by
// the distributor with a key only it and the collector hold, over one
// hand-out of one item (its task type, id and attempt). A collector
// handles a result only if its token checks, so a peer that was not
// handed the item cannot forge its result.
type Token [TokenLen]byte

// Wire layout of an encoded envelope (all integers big-endian):
//
//	offset size field
//	0      1    version (2)
//	1      1    kind
//	2      1    role
//	3      1    flags
//	4      4    attempt
//	8      4    count
//	12     8    run id
//	20     8    item id
//	28     16   token
//	44     2    task type length n
//	46     n    task type (UTF-8)
//	46+n   ...  payload (the rest)
const headerLen = 46

// MaxTaskTypeLen is the longest task type the wire format carries.
const MaxTaskTypeLen = 1<<16 - 1

// Errors from UnmarshalBinary, matchable with errors.Is.
var (
	ErrShortMessage   = errors.New("transport: message shorter than its header")
	ErrVersion        = errors.New("transport: unknown wire version")
	ErrUnknownKind    = errors.New("transport: unknown message kind")
	ErrTaskTypeLength = errors.New("transport: task type length past the end of the message")
)

// EncodedLen returns the size of the encoded envelope.
func (e *Envelope) EncodedLen() int { return headerLen + len(e.TaskType) + len(e.Payload) }

// AppendBinary appends the wire encoding of e to b.
func (e *Envelope) AppendBinary(b []byte) ([]byte, error) {
	if len(e.TaskType) > MaxTaskTypeLen {
		return b, fmt.Errorf("transport: task type is %d bytes, over %d", len(e.TaskType), MaxTaskTypeLen)
	}
	if e.Kind < 1 || e.Kind > maxKind {
		return b, fmt.Errorf("%w: %d", ErrUnknownKind, e.Kind)
	}
	b = append(b, Version, byte(e.Kind), byte(e.Role), e.Flags)
	b = binary.BigEndian.AppendUint32(b, e.Attempt)
	b = binary.BigEndian.AppendUint32(b, e.Count)
	b = binary.BigEndian.AppendUint64(b, e.Run)
	b = binary.BigEndian.AppendUint64(b, e.ItemID)
	b = append(b, e.Token[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.TaskType)))
	b = append(b, e.TaskType...)
	return append(b, e.Payload...), nil
}

// MarshalBinary returns the wire encoding of e.
func (e *Envelope) MarshalBinary() ([]byte, error) {
	return e.AppendBinary(make([]byte, 0, e.EncodedLen()))
}

// UnmarshalBinary decodes data into e. The payload is copied, so data may be
// reused afterwards. A message of an unknown version or kind, or one that is
// cut short, is an error and leaves e unchanged.
func (e *Envelope) UnmarshalBinary(data []byte) error {
	if len(data) < headerLen {
		return fmt.Errorf("%w: %d bytes, want at least %d", ErrShortMessage, len(data), headerLen)
	}
	if data[0] != Version {
		return fmt.Errorf("%w: %d, want %d", ErrVersion, data[0], Version)
	}
	kind := Kind(data[1])
	if kind < 1 || kind > maxKind {
		return fmt.Errorf("%w: %d", ErrUnknownKind, data[1])
	}
	n := int(binary.BigEndian.Uint16(data[44:46]))
	if headerLen+n > len(data) {
		return fmt.Errorf("%w: %d bytes at offset %d of %d", ErrTaskTypeLength, n, headerLen, len(data))
	}
	*e = Envelope{
		Kind:     kind,
		Role:     Role(data[2]),
		Flags:    data[3],
		Attempt:  binary.BigEndian.Uint32(data[4:8]),
		Count:    binary.BigEndian.Uint32(data[8:12]),
		Run:      binary.BigEndian.Uint64(data[12:20]),
		ItemID:   binary.BigEndian.Uint64(data[20:28]),
		Token:    Token(data[28:44]),
		TaskType: string(data[headerLen : headerLen+n]),
	}
	if rest := data[headerLen+n:]; len(rest) > 0 {
		e.Payload = append([]byte(nil), rest...)
	}
	return nil
}

// Clone returns a copy of e that shares no memory with it.
func (e *Envelope) Clone() Envelope {
	c := *e
	if e.Payload != nil {
		c.Payload = append([]byte(nil), e.Payload...)
	}
	return c
}
