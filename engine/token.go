package engine

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// Assignment tokens let the collector tell real work from forgeries
// without asking the distributor: the distributor makes a key for each run
// and hands it to the collector it welcomes, stamps every work item with a
// token made with that key, and the worker repeats the token in its result.
// The collector handles a result only if its token checks. A peer that was
// never handed the item (or not that attempt, or not for that task type)
// cannot make the token, so its forgeries are dropped and counted.
//
// The token of a hand-out is AES-128 of one block (the item id and the
// attempt) under a key derived for the task type: HMAC-SHA256 of the run's
// key over the task type. One AES block costs tens of nanoseconds, so
// checking every result costs the hot path next to nothing; the derived
// keys are computed once per task type.

// tokenKeyLabel separates the derivation of per-type keys from any other
// use of an HMAC with the run's key.
const tokenKeyLabel = "zmqpipeline assignment token v1\x00"

// tokenSigner makes and checks the assignment tokens of one run. It is not
// safe for concurrent use.
type tokenSigner struct {
	key     transport.Token
	types   map[string]cipher.Block
	in, out transport.Token // scratch: slices of locals would escape through cipher.Block
}

// newTokenKey returns a fresh random key for a run.
func newTokenKey() transport.Token {
	var k transport.Token
	_, _ = rand.Read(k[:]) // crypto/rand.Read never fails (Go 1.24+)
	return k
}

func newTokenSigner(key transport.Token) *tokenSigner {
	return &tokenSigner{key: key, types: make(map[string]cipher.Block)}
}

// block returns the cipher for taskType's tokens, and whether it was
// kept already.
func (s *tokenSigner) block(taskType string) (b cipher.Block, kept bool) {
	if b, ok := s.types[taskType]; ok {
		return b, true
	}
	mac := hmac.New(sha256.New, s.key[:])
	mac.Write([]byte(tokenKeyLabel))
	mac.Write([]byte(taskType))
	b, err := aes.NewCipher(mac.Sum(nil)[:16])
	if err != nil {
		panic("engine: aes.NewCipher with a 16-byte key: " + err.Error()) // unreachable
	}
	return b, false
}

// token returns the token of one hand-out, made with b.
func (s *tokenSigner) token(b cipher.Block, item uint64, attempt uint32) transport.Token {
	s.in = transport.Token{}
	binary.BigEndian.PutUint64(s.in[0:8], item)
	binary.BigEndian.PutUint32(s.in[8:12], attempt)
	b.Encrypt(s.out[:], s.in[:])
	return s.out
}

// sign returns the token for handing out attempt of item.
func (s *tokenSigner) sign(taskType string, item uint64, attempt uint32) transport.Token {
	return s.token(s.signing(taskType), item, attempt)
}

// signing returns the cipher that signs taskType's hand-outs, to sign a
// batch of them with token.
func (s *tokenSigner) signing(taskType string) cipher.Block {
	b, kept := s.block(taskType)
	if !kept {
		s.types[taskType] = b
	}
	return b
}

// verifier returns what checks the tokens of a batch of taskType's
// results, with one look-up for the batch.
func (s *tokenSigner) verifier(taskType string) tokenVerifier {
	b, kept := s.block(taskType)
	return tokenVerifier{s: s, taskType: taskType, b: b, kept: kept}
}

// tokenVerifier checks the tokens of one task type's results.
type tokenVerifier struct {
	s        *tokenSigner
	taskType string
	b        cipher.Block
	kept     bool
}

// check reports whether it carries the token of the hand-out it claims
// to answer.
func (v *tokenVerifier) check(it *transport.Item) bool {
	want := v.s.token(v.b, it.ID, it.Attempt)
	if subtle.ConstantTimeCompare(want[:], it.Token[:]) != 1 {
		return false
	}
	if !v.kept {
		v.s.types[v.taskType] = v.b
		v.kept = true
	}
	return true
}
