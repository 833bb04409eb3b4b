package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/metrics"
)

// assemble builds the components of cfg.Role from p; every component
// gets common (the secured transport, with keys) before its own options.
func assemble(cfg *Config, p *Pipeline, common []engine.Option) (*Process, error) {
	proc := &Process{Config: cfg}
	logger := engine.WithLogger(cfg.Logger)
	var err error
	if cfg.Runs(RoleDistributor) {
		opts := []engine.DistributorOption{logger}
		for _, o := range common {
			opts = append(opts, o)
		}
		opts = append(opts, p.DistributorOptions...)
		if p.Metadata != nil {
			opts = append(opts, engine.WithMetadata())
		}
		if cfg.Quorum > 0 {
			opts = append(opts, engine.WithQuorum(cfg.Quorum))
		}
		opts = append(opts, engine.WithHeartbeat(cfg.Heartbeat, cfg.Liveness), engine.WithLimits(cfg.MaxPeers, cfg.MaxInFlight))
		if cfg.Journal != "" {
			opts = append(opts, engine.WithJournal(cfg.Journal), engine.WithJournalSync(cfg.JournalSync))
		}
		tasks := p.Tasks
		if cfg.ItemTimeout > 0 {
			tasks = slices.Clone(tasks)
			for i := range tasks {
				tasks[i].Timeout = cfg.ItemTimeout
			}
		}
		if proc.Distributor, err = engine.NewDistributor(cfg.Endpoints, tasks, opts...); err != nil {
			return nil, err
		}
	}
	if cfg.Runs(RoleCollector) {
		if p.Collector == nil {
			return nil, fmt.Errorf("%w: the pipeline has no collector (Pipeline.Collector)", ErrUsage)
		}
		opts := []engine.CollectorOption{logger, engine.WithRejoin(cfg.Rejoin)}
		for _, o := range common {
			opts = append(opts, o)
		}
		opts = append(opts, p.CollectorOptions...)
		if proc.Collector, err = engine.NewCollector(cfg.Endpoints, p.Collector, opts...); err != nil {
			return nil, err
		}
	}
	if cfg.Runs(RoleMetadata) {
		switch {
		case p.Metadata != nil:
			opts := []engine.MetadataOption{logger}
			for _, o := range common {
				opts = append(opts, o)
			}
			opts = append(opts, p.MetadataOptions...)
			if proc.Metadata, err = engine.NewMetadataSource(cfg.Endpoints, p.Metadata, opts...); err != nil {
				return nil, err
			}
		case cfg.Role == RoleMetadata:
			return nil, fmt.Errorf("%w: -role metadata: the pipeline has no metadata (Pipeline.Metadata)", ErrUsage)
		}
	}
	if cfg.Runs(RoleWorker) {
		kinds, err := pick(p.Workers, cfg.Types)
		if err != nil {
			return nil, err
		}
		if len(kinds) == 0 && cfg.Role == RoleWorker {
			return nil, fmt.Errorf("%w: -role worker: the pipeline has no workers (Pipeline.Workers)", ErrUsage)
		}
		for _, k := range kinds {
			opts := []engine.WorkerOption{logger, engine.WithRejoin(cfg.Rejoin)}
			for _, o := range common {
				opts = append(opts, o)
			}
			opts = append(opts, k.Options...)
			for range cfg.Workers {
				w, err := engine.NewWorker(cfg.Endpoints, k.Type, k.Handler, opts...)
				if err != nil {
					return nil, err
				}
				proc.Workers = append(proc.Workers, w)
			}
		}
	}
	return proc, nil
}

// pick returns the kinds of worker of the given types, all of them when
// types is empty.
func pick(kinds []Worker, types []string) ([]Worker, error) {
	if len(types) == 0 {
		return kinds, nil
	}
	var have []string
	for _, k := range kinds {
		if !slices.Contains(have, k.Type) {
			have = append(have, k.Type)
		}
	}
	var picked []Worker
	for _, t := range types {
		if !slices.Contains(have, t) {
			return nil, fmt.Errorf("%w: -types: the pipeline has no worker for task type %q (it has: %s)", ErrUsage, t, strings.Join(have, ", "))
		}
	}
	for _, k := range kinds {
		if slices.Contains(types, k.Type) {
			picked = append(picked, k)
		}
	}
	return picked, nil
}

// run runs the process's components together. A process that runs part of
// a distributed pipeline says on stderr where its listeners are, since an
// endpoint such as tcp://*:0 leaves the port to the system.
func (p *Process) run(ctx context.Context) error {
	var comps []engine.Runner
	if p.Distributor != nil {
		comps = append(comps, p.Distributor)
	}
	if p.Collector != nil {
		comps = append(comps, p.Collector)
	}
	if p.Metadata != nil {
		comps = append(comps, p.Metadata)
	}
	for _, w := range p.Workers {
		comps = append(comps, w)
	}
	done := make(chan struct{})
	var announcers sync.WaitGroup
	announce := func(role string, bound <-chan struct{}, addr func() string) {
		announcers.Go(func() {
			select {
			case <-bound:
				fmt.Fprintf(os.Stderr, "%s listening on %s\n", role, addr())
			case <-done:
			}
		})
	}
	if p.Config.Role != RoleAll {
		if p.Distributor != nil {
			announce("distributor", p.Distributor.Bound(), p.Distributor.Addr)
		}
		if p.Collector != nil {
			announce("collector", p.Collector.Bound(), p.Collector.Addr)
		}
	}
	if p.Config.Metrics != "" {
		stop, err := p.serveMetrics()
		if err != nil {
			close(done)
			announcers.Wait()
			return err
		}
		defer stop()
	}
	start := time.Now()
	endProgress := func(bool) {}
	if p.progress != nil {
		endProgress = p.showProgress(*p.progress)
	}
	err := engine.RunAll(ctx, comps...)
	p.Elapsed = time.Since(start)
	endProgress(err == nil)
	close(done)
	announcers.Wait()
	return err
}

// serveMetrics serves the components' metrics at /metrics on the -metrics
// address until stop is called.
func (p *Process) serveMetrics() (stop func(), err error) {
	exp := metrics.New()
	if p.Distributor != nil {
		exp.AddDistributor(p.Distributor)
	}
	if p.Collector != nil {
		exp.AddCollector(p.Collector)
	}
	for _, w := range p.Workers {
		exp.AddWorker(w)
	}
	l, err := net.Listen("tcp", p.Config.Metrics)
	if err != nil {
		return nil, fmt.Errorf("%w: -metrics %q: %w", ErrUsage, p.Config.Metrics, err)
	}
	p.MetricsAddr = l.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("/metrics", exp.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(l) // ErrServerClosed once stop is called
	}()
	fmt.Fprintf(os.Stderr, "metrics on http://%s/metrics\n", p.MetricsAddr)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	}, nil
}
