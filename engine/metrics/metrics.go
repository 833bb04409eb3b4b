// Package metrics exports a pipeline's live statistics as Prometheus
// metrics (github.com/prometheus/client_golang), so that the engine itself
// does not depend on Prometheus.
//
// An Exporter is a prometheus.Collector over the components a process
// runs: register it, and serve it (Handler, or your own registry):
//
//	exp := metrics.New()
//	exp.AddDistributor(d)
//	exp.AddCollector(c)
//	exp.AddWorker(w)
//	http.Handle("/metrics", exp.Handler())
//
// Every scrape reads the components' own counters (Distributor.Status,
// Collector.Summary, Worker.Executed, Stats): nothing is counted twice, and
// nothing costs the run anything between scrapes. The role runner
// (engine/cli) serves them with -metrics ADDR.
//
// The metrics, all prefixed zmqpipeline_ (role is distributor, collector
// or worker; task_type the type; worker a worker's peer id on the
// distributor):
//
//	items_total{task_type}                   gauge: the items a task produces in all, when it knows (engine.Sized)
//	items_produced_total{task_type}          counter: items the task produced
//	items_in_flight{task_type}               gauge: produced and not yet complete
//	items_completed_total{task_type}         counter: complete (acknowledged: succeeded, or failed for good)
//	items_failed_total{task_type}            counter: failed for good (dead)
//	attempts_retried_total{task_type}        counter: failed attempts sent out again after their backoff
//	items_redelivered_total{task_type}       counter: handed out again because their worker or the collector was lost
//	task_state{task_type,state}              gauge: 1 for the task's state (waiting, running, complete), 0 for the others
//	run_elapsed_seconds                      gauge: how long the run has run
//	run_rate_items_per_second                gauge: items completed per second, over the last heartbeat intervals
//	run_remaining_seconds                    gauge: the time left at that rate, when the total is known
//	distributor_worker_window{task_type,worker}          gauge: the credit a worker announced
//	distributor_worker_items_handed_total{task_type,worker}   counter: items handed to it in this run
//	distributor_worker_items_finished_total{task_type,worker} counter: items it reported finished
//	distributor_worker_last_seen_seconds{task_type,worker}    gauge: Unix time it was last heard from
//	collector_results_total{task_type}       counter: results handled
//	collector_failures_total{task_type}      counter: items failed for good, handled
//	collector_duplicates_total{task_type}    counter: results of items handled already, not handled again
//	worker_items_executed_total{task_type}   counter: items a worker of this process finished
//	dropped_total{role,reason}               counter: messages a transport threw away
//	ignored_total{role,reason}               counter: well-formed messages ignored, handshakes refused
//	peers_lost_total{role}                   counter: peers taken for gone (a distributor's), or distributors lost
package metrics

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/transport"
)

// Exporter exports the statistics of the components added to it. It is
// safe for concurrent use: components may be added while it is scraped.
type Exporter struct {
	mu           sync.Mutex
	distributors []*engine.Distributor
	collectors   []*engine.Collector
	workers      []*engine.Worker
}

// New returns an Exporter with no components.
func New() *Exporter { return &Exporter{} }

// AddDistributor exports d's run.
func (e *Exporter) AddDistributor(d *engine.Distributor) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.distributors = append(e.distributors, d)
}

// AddCollector exports c's counts.
func (e *Exporter) AddCollector(c *engine.Collector) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.collectors = append(e.collectors, c)
}

// AddWorker exports w's counts; the workers of one task type are summed.
func (e *Exporter) AddWorker(w *engine.Worker) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.workers = append(e.workers, w)
}

// Handler returns an http.Handler that serves the exporter's metrics (and
// nothing else) in the Prometheus exposition formats.
func (e *Exporter) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

const ns = "zmqpipeline"

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help, labels, nil)
}

var (
	itemsTotal      = desc("items_total", "The items a task produces in all, when it knows.", "task_type")
	itemsProduced   = desc("items_produced_total", "Items the task produced.", "task_type")
	itemsInFlight   = desc("items_in_flight", "Items produced and not yet complete.", "task_type")
	itemsCompleted  = desc("items_completed_total", "Items complete: acknowledged, succeeded or failed for good.", "task_type")
	itemsFailed     = desc("items_failed_total", "Items failed for good (dead).", "task_type")
	attemptsRetried = desc("attempts_retried_total", "Failed attempts sent out again after their backoff.", "task_type")
	itemsRedeliv    = desc("items_redelivered_total", "Items handed out again because their worker or the collector was lost.", "task_type")
	taskState       = desc("task_state", "1 for the task's state (waiting, running, complete), 0 for the others.", "task_type", "state")
	runElapsed      = desc("run_elapsed_seconds", "How long the run has run.")
	runRate         = desc("run_rate_items_per_second", "Items completed per second over the last heartbeat intervals.")
	runRemaining    = desc("run_remaining_seconds", "The time the items left take at the current rate, when the total is known.")
	workerWindow    = desc("distributor_worker_window", "The credit a worker announced: its goroutines and prefetch.", "task_type", "worker")
	workerHanded    = desc("distributor_worker_items_handed_total", "Items handed to a worker in this run.", "task_type", "worker")
	workerFinished  = desc("distributor_worker_items_finished_total", "Items a worker reported finished in this run.", "task_type", "worker")
	workerLastSeen  = desc("distributor_worker_last_seen_seconds", "Unix time a worker was last heard from.", "task_type", "worker")
	collResults     = desc("collector_results_total", "Results the collector handled.", "task_type")
	collFailures    = desc("collector_failures_total", "Items failed for good that the collector handled.", "task_type")
	collDuplicates  = desc("collector_duplicates_total", "Results of items handled already, acknowledged and not handled again.", "task_type")
	workerExecuted  = desc("worker_items_executed_total", "Items the workers of this process finished.", "task_type")
	dropped         = desc("dropped_total", "Messages a component's transports threw away, by reason.", "role", "reason")
	ignored         = desc("ignored_total", "Well-formed messages a component ignored, and handshakes it refused, by reason.", "role", "reason")
	peersLost       = desc("peers_lost_total", "Peers a distributor took for gone; distributors a worker or collector lost.", "role")
)

// Describe sends the descriptions of every metric the exporter may send.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{itemsTotal, itemsProduced, itemsInFlight, itemsCompleted, itemsFailed, attemptsRetried,
		itemsRedeliv, taskState, runElapsed, runRate, runRemaining, workerWindow, workerHanded, workerFinished, workerLastSeen,
		collResults, collFailures, collDuplicates, workerExecuted, dropped, ignored, peersLost} {
		ch <- d
	}
}

// Collect reads the components' counters and sends them as metrics.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	dists, colls, workers := e.distributors, e.collectors, e.workers
	e.mu.Unlock()
	for _, d := range dists {
		collectDistributor(ch, d.Status())
	}
	for _, c := range colls {
		for tt, s := range c.Summary().ByType {
			counter(ch, collResults, float64(s.Results), tt)
			counter(ch, collFailures, float64(s.Failures), tt)
			counter(ch, collDuplicates, float64(s.Duplicates), tt)
		}
		collectStats(ch, "collector", c.Stats())
	}
	executed := map[string]int64{}
	var stats engine.Stats
	for _, w := range workers {
		executed[w.TaskType()] += w.Executed()
		s := w.Stats()
		stats.Transport.Add(s.Transport)
		for r, n := range s.Ignored {
			if stats.Ignored == nil {
				stats.Ignored = map[transport.DropReason]uint64{}
			}
			stats.Ignored[r] += n
		}
		stats.PeersLost += s.PeersLost
	}
	for tt, n := range executed {
		counter(ch, workerExecuted, float64(n), tt)
	}
	if len(workers) > 0 {
		collectStats(ch, "worker", stats)
	}
}

func collectDistributor(ch chan<- prometheus.Metric, st engine.Status) {
	for _, ts := range st.Tasks {
		if ts.Total >= 0 {
			gauge(ch, itemsTotal, float64(ts.Total), ts.Type)
		}
		counter(ch, itemsProduced, float64(ts.Produced), ts.Type)
		gauge(ch, itemsInFlight, float64(ts.InFlight), ts.Type)
		counter(ch, itemsCompleted, float64(ts.Completed), ts.Type)
		counter(ch, itemsFailed, float64(ts.Failed), ts.Type)
		counter(ch, attemptsRetried, float64(ts.Retried), ts.Type)
		counter(ch, itemsRedeliv, float64(ts.Redelivered), ts.Type)
		for _, s := range []engine.TaskState{engine.TaskWaiting, engine.TaskRunning, engine.TaskComplete} {
			v := 0.0
			if ts.State == s {
				v = 1
			}
			gauge(ch, taskState, v, ts.Type, s.String())
		}
	}
	gauge(ch, runElapsed, st.Elapsed.Seconds())
	gauge(ch, runRate, st.Rate)
	gauge(ch, runRemaining, st.Remaining.Seconds())
	for _, w := range st.Workers {
		gauge(ch, workerWindow, float64(w.Window), w.TaskType, w.Peer)
		counter(ch, workerHanded, float64(w.Handed), w.TaskType, w.Peer)
		counter(ch, workerFinished, float64(w.Finished), w.TaskType, w.Peer)
		gauge(ch, workerLastSeen, float64(w.LastSeen.UnixNano())/1e9, w.TaskType, w.Peer)
	}
	collectStats(ch, "distributor", st.Stats)
}

func collectStats(ch chan<- prometheus.Metric, role string, s engine.Stats) {
	for r, n := range s.Transport.Dropped {
		counter(ch, dropped, float64(n), role, string(r))
	}
	for r, n := range s.Ignored {
		counter(ch, ignored, float64(n), role, string(r))
	}
	counter(ch, peersLost, float64(s.PeersLost), role)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}
