package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Version is the wire format version written in every encoded envelope.
// Version 2 added the run id and the liveness rules (heartbeats both ways
// on the distributor's connections); a version-1 peer would not heartbeat
// and would be declared gone, so it is refused instead. Version 3 added
// the assignment token, without which a collector handles no result.
// Version 4 made work, results and ACKs batches of items (Envelope.Items),
// and folded failures into results (FlagFailed on an item). Version 5
// added an item's trace context (FlagTraced).
const Version byte = 5

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
	// KindWork: distributor -> worker; work items of one task type, in
	// Items: each with its id, attempt, assignment token (which the
	// result must repeat) and payload. Count is the type's attempt limit.
	KindWork Kind = 4
	// KindResult: worker -> collector; the outcomes of work items, in
	// Items: each repeats its work item's id, attempt and token, and
	// carries the handler's value, or with FlagFailed the error text
	// (FlagPermanent: the handler ruled out another attempt). The
	// envelope repeats the work's run, task type and count.
	KindResult Kind = 5
	// Kind 6 was a failure before version 4; it is no longer sent.

	// KindAck: collector -> distributor; the collector is done with the
	// results of attempts, in Items: each with the item's id and attempt.
	// FlagFailed marks a failure (FlagFinal: the item's last),
	// FlagDuplicate a result the collector had already handled; the
	// item's Payload is the collector's ack data, or the error text.
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
	// KindStatus: an observer -> distributor, asking how the run is (no
	// hello needed; Role is RoleObserver); distributor -> observer, the
	// answer: Payload is engine.Status as JSON.
	KindStatus Kind = 14

	maxKind = KindStatus
)

var kindNames = [...]string{
	KindHello: "hello", KindWelcome: "welcome", KindReady: "ready", KindWork: "work",
	KindResult: "result", KindAck: "ack", KindMetadata: "metadata",
	KindHeartbeat: "heartbeat", KindEnd: "end", KindBye: "bye", KindReject: "reject",
	KindDone: "done", KindStatus: "status",
}

// valid reports whether k is a kind of this version.
func (k Kind) valid() bool { return k >= 1 && k <= maxKind && kindNames[k] != "" }

// String returns the kind's name.
func (k Kind) String() string {
	if k.valid() {
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
	// RoleObserver asks a distributor for the run's status (KindStatus)
	// and takes no part in the run.
	RoleObserver Role = 4
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
	case RoleObserver:
		return "observer"
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

// Flags on an envelope, or on one of its items.
const (
	// FlagFailed on an item of KindResult or KindAck: the attempt failed.
	FlagFailed uint8 = 1 << 0
	// FlagFinal on a failed item of KindAck: no attempt is left, and the
	// collector's failure handler saw it.
	FlagFinal uint8 = 1 << 1
	// FlagDuplicate on an item of KindAck: the collector had already
	// handled a result of this item, so it handled this one not at all.
	FlagDuplicate uint8 = 1 << 2
	// FlagPermanent on a failed item of KindResult: the handler said
	// another attempt would fail the same way.
	FlagPermanent uint8 = 1 << 3
	// FlagDraining on KindReady: the worker takes no more items; it
	// finishes those it holds, then says goodbye.
	FlagDraining uint8 = 1 << 4
	// FlagTraced on an item: its Payload starts with a trace context
	// (see AppendTrace and Item.SplitTrace).
	FlagTraced uint8 = 1 << 5
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
	// Token is the run's assignment key in a collector's welcome; zero in
	// every other message (items carry their own). See PROTOCOL.md.
	Token    Token
	TaskType string
	// Items are the items a work, result or ack message carries: one or
	// more, a batch. Every kind may carry them on the wire; the engine
	// uses them in those three.
	Items   []Item
	Payload []byte
	// Principal is who sent the message, as a Listener that
	// authenticates its peers (auth.Authorizer) knows it: the client's
	// public key in Z85. It is set on receipt, never sent; empty when the
	// Listener does not authenticate.
	Principal string
	// Handover, given to Send, says that the caller hands the envelope's
	// memory (its items, their payloads and its payload) over with it and
	// will not touch it again, so a transport that delivers in memory may
	// deliver it as it is rather than copy it. It is never sent; Recv
	// returns it false.
	Handover bool
}

// Item is one item of a batch (Envelope.Items): a hand-out in a work
// message, an attempt's outcome in a result message, an acknowledgement
// in an ack message.
type Item struct {
	ID      uint64
	Attempt uint32
	Flags   uint8
	// Token is the assignment token of a hand-out, repeated by its
	// result; zero in an ack.
	Token Token
	// Payload is the item's payload; with FlagTraced, it starts with the
	// item's trace context (SplitTrace), as the wire has it.
	Payload []byte
}

// MaxTraceLen bounds an item's trace context on the wire.
const MaxTraceLen = 1<<16 - 1

// itemHeaderLen is the encoded size of an item without its payload: id,
// attempt, flags, token and payload length.
const itemHeaderLen = 8 + 4 + 1 + TokenLen + 4

// traceLenLen is the size of a traced item's trace length.
const traceLenLen = 2

// encodedLen is the item's encoded size.
func (it *Item) encodedLen() int { return itemHeaderLen + len(it.Payload) }

// AppendTrace appends to b the start of a traced item's payload: the
// length of trace (at most MaxTraceLen bytes) and trace. The caller
// appends the payload itself after it, and sets FlagTraced on the item.
// Trace contexts are opaque to the transport: the engine writes a W3C
// traceparent value, and a newline and the tracestate value if any.
func AppendTrace(b, trace []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(trace)))
	return append(b, trace...)
}

// TracedPayload returns the payload of a traced item: trace (as
// AppendTrace writes it), then payload, in one new slice.
func TracedPayload(trace, payload []byte) []byte {
	b := AppendTrace(make([]byte, 0, traceLenLen+len(trace)+len(payload)), trace)
	return append(b, payload...)
}

// SplitTrace returns the trace context and the payload of an item with
// FlagTraced, and nil and the whole payload of one without. Every item
// UnmarshalBinary returned has a well-formed trace context; on any other,
// ok is false when its payload cannot hold the one it says it starts with.
func (it *Item) SplitTrace() (trace, payload []byte, ok bool) {
	if it.Flags&FlagTraced == 0 {
		return nil, it.Payload, true
	}
	p := it.Payload
	if len(p) < traceLenLen {
		return nil, nil, false
	}
	t := int(binary.BigEndian.Uint16(p))
	if traceLenLen+t > len(p) {
		return nil, nil, false
	}
	end := traceLenLen + t
	return p[traceLenLen:end:end], p[end:], true
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
//	0      1    version (4)
//	1      1    kind
//	2      1    role
//	3      1    flags
//	4      4    attempt
//	8      4    count
//	12     8    run id
//	20     8    item id
//	28     16   token
//	44     4    number of items m
//	48     2    task type length n
//	50     n    task type (UTF-8)
//	50+n   ...  m items, each: id (8), attempt (4), flags (1), token
//	            (16), payload length p (4), payload (p); when flags has
//	            FlagTraced, the p bytes are the trace length t (2), the
//	            trace context (t), and the payload (p-2-t)
//	...    ...  payload (the rest)
const headerLen = 50

// MaxTaskTypeLen is the longest task type the wire format carries.
const MaxTaskTypeLen = 1<<16 - 1

// Errors from UnmarshalBinary, matchable with errors.Is.
var (
	ErrShortMessage   = errors.New("transport: message shorter than its header")
	ErrVersion        = errors.New("transport: unknown wire version")
	ErrUnknownKind    = errors.New("transport: unknown message kind")
	ErrTaskTypeLength = errors.New("transport: task type length past the end of the message")
	ErrItems          = errors.New("transport: items past the end of the message")
)

// EncodedLen returns the size of the encoded envelope.
func (e *Envelope) EncodedLen() int {
	n := headerLen + len(e.TaskType) + len(e.Payload)
	for i := range e.Items {
		n += e.Items[i].encodedLen()
	}
	return n
}

// AppendBinary appends the wire encoding of e to b.
func (e *Envelope) AppendBinary(b []byte) ([]byte, error) {
	if len(e.TaskType) > MaxTaskTypeLen {
		return b, fmt.Errorf("transport: task type is %d bytes, over %d", len(e.TaskType), MaxTaskTypeLen)
	}
	if !e.Kind.valid() {
		return b, fmt.Errorf("%w: %d", ErrUnknownKind, e.Kind)
	}
	if uint64(len(e.Items)) > math.MaxUint32 {
		return b, fmt.Errorf("transport: %d items, over %d", len(e.Items), uint32(math.MaxUint32))
	}
	b = append(b, Version, byte(e.Kind), byte(e.Role), e.Flags)
	b = binary.BigEndian.AppendUint32(b, e.Attempt)
	b = binary.BigEndian.AppendUint32(b, e.Count)
	b = binary.BigEndian.AppendUint64(b, e.Run)
	b = binary.BigEndian.AppendUint64(b, e.ItemID)
	b = append(b, e.Token[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Items)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.TaskType)))
	b = append(b, e.TaskType...)
	for i := range e.Items {
		it := &e.Items[i]
		if uint64(len(it.Payload)) > math.MaxUint32 {
			return b, fmt.Errorf("transport: item %d: payload of %d bytes, over %d", it.ID, len(it.Payload), uint32(math.MaxUint32))
		}
		if _, _, ok := it.SplitTrace(); !ok {
			return b, fmt.Errorf("transport: item %d: traced, but its payload does not start with a trace context", it.ID)
		}
		b = binary.BigEndian.AppendUint64(b, it.ID)
		b = binary.BigEndian.AppendUint32(b, it.Attempt)
		b = append(b, it.Flags)
		b = append(b, it.Token[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(it.Payload)))
		b = append(b, it.Payload...)
	}
	return append(b, e.Payload...), nil
}

// MarshalBinary returns the wire encoding of e.
func (e *Envelope) MarshalBinary() ([]byte, error) {
	return e.AppendBinary(make([]byte, 0, e.EncodedLen()))
}

// UnmarshalBinary decodes data into e. The payloads are copied (into one
// allocation), so data may be reused afterwards. A message of an unknown
// version or kind, or one that is cut short, is an error and leaves e
// unchanged.
func (e *Envelope) UnmarshalBinary(data []byte) error {
	if len(data) < headerLen {
		return fmt.Errorf("%w: %d bytes, want at least %d", ErrShortMessage, len(data), headerLen)
	}
	if data[0] != Version {
		return fmt.Errorf("%w: %d, want %d", ErrVersion, data[0], Version)
	}
	kind := Kind(data[1])
	if !kind.valid() {
		return fmt.Errorf("%w: %d", ErrUnknownKind, data[1])
	}
	m := uint64(binary.BigEndian.Uint32(data[44:48]))
	n := int(binary.BigEndian.Uint16(data[48:50]))
	if headerLen+n > len(data) {
		return fmt.Errorf("%w: %d bytes at offset %d of %d", ErrTaskTypeLength, n, headerLen, len(data))
	}
	rest := data[headerLen+n:]
	// Every item takes itemHeaderLen bytes at least, so m is bounded by
	// the message's size before anything is allocated for it.
	if m > uint64(len(rest)/itemHeaderLen) {
		return fmt.Errorf("%w: %d items in %d bytes", ErrItems, m, len(rest))
	}
	var items []Item
	if m > 0 {
		items = make([]Item, m)
	}
	off := 0
	for i := range items {
		if len(rest)-off < itemHeaderLen {
			return fmt.Errorf("%w: item %d of %d at offset %d", ErrItems, i+1, m, headerLen+n+off)
		}
		h := rest[off : off+itemHeaderLen]
		p := int(binary.BigEndian.Uint32(h[29:33]))
		off += itemHeaderLen
		if p > len(rest)-off {
			return fmt.Errorf("%w: item %d of %d has a payload of %d bytes, %d left", ErrItems, i+1, m, p, len(rest)-off)
		}
		if h[12]&FlagTraced != 0 {
			traced := Item{Flags: h[12], Payload: rest[off : off+p]}
			if _, _, ok := traced.SplitTrace(); !ok {
				return fmt.Errorf("%w: item %d of %d: its trace context runs past its payload of %d bytes", ErrItems, i+1, m, p)
			}
		}
		items[i] = Item{
			ID:      binary.BigEndian.Uint64(h[0:8]),
			Attempt: binary.BigEndian.Uint32(h[8:12]),
			Flags:   h[12],
			Token:   Token(h[13:29]),
		}
		off += p
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
		Items:    items,
	}
	if len(rest) == 0 {
		return nil
	}
	// One copy holds every payload; each is cut from it with its capacity
	// capped, so appending to one never writes over the next.
	buf := append([]byte(nil), rest...)
	off = 0
	for i := range items {
		p := int(binary.BigEndian.Uint32(buf[off+29 : off+33]))
		off += itemHeaderLen
		if p > 0 {
			items[i].Payload = buf[off : off+p : off+p]
		}
		off += p
	}
	if off < len(buf) {
		e.Payload = buf[off:len(buf):len(buf)]
	}
	return nil
}

// Clone returns a copy of e that shares no memory with it. The payloads
// are copied into one allocation.
func (e *Envelope) Clone() Envelope {
	c := *e
	if len(e.Items) == 0 {
		if e.Payload != nil {
			c.Payload = append([]byte(nil), e.Payload...)
		}
		return c
	}
	size := len(e.Payload)
	for i := range e.Items {
		size += len(e.Items[i].Payload)
	}
	buf := make([]byte, 0, size)
	c.Items = make([]Item, len(e.Items))
	for i, it := range e.Items {
		if it.Payload != nil {
			start := len(buf)
			buf = append(buf, it.Payload...)
			it.Payload = buf[start:len(buf):len(buf)]
		}
		c.Items[i] = it
	}
	if e.Payload != nil {
		start := len(buf)
		buf = append(buf, e.Payload...)
		c.Payload = buf[start:len(buf):len(buf)]
	}
	return c
}

// Split returns e as messages of at most limit encoded bytes each: e
// itself when it fits, otherwise its items spread over several copies of
// its header, in order. An item too large to travel even alone is an
// error wrapping ErrTooLarge that names it, and nothing is returned.
func (e *Envelope) Split(limit int) ([]Envelope, error) {
	n := e.EncodedLen()
	if n <= limit {
		return []Envelope{*e}, nil
	}
	base := *e
	base.Items = nil
	fixed := base.EncodedLen()
	if len(e.Items) == 0 || fixed > limit {
		return nil, fmt.Errorf("%s of %d bytes: %w (%d bytes)", e.Kind, n, ErrTooLarge, limit)
	}
	var parts []Envelope
	size, from := fixed, 0
	for i := range e.Items {
		it := e.Items[i].encodedLen()
		if fixed+it > limit {
			return nil, fmt.Errorf("%s: item %d of %d bytes: %w (%d bytes)", e.Kind, e.Items[i].ID, fixed+it, ErrTooLarge, limit)
		}
		if size+it > limit {
			part := base
			part.Items = e.Items[from:i:i]
			parts = append(parts, part)
			size, from = fixed, i
		}
		size += it
	}
	part := base
	part.Items = e.Items[from:]
	return append(parts, part), nil
}
