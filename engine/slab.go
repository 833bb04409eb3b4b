package engine

import (
	"slices"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// slab encodes values into shared chunks of memory: payloads that must
// live on (an item's, kept until its ACK) cost a share of a chunk rather
// than an allocation each. A chunk lives while any payload cut from it
// does; a value larger than what is left of the chunk gets memory of its
// own. A codec without AppendMarshal allocates as it always does.
type slab struct {
	codec transport.Codec
	buf   []byte
}

const (
	slabChunk = 16 << 10
	slabMin   = 256 // start a new chunk when less than this is left
)

// encode returns the encoding of v, which the caller may keep.
func (s *slab) encode(v any) ([]byte, error) {
	if _, ok := s.codec.(transport.AppendCodec); !ok {
		return s.codec.Marshal(v)
	}
	if cap(s.buf)-len(s.buf) < slabMin {
		s.buf = make([]byte, 0, slabChunk)
	}
	start := len(s.buf)
	b, err := transport.AppendMarshal(s.codec, s.buf, v)
	if err != nil {
		return nil, err
	}
	if cap(b) != cap(s.buf) {
		// It did not fit, and append copied the chunk: keep only the
		// value, and the chunk as it was.
		return slices.Clone(b[start:]), nil
	}
	s.buf = b
	return b[start:len(b):len(b)], nil
}
