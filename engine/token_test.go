package engine

import (
	"bufio"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

func TestTokenChecksOnlyTheHandOutItWasMadeFor(t *testing.T) {
	key := newTokenKey()
	dist, coll := newTokenSigner(key), newTokenSigner(key)
	tok := dist.sign("resize", 42, 2)
	it := transport.Item{ID: 42, Attempt: 2, Token: tok}
	assert.True(t, verify(coll, "resize", &it))

	for name, forged := range map[string]struct {
		taskType string
		it       transport.Item
	}{
		"no token":          {"resize", transport.Item{ID: 42, Attempt: 2}},
		"another item":      {"resize", transport.Item{ID: 43, Attempt: 2, Token: tok}},
		"another attempt":   {"resize", transport.Item{ID: 42, Attempt: 3, Token: tok}},
		"another task type": {"thumbnail", transport.Item{ID: 42, Attempt: 2, Token: tok}},
		"one bit off":       {"resize", transport.Item{ID: 42, Attempt: 2, Token: flipBit(tok)}},
	} {
		assert.False(t, verify(coll, forged.taskType, &forged.it), name)
	}
	other := newTokenSigner(newTokenKey()) // another run's key
	assert.False(t, verify(other, "resize", &it), "a token of another run")
}

func flipBit(t transport.Token) transport.Token {
	t[7] ^= 0x10
	return t
}

// A peer that sends results of made-up task types cannot grow the
// verifier's state: only types whose tokens checked are kept.
func TestTokenVerifierKeepsOnlyTypesThatChecked(t *testing.T) {
	key := newTokenKey()
	dist, coll := newTokenSigner(key), newTokenSigner(key)
	for i := range 1000 {
		it := transport.Item{ID: uint64(i)}
		require.False(t, verify(coll, strings.Repeat("x", i%50)+string(rune('a'+i%26)), &it))
	}
	assert.Empty(t, coll.types)
	it := transport.Item{ID: 1, Attempt: 1, Token: dist.sign("real", 1, 1)}
	require.True(t, verify(coll, "real", &it))
	assert.Len(t, coll.types, 1)
}

// TestTokenMatchesProtocolDoc: PROTOCOL.md's example work message carries
// the token its "Assignment tokens" section defines, for the key
// 00 01 … 0f, so another language can check its implementation against
// it.
func TestTokenMatchesProtocolDoc(t *testing.T) {
	f, err := os.Open("../PROTOCOL.md")
	require.NoError(t, err)
	defer f.Close()
	var work []byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "work:"); ok {
			work, err = hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(rest), " ", ""))
			require.NoError(t, err)
		}
	}
	require.NoError(t, sc.Err())
	var env transport.Envelope
	require.NoError(t, env.UnmarshalBinary(work), "PROTOCOL.md shows a work message")
	require.Len(t, env.Items, 1, "PROTOCOL.md's work message carries one item")
	var key transport.Token
	for i := range key {
		key[i] = byte(i)
	}
	it := env.Items[0]
	assert.Equal(t, newTokenSigner(key).sign(env.TaskType, it.ID, it.Attempt), it.Token)
}

func BenchmarkTokenVerify(b *testing.B) {
	key := newTokenKey()
	dist, coll := newTokenSigner(key), newTokenSigner(key)
	it := transport.Item{ID: 1, Attempt: 1, Token: dist.sign("resize", 1, 1)}
	for b.Loop() {
		if !verify(coll, "resize", &it) {
			b.Fatal("token did not check")
		}
	}
}

// verify checks one result item's token with s, as the collector does.
func verify(s *tokenSigner, taskType string, it *transport.Item) bool {
	v := s.verifier(taskType)
	return v.check(it)
}
