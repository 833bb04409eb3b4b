package engine_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAnOptionForAnotherRoleDoesNotCompile builds a small program that
// gives a worker's option to a distributor, and the same program with a
// fitting option: the first must not compile, naming the option, and the
// second must, so that the failure is the option's and not the set-up's.
func TestAnOptionForAnotherRoleDoesNotCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command; skipped with -short")
	}
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	require.NoError(t, err)
	build := func(option string) (string, error) {
		dir := t.TempDir()
		files := map[string]string{
			"go.mod": "module optioncheck\n\ngo 1.26\n\nrequire github.com/zmqpipeline/zmqpipeline v0.0.0\n\nreplace github.com/zmqpipeline/zmqpipeline => " + root + "\n",
			"go.sum": string(sum),
			"main.go": `package main

import "github.com/zmqpipeline/zmqpipeline/engine"

func main() {
	_, _ = engine.NewDistributor(engine.InProcess("x"), nil, ` + option + `)
}
`,
		}
		for name, text := range files {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
		}
		cmd := exec.Command("go", "build", "-o", os.DevNull, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := build("engine.WithQuorum(2)")
	require.NoError(t, err, "the program with a distributor's option must build:\n%s", out)
	out, err = build("engine.WithConcurrency(2)")
	require.Error(t, err, "a worker's option given to a distributor compiled")
	assert.Contains(t, out, "engine.WithConcurrency(2)")
	assert.Contains(t, out, "does not implement engine.DistributorOption")
}
