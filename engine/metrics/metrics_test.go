package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scrape fetches srv's metrics and returns them by name.
func scrape(t *testing.T, srv *httptest.Server) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	require.NoError(t, err, "%s", body)
	return families
}

// value returns the value of the series of name with the given labels
// (name=value pairs), and whether there is one.
func value(families map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := families["zmqpipeline_"+name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// A scrape during a run and one after it show what the run's own counts
// say: items in flight and a worker while items are held, every item
// complete and handled at the end.
func TestScrapesMatchTheRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ep := engine.InProcess(fmt.Sprintf("metrics-%d", time.Now().UnixNano()))
	release := make(chan struct{})
	var started atomic.Int32
	d, err := engine.NewDistributor(ep, []engine.TaskSpec{
		{Type: "calc", Task: engine.Items(50, func(i int) (any, error) { return i, nil })},
	}, engine.WithHeartbeat(20*time.Millisecond, 500*time.Millisecond))
	require.NoError(t, err)
	w, err := engine.NewWorker(ep, "calc", engine.HandlerFunc(func(ctx context.Context, job *engine.Job) (any, error) {
		if job.ItemID > 10 {
			started.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return nil, nil
	}), engine.WithConcurrency(2), engine.WithPrefetch(0))
	require.NoError(t, err)
	c, err := engine.NewCollector(ep, engine.ResultFunc(func(context.Context, *engine.Result) (any, error) { return nil, nil }))
	require.NoError(t, err)

	exp := metrics.New()
	exp.AddDistributor(d)
	exp.AddCollector(c)
	exp.AddWorker(w)
	srv := httptest.NewServer(exp.Handler())
	defer srv.Close()

	done := make(chan error, 1)
	go func() { done <- engine.RunAll(ctx, d, w, c) }()
	// Items 1 to 10 pass; the next two are held by the two goroutines.
	deadline := time.Now().Add(10 * time.Second)
	var mid map[string]*dto.MetricFamily
	for {
		require.True(t, time.Now().Before(deadline), "the run never reached the held items")
		mid = scrape(t, srv)
		completed, _ := value(mid, "items_completed_total", "task_type", "calc")
		workers := mid["zmqpipeline_distributor_worker_window"]
		if started.Load() == 2 && completed == 10 && workers != nil {
			break
		}
		time.Sleep(10 * time.Millisecond) // a scrape every 10 ms, bounded by the deadline
	}
	st := d.Status()
	for name, want := range map[string]float64{
		"items_total":           50,
		"items_produced_total":  float64(st.Tasks[0].Produced),
		"items_in_flight":       2,
		"items_completed_total": 10,
		"items_failed_total":    0,
	} {
		got, ok := value(mid, name, "task_type", "calc")
		assert.True(t, ok, name)
		assert.Equal(t, want, got, name)
	}
	running, _ := value(mid, "task_state", "task_type", "calc", "state", "running")
	assert.Equal(t, 1.0, running)
	window, ok := value(mid, "distributor_worker_window", "task_type", "calc")
	assert.True(t, ok)
	assert.Equal(t, 2.0, window, "two goroutines, no prefetch")
	results, _ := value(mid, "collector_results_total", "task_type", "calc")
	assert.Equal(t, 10.0, results)
	executed, _ := value(mid, "worker_items_executed_total", "task_type", "calc")
	assert.Equal(t, 10.0, executed)

	close(release)
	require.NoError(t, <-done)
	end := scrape(t, srv)
	for name, want := range map[string]float64{
		"items_completed_total":       50,
		"items_in_flight":             0,
		"collector_results_total":     50,
		"worker_items_executed_total": float64(w.Executed()),
	} {
		got, _ := value(end, name, "task_type", "calc")
		assert.Equal(t, want, got, name)
	}
	complete, _ := value(end, "task_state", "task_type", "calc", "state", "complete")
	assert.Equal(t, 1.0, complete)
	assert.Equal(t, 50.0, float64(c.Summary().Results))
}
