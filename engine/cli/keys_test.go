package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine/cli"
	"github.com/zmqpipeline/zmqpipeline/engine/cli/clitest"
	"github.com/zmqpipeline/zmqpipeline/transport/auth"
)

// keygen runs the test program's -keygen for base and returns the public
// key it printed.
func keygen(t *testing.T, base string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-keygen", base)
	cmd.Env = append(os.Environ(), programEnv+"=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	m := regexp.MustCompile(`public key: (\S{40})`).FindStringSubmatch(string(out))
	require.NotNil(t, m, "%s", out)
	public, secret := auth.KeyFiles(base)
	assert.FileExists(t, public)
	assert.FileExists(t, secret)
	return m[1]
}

// TestKeysAcrossProcesses runs the program once per role over tcp, each
// process with its own key from -keygen and the distributor and collector
// with an access list, while three workers that should not get in try: a
// key not on the list, the wrong distributor key, and no key. Each exits
// with ExitFailed, saying it was refused; the run completes.
func TestKeysAcrossProcesses(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	base := func(name string) string { return filepath.Join(dir, name) }
	secret := func(name string) string { _, s := auth.KeyFiles(base(name)); return s }
	public := func(name string) string { p, _ := auth.KeyFiles(base(name)); return p }
	keysOf := map[string]string{}
	for _, name := range []string{"dist", "coll", "w1", "stranger"} {
		keysOf[name] = keygen(t, base(name))
	}
	access := filepath.Join(dir, "access.txt")
	require.NoError(t, os.WriteFile(access, []byte(strings.Join([]string{
		"# key  roles  name",
		keysOf["coll"] + "  collector  coll",
		keysOf["w1"] + "  worker:square  w1",
		"",
	}, "\n")), 0o644))

	const free = "tcp://127.0.0.1:0"
	distributor := start(t, "distributor", "-role", "distributor", "-distributor", free, "-collector", "tcp://127.0.0.1:1",
		"-key", secret("dist"), "-access", access, "-n", "200", "-log", "info")
	d := distributor.Listening(t, "distributor")
	collector := start(t, "collector", "-role", "collector", "-distributor", d, "-collector", free,
		"-key", secret("coll"), "-access", access, "-distributor-key", public("dist"))
	c := collector.Listening(t, "collector")
	ends := []string{"-role", "worker", "-distributor", d, "-collector", c}
	refused := map[string]*clitest.Process{
		"a key not on the list": start(t, "stranger", append(ends, "-key", secret("stranger"),
			"-distributor-key", public("dist"), "-collector-key", public("coll"))...),
		"the wrong distributor key": start(t, "misled", append(ends, "-key", secret("w1"),
			"-distributor-key", keysOf["stranger"], "-collector-key", public("coll"))...),
		"no key": start(t, "keyless", ends...),
	}
	worker := start(t, "worker", append(ends, "-key", secret("w1"), "-handler", "slow",
		"-distributor-key", public("dist"), "-collector-key", keysOf["coll"])...)
	for what, p := range refused {
		assert.Equal(t, cli.ExitFailed, p.ExitCode(t), "%s:\n%s", what, p.Output())
		assert.Contains(t, p.Output(), "refused", what)
	}
	for _, p := range []*clitest.Process{worker, collector, distributor} {
		assert.Equal(t, cli.ExitOK, p.ExitCode(t), "%s:\n%s", p.Name(), p.Output())
	}
	assert.Contains(t, collector.Output(), "sum 2686700 of 200 results")
	assert.Contains(t, distributor.Output(), "connection refused", "the distributor logged the stranger's key")
	assert.Contains(t, distributor.Output(), keysOf["stranger"])
}

func TestKeyUsageErrors(t *testing.T) {
	dir := t.TempDir()
	kp, err := auth.GenerateKeyPair()
	require.NoError(t, err)
	base := filepath.Join(dir, "k")
	require.NoError(t, auth.WriteKeyPair(base, kp))
	pub, sec := auth.KeyFiles(base)
	var s squares
	build := func(*cli.Config) (*cli.Pipeline, error) { return s.pipeline(1, square), nil }
	ipc := []string{"-distributor", "ipc://" + filepath.Join(dir, "d.ipc"), "-collector", "ipc://" + filepath.Join(dir, "c.ipc")}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"access without a key", []string{"-access", "x"}, "-access needs -key"},
		{"keys on inproc", []string{"-key", sec}, "keys protect ipc:// and tcp://"},
		{"distributor without an access list", append([]string{"-role", "distributor", "-key", sec}, ipc...), "needs -access"},
		{"worker without the collector key", append([]string{"-role", "worker", "-key", sec, "-distributor-key", pub}, ipc...), "needs -collector-key"},
		{"the public certificate as the key", append([]string{"-key", pub}, ipc...), "no secret key"},
		{"a missing access list", append([]string{"-role", "collector", "-key", sec, "-access", filepath.Join(dir, "none"), "-distributor-key", pub}, ipc...), "none"},
		{"a bad server key", append([]string{"-role", "metadata", "-key", sec, "-distributor-key", "not-a-key"}, ipc...), `"not-a-key" is neither a file nor a key`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := run(t, tt.args, build)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Equal(t, cli.ExitUsage, cli.ExitCode(err), "%v", err)
		})
	}
}

// With keys and no access list, a process that runs every role trusts its
// own key, and the run completes over ipc.
func TestAllInOneWithKeys(t *testing.T) {
	dir := t.TempDir()
	kp, err := auth.GenerateKeyPair()
	require.NoError(t, err)
	base := filepath.Join(dir, "k")
	require.NoError(t, auth.WriteKeyPair(base, kp))
	_, sec := auth.KeyFiles(base)
	var s squares
	proc, err := run(t, []string{"-key", sec, "-distributor", "ipc://" + filepath.Join(dir, "d.ipc"), "-collector", "ipc://" + filepath.Join(dir, "c.ipc")},
		func(*cli.Config) (*cli.Pipeline, error) { return s.pipeline(10, square), nil })
	require.NoError(t, err)
	assert.NotNil(t, proc.Config.Security)
	assert.Equal(t, 385, s.sum)
}
