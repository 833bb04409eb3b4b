package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/engine"
)

// lineWriter keeps what is written, and tells seen once a write matches.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	match *regexp.Regexp
	seen  chan struct{}
	once  sync.Once
}

func newLineWriter(match string) *lineWriter {
	return &lineWriter{match: regexp.MustCompile(match), seen: make(chan struct{})}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.match.Match(p) {
		w.once.Do(func() { close(w.seen) })
	}
	return w.buf.Write(p)
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// heldPipeline is a pipeline of two task types of n items each, the second
// depending on the first, whose items from held on wait for release: the
// test sees the progress of a run that is surely still going.
func heldPipeline(n, held int, release <-chan struct{}) *Pipeline {
	handler := engine.HandlerFunc(func(ctx context.Context, job *engine.Job) (any, error) {
		var i int
		if err := job.Decode(&i); err != nil {
			return nil, err
		}
		if job.TaskType == "second" && i >= held {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return nil, nil
	})
	items := func(i int) (any, error) { return i, nil }
	return &Pipeline{
		Tasks: []engine.TaskSpec{
			{Type: "first", Task: engine.Items(n, items)},
			{Type: "second", Task: engine.Items(n, items), DependsOn: []string{"first"}},
		},
		Workers: []Worker{{Type: "first", Handler: handler}, {Type: "second", Handler: handler}},
		Collector: engine.ResultFunc(func(context.Context, *engine.Result) (any, error) {
			return nil, nil
		}),
	}
}

// runShowing runs p with args, showing its progress on out.
func runShowing(t *testing.T, args []string, p *Pipeline, out progressOutput) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fs := flag.NewFlagSet("progresstest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, err := run(ctx, fs, args, func(*Config) (*Pipeline, error) { return p, nil }, nil,
		func(cfg *Config) progressOutput { out.every = cfg.ProgressEvery; return out })
	return err
}

func TestProgressLinesWhenNotATerminal(t *testing.T) {
	release := make(chan struct{})
	// The held items wait until a line shows the first type complete.
	w := newLineWriter(`first 40/40 complete, second \d+/40 running`)
	go func() {
		select {
		case <-w.seen:
		case <-time.After(20 * time.Second):
		}
		close(release)
	}()
	err := runShowing(t, []string{"-progress-every", "20ms"}, heldPipeline(40, 10, release), progressOutput{w: w})
	require.NoError(t, err)
	out := w.String()
	require.Contains(t, out, "first 40/40 complete", "no progress line showed the first type complete:\n%s", out)

	line := regexp.MustCompile(`^progress: (\d+)/80 items complete \(\d+\.\d%\), \d+(\.\d)? items/s(, [0-9.hms]+ left)?; first (\d+)/40 (waiting|running|complete), second (\d+)/40 (waiting|running|complete)( for first)?$`)
	last := -1
	for l := range strings.Lines(out) {
		m := line.FindStringSubmatch(strings.TrimSuffix(l, "\n"))
		require.NotNil(t, m, "line %q", l)
		done, _ := strconv.Atoi(m[1])
		assert.GreaterOrEqual(t, done, last, "progress went back")
		last = done
	}
}

func TestProgressBarsOnATerminal(t *testing.T) {
	release := make(chan struct{})
	w := newLineWriter(`second +\[.*\] +\d+/40 running`)
	go func() {
		select {
		case <-w.seen:
		case <-time.After(20 * time.Second):
		}
		close(release)
	}()
	err := runShowing(t, nil, heldPipeline(40, 10, release), progressOutput{w: w, tty: true, width: 100})
	require.NoError(t, err)
	out := w.String()
	// The bars' last state, once the run completed: full.
	i := strings.LastIndex(out, "first ")
	require.GreaterOrEqual(t, i, 0, "no bars:\n%s", out)
	assert.Regexp(t, `first +\[=+\] +40/40 complete`, out[i:])
	assert.Regexp(t, `second +\[=+\] +40/40 complete`, out[i:])
	assert.Regexp(t, `all +\[=+\] +80/80 items complete, \d+(\.\d)? items/s`, out[i:])
}

func TestQuietShowsNoProgress(t *testing.T) {
	release := make(chan struct{})
	close(release)
	var shown lineWriter
	shown.match = regexp.MustCompile(`.`)
	shown.seen = make(chan struct{})
	called := false
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fs := flag.NewFlagSet("progresstest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, err := run(ctx, fs, []string{"-quiet"}, func(*Config) (*Pipeline, error) { return heldPipeline(5, 0, release), nil }, nil,
		func(*Config) progressOutput { called = true; return progressOutput{w: &shown, tty: true} })
	require.NoError(t, err)
	assert.False(t, called, "-quiet asked where to show progress")
	assert.Empty(t, shown.String())
}

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		v    progressView
		want string
	}{
		{progressView{noun: "items complete", done: 45, total: 100, rate: 1234.5, remaining: 4560 * time.Millisecond},
			"progress: 45/100 items complete (45.0%), 1234 items/s, 4.6s left"},
		{progressView{noun: "results collected", done: 7, total: -1, rate: 2.25},
			"progress: 7 results collected, 2.2 items/s"},
		{progressView{noun: "items complete", done: 0, total: 0},
			"progress: 0/0 items complete (100.0%), 0.0 items/s"},
		{progressView{noun: "items complete", done: 3, total: -1, remaining: 0, tasks: []engine.TaskStatus{
			{Type: "a", Completed: 3, Total: -1, State: engine.TaskRunning},
			{Type: "b", Total: 5, State: engine.TaskWaiting},
		}}, "progress: 3 items complete, 0.0 items/s; a 3/? running, b 0/5 waiting"},
		{progressView{noun: "items complete", done: 1, total: 10000, rate: 1, remaining: 9999 * time.Second},
			"progress: 1/10000 items complete (0.0%), 1.0 items/s, 2h46m39s left"},
	} {
		assert.Equal(t, tc.want, progressLine(tc.v))
	}
}

func TestProgressFlagsAndEnvironment(t *testing.T) {
	t.Setenv(EnvQuiet, "yes")
	fs := flag.NewFlagSet("progresstest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, err := run(context.Background(), fs, nil, func(*Config) (*Pipeline, error) { return nil, nil }, nil, stdProgress)
	require.ErrorIs(t, err, ErrUsage)
	assert.Contains(t, err.Error(), `ZMQPIPELINE_QUIET="yes" is not true or false`)

	t.Setenv(EnvQuiet, "1")
	var cfg *Config
	fs = flag.NewFlagSet("progresstest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, err = run(context.Background(), fs, []string{"-progress-every", "2s"}, func(c *Config) (*Pipeline, error) {
		cfg = c
		return nil, nil
	}, nil, stdProgress)
	require.ErrorIs(t, err, ErrUsage) // no pipeline
	assert.True(t, cfg.Quiet)
	assert.Equal(t, 2*time.Second, cfg.ProgressEvery)

	fs = flag.NewFlagSet("progresstest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, err = run(context.Background(), fs, []string{"-progress-every", "0s"}, func(*Config) (*Pipeline, error) { return nil, nil }, nil, stdProgress)
	require.ErrorIs(t, err, ErrUsage)
	assert.Contains(t, err.Error(), "-progress-every 0s")
}

func TestStatusRolePrintsTheRun(t *testing.T) {
	dir := t.TempDir()
	ep := []string{"-distributor", "ipc://" + dir + "/d", "-collector", "ipc://" + dir + "/c"}
	release := make(chan struct{})
	var ran sync.WaitGroup
	var runErr error
	ran.Go(func() {
		runErr = runShowing(t, append([]string{"-quiet"}, ep...), heldPipeline(20, 5, release), progressOutput{w: io.Discard})
	})
	defer ran.Wait()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	status := func(args ...string) (string, error) {
		fs := flag.NewFlagSet("statustest", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var f flags
		f.register(fs, "statustest")
		require.NoError(t, fs.Parse(append(append([]string{"-role", "status"}, ep...), args...)))
		cfg, err := f.config()
		require.NoError(t, err)
		var out bytes.Buffer
		err = showStatus(ctx, cfg, nil, &out, false)
		return out.String(), err
	}
	// The second type's held items keep the run going: wait until the
	// table shows it running, with the first complete.
	var table string
	for ctx.Err() == nil {
		out, err := status()
		require.NoError(t, err)
		if strings.Contains(out, "5/40 complete") || regexp.MustCompile(`second +running +first +20 +\d+ +\d+ +5 `).MatchString(out) {
			table = out
			break
		}
		time.Sleep(20 * time.Millisecond) // polling a live run, as an operator does
	}
	require.NotEmpty(t, table, "the status never showed the held run")
	assert.Regexp(t, `^distributor ipc://.*/d, run [0-9a-f]{16}: running for `, table)
	assert.Regexp(t, `(?m)^TASK +STATE +DEPENDS ON +TOTAL +PRODUCED +IN FLIGHT +COMPLETE +FAILED +RETRIED +REDELIVERED$`, table)
	assert.Regexp(t, `(?m)^first +complete +- +20 +20 +0 +20 +0 +0 +0$`, table)
	assert.Regexp(t, `(?m)^WORKER +TYPE +WINDOW +GRANTED +HANDED +FINISHED +ITEMS/S +LAST SEEN +DRAINING$`, table)
	assert.Regexp(t, `(?m)^[0-9a-f]{16} +second +\d+ +\d+ +\d+ +\d+ +\d+ +[0-9.]+m?s ago +no$`, table)
	assert.Regexp(t, `(?m)^collector: [0-9a-f]{16}; dropped: none; ignored: none$`, table)

	js, err := status("-json")
	require.NoError(t, err)
	var st engine.Status
	require.NoError(t, json.Unmarshal([]byte(js), &st))
	assert.Equal(t, int64(40), st.Total)
	require.Len(t, st.Tasks, 2)
	assert.Equal(t, engine.TaskComplete, st.Tasks[0].State)
	assert.Equal(t, engine.TaskRunning, st.Tasks[1].State)

	// Watching to the end: the run completes, the distributor goes, and
	// the watch says so.
	close(release)
	out, err := status("-watch", "20ms")
	ran.Wait()
	require.NoError(t, runErr)
	if err != nil {
		// The distributor went between two answers that both showed the
		// run going: the watch cannot tell how it ended.
		assert.ErrorContains(t, err, "the distributor stopped answering")
	} else {
		assert.Contains(t, out, "the run completed; the distributor is gone")
	}
}

// TestProgressOfACollectorOrWorkersAlone: a process without the
// distributor counts what its collector collected or its workers
// executed, and measures the rate itself.
func TestProgressOfACollectorOrWorkersAlone(t *testing.T) {
	release := make(chan struct{})
	close(release)
	p := heldPipeline(15, 0, release)
	ep := engine.InProcess("progress-alone")
	d, err := engine.NewDistributor(ep, p.Tasks)
	require.NoError(t, err)
	c, err := engine.NewCollector(ep, p.Collector)
	require.NoError(t, err)
	var workers []*engine.Worker
	for _, k := range p.Workers {
		w, err := engine.NewWorker(ep, k.Type, k.Handler)
		require.NoError(t, err)
		workers = append(workers, w)
	}
	collectorAlone := &progressMeter{proc: &Process{Collector: c}}
	workersAlone := &progressMeter{proc: &Process{Workers: workers}}
	start := time.Now()
	collectorAlone.read(start)
	workersAlone.read(start)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, engine.RunAll(ctx, d, c, workers[0], workers[1]))

	later := start.Add(2 * time.Second) // as if read two seconds on
	v := collectorAlone.read(later)
	assert.Equal(t, progressView{noun: "results collected", done: 30, total: -1, produced: 30, rate: 15}, v)
	assert.Equal(t, "progress: 30 results collected, 15.0 items/s", progressLine(v))
	v = workersAlone.read(later)
	assert.Equal(t, "progress: 30 items executed, 15.0 items/s", progressLine(v))
}
