package transport_test

import (
	"bytes"
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseEndpointSplitsSchemeAndAddress(t *testing.T) {
	for in, want := range map[string]transport.Endpoint{
		"inproc://work":        {Scheme: "inproc", Address: "work"},
		"ipc:///tmp/w.ipc":     {Scheme: "ipc", Address: "/tmp/w.ipc"},
		"tcp://[::1]:80":       {Scheme: "tcp", Address: "[::1]:80"},
		"nats://demo.subject":  {Scheme: "nats", Address: "demo.subject"},
		"my+scheme.v2://a://b": {Scheme: "my+scheme.v2", Address: "a://b"},
		"inproc://":            {Scheme: "inproc"}, // the transport refuses an empty address, with its own words
	} {
		got, err := transport.ParseEndpoint(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
		assert.Equal(t, in, got.String())
	}
}

func TestParseEndpointInvalid(t *testing.T) {
	tests := []struct {
		in, reason string
	}{
		{"", "scheme://address"},
		{"localhost:5555", "scheme://address"},
		{"://x", "empty scheme"},
		{"TCP://127.0.0.1:5", "lower-case"},
		{"1tcp://x", "lower-case"},
		{"t cp://x", "lower-case"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := transport.ParseEndpoint(tt.in)
			require.ErrorIs(t, err, transport.ErrInvalidEndpoint)
			var epErr *transport.EndpointError
			require.ErrorAs(t, err, &epErr)
			assert.Equal(t, tt.in, epErr.Endpoint)
			assert.Contains(t, err.Error(), tt.reason)
			assert.Contains(t, err.Error(), `"`+tt.in+`"`, "the error names the endpoint")
		})
	}
}

func TestResolveWithoutTransport(t *testing.T) {
	_, err := transport.Listen(context.Background(), "tcp://127.0.0.1:5555")
	require.ErrorIs(t, err, transport.ErrNoTransport)
	assert.Contains(t, err.Error(), "tcp://127.0.0.1:5555")
	assert.Contains(t, err.Error(), "zmqtransport", "the error says what to import")
	_, err = transport.Dial(context.Background(), "bogus")
	assert.ErrorIs(t, err, transport.ErrInvalidEndpoint)
}

// schemeless is a transport the package has never heard of.
type schemeless struct{ checked []transport.Use }

func (s *schemeless) Listen(ctx context.Context, ep transport.Endpoint) (transport.Listener, error) {
	return nil, ep.Invalid("listen %s", ep.Address)
}

func (s *schemeless) Dial(ctx context.Context, ep transport.Endpoint) (transport.Conn, error) {
	return nil, ep.Invalid("dial %s", ep.Address)
}

func (s *schemeless) CheckEndpoint(ep transport.Endpoint, use transport.Use) error {
	s.checked = append(s.checked, use)
	if ep.Address == "bad" {
		return ep.Invalid("bad subject")
	}
	return nil
}

func TestRegisteredSchemeGetsTheWholeAddress(t *testing.T) {
	tr := &schemeless{}
	transport.Register("nats-test", tr)
	ep, got, err := transport.Resolve("nats-test://demo.subject")
	require.NoError(t, err)
	assert.Same(t, tr, got)
	assert.Equal(t, "demo.subject", ep.Address)
	require.NoError(t, transport.Check(got, ep, transport.ForDial))
	bad, _, err := transport.Resolve("nats-test://bad")
	require.NoError(t, err)
	err = transport.Check(got, bad, transport.ForListen)
	require.ErrorIs(t, err, transport.ErrInvalidEndpoint)
	assert.Contains(t, err.Error(), `"nats-test://bad": bad subject`)
	assert.Equal(t, []transport.Use{transport.ForDial, transport.ForListen}, tr.checked)
	_, err = transport.Dial(context.Background(), "nats-test://x")
	assert.ErrorContains(t, err, "dial x", "Dial reaches the registered transport")
}

func TestRegisterRefusesMistakes(t *testing.T) {
	assert.Panics(t, func() { transport.Register("Bad Scheme", &schemeless{}) })
	assert.Panics(t, func() { transport.Register("fine", nil) })
}

func TestStatsAdd(t *testing.T) {
	var s transport.Stats
	s.Add(transport.Stats{Peers: 2, Dropped: map[transport.DropReason]uint64{transport.DropMalformed: 3}})
	s.Add(transport.Stats{Peers: 1, Dropped: map[transport.DropReason]uint64{transport.DropMalformed: 1, transport.DropOversize: 2}})
	assert.Equal(t, 3, s.Peers)
	assert.Equal(t, map[transport.DropReason]uint64{transport.DropMalformed: 4, transport.DropOversize: 2}, s.Dropped)
	assert.Equal(t, uint64(6), s.TotalDropped())
	c := s.Clone()
	c.Dropped[transport.DropOversize] = 9
	assert.Equal(t, uint64(2), s.Dropped[transport.DropOversize], "Clone shares no map")
}

func TestEnvelopeRoundTrip(t *testing.T) {
	in := transport.Envelope{
		Kind: transport.KindAck, Role: transport.RoleCollector, Flags: transport.FlagFailed,
		Attempt: 3, Count: 7, Run: 0xfeedface12345678, ItemID: 1<<40 + 5, TaskType: "calc", Payload: []byte{1, 2, 3},
	}
	b, err := in.MarshalBinary()
	require.NoError(t, err)
	assert.Len(t, b, in.EncodedLen())
	var out transport.Envelope
	require.NoError(t, out.UnmarshalBinary(b))
	assert.Equal(t, in, out)
	b[len(b)-1] = 9
	assert.Equal(t, byte(3), out.Payload[2], "decoded payload does not alias the input")
}

func TestEnvelopeItemsRoundTrip(t *testing.T) {
	in := transport.Envelope{Kind: transport.KindResult, Run: 7, Count: 3, TaskType: "calc", Items: []transport.Item{
		{ID: 1, Attempt: 1, Token: transport.Token{1, 2}, Payload: []byte{0xc0}},
		{ID: 2, Attempt: 2, Flags: transport.FlagFailed | transport.FlagPermanent, Payload: []byte("boom")},
		{ID: 1 << 50, Attempt: 1}, // no payload
	}}
	b, err := in.MarshalBinary()
	require.NoError(t, err)
	assert.Len(t, b, in.EncodedLen())
	var out transport.Envelope
	require.NoError(t, out.UnmarshalBinary(b))
	assert.Equal(t, in, out)
	out.Items[0].Payload = append(out.Items[0].Payload, 0xff)
	assert.Equal(t, []byte("boom"), out.Items[1].Payload, "appending to one payload never writes over the next")
	clear(b)
	assert.Equal(t, []byte("boom"), out.Items[1].Payload, "decoded payloads do not alias the input")

	c := in.Clone()
	assert.Equal(t, in, c)
	c.Items[1].Payload[0] = 'B'
	c.Items[0].ID = 99
	assert.Equal(t, []byte("boom"), in.Items[1].Payload, "a clone shares no payload")
	assert.Equal(t, uint64(1), in.Items[0].ID, "a clone shares no items")
}

func TestEnvelopeTracedItems(t *testing.T) {
	trace := []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\nk=v")
	traced := transport.Item{ID: 3, Attempt: 1, Flags: transport.FlagTraced, Payload: append(transport.AppendTrace(nil, trace), 0x05)}
	got, payload, ok := traced.SplitTrace()
	require.True(t, ok)
	assert.Equal(t, trace, got)
	assert.Equal(t, []byte{0x05}, payload)
	plain := transport.Item{ID: 4, Payload: []byte{0x06}}
	got, payload, ok = plain.SplitTrace()
	assert.True(t, ok)
	assert.Nil(t, got, "an item without the flag has none")
	assert.Equal(t, []byte{0x06}, payload)

	in := transport.Envelope{Kind: transport.KindWork, Items: []transport.Item{traced, plain,
		{ID: 5, Flags: transport.FlagTraced, Payload: transport.AppendTrace(nil, []byte("t"))}}} // a trace, no payload
	b, err := in.MarshalBinary()
	require.NoError(t, err)
	var out transport.Envelope
	require.NoError(t, out.UnmarshalBinary(b))
	assert.Equal(t, in, out)
	got, payload, ok = out.Items[2].SplitTrace()
	require.True(t, ok)
	assert.Equal(t, []byte("t"), got)
	assert.Empty(t, payload)

	bad := transport.Envelope{Kind: transport.KindWork, Items: []transport.Item{{ID: 9, Flags: transport.FlagTraced, Payload: []byte{0, 9, 1}}}}
	_, err = bad.MarshalBinary()
	assert.ErrorContains(t, err, "item 9: traced, but its payload does not start with a trace context")
}

func TestEnvelopeRejectsMalformedItems(t *testing.T) {
	good, err := (&transport.Envelope{Kind: transport.KindAck, Items: []transport.Item{{ID: 1, Attempt: 1, Payload: []byte("ok")}}}).MarshalBinary()
	require.NoError(t, err)
	mutate := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for name, data := range map[string][]byte{
		"item cut short":       good[:len(good)-3],
		"payload cut short":    good[:len(good)-1],
		"more items than fit":  mutate(func(b []byte) []byte { b[47] = 2; return b }),
		"billions of items":    mutate(func(b []byte) []byte { b[44] = 0xff; return b }),
		"payload past the end": mutate(func(b []byte) []byte { b[len(b)-3] = 0x7f; return b }),
		// "ok" read as a trace length of 0x6f6b bytes, in a 2-byte payload
		"trace past the payload": mutate(func(b []byte) []byte { b[len(b)-2-4-16-1] |= transport.FlagTraced; return b }),
		"traced, payload too short for the length": mutate(func(b []byte) []byte {
			b[len(b)-2-4-16-1] |= transport.FlagTraced
			b[len(b)-3] = 1 // a payload of one byte, then a byte of what follows
			return b[:len(b)-1]
		}),
	} {
		t.Run(name, func(t *testing.T) {
			var e transport.Envelope
			assert.ErrorIs(t, e.UnmarshalBinary(data), transport.ErrItems)
			assert.Equal(t, transport.Envelope{}, e)
		})
	}
}

func TestEnvelopeSplit(t *testing.T) {
	items := make([]transport.Item, 10)
	for i := range items {
		items[i] = transport.Item{ID: uint64(i + 1), Attempt: 1, Payload: make([]byte, 100)}
	}
	env := transport.Envelope{Kind: transport.KindWork, Run: 5, Count: 3, TaskType: "calc", Items: items}
	whole, err := env.Split(env.EncodedLen())
	require.NoError(t, err)
	require.Len(t, whole, 1, "a message within the limit stays whole")

	fixed := (&transport.Envelope{Kind: transport.KindWork, TaskType: "calc"}).EncodedLen()
	per := (&transport.Envelope{Kind: transport.KindWork, TaskType: "calc", Items: items[:1]}).EncodedLen() - fixed
	limit := fixed + 2*per + per/2 // room for two items a message
	parts, err := env.Split(limit)
	require.NoError(t, err)
	require.Len(t, parts, 5)
	var ids []uint64
	for _, p := range parts {
		assert.LessOrEqual(t, p.EncodedLen(), limit)
		assert.Equal(t, uint64(5), p.Run, "each part repeats the header")
		assert.Equal(t, "calc", p.TaskType)
		for _, it := range p.Items {
			ids = append(ids, it.ID)
		}
	}
	assert.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, ids, "every item once, in order")

	big := env
	big.Items = append(slices.Clone(items[:2]), transport.Item{ID: 77, Payload: make([]byte, 1000)})
	_, err = big.Split(limit)
	assert.ErrorIs(t, err, transport.ErrTooLarge)
	assert.ErrorContains(t, err, "item 77", "the error names the item too large to travel")
}

func TestEnvelopeRejectsMalformed(t *testing.T) {
	good, err := (&transport.Envelope{Kind: transport.KindWork, TaskType: "abc"}).MarshalBinary()
	require.NoError(t, err)
	mutate := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, transport.ErrShortMessage},
		{"short", good[:10], transport.ErrShortMessage},
		{"version", mutate(func(b []byte) []byte { b[0] = 1; return b }), transport.ErrVersion},
		{"kind zero", mutate(func(b []byte) []byte { b[1] = 0; return b }), transport.ErrUnknownKind},
		{"kind past last", mutate(func(b []byte) []byte { b[1] = 200; return b }), transport.ErrUnknownKind},
		{"task type cut", good[:len(good)-1], transport.ErrTaskTypeLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := transport.Envelope{ItemID: 42}
			e := before
			assert.ErrorIs(t, e.UnmarshalBinary(tt.data), tt.want)
			assert.Equal(t, before, e, "a failed decode leaves the envelope alone")
		})
	}
}

func TestEnvelopeMarshalRejectsBadKindAndLongType(t *testing.T) {
	_, err := (&transport.Envelope{Kind: 0}).MarshalBinary()
	assert.ErrorIs(t, err, transport.ErrUnknownKind)
	_, err = (&transport.Envelope{Kind: transport.KindWork, TaskType: strings.Repeat("t", transport.MaxTaskTypeLen+1)}).MarshalBinary()
	assert.Error(t, err)
}

func TestKindAndRoleNames(t *testing.T) {
	assert.Equal(t, "work", transport.KindWork.String())
	assert.Equal(t, "kind(99)", transport.Kind(99).String())
	assert.Equal(t, "collector", transport.RoleCollector.String())
	assert.Equal(t, "role(9)", transport.Role(9).String())
}

func TestMsgpackRoundTrip(t *testing.T) {
	type work struct {
		Workload float64
		Name     string
	}
	b, err := transport.Msgpack{}.Marshal(work{Workload: 0.01, Name: "x"})
	require.NoError(t, err)
	var w work
	require.NoError(t, transport.Msgpack{}.Unmarshal(b, &w))
	assert.Equal(t, work{Workload: 0.01, Name: "x"}, w)

	b, err = transport.Msgpack{}.Marshal(map[string]any{
		"n": int8(3), "big": uint64(1 << 40), "huge": uint64(math.MaxUint64), "neg": -300, "s": "v",
		"nested": map[string]any{"k": 200}, "list": []any{1, 300},
	})
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, transport.Msgpack{}.Unmarshal(b, &m))
	assert.Equal(t, int64(3), m["n"], "integers come back as int64")
	assert.Equal(t, int64(1<<40), m["big"])
	assert.Equal(t, uint64(math.MaxUint64), m["huge"], "only what int64 cannot hold stays uint64")
	assert.Equal(t, int64(-300), m["neg"])
	assert.Equal(t, []any{int64(1), int64(300)}, m["list"])
	var single any
	b, err = transport.Msgpack{}.Marshal(200)
	require.NoError(t, err)
	require.NoError(t, transport.Msgpack{}.Unmarshal(b, &single))
	assert.Equal(t, int64(200), single)
	assert.Equal(t, "v", m["s"])
	assert.Equal(t, map[string]any{"k": int64(200)}, m["nested"])
	assert.Equal(t, "msgpack", transport.Msgpack{}.Name())
}

func FuzzEnvelopeUnmarshal(f *testing.F) {
	for _, e := range []transport.Envelope{
		{Kind: transport.KindWork, TaskType: "calc", ItemID: 9, Payload: []byte{0x81, 0xa1, 0x61, 0x01}},
		{Kind: transport.KindHello, Role: transport.RoleWorker, TaskType: "t"},
		{Kind: transport.KindEnd},
	} {
		b, err := e.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{1, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		var e transport.Envelope
		if err := e.UnmarshalBinary(data); err != nil {
			return
		}
		again, err := e.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded envelope does not encode: %v", err)
		}
		if string(again) != string(data) {
			t.Fatalf("round trip changed the bytes:\n%x\n%x", data, again)
		}
	})
}

// FuzzMsgpackUnmarshal: payloads from the network (metadata maps, lists of
// unfinished items) decode to an error, never a panic or a runaway
// allocation.
func FuzzMsgpackUnmarshal(f *testing.F) {
	for _, v := range []any{map[string]any{"a": 1, "b": []any{"x", 2.5}}, []uint64{1, 2, 3}, nil} {
		b, err := transport.Msgpack{}.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})                                     // an array claiming 4 billion elements
	f.Add([]byte{0xc7, 0x05, 0x00, 0xdf, 0xff, 0xff, 0xff, 0xff})                   // the same, as a map, inside an extension
	f.Add([]byte{0xd6, 0xff, 0xdf, 0xae, 0x30, 0x30, 0xff, 0xff, 0x00, 0x00, 0x00}) // a timestamp that reads as a map32
	f.Fuzz(func(t *testing.T, data []byte) {
		var m map[string]any
		_ = transport.Msgpack{}.Unmarshal(data, &m)
		var ids []uint64
		_ = transport.Msgpack{}.Unmarshal(data, &ids)
		var v any
		_ = transport.Msgpack{}.Unmarshal(data, &v)
		// A user's type, with the unbounded kinds of map the decoder has.
		var s struct {
			At    time.Time
			Meta  map[string]any
			Any   map[any]any
			Names map[string]string
			List  []map[string]any
		}
		_ = transport.Msgpack{}.Unmarshal(data, &s)
	})
}

// TestMsgpackRefusesExtensionsButTimestamps: the decoder reads an
// extension's data as a value of its own, so an extension can hide a
// length the check would otherwise refuse; these eight bytes once made it
// allocate until the process died.
func TestMsgpackRefusesExtensionsButTimestamps(t *testing.T) {
	for name, data := range map[string][]byte{
		"map bomb in ext8":   {0xc7, 0x05, 0x00, 0xdf, 0xff, 0xff, 0xff, 0xff},
		"array in fixext4":   {0xd6, 0x05, 0xdd, 0xff, 0xff, 0xff},
		"ext32 of type 1":    {0xc9, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00},
		"timestamp of 5 b":   {0xc7, 0x05, 0xff, 0, 0, 0, 0, 0},
		"ext16 cut short":    {0xc8, 0xff},
		"fixext16 cut short": {0xd8, 0xff, 0x01},
	} {
		var m map[string]any
		assert.ErrorIs(t, transport.Msgpack{}.Unmarshal(data, &m), transport.ErrMalformedPayload, name)
		var v any
		assert.ErrorIs(t, transport.Msgpack{}.Unmarshal(data, &v), transport.ErrMalformedPayload, name)
	}
	// Timestamps still travel.
	for _, when := range []time.Time{time.Unix(1700000000, 0), time.Unix(1700000000, 123456789), time.Date(2500, 1, 1, 0, 0, 0, 1, time.UTC)} {
		b, err := transport.Msgpack{}.Marshal(map[string]any{"at": when})
		require.NoError(t, err)
		var got map[string]time.Time
		require.NoError(t, transport.Msgpack{}.Unmarshal(b, &got))
		assert.True(t, when.Equal(got["at"]), "%v came back as %v", when, got["at"])
	}
}

// TestMsgpackTimestampsThatReadAsMapLengths: decoding into a map, the
// decoder skips an extension's header and reads its data as the map's
// length. A timestamp whose data starts like a map32 then claimed four
// billion entries, and the decoder allocated for them (found by
// FuzzMsgpackUnmarshal). Such timestamps decode into a map as the error
// they are, and into a time as the same time they were.
func TestMsgpackTimestampsThatReadAsMapLengths(t *testing.T) {
	var m map[string]any
	for _, bomb := range [][]byte{
		{0xd6, 0xff, 0xdf, 0xae, 0x30, 0x30, 0xff, 0xff, 0x00, 0x00, 0x00}, // a map32 of 2.9 billion
		{0xd6, 0xff, 0x82, 0xa1, 0x30, 0xdf, 0x64, 0x06, 0xcc, 0x3b},       // a fixmap holding a map32 of 1.7 billion
	} {
		assert.Error(t, transport.Msgpack{}.Unmarshal(bomb, &m), "% x", bomb)
	}
	for name, when := range map[string]time.Time{
		"32-bit form, seconds 0xdf…":     time.Unix(0xdfae3030, 0),
		"64-bit form, nanoseconds 0xdf…": time.Unix(1700000000, 936_000_000),
		"64-bit form, nanoseconds 0xde…": time.Unix(1700000000, 932_000_000),
		"64-bit form, nanoseconds 0x82…": time.Unix(1700000000, 546_000_000),
		"32-bit form, seconds 0x82…":     time.Unix(0x82000000, 0),
	} {
		b, err := transport.Msgpack{}.Marshal(map[string]any{"at": when})
		require.NoError(t, err)
		i := bytes.IndexByte(b, 0xff) // the extension's type
		require.Positive(t, i, name)
		require.True(t, b[i+1] >= 0x80 && b[i+1] <= 0x8f || b[i+1] >= 0xde, "%s: the encoder wrote the ambiguous form: % x", name, b)
		var got map[string]time.Time
		require.NoError(t, transport.Msgpack{}.Unmarshal(b, &got), name)
		assert.True(t, when.Equal(got["at"]), "%s: %v came back as %v", name, when, got["at"])
		var loose map[string]any
		require.NoError(t, transport.Msgpack{}.Unmarshal(b, &loose), name)
		assert.True(t, when.Equal(loose["at"].(time.Time)), name)
		var asMap map[string]map[string]any
		assert.Error(t, transport.Msgpack{}.Unmarshal(b, &asMap), "%s: a time is not a map", name)
	}
	// The 96-bit form with nanoseconds past a second is no timestamp.
	bad := []byte{0xc7, 12, 0xff, 0xdf, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1}
	assert.ErrorIs(t, transport.Msgpack{}.Unmarshal(bad, &m), transport.ErrMalformedPayload)
}

// TestMsgpackDecoderPanicsAreErrors: the decoder panics on a nil where a
// struct's time.Time is (found by FuzzMsgpackUnmarshal); Unmarshal
// returns an error instead.
func TestMsgpackDecoderPanicsAreErrors(t *testing.T) {
	var s struct {
		At         time.Time
		B, C, D, E int
	}
	err := transport.Msgpack{}.Unmarshal([]byte{0x95, 0xc0, 0x30, 0x30, 0x30, 0x30}, &s)
	assert.ErrorIs(t, err, transport.ErrMalformedPayload)
	// The pool's decoders still work.
	var v any
	require.NoError(t, transport.Msgpack{}.Unmarshal([]byte{0x05}, &v))
	assert.Equal(t, int64(5), v)
}

func TestMsgpackRejectsLengthsPastTheEnd(t *testing.T) {
	for name, data := range map[string][]byte{
		"array32 of 4e9":  {0xdd, 0xff, 0xff, 0xff, 0xff},
		"map16 of 65535":  {0xde, 0xff, 0xff, 0x01},
		"str32 past end":  {0xdb, 0x00, 0x00, 0x10, 0x00, 'a'},
		"fixarray short":  {0x93, 0x01},
		"cut length":      {0xc5, 0x01},
		"never-used code": {0xc1},
		"nested too deep": append(bytes.Repeat([]byte{0x91}, 300), 0x01),
	} {
		t.Run(name, func(t *testing.T) {
			var v any
			assert.ErrorIs(t, transport.Msgpack{}.Unmarshal(data, &v), transport.ErrMalformedPayload)
		})
	}
}

func TestMsgpackCheckAcceptsEveryEncodedKind(t *testing.T) {
	type all struct {
		T     time.Time
		B     []byte
		F32   float32
		F64   float64
		I     []int64
		U     uint64
		S     string
		M     map[string]any
		Long  string
		Bytes []byte
	}
	in := all{
		T: time.Unix(1700000000, 123).UTC(), B: []byte{1, 2}, F32: 1.5, F64: 2.5,
		I: []int64{-1, -200, -70000, -5000000000, 5, 300, 70000, 5000000000}, U: 1 << 63, S: "s",
		M:    map[string]any{"k": []any{nil, true, false}},
		Long: strings.Repeat("x", 70000), Bytes: make([]byte, 300),
	}
	b, err := transport.Msgpack{}.Marshal(in)
	require.NoError(t, err)
	nested := any(int64(7))
	for range 200 {
		nested = []any{nested, map[string]any{}}
	}
	nb, err := transport.Msgpack{}.Marshal(nested)
	require.NoError(t, err)
	var back any
	require.NoError(t, transport.Msgpack{}.Unmarshal(nb, &back), "200 levels are within the limit")
	var out all
	require.NoError(t, transport.Msgpack{}.Unmarshal(b, &out))
	out.T = out.T.UTC() // msgpack decodes times in the local zone
	assert.Equal(t, in, out)
}

func TestMsgpackAppendMarshalMatchesMarshal(t *testing.T) {
	for _, v := range []any{nil, 5, "x", map[string]any{"workload": 0.5}, []any{1, "a"}} {
		want, err := transport.Msgpack{}.Marshal(v)
		require.NoError(t, err)
		got, err := transport.Msgpack{}.AppendMarshal([]byte{0xaa}, v)
		require.NoError(t, err)
		assert.Equal(t, append([]byte{0xaa}, want...), got, "%v", v)
		got, err = transport.AppendMarshal(plainCodec{}, []byte{0xaa}, v)
		require.NoError(t, err)
		assert.Equal(t, append([]byte{0xaa}, want...), got, "%v through Marshal", v)
	}
	_, err := transport.Msgpack{}.AppendMarshal(nil, make(chan int))
	assert.Error(t, err, "a value msgpack cannot encode")
}

// plainCodec is a Codec without AppendMarshal.
type plainCodec struct{}

func (plainCodec) Marshal(v any) ([]byte, error)      { return transport.Msgpack{}.Marshal(v) }
func (plainCodec) Unmarshal(data []byte, v any) error { return transport.Msgpack{}.Unmarshal(data, v) }
func (plainCodec) Name() string                       { return "plain" }
