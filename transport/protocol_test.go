package transport_test

import (
	"bufio"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// protocolDoc returns the lines of PROTOCOL.md, the wire format as a
// worker in another language reads it.
func protocolDoc(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../PROTOCOL.md")
	require.NoError(t, err)
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	require.NoError(t, sc.Err())
	return lines
}

// TestProtocolDocKinds: the kind table in PROTOCOL.md lists every kind
// with the value and name the code gives it.
func TestProtocolDocKinds(t *testing.T) {
	documented := map[transport.Kind]string{}
	inTable := false
	for _, line := range protocolDoc(t) {
		switch {
		case strings.HasPrefix(line, "<!-- kinds"):
			inTable = true
			continue
		case !inTable:
			continue
		case inTable && len(documented) > 0 && !strings.HasPrefix(line, "|"):
			inTable = false // the end of the table
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSpace(cells[1]))
		if err != nil {
			continue // the header
		}
		documented[transport.Kind(v)] = strings.TrimSpace(cells[2])
	}
	for k := transport.Kind(1); k < 64; k++ {
		if strings.HasPrefix(k.String(), "kind(") {
			continue // retired, or never used
		}
		assert.Equal(t, k.String(), documented[k], "kind %d", k)
		delete(documented, k)
	}
	assert.Empty(t, documented, "PROTOCOL.md documents kinds the code does not have")
}

// TestProtocolDocExample: the byte-level example in PROTOCOL.md decodes to
// the envelopes it describes, and the code encodes them to those bytes.
func TestProtocolDocExample(t *testing.T) {
	five, err := transport.Msgpack{}.Marshal(5)
	require.NoError(t, err)
	twentyFive, err := transport.Msgpack{}.Marshal(25)
	require.NoError(t, err)
	token := transport.Token{0xeb, 0x6d, 0x92, 0x67, 0xbf, 0xc4, 0x62, 0x2a, 0xf1, 0x57, 0xde, 0xae, 0xe4, 0xfe, 0x3d, 0x6c}
	const run = 0x1b2c3d4e5f607182
	want := map[string]transport.Envelope{
		"work":   {Kind: transport.KindWork, TaskType: "square", Run: run, Count: 3, Items: []transport.Item{{ID: 7, Attempt: 1, Token: token, Payload: five}}},
		"result": {Kind: transport.KindResult, TaskType: "square", Run: run, Count: 3, Items: []transport.Item{{ID: 7, Attempt: 1, Token: token, Payload: twentyFive}}},
		"ack":    {Kind: transport.KindAck, Run: run, Items: []transport.Item{{ID: 7, Attempt: 1}}},
	}
	found := 0
	for _, line := range protocolDoc(t) {
		name, bytes, ok := strings.Cut(line, ":")
		env, known := want[name]
		if !ok || !known {
			continue
		}
		found++
		raw, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(bytes), " ", ""))
		require.NoError(t, err, line)
		var got transport.Envelope
		require.NoError(t, got.UnmarshalBinary(raw), line)
		assert.Equal(t, env, got, line)
		encoded, err := env.MarshalBinary()
		require.NoError(t, err)
		assert.Equal(t, raw, encoded, "the code encodes %s as PROTOCOL.md shows", name)
	}
	assert.Equal(t, len(want), found, "PROTOCOL.md shows a work message, its result and its ACK")
}
