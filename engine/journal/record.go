package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// encode appends rec's kind and body to b.
func encode(b []byte, rec Record) []byte {
	b = append(b, byte(rec.Kind))
	switch rec.Kind {
	case KindBegin:
		b = binary.BigEndian.AppendUint64(b, rec.Run)
		b = append(b, rec.Key[:]...)
		b = binary.AppendUvarint(b, uint64(len(rec.Types)))
		for _, t := range rec.Types {
			b = appendString(b, t.Name)
			b = binary.AppendUvarint(b, uint64(len(t.DependsOn)))
			for _, d := range t.DependsOn {
				b = appendString(b, d)
			}
		}
	case KindMetadata:
		b = append(b, rec.Data...)
	case KindProduced:
		b = binary.AppendUvarint(b, rec.Item)
		b = binary.AppendUvarint(b, uint64(rec.Type))
		b = append(b, flagByte(rec.Flag))
		b = binary.BigEndian.AppendUint64(b, rec.Hash)
		b = append(b, rec.Data...)
	case KindAcked:
		b = binary.AppendUvarint(b, rec.Item)
		b = append(b, flagByte(rec.Flag))
		b = append(b, rec.Data...)
	case KindReserved:
		b = binary.AppendUvarint(b, rec.Item)
	case KindComplete:
	}
	return b
}

func flagByte(f bool) byte {
	if f {
		return 1
	}
	return 0
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads a record's body.
type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("cut short")

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.fail(errShort)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes(d.uvarint())) }

func (d *decoder) flag() bool {
	b := d.bytes(1)
	return len(b) == 1 && b[0] != 0
}

func (d *decoder) rest() []byte {
	v := append([]byte(nil), d.b...)
	d.b = nil
	return v
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// decode parses a record's kind and body; the bytes it returns are its
// own.
func decode(body []byte) (Record, error) {
	rec := Record{Kind: Kind(body[0])}
	d := &decoder{b: body[1:]}
	switch rec.Kind {
	case KindBegin:
		if b := d.bytes(8); b != nil {
			rec.Run = binary.BigEndian.Uint64(b)
		}
		copy(rec.Key[:], d.bytes(16))
		n := d.uvarint()
		if n > uint64(len(d.b)) {
			d.fail(errShort)
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			t := TaskType{Name: d.string()}
			deps := d.uvarint()
			if deps > uint64(len(d.b)) {
				d.fail(errShort)
			}
			for k := uint64(0); k < deps && d.err == nil; k++ {
				t.DependsOn = append(t.DependsOn, d.string())
			}
			rec.Types = append(rec.Types, t)
		}
	case KindMetadata:
		rec.Data = d.rest()
	case KindProduced:
		rec.Item = d.uvarint()
		rec.Type = uint32(d.uvarint())
		rec.Flag = d.flag()
		if b := d.bytes(8); b != nil {
			rec.Hash = binary.BigEndian.Uint64(b)
		}
		rec.Data = d.rest()
	case KindAcked:
		rec.Item = d.uvarint()
		rec.Flag = d.flag()
		rec.Data = d.rest()
	case KindReserved:
		rec.Item = d.uvarint()
	case KindComplete:
	default:
		return rec, fmt.Errorf("unknown kind %q", body[0])
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes past its end", len(d.b))
	}
	if d.err != nil {
		return rec, fmt.Errorf("%c record: %w", rec.Kind, d.err)
	}
	return rec, nil
}
