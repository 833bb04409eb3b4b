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
	env := transport.Envelope{Kind: transport.KindResult, TaskType: "resize", ItemID: 42, Attempt: 2, Token: tok}
	assert.True(t, coll.verify(&env))

	for name, forged := range map[string]transport.Envelope{
		"no token":          {TaskType: "resize", ItemID: 42, Attempt: 2},
		"another item":      {TaskType: "resize", ItemID: 43, Attempt: 2, Token: tok},
		"another attempt":   {TaskType: "resize", ItemID: 42, Attempt: 3, Token: tok},
		"another task type": {TaskType: "thumbnail", ItemID: 42, Attempt: 2, Token: tok},
		"one bit off":       {TaskType: "resize", ItemID: 42, Attempt: 2, Token: flipBit(tok)},
	} {
		assert.False(t, coll.verify(&forged), name)
	}
	other := newTokenSigner(newTokenKey()) // another run's key
	assert.False(t, other.verify(&env), "a token of another run")
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
		env := transport.Envelope{TaskType: strings.Repeat("x", i%50) + string(rune('a'+i%26)), ItemID: uint64(i)}
		require.False(t, coll.verify(&env))
	}
	assert.Empty(t, coll.types)
	env := transport.Envelope{TaskType: "real", ItemID: 1, Attempt: 1, Token: dist.sign("real", 1, 1)}
	require.True(t, coll.verify(&env))
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
	var key transport.Token
	for i := range key {
		key[i] = byte(i)
	}
	assert.Equal(t, newTokenSigner(key).sign(env.TaskType, env.ItemID, env.Attempt), env.Token)
}

func BenchmarkTokenVerify(b *testing.B) {
	key := newTokenKey()
	dist, coll := newTokenSigner(key), newTokenSigner(key)
	env := transport.Envelope{TaskType: "resize", ItemID: 1, Attempt: 1}
	env.Token = dist.sign(env.TaskType, env.ItemID, env.Attempt)
	for b.Loop() {
		if !coll.verify(&env) {
			b.Fatal("token did not check")
		}
	}
}
