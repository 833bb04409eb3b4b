package auth_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/zmqpipeline/zmqpipeline/transport/auth"
)

// FuzzParseKey: any text parses to a key that prints back as that text,
// or to an error; never a panic.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{clientPublic, serverSecret, "", "0000000000000000000000000000000000000000", "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hI~"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := auth.ParseKey(s)
		if err != nil {
			return
		}
		if k.String() != s {
			t.Fatalf("%q parsed to a key that prints as %q", s, k.String())
		}
		if _, err := auth.ParseKeyPair(s); err != nil {
			t.Fatalf("%q is a key but not a secret key: %v", s, err)
		}
	})
}

// FuzzParseAccess: an access list from a file parses, or fails with an
// error that names the source; what parses lists keys that each
// authorize only what their entry allows.
func FuzzParseAccess(f *testing.F) {
	f.Add(clientPublic + " worker:calc,collector  alice\n# a comment\n\n" + serverPublic + " all")
	f.Add(clientPublic + " metadata # a source\n")
	f.Add(clientPublic + " worker\n" + clientPublic + " collector\n")
	f.Add("garbage here\n")
	f.Fuzz(func(t *testing.T, text string) {
		a, err := auth.ParseAccess(strings.NewReader(text), "fuzz.txt")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.txt") {
				t.Fatalf("the error does not name the source: %v", err)
			}
			return
		}
		for _, e := range a.Entries() {
			got, ok := a.Lookup(e.Key.String())
			if !ok || got.Key != e.Key {
				t.Fatalf("entry %v is listed but not found", e.Key)
			}
		}
	})
}

// FuzzLoadKeyPair: a certificate file of any content loads to a key
// pair whose secret key is in the file, or to an error.
func FuzzLoadKeyPair(f *testing.F) {
	f.Add([]byte("metadata\ncurve\n    public-key = \"" + clientPublic + "\"\n    secret-key = \"" + clientSecret + "\"\n"))
	f.Add([]byte(clientSecret + "\n"))
	f.Add([]byte("curve\n    public-key = \"" + clientPublic + "\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		name := t.TempDir() + "/k.key_secret"
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Skip(err)
		}
		kp, err := auth.LoadKeyPair(name)
		if err != nil {
			return
		}
		if !bytes.Contains(data, []byte(kp.Secret.Z85())) {
			t.Fatalf("loaded a secret key that is not in the file")
		}
	})
}
