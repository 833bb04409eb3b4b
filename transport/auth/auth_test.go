package auth_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The key pairs of libzmq's own CURVE tests.
const (
	clientPublic = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
	clientSecret = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"
	serverPublic = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
	serverSecret = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
)

func TestKeysMatchLibzmq(t *testing.T) {
	for secret, public := range map[string]string{clientSecret: clientPublic, serverSecret: serverPublic} {
		kp, err := auth.ParseKeyPair(secret)
		require.NoError(t, err)
		assert.Equal(t, public, kp.Public.String(), "the public key of %s", secret)
		assert.Equal(t, secret, kp.Secret.Z85())
	}
}

func TestZ85RoundTripAndErrors(t *testing.T) {
	kp, err := auth.GenerateKeyPair()
	require.NoError(t, err)
	back, err := auth.ParseKey(kp.Public.String())
	require.NoError(t, err)
	assert.Equal(t, kp.Public, back)
	derived, err := auth.KeyPairFromSecret(kp.Secret)
	require.NoError(t, err)
	assert.Equal(t, kp, derived)

	for _, bad := range []string{"", "short", strings.Repeat("a", 39), strings.Repeat(" ", 40), strings.Repeat("#", 40)} {
		_, err := auth.ParseKey(bad)
		assert.ErrorIs(t, err, auth.ErrBadKey, "%q", bad)
	}
	_, err = auth.ParseKey(strings.Repeat("#", 5) + clientPublic[5:]) // overflows 32 bits
	assert.ErrorIs(t, err, auth.ErrBadKey)
}

func TestSecretsDoNotPrint(t *testing.T) {
	kp, err := auth.ParseKeyPair(serverSecret)
	require.NoError(t, err)
	for _, s := range []string{kp.Secret.String(), kp.String()} {
		assert.NotContains(t, s, serverSecret)
	}
	assert.Contains(t, kp.String(), serverPublic)
}

func TestKeyFilesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "worker-a")
	kp, err := auth.GenerateKeyPair()
	require.NoError(t, err)
	require.NoError(t, auth.WriteKeyPair(base, kp))
	require.Error(t, auth.WriteKeyPair(base, kp), "never overwrites")
	public, secret := auth.KeyFiles(base)
	info, err := os.Stat(secret)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	got, err := auth.LoadKeyPair(secret)
	require.NoError(t, err)
	assert.Equal(t, kp, got)
	_, err = auth.LoadKeyPair(public)
	assert.ErrorContains(t, err, "no secret key")
	for _, from := range []string{public, secret, kp.Public.String()} {
		pk, err := auth.LoadPublicKey(from)
		require.NoError(t, err, from)
		assert.Equal(t, kp.Public, pk, from)
	}
	_, err = auth.LoadPublicKey(filepath.Join(dir, "missing.key"))
	assert.ErrorIs(t, err, auth.ErrBadKey)

	bare := filepath.Join(dir, "bare")
	require.NoError(t, os.WriteFile(bare, []byte("# the secret key\n"+serverSecret+"\n"), 0o600))
	got, err = auth.LoadKeyPair(bare)
	require.NoError(t, err)
	assert.Equal(t, serverPublic, got.Public.String())

	lying := filepath.Join(dir, "lying")
	require.NoError(t, os.WriteFile(lying, []byte("curve\n    public-key = \""+clientPublic+"\"\n    secret-key = \""+serverSecret+"\"\n"), 0o600))
	_, err = auth.LoadKeyPair(lying)
	assert.ErrorContains(t, err, "not the one of its secret key")
}

// keyWithHash returns a public key that holds a #, which must not start a
// comment.
func keyWithHash(t *testing.T) string {
	for range 100 {
		kp, err := auth.GenerateKeyPair()
		require.NoError(t, err)
		if k := kp.Public.String(); strings.Contains(k, "#") {
			return k
		}
	}
	t.Fatal("no key with a # in 100") // each has one with odds of 1 in 3
	return ""
}

func TestAccessList(t *testing.T) {
	hashKey := keyWithHash(t)
	text := `# who may take part
` + clientPublic + `   worker:resize,worker:crop  worker-a  # the resizer
` + serverPublic + `   collector,metadata,status
#` + clientSecret + ` all  a commented-out line
` + hashKey + ` worker  hash#1
`
	a, err := auth.ParseAccess(strings.NewReader(text), "access.txt")
	require.NoError(t, err)
	require.Len(t, a.Entries(), 3)
	assert.Equal(t, "hash#1", a.Entries()[2].Name, "a key and a name may hold #")
	assert.Equal(t, "worker-a", a.Entries()[0].Name)
	assert.Equal(t, serverPublic[:8], a.Entries()[1].Name, "an entry without a name is named after its key")

	assert.NoError(t, a.Authorize(clientPublic, transport.RoleWorker, "resize"))
	assert.NoError(t, a.Authorize(serverPublic, transport.RoleCollector, ""))
	assert.NoError(t, a.Authorize(serverPublic, transport.RoleMetadata, ""))
	assert.NoError(t, a.Authorize(serverPublic, transport.RoleObserver, ""))
	assert.ErrorIs(t, a.Authorize(clientPublic, transport.RoleObserver, ""), auth.ErrForbidden, "status is a role of its own")
	err = a.Authorize(clientPublic, transport.RoleWorker, "thumbnail")
	assert.ErrorIs(t, err, auth.ErrForbidden)
	assert.ErrorContains(t, err, `may not be a worker of task type "thumbnail"; it may be: worker:resize, worker:crop`)
	assert.ErrorIs(t, a.Authorize(clientPublic, transport.RoleCollector, ""), auth.ErrForbidden)
	assert.ErrorIs(t, a.Authorize(serverPublic, transport.RoleWorker, "resize"), auth.ErrForbidden)
	kp, err := auth.GenerateKeyPair()
	require.NoError(t, err)
	assert.ErrorContains(t, a.Authorize(kp.Public.String(), transport.RoleWorker, "resize"), "not on the access list")
	assert.ErrorIs(t, a.Authorize("", transport.RoleWorker, "resize"), auth.ErrUnauthenticated)

	all, err := auth.NewAccess(auth.Entry{Key: kp.Public, Roles: []string{"all"}})
	require.NoError(t, err)
	assert.NoError(t, all.Authorize(kp.Public.String(), transport.RoleWorker, "anything"))
}

func TestAccessListErrorsNameTheLine(t *testing.T) {
	for text, want := range map[string]string{
		clientPublic + "\n":                                         "access.txt:1: want a key, its roles and a name",
		"# ok\n" + "not-a-key worker\n":                             "access.txt:2: auth: bad key",
		clientPublic + " boss\n":                                    `access.txt:1: auth: access list: key ` + clientPublic + `: role "boss"`,
		clientPublic + " worker a\n" + clientPublic + " worker b\n": "access.txt:2: auth: access list: key " + clientPublic + " is listed twice",
		clientPublic + " worker: a\n":                               `role "worker:"`,
	} {
		_, err := auth.ParseAccess(strings.NewReader(text), "access.txt")
		assert.ErrorContains(t, err, want, "%q", text)
	}
}

func TestConfigServerKeysMatchCanonicalEndpoints(t *testing.T) {
	kp, err := auth.ParseKeyPair(clientSecret)
	require.NoError(t, err)
	srv, err := auth.ParseKey(serverPublic)
	require.NoError(t, err)
	cfg := auth.Config{Key: kp, Servers: map[string]auth.Key{"tcp://127.0.0.1:5555": srv}}
	require.NoError(t, cfg.Check())
	ep, err := transport.ParseEndpoint("tcp://127.0.0.1:5555")
	require.NoError(t, err)
	got, err := cfg.ServerKey(ep)
	require.NoError(t, err)
	assert.Equal(t, srv, got)
	other, err := transport.ParseEndpoint("tcp://127.0.0.1:5556")
	require.NoError(t, err)
	_, err = cfg.ServerKey(other)
	assert.ErrorIs(t, err, auth.ErrNoServerKey)

	assert.Error(t, (&auth.Config{}).Check(), "no key pair")
	bad := auth.Config{Key: auth.KeyPair{Public: srv, Secret: kp.Secret}}
	assert.ErrorIs(t, bad.Check(), auth.ErrBadKey, "a public key that is not the secret key's")
}
