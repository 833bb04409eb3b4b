package transport

import (
	"bytes"
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

// Msgpack is the default Codec, MessagePack as in the original library.
// Decoding into an interface value yields int64, uint64, float64, string,
// []byte, []any and map[string]any (loose decoding), so numbers look the same
// whichever integer width the sender used.
var Msgpack Codec = msgpackCodec{}

type msgpackCodec struct{}

var msgpackDecoders = sync.Pool{New: func() any {
	return msgpack.NewDecoder(nil)
}}

func (msgpackCodec) Marshal(v any) ([]byte, error) { return msgpack.Marshal(v) }

func (msgpackCodec) Unmarshal(data []byte, v any) error {
	d := msgpackDecoders.Get().(*msgpack.Decoder)
	defer msgpackDecoders.Put(d)
	d.Reset(bytes.NewReader(data))
	d.UseLooseInterfaceDecoding(true)
	return d.Decode(v)
}

func (msgpackCodec) Name() string { return "msgpack" }
