// Package auth holds what authenticating a pipeline's peers takes, apart
// from any transport: CURVE key pairs, in ZeroMQ's Z85 text form and in
// ZeroMQ's certificate files; the access list that says which client keys
// may take part, and in which roles; and the interfaces through which a
// transport offers authentication (Securer) and a Listener tells the
// engine who sent what (Authorizer). Package zmqtransport implements both
// with CURVE and ZAP; the engine asks the Listener about every hello,
// metadata and result, so a key can do only what the access list grants
// it.
//
// A process has one key pair. The distributor's and the collector's are
// server keys: peers that connect to them must know their public keys.
// Workers, collectors and metadata sources present theirs as client keys,
// which the listeners accept only if the access list names them.
package auth

import (
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
)

// KeyLen is the size of a CURVE key, public or secret.
const KeyLen = 32

// Key is a CURVE public key. Its String is the key in Z85, the 40
// characters ZeroMQ uses in configuration.
type Key [KeyLen]byte

// SecretKey is a CURVE secret key. Its String does not show it; Z85 does.
type SecretKey [KeyLen]byte

// KeyPair is a process's CURVE key pair.
type KeyPair struct {
	Public Key
	Secret SecretKey
}

// ErrBadKey is wrapped by every error about a key that cannot be read.
var ErrBadKey = errors.New("auth: bad key")

// String returns the key in Z85.
func (k Key) String() string { return z85Encode(k[:]) }

// IsZero reports whether k is the zero key, which no key pair has.
func (k Key) IsZero() bool { return k == Key{} }

// String hides the key, so that logging a SecretKey or a KeyPair by
// mistake shows no secret.
func (SecretKey) String() string { return "(secret key)" }

// Z85 returns the secret key in Z85, for writing it where it belongs.
func (s SecretKey) Z85() string { return z85Encode(s[:]) }

// String shows the public key only.
func (kp KeyPair) String() string { return "key pair " + kp.Public.String() }

// ParseKey reads a public key in Z85 (40 characters).
func ParseKey(z85 string) (Key, error) {
	var k Key
	err := parseZ85(k[:], z85)
	return k, err
}

// ParseSecretKey reads a secret key in Z85 (40 characters).
func ParseSecretKey(z85 string) (SecretKey, error) {
	var s SecretKey
	err := parseZ85(s[:], z85)
	return s, err
}

func parseZ85(dst []byte, z85 string) error {
	if len(z85) != 40 {
		return fmt.Errorf("%w: a key in Z85 is 40 characters, not %d", ErrBadKey, len(z85))
	}
	b, err := z85Decode(z85)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	copy(dst, b)
	return nil
}

// GenerateKeyPair returns a new random key pair.
func GenerateKeyPair() (KeyPair, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("auth: generate key pair: %w", err)
	}
	var kp KeyPair
	copy(kp.Secret[:], priv.Bytes())
	copy(kp.Public[:], priv.PublicKey().Bytes())
	return kp, nil
}

// KeyPairFromSecret returns the key pair of a secret key: CURVE's public
// key is X25519 of the secret key and the base point.
func KeyPairFromSecret(s SecretKey) (KeyPair, error) {
	priv, err := ecdh.X25519().NewPrivateKey(s[:])
	if err != nil {
		return KeyPair{}, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	kp := KeyPair{Secret: s}
	copy(kp.Public[:], priv.PublicKey().Bytes())
	if kp.Public.IsZero() {
		return KeyPair{}, fmt.Errorf("%w: a secret key of low order, with no usable public key", ErrBadKey)
	}
	return kp, nil
}
