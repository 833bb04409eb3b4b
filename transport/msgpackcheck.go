package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformedPayload is returned by the Msgpack codec for input whose
// structure is broken: cut short, or announcing more elements or bytes than
// it holds.
var ErrMalformedPayload = errors.New("transport: malformed MessagePack payload")

// checkMsgpack walks the MessagePack tokens of data and checks that every
// length and element count fits in the bytes that follow, before the
// decoder allocates for them: five bytes that claim an array of four
// billion elements must be an error, not an out-of-memory crash. The walk
// is linear and allocates nothing unless it finds an ambiguous timestamp:
// it returns the offsets of those (see ambiguousTimestamp).
func checkMsgpack(data []byte) (ambiguous []int, err error) {
	pos := 0
	need := func(n uint64) error {
		if n > uint64(len(data)-pos) {
			return fmt.Errorf("%w: %d bytes or elements announced at offset %d, %d bytes left", ErrMalformedPayload, n, pos, len(data)-pos)
		}
		return nil
	}
	// size reads an n-byte big-endian length at pos.
	size := func(n int) (uint64, error) {
		if err := need(uint64(n)); err != nil {
			return 0, err
		}
		var v uint64
		switch n {
		case 1:
			v = uint64(data[pos])
		case 2:
			v = uint64(binary.BigEndian.Uint16(data[pos:]))
		case 4:
			v = uint64(binary.BigEndian.Uint32(data[pos:]))
		}
		pos += n
		return v, nil
	}
	skip := func(n uint64) error {
		if err := need(n); err != nil {
			return err
		}
		pos += int(n)
		return nil
	}
	// sized reads an n-byte length and skips that many bytes (plus extra).
	sized := func(n int, extra uint64) error {
		l, err := size(n)
		if err != nil {
			return err
		}
		return skip(l + extra)
	}
	// Extensions: only the timestamp (type -1, of 4, 8 or 12 bytes) is
	// accepted. The decoder reads the data of any other type as a value
	// of its own, which this walk cannot vouch for: eight bytes that wrap
	// a map claiming four billion entries in an extension once made it
	// allocate until the process died.
	extData := func(start int, n uint64) error {
		if err := need(1 + n); err != nil {
			return err
		}
		if typ := int8(data[pos]); typ != -1 || n != 4 && n != 8 && n != 12 {
			return fmt.Errorf("%w: extension type %d of %d bytes at offset %d; only timestamps (type -1) are accepted", ErrMalformedPayload, typ, n, start)
		}
		if ambiguousTimestamp(data[pos+1]) {
			if n == 12 { // the nanoseconds, past 999999999
				return fmt.Errorf("%w: timestamp at offset %d with nanoseconds out of range", ErrMalformedPayload, start)
			}
			ambiguous = append(ambiguous, start)
		}
		pos += int(1 + n)
		return nil
	}
	ext := func(n int) error {
		start := pos - 1
		l, err := size(n)
		if err != nil {
			return err
		}
		return extData(start, l)
	}
	// Containers nest through a stack of the values each still expects, so
	// that nesting too deep for the decoder's recursion is refused too.
	var (
		stack    [maxNesting]uint64
		depth    int
		children uint64 // values the container just read holds
	)
	// counted reads an n-byte element count of values (per per element).
	counted := func(n int, per uint64) error {
		c, err := size(n)
		if err != nil {
			return err
		}
		children = c * per
		return need(children)
	}
	for pos < len(data) {
		b := data[pos]
		pos++
		children = 0
		var err error
		switch {
		case b <= 0x7f, b >= 0xe0, b == 0xc0, b == 0xc2, b == 0xc3: // fixint, nil, bool
		case b >= 0x80 && b <= 0x8f: // fixmap
			children = 2 * uint64(b&0x0f)
			err = need(children)
		case b >= 0x90 && b <= 0x9f: // fixarray
			children = uint64(b & 0x0f)
			err = need(children)
		case b >= 0xa0 && b <= 0xbf: // fixstr
			err = skip(uint64(b & 0x1f))
		case b == 0xc4, b == 0xd9: // bin8, str8
			err = sized(1, 0)
		case b == 0xc5, b == 0xda: // bin16, str16
			err = sized(2, 0)
		case b == 0xc6, b == 0xdb: // bin32, str32
			err = sized(4, 0)
		case b == 0xc7: // ext8: length, type, data
			err = ext(1)
		case b == 0xc8:
			err = ext(2)
		case b == 0xc9:
			err = ext(4)
		case b == 0xcc, b == 0xd0: // uint8, int8
			err = skip(1)
		case b == 0xcd, b == 0xd1:
			err = skip(2)
		case b == 0xca, b == 0xce, b == 0xd2: // float32, uint32, int32
			err = skip(4)
		case b == 0xcb, b == 0xcf, b == 0xd3: // float64, uint64, int64
			err = skip(8)
		case b >= 0xd4 && b <= 0xd8: // fixext 1, 2, 4, 8, 16: type and data
			err = extData(pos-1, 1<<(b-0xd4))
		case b == 0xdc: // array16
			err = counted(2, 1)
		case b == 0xdd: // array32
			err = counted(4, 1)
		case b == 0xde: // map16
			err = counted(2, 2)
		case b == 0xdf: // map32
			err = counted(4, 2)
		default: // 0xc1 is never used
			err = fmt.Errorf("%w: unknown code 0x%02x at offset %d", ErrMalformedPayload, b, pos-1)
		}
		if err != nil {
			return nil, err
		}
		if children > 0 {
			if depth == maxNesting {
				return nil, fmt.Errorf("%w: nested deeper than %d at offset %d", ErrMalformedPayload, maxNesting, pos)
			}
			stack[depth] = children
			depth++
			continue
		}
		// One value is complete; so are the containers it completes.
		for depth > 0 {
			stack[depth-1]--
			if stack[depth-1] > 0 {
				break
			}
			depth--
		}
	}
	return ambiguous, nil
}

// ambiguousTimestamp reports whether a timestamp whose data starts with
// byte first is ambiguous. Decoding into a map, the decoder skips an
// extension's header and reads a map from its data on: a timestamp whose
// data starts with a map code then holds a map the walk never saw, whose
// entries run on past the timestamp (a map32 inside claimed 1.7 billion
// entries), and the decoder allocates for them before it reads any. A
// sender may write such a timestamp in good faith (one of the 32 or 64-bit
// forms, with those bits in its seconds or nanoseconds), so Unmarshal
// rewrites it to the 96-bit form, whose data starts with the nanoseconds
// (at most 0x3b, a number): the same time, and no map to misread.
func ambiguousTimestamp(first byte) bool {
	return first >= 0x80 && first <= 0x8f || first == 0xde || first == 0xdf // fixmap, map16, map32
}

// unambiguous returns a copy of data with each timestamp at the offsets
// checkMsgpack returned rewritten in the 96-bit form: ext8, 12 bytes, type
// -1, nanoseconds (4 bytes) and seconds (8 bytes, signed).
func unambiguous(data []byte, at []int) []byte {
	out := make([]byte, 0, len(data)+9*len(at))
	prev := 0
	for _, i := range at {
		var hdr, n int // the header before the type byte, and the data's length
		switch data[i] {
		case 0xd6, 0xd7: // fixext4, fixext8
			hdr, n = 1, 4<<(data[i]-0xd6)
		case 0xc7: // ext8, ext16, ext32
			hdr, n = 2, int(data[i+1])
		case 0xc8:
			hdr, n = 3, int(binary.BigEndian.Uint16(data[i+1:]))
		default:
			hdr, n = 5, int(binary.BigEndian.Uint32(data[i+1:]))
		}
		body := data[i+hdr+1 : i+hdr+1+n]
		var sec int64
		var nsec uint32
		if n == 4 { // seconds
			sec = int64(binary.BigEndian.Uint32(body))
		} else { // nanoseconds (30 bits) and seconds (34 bits)
			v := binary.BigEndian.Uint64(body)
			nsec, sec = uint32(v>>34), int64(v&(1<<34-1))
		}
		out = append(out, data[prev:i]...)
		out = append(out, 0xc7, 12, 0xff)
		out = binary.BigEndian.AppendUint32(out, nsec)
		out = binary.BigEndian.AppendUint64(out, uint64(sec))
		prev = i + hdr + 1 + n
	}
	return append(out, data[prev:]...)
}

// maxNesting bounds how deep arrays and maps may nest in a payload.
const maxNesting = 256
