package auth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// Key files are ZeroMQ certificates, as czmq's zcert and pyzmq's
// zmq.auth write them: NAME.key holds the public key, NAME.key_secret the
// public and the secret key, each as `public-key = "…"` and
// `secret-key = "…"` under a `curve` section. A file that holds nothing
// but a key in Z85 (and # comments) is read too.

// KeyFiles returns the names of the public and the secret certificate of
// base: base.key and base.key_secret.
func KeyFiles(base string) (public, secret string) { return base + ".key", base + ".key_secret" }

// WriteKeyPair writes kp to base.key (the public certificate, mode 0644)
// and base.key_secret (the secret one, mode 0600). It never overwrites a
// file that exists.
func WriteKeyPair(base string, kp KeyPair) error {
	public, secret := KeyFiles(base)
	now := time.Now().UTC().Format("2006-01-02 15:04:05")
	pub := fmt.Sprintf(`#   ****  Generated on %s by zmqpipeline  ****
#   ZeroMQ CURVE Public Certificate
#   Give it to the processes that connect to this one, or list it in
#   their access list.

metadata
curve
    public-key = "%s"
`, now, kp.Public)
	sec := fmt.Sprintf(`#   ****  Generated on %s by zmqpipeline  ****
#   ZeroMQ CURVE **Secret** Certificate
#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.

metadata
curve
    public-key = "%s"
    secret-key = "%s"
`, now, kp.Public, kp.Secret.Z85())
	for _, f := range []struct {
		name, text string
		mode       os.FileMode
	}{{secret, sec, 0o600}, {public, pub, 0o644}} {
		file, err := os.OpenFile(f.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return fmt.Errorf("auth: write key: %w", err)
		}
		_, err = file.WriteString(f.text)
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("auth: write key %s: %w", f.name, err)
		}
	}
	return nil
}

// certificate is what a key file says.
type certificate struct {
	public, secret string // Z85; empty when absent
}

// readCertificate reads a ZeroMQ certificate, or a file with a bare key in
// Z85 (returned as bare).
func readCertificate(name string) (c certificate, bare string, err error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return c, "", fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			v = strings.Trim(strings.TrimSpace(v), `"'`)
			switch strings.TrimSpace(k) {
			case "public-key":
				c.public = v
			case "secret-key":
				c.secret = v
			}
			continue
		}
		if len(line) == 40 && bare == "" {
			bare = line
		}
	}
	if c.public == "" && c.secret == "" && bare == "" {
		return c, "", fmt.Errorf("%w: %s holds no key (want a ZeroMQ certificate, or a key in Z85)", ErrBadKey, name)
	}
	return c, bare, nil
}

// LoadKeyPair reads a process's key pair from a secret certificate (such
// as WriteKeyPair's base.key_secret), or from a file that holds the secret
// key alone in Z85. A public key in the file must match the secret one.
func LoadKeyPair(name string) (KeyPair, error) {
	c, bare, err := readCertificate(name)
	if err != nil {
		return KeyPair{}, err
	}
	z := c.secret
	if z == "" {
		z = bare
	}
	if z == "" {
		return KeyPair{}, fmt.Errorf("%w: %s holds no secret key (is it the public certificate?)", ErrBadKey, name)
	}
	s, err := ParseSecretKey(z)
	if err != nil {
		return KeyPair{}, fmt.Errorf("%s: %w", name, err)
	}
	kp, err := KeyPairFromSecret(s)
	if err != nil {
		return KeyPair{}, fmt.Errorf("%s: %w", name, err)
	}
	if c.public != "" && c.public != kp.Public.String() {
		return KeyPair{}, fmt.Errorf("%w: %s: its public key is not the one of its secret key", ErrBadKey, name)
	}
	return kp, nil
}

// ParseKeyPair returns the key pair of a secret key given in Z85, as an
// environment variable may hold it.
func ParseKeyPair(secretZ85 string) (KeyPair, error) {
	s, err := ParseSecretKey(strings.TrimSpace(secretZ85))
	if err != nil {
		return KeyPair{}, err
	}
	return KeyPairFromSecret(s)
}

// LoadPublicKey reads a public key given as a file (a ZeroMQ certificate,
// public or secret, or a file with the key alone) or, when no such file
// exists, as the key itself in Z85.
func LoadPublicKey(fileOrZ85 string) (Key, error) {
	if _, err := os.Stat(fileOrZ85); errors.Is(err, fs.ErrNotExist) {
		k, perr := ParseKey(strings.TrimSpace(fileOrZ85))
		if perr != nil {
			return Key{}, fmt.Errorf("%w: %q is neither a file nor a key in Z85", ErrBadKey, fileOrZ85)
		}
		return k, nil
	}
	c, bare, err := readCertificate(fileOrZ85)
	if err != nil {
		return Key{}, err
	}
	switch {
	case c.public != "":
		return ParseKey(c.public)
	case c.secret != "":
		kp, err := ParseKeyPair(c.secret)
		return kp.Public, err
	}
	k, err := ParseKey(bare)
	if err != nil {
		return Key{}, fmt.Errorf("%s: %w", fileOrZ85, err)
	}
	return k, nil
}
