// Package python_test runs examples/python/worker.py, a worker written in
// Python from PROTOCOL.md alone, in a run over tcp beside a Go worker.
package python_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/transport/auth"
	"github.com/zmqpipeline/zmqpipeline/transport/zmqtransport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// python returns a Python 3 that has the zmq and msgpack modules: the one
// on PATH, or Debian's, where make deps installs python3-zmq and
// python3-msgpack.
func python(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", "import zmq, msgpack").Run() == nil {
			return py
		}
	}
	t.Fatal("no python3 with the zmq and msgpack modules: run make deps, which installs Debian's python3-zmq and python3-msgpack")
	return ""
}

// record is what the collector saw of one task type.
type record struct {
	mu       sync.Mutex
	seen     map[string]map[uint64]int
	payloads map[string][][]byte
	values   map[uint64]int64
	failures map[uint64]string
}

func (r *record) HandleResult(ctx context.Context, res *engine.Result) (any, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count(res.TaskType, res.ItemID)
	r.payloads[res.TaskType] = append(r.payloads[res.TaskType], res.Payload())
	if res.TaskType == "P" {
		var v int64
		if err := res.Decode(&v); err != nil {
			return nil, err
		}
		r.values[res.ItemID] = v
	}
	return nil, nil
}

func (r *record) failure(ctx context.Context, f *engine.ItemError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count(f.TaskType, f.ItemID)
	r.failures[f.ItemID] = f.Message
}

func (r *record) count(tt string, id uint64) {
	if r.seen[tt] == nil {
		r.seen[tt] = map[uint64]int{}
	}
	r.seen[tt][id]++
}

// TestPythonWorkerBesideAGoWorker runs task type C (the seed's sleeping
// items, no result) on a Go worker and a Python worker together, and task
// type P (numbers, squared; strings, which fail) on a second Python worker:
// without keys, and with CURVE keys, the Python workers' from certificate
// files as the Go programs' -keygen writes them.
func TestPythonWorkerBesideAGoWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Python processes; skipped with -short")
	}
	py := python(t)
	t.Run("without keys", func(t *testing.T) { runBeside(t, py, &keys{}) })
	t.Run("with keys", func(t *testing.T) { runBeside(t, py, newKeys(t)) })
}

// keys are a keyed run's: a key pair per role, and the Python workers'
// files, in dir; the zero keys mean a run without them.
type keys struct {
	dist, coll, goWorker, py auth.KeyPair
	dir                      string
}

func newKeys(t *testing.T) *keys {
	t.Helper()
	k := &keys{dir: t.TempDir()}
	for name, kp := range map[string]*auth.KeyPair{"dist": &k.dist, "coll": &k.coll, "go": &k.goWorker, "py": &k.py} {
		var err error
		*kp, err = auth.GenerateKeyPair()
		require.NoError(t, err)
		require.NoError(t, auth.WriteKeyPair(filepath.Join(k.dir, name), *kp))
	}
	return k
}

// secure returns the option that gives a component a ZeroMQ transport with
// cfg's keys; none without keys.
func (k *keys) secure(t *testing.T, cfg auth.Config) []engine.Option {
	t.Helper()
	if k.dir == "" {
		return nil
	}
	tr, err := zmqtransport.New(zmqtransport.Options{}).Secure(cfg)
	require.NoError(t, err)
	return []engine.Option{engine.WithTransport(tr)}
}

// access lists the collector and both kinds of worker.
func (k *keys) access(t *testing.T) *auth.Access {
	t.Helper()
	if k.dir == "" {
		return nil
	}
	a, err := auth.NewAccess(
		auth.Entry{Key: k.coll.Public, Roles: []string{"collector"}},
		auth.Entry{Key: k.goWorker.Public, Roles: []string{"worker:C"}},
		auth.Entry{Key: k.py.Public, Roles: []string{"worker"}},
	)
	require.NoError(t, err)
	return a
}

// pyFlags are the Python worker's key flags.
func (k *keys) pyFlags() []string {
	if k.dir == "" {
		return nil
	}
	return []string{"--key", filepath.Join(k.dir, "py.key_secret"),
		"--distributor-key", filepath.Join(k.dir, "dist.key"), "--collector-key", filepath.Join(k.dir, "coll.key")}
}

func runBeside(t *testing.T, py string, k *keys) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const cItems, pItems = 120, 20
	sleepy := map[string]any{"workload": 0.003}
	numbers := func(i int) (any, error) {
		if i%5 == 0 {
			return "bad", nil
		}
		return i, nil
	}
	d, err := engine.NewDistributor(engine.Endpoints{Distributor: "tcp://127.0.0.1:0"}, []engine.TaskSpec{
		{Type: "C", Task: engine.Items(cItems, func(int) (any, error) { return sleepy, nil })},
		{Type: "P", Task: engine.Items(pItems, numbers)},
	}, append(options[engine.DistributorOption](k.secure(t, auth.Config{Key: k.dist, Access: k.access(t)})),
		engine.WithQuorum(3))...) // the Go worker and both Python workers are in before any item goes out
	require.NoError(t, err)
	errs := make(chan error, 3)
	go func() { errs <- d.Run(ctx) }()
	<-d.Bound()
	rec := &record{seen: map[string]map[uint64]int{}, payloads: map[string][][]byte{}, values: map[uint64]int64{}, failures: map[uint64]string{}}
	c, err := engine.NewCollector(engine.Endpoints{Distributor: d.Addr(), Collector: "tcp://127.0.0.1:0"}, rec,
		append(options[engine.CollectorOption](k.secure(t, auth.Config{Key: k.coll, Server: k.dist.Public, Access: k.access(t)})),
			engine.WithFailureHandler(rec.failure))...)
	require.NoError(t, err)
	go func() { errs <- c.Run(ctx) }()
	<-c.Bound()
	ep := engine.Endpoints{Distributor: d.Addr(), Collector: c.Addr()}

	goWorker, err := engine.NewWorker(ep, "C", engine.HandlerFunc(func(ctx context.Context, job *engine.Job) (any, error) {
		var w struct {
			Workload float64 `msgpack:"workload"`
		}
		if err := job.Decode(&w); err != nil {
			return nil, err
		}
		time.Sleep(time.Duration(w.Workload * float64(time.Second)))
		return nil, nil
	}), options[engine.WorkerOption](k.secure(t, auth.Config{Key: k.goWorker, Servers: map[string]auth.Key{ep.Distributor: k.dist.Public, ep.Collector: k.coll.Public}}))...)
	require.NoError(t, err)
	go func() { errs <- goWorker.Run(ctx) }()
	pyC := startPython(t, ctx, py, ep, "C", k.pyFlags()...)
	pyP := startPython(t, ctx, py, ep, "P", k.pyFlags()...)
	for range 3 {
		require.NoError(t, <-errs)
	}
	handledC, handledP := pyC.wait(t), pyP.wait(t)

	for tt, n := range map[string]int{"C": cItems, "P": pItems} {
		require.Len(t, rec.seen[tt], n, "every %s item collected", tt)
		for id, times := range rec.seen[tt] {
			require.Equal(t, 1, times, "%s item %d collected %d times", tt, id, times)
		}
	}
	assert.Positive(t, goWorker.Executed(), "the Go worker got work")
	assert.Positive(t, handledC, "the Python worker got work")
	assert.Equal(t, int64(cItems), goWorker.Executed()+int64(handledC))
	for _, p := range rec.payloads["C"] {
		assert.Equal(t, []byte{0xc0}, p, "no result is MessagePack's nil, from Go and Python alike")
	}
	assert.Equal(t, pItems, handledP, "a permanent failure is not tried again")
	assert.Len(t, rec.failures, pItems/5, "the strings failed")
	for _, msg := range rec.failures {
		assert.Equal(t, "cannot work on 'bad'", msg)
	}
	// Item ids follow the order items were produced across both types,
	// so the squares are compared as a set.
	var want, got []int64
	for i := range pItems {
		if i%5 != 0 {
			want = append(want, int64(i*i))
		}
	}
	for _, v := range rec.values {
		got = append(got, v)
	}
	assert.ElementsMatch(t, want, got, "every number was squared, in Python")
}

// options turns common options into one role's.
func options[O any](common []engine.Option) []O {
	out := make([]O, 0, len(common))
	for _, o := range common {
		out = append(out, any(o).(O))
	}
	return out
}

type pyWorker struct {
	name string
	cmd  *exec.Cmd
	out  bytes.Buffer
}

func startPython(t *testing.T, ctx context.Context, py string, ep engine.Endpoints, taskType string, flags ...string) *pyWorker {
	t.Helper()
	w := &pyWorker{name: "python worker " + taskType}
	args := append([]string{"worker.py", "--distributor", ep.Distributor, "--collector", ep.Collector, "--type", taskType}, flags...)
	w.cmd = exec.CommandContext(ctx, py, args...)
	w.cmd.Stdout, w.cmd.Stderr = &w.out, &w.out
	w.cmd.WaitDelay = 5 * time.Second
	require.NoError(t, w.cmd.Start())
	return w
}

var handledLine = regexp.MustCompile(`handled (\d+) items`)

// wait waits for the worker to exit 0 and returns how many items it
// handled.
func (w *pyWorker) wait(t *testing.T) int {
	t.Helper()
	err := w.cmd.Wait()
	require.NoError(t, err, "%s:\n%s", w.name, w.out.String())
	m := handledLine.FindStringSubmatch(w.out.String())
	require.NotNil(t, m, "%s did not report:\n%s", w.name, w.out.String())
	n, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	return n
}
