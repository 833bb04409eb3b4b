package transport

import (
	"bytes"
	"fmt"
	"math"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// Codec turns user values into payload bytes and back. Implementations must
// be safe for concurrent use.
type Codec interface {
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into the value v points to.
	Unmarshal(data []byte, v any) error
	// Name identifies the codec in logs and errors.
	Name() string
}

// AppendCodec is a Codec that can also encode into a buffer the caller
// owns, so that a batch of values costs one allocation rather than one
// each. The engine uses it when its codec has it (see AppendMarshal).
type AppendCodec interface {
	Codec
	// AppendMarshal appends the encoding of v to b and returns the
	// extended buffer, as Marshal would encode it.
	AppendMarshal(b []byte, v any) ([]byte, error)
}

// AppendMarshal appends the encoding of v to b with c: with its
// AppendMarshal when c is an AppendCodec, and with Marshal otherwise.
func AppendMarshal(c Codec, b []byte, v any) ([]byte, error) {
	if a, ok := c.(AppendCodec); ok {
		return a.AppendMarshal(b, v)
	}
	m, err := c.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, m...), nil
}

// Msgpack is the default Codec, MessagePack as in the original library;
// the zero value is ready to use.
// Unmarshal first checks that every length in the input fits the input
// (ErrMalformedPayload otherwise), so hostile bytes cannot make it allocate
// more than the message's own size.
// Decoding into an interface value (any, []any, map[string]any) yields
// int64 for every integer that fits one (uint64 only above math.MaxInt64),
// float64, string, []byte, []any and map[string]any, so a number looks the
// same whatever width the sender used.
type Msgpack struct{}

var _ AppendCodec = Msgpack{}

var msgpackDecoders = sync.Pool{New: func() any {
	return msgpack.NewDecoder(nil)
}}

// msgpackEncoders pairs pooled encoders with their buffers, so Marshal
// allocates only the exact-size result.
var msgpackEncoders = sync.Pool{New: func() any {
	e := &pooledEncoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	return e
}}

type pooledEncoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

// appendWriter is an io.Writer that appends to a slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

var msgpackAppenders = sync.Pool{New: func() any {
	e := &pooledAppender{}
	e.enc = msgpack.NewEncoder(&e.w)
	return e
}}

type pooledAppender struct {
	w   appendWriter
	enc *msgpack.Encoder
}

// AppendMarshal appends the encoding of v to b.
func (Msgpack) AppendMarshal(b []byte, v any) ([]byte, error) {
	if v == nil {
		return append(b, 0xc0), nil // nil, the value of most results
	}
	e := msgpackAppenders.Get().(*pooledAppender)
	e.w.b = b
	e.enc.Reset(&e.w)
	err := e.enc.Encode(v)
	b = e.w.b
	e.w.b = nil
	msgpackAppenders.Put(e)
	return b, err
}

// Marshal encodes v.
func (Msgpack) Marshal(v any) ([]byte, error) {
	e := msgpackEncoders.Get().(*pooledEncoder)
	defer func() {
		if e.buf.Cap() <= 64<<10 { // let the GC have buffers grown by a large value
			msgpackEncoders.Put(e)
		}
	}()
	e.buf.Reset()
	e.enc.Reset(&e.buf)
	if err := e.enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.Clone(e.buf.Bytes()), nil
}

// Unmarshal checks data's structure, then decodes it into the value v
// points to.
func (Msgpack) Unmarshal(data []byte, v any) error {
	ambiguous, err := checkMsgpack(data)
	if err != nil {
		return err
	}
	if ambiguous != nil {
		data = unambiguous(data, ambiguous)
	}
	if err := decodeMsgpack(data, v); err != nil {
		return err
	}
	switch p := v.(type) {
	case *any:
		*p = signedInts(*p)
	case *map[string]any:
		signedInts(*p)
	case *[]any:
		signedInts(*p)
	}
	return nil
}

// decodeMsgpack decodes data into v. The decoder panics on some input
// for some types (nil for a time.Time in a struct); that is an error here.
func decodeMsgpack(data []byte, v any) (err error) {
	d := msgpackDecoders.Get().(*msgpack.Decoder)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: the decoder failed on it: %v", ErrMalformedPayload, p)
			return // not back in the pool: its state is unknown
		}
		msgpackDecoders.Put(d)
	}()
	d.Reset(bytes.NewReader(data))
	d.UseLooseInterfaceDecoding(true)
	return d.Decode(v)
}

// signedInts turns every uint64 that fits an int64 into an int64, in place
// inside maps and slices. MessagePack writes non-negative numbers as
// unsigned, which would otherwise make 200 come back as uint64 but 5 as
// int64.
func signedInts(v any) any {
	switch x := v.(type) {
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = signedInts(e)
		}
	case []any:
		for i, e := range x {
			x[i] = signedInts(e)
		}
	}
	return v
}

// Name returns "msgpack".
func (Msgpack) Name() string { return "msgpack" }
