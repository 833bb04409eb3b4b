// Package cli turns a pipeline program into whichever of its roles the
// command line asks for. A program describes its pipeline once (tasks,
// worker handlers, the collector's handler, metadata) and calls Main; the
// same binary then runs everything in one process over Go channels (the
// default), or one role per process over ZeroMQ, chosen by flags or
// environment variables:
//
//	-role all|distributor|collector|worker|metadata|status  ZMQPIPELINE_ROLE
//	-distributor ENDPOINT                             ZMQPIPELINE_DISTRIBUTOR
//	-collector ENDPOINT                               ZMQPIPELINE_COLLECTOR
//	-types TYPE,...  worker types this process runs   ZMQPIPELINE_TYPES
//	-workers N       workers of each type             ZMQPIPELINE_WORKERS
//	-quorum N        distributor: wait for N workers  ZMQPIPELINE_QUORUM
//	-heartbeat D     distributor: heartbeat interval  ZMQPIPELINE_HEARTBEAT
//	-liveness D      distributor: liveness timeout    ZMQPIPELINE_LIVENESS
//	-item-timeout D  distributor: every type's Timeout ZMQPIPELINE_ITEM_TIMEOUT
//	-max-peers N     distributor: peers at once       ZMQPIPELINE_MAX_PEERS
//	-max-in-flight N distributor: items handed out    ZMQPIPELINE_MAX_IN_FLIGHT
//	-journal FILE    distributor: a durable run       ZMQPIPELINE_JOURNAL
//	-journal-sync D  distributor: how often it syncs  ZMQPIPELINE_JOURNAL_SYNC
//	-rejoin D        wait for a lost distributor      ZMQPIPELINE_REJOIN
//	-grace D         worker: time to drain on SIGTERM ZMQPIPELINE_GRACE
//	-log LEVEL       debug, info, warn or error       ZMQPIPELINE_LOG
//	-metrics ADDR    serve Prometheus metrics         ZMQPIPELINE_METRICS
//	-quiet           no progress bar or lines         ZMQPIPELINE_QUIET
//	-progress-every D  progress lines off a terminal  ZMQPIPELINE_PROGRESS_EVERY
//
// and, to authenticate and encrypt with CURVE (see "Keys" below):
//
//	-key FILE              this process's key pair   ZMQPIPELINE_KEY (or ZMQPIPELINE_SECRET_KEY)
//	-distributor-key KEY   the distributor's public  ZMQPIPELINE_DISTRIBUTOR_KEY
//	-collector-key KEY     the collector's public    ZMQPIPELINE_COLLECTOR_KEY
//	-access FILE           who may take part         ZMQPIPELINE_ACCESS
//	-keygen NAME           write a key pair and exit
//
// A flag beats its environment variable. The endpoints default to
// "inproc://PROGRAM/distributor" and "inproc://PROGRAM/collector"; a process that
// runs one role needs endpoints that other processes reach, "ipc://" or
// "tcp://", which need the ZeroMQ transport linked in:
//
//	import _ "github.com/zmqpipeline/zmqpipeline/transport/zmqtransport"
//
// (built with CGO_ENABLED=0 that import still compiles, and refuses ipc
// and tcp at run time with an error that says why).
//
// # Progress
//
// While a run goes, a process shows how far it is. When stdout is a
// terminal and the run has gone a second, it draws a bar per task type
// (in a process with the distributor; a count of the results collected or
// items executed in the others) with items per second and the time left,
// and leaves the bars' last state above the program's report. Otherwise it
// prints a line on stderr every -progress-every (5s by default):
//
//	progress: 4500/10000 items complete (45.0%), 1200 items/s, 4.6s left
//
// -quiet turns both off; so can the build function, with Config.Quiet (a
// program that prints a line per item, say).
//
// # Status
//
// -role status runs nothing: it asks the distributor at -distributor how
// its run is, prints the answer as a table (see WriteStatus) and exits;
// with -watch D it prints it again every D until a signal, or until the
// distributor, its run complete, is gone. -json prints engine.Status as
// one line of JSON instead. With keys, it needs -key, -distributor-key,
// and a key that the distributor's access list gives the status role:
//
//	prog -role status -distributor tcp://10.0.0.5:5555 -watch 2s
//
// # Keys
//
// Without -key, every peer that reaches an endpoint takes part in the run.
// With it, every connection is authenticated and encrypted (CURVE), and
// each key may take only the roles the access list grants it:
//
//	prog -keygen dist; prog -keygen coll; prog -keygen w1   # NAME.key and NAME.key_secret each
//	cat > access.txt <<EOF
//	<coll's public key>  collector     coll
//	<w1's public key>    worker        w1
//	EOF
//	prog -role distributor -key dist.key_secret -access access.txt ...
//	prog -role collector -key coll.key_secret -access access.txt -distributor-key dist.key ...
//	prog -role worker -key w1.key_secret -distributor-key dist.key -collector-key coll.key ...
//
// The access list (package auth) has one client key per line, with its
// roles (worker, worker:TYPE, collector, metadata, status, all) and a name. A
// distributor or collector process needs -access; a process that
// connects needs the public key of each process it connects to; a
// process that runs every role trusts its own key. A peer whose key is
// refused exits with ExitFailed, saying why.
//
// # Signals and exit codes
//
// The first SIGINT or SIGTERM drains a worker process: its workers take no
// more items, finish those they hold (for up to -grace, then they hand the
// rest back), say goodbye, and the process exits with ExitOK. Any other
// process stops: a distributor tells its peers the run was aborted, and
// says how far the run got. A second signal exits at once. Main exits with
// ExitOK when the run completed (or a worker process drained), ExitFailed
// when something failed, ExitUsage for bad flags or configuration (nothing
// ran), ExitAborted when the distributor (in another process) ended the run
// early, and ExitStopped when a signal stopped the process before the run
// completed.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/transport/auth"
	"golang.org/x/term"
)

// Role is what one process of a pipeline program runs.
type Role string

// The roles. RoleAll runs every component in one process.
const (
	RoleAll         Role = "all"
	RoleDistributor Role = "distributor"
	RoleCollector   Role = "collector"
	RoleWorker      Role = "worker"
	RoleMetadata    Role = "metadata"
	// RoleStatus runs no component: it prints the status of the
	// distributor's run (see "Status" above).
	RoleStatus Role = "status"
)

var roles = []Role{RoleAll, RoleDistributor, RoleCollector, RoleWorker, RoleMetadata, RoleStatus}

// Exit codes of Main; ExitCode maps Run's error to one.
const (
	ExitOK      = 0   // the run completed
	ExitFailed  = 1   // something failed: a task, a hook, a connection
	ExitUsage   = 2   // bad flags, environment or configuration; nothing ran
	ExitAborted = 3   // the distributor ended the run early (engine.ErrAborted)
	ExitStopped = 130 // SIGINT or SIGTERM stopped the process first
)

// ErrUsage is wrapped by every error about the command line, the
// environment or the pipeline's configuration.
var ErrUsage = errors.New("cli: usage")

// Environment variables read when the matching flag is not given.
const (
	EnvRole        = "ZMQPIPELINE_ROLE"
	EnvDistributor = "ZMQPIPELINE_DISTRIBUTOR"
	EnvCollector   = "ZMQPIPELINE_COLLECTOR"
	EnvTypes       = "ZMQPIPELINE_TYPES"
	EnvWorkers     = "ZMQPIPELINE_WORKERS"
	EnvQuorum      = "ZMQPIPELINE_QUORUM"
	EnvHeartbeat   = "ZMQPIPELINE_HEARTBEAT"
	EnvLiveness    = "ZMQPIPELINE_LIVENESS"
	EnvItemTimeout = "ZMQPIPELINE_ITEM_TIMEOUT"
	EnvMaxPeers    = "ZMQPIPELINE_MAX_PEERS"
	EnvMaxInFlight = "ZMQPIPELINE_MAX_IN_FLIGHT"
	EnvJournal     = "ZMQPIPELINE_JOURNAL"
	EnvJournalSync = "ZMQPIPELINE_JOURNAL_SYNC"
	EnvRejoin      = "ZMQPIPELINE_REJOIN"
	EnvGrace       = "ZMQPIPELINE_GRACE"
	EnvLog         = "ZMQPIPELINE_LOG"
	EnvMetrics     = "ZMQPIPELINE_METRICS"
	EnvQuiet       = "ZMQPIPELINE_QUIET"
	EnvProgress    = "ZMQPIPELINE_PROGRESS_EVERY"
)

// DefaultGrace is how long a worker process drains on SIGTERM by default.
const DefaultGrace = 30 * time.Second

// Pipeline is what a program's roles are built from. A process builds the
// components of its role only.
type Pipeline struct {
	// Tasks are the distributor's task types.
	Tasks []engine.TaskSpec
	// Workers are the kinds of worker the program has, one per task type
	// it executes (or several with different options).
	Workers []Worker
	// Collector handles every result.
	Collector engine.ResultHandler
	// Metadata, if set, fetches the run's metadata: the distributor then
	// waits for it (engine.WithMetadata) and the metadata role (or RoleAll)
	// delivers it.
	Metadata func(ctx context.Context) (engine.Metadata, error)

	// Options for each component, after the logger that -log sets (so
	// an engine.WithLogger here replaces it).
	DistributorOptions []engine.DistributorOption
	CollectorOptions   []engine.CollectorOption
	MetadataOptions    []engine.MetadataOption

	// Done, if set, runs once this process's components completed the run,
	// with what they were; an error from it fails the process. It is where
	// a program prints its report.
	Done func(p *Process) error
}

// Worker is one kind of worker. With -workers N a process runs N of each
// kind it takes, sharing Handler and Options, so a handler (and any hook
// among the options) must be safe for concurrent use, as it already is
// with engine.WithConcurrency.
type Worker struct {
	Type    string
	Handler engine.Handler
	Options []engine.WorkerOption
}

// Config is the parsed command line.
type Config struct {
	Role      Role
	Endpoints engine.Endpoints
	// Types are the worker types this process runs; empty for all.
	Types []string
	// Workers is how many workers of each type this process runs.
	Workers int
	// Quorum makes the distributor wait for that many workers (0: none).
	Quorum int
	// Heartbeat and Liveness set the distributor's engine.WithHeartbeat
	// (0: the defaults).
	Heartbeat, Liveness time.Duration
	// ItemTimeout, if positive, replaces the Timeout of every task type
	// (engine.TaskSpec.Timeout): the execution deadline of an attempt, and
	// what lets the distributor take a worker that holds items and
	// finishes none for it (plus Liveness) for gone.
	ItemTimeout time.Duration
	// MaxPeers and MaxInFlight set the distributor's engine.WithLimits.
	MaxPeers, MaxInFlight int
	// Journal, if set, makes the run durable (engine.WithJournal): a
	// distributor started again with the same file resumes it.
	// JournalSync is engine.WithJournalSync.
	Journal     string
	JournalSync time.Duration
	// Rejoin is how long workers and collectors wait for a lost
	// distributor to come back (engine.WithRejoin; 0: they stop).
	Rejoin time.Duration
	// Grace bounds how long a worker process drains on its first signal.
	Grace time.Duration
	// Metrics, if set, is a tcp address (host:port) where the process
	// serves its components' Prometheus metrics at /metrics while they
	// run (see package engine/metrics).
	Metrics string
	// Quiet turns off the progress display (-quiet); the build function
	// may set it. ProgressEvery is how often a progress line is printed
	// when stdout is not a terminal (-progress-every).
	Quiet         bool
	ProgressEvery time.Duration
	// Watch, with -role status, is how often to print the status again
	// (0: once); JSON prints it as JSON.
	Watch time.Duration
	JSON  bool
	// Logger logs to stderr at the -log level; every component gets it.
	Logger *slog.Logger
	// Security holds the keys (-key, -distributor-key, -collector-key,
	// -access): every component then authenticates and encrypts with
	// them. Nil without -key: every peer that reaches an endpoint is
	// trusted.
	Security *auth.Config
}

// Runs reports whether this process runs components of role r.
func (c *Config) Runs(r Role) bool { return c.Role == RoleAll || c.Role == r }

// Process is what one process ran.
type Process struct {
	Config *Config
	// The components this process ran; nil (or empty) for the others.
	Distributor *engine.Distributor
	Collector   *engine.Collector
	Workers     []*engine.Worker
	Metadata    *engine.MetadataSource
	// Elapsed is how long the components ran.
	Elapsed time.Duration
	// MetricsAddr is where the process served its metrics (-metrics),
	// with the port the system picked; "" without.
	MetricsAddr string
	// progress is where the process shows its progress; nil for none.
	progress *progressOutput
}

// Main parses the program's command line (flag.CommandLine, with the
// program's own flags and the ones above), calls build, runs the role it
// chose until the run completes or a signal stops it, and exits with the
// matching code, printing any error to stderr. It does not return.
//
// build runs in every process, whatever its role, and only the components
// of the role are made from what it returns: tasks produce items only
// when the distributor asks, so building them costs little; cfg.Runs
// tells build whether to open what only one role needs (a database for
// the collector, say).
func Main(build func(*Config) (*Pipeline, error)) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	_, err := run(context.Background(), flag.CommandLine, os.Args[1:], build, sigs, stdProgress)
	signal.Stop(sigs)
	code := ExitCode(err)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		name := filepath.Base(os.Args[0])
		if code == ExitUsage {
			fmt.Fprintf(os.Stderr, "%s: %v\n(run with -h for the flags)\n", name, err)
		} else {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		}
	}
	os.Exit(code)
}

// StoppedError says that a signal stopped the process before its run
// completed, and, in a process that ran the distributor, how far the run
// got.
type StoppedError struct {
	Signal os.Signal
	// Done and Produced are the distributor's Progress; both are 0 in a
	// process without the distributor.
	Done, Produced int64
	hasProgress    bool
}

// Error names the signal, and the progress when it is known.
func (e *StoppedError) Error() string {
	msg := fmt.Sprintf("stopped by %v before the run completed", e.Signal)
	if e.hasProgress {
		msg += fmt.Sprintf(" (%d items done of %d produced)", e.Done, e.Produced)
	}
	return msg
}

// watchSignals handles the process's signals while proc runs: the first
// SIGINT or SIGTERM drains the workers of a worker process (they finish
// what they hold, within cfg.Grace, and the process exits 0) and stops any
// other process; a second exits at once. It returns when done closes.
func watchSignals(sigs <-chan os.Signal, done <-chan struct{}, proc *Process, stop context.CancelCauseFunc) {
	name := filepath.Base(os.Args[0])
	select {
	case s := <-sigs:
		if proc.Config.Role == RoleWorker {
			fmt.Fprintf(os.Stderr, "%s: %v: draining: finishing the items held, for up to %v (send it again to exit at once)\n", name, s, proc.Config.Grace)
			for _, w := range proc.Workers {
				w.Drain(proc.Config.Grace)
			}
		} else {
			fmt.Fprintf(os.Stderr, "%s: %v: stopping (send it again to exit at once)\n", name, s)
			stop(&StoppedError{Signal: s})
		}
	case <-done:
		return
	}
	select {
	case s := <-sigs:
		fmt.Fprintf(os.Stderr, "%s: second %v: exiting now\n", name, s)
		os.Exit(ExitStopped)
	case <-done:
	}
}

// ExitCode returns the exit code for an error from Run.
func ExitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.Is(err, ErrUsage), errors.Is(err, engine.ErrInvalidConfig):
		return ExitUsage
	case errors.Is(err, engine.ErrAborted):
		return ExitAborted
	case errors.As(err, new(*StoppedError)), errors.Is(err, context.Canceled):
		return ExitStopped
	}
	return ExitFailed
}

// flags holds the command line before it becomes a Config.
type flags struct {
	role, distributor, collector, types, log string
	journal, metrics                         string
	workers, quorum, maxPeers, maxInFlight   int
	heartbeat, liveness, rejoin, grace       time.Duration
	itemTimeout, journalSync, progressEvery  time.Duration
	watch                                    time.Duration
	quiet, json                              bool
	keys                                     keyFlags
}

// register adds the flags to fs.
func (f *flags) register(fs *flag.FlagSet, name string) {
	fs.StringVar(&f.role, "role", string(RoleAll), "what this process runs: all, distributor, collector, worker or metadata; or status, to print how the distributor's run is (env "+EnvRole+")")
	fs.StringVar(&f.distributor, "distributor", "inproc://"+name+"/distributor", "the distributor's endpoint: inproc://name, ipc:///path or tcp://host:port (env "+EnvDistributor+")")
	fs.StringVar(&f.collector, "collector", "inproc://"+name+"/collector", "the collector's endpoint (env "+EnvCollector+")")
	fs.StringVar(&f.types, "types", "", "comma-separated worker types this process runs; all if empty (env "+EnvTypes+")")
	fs.IntVar(&f.workers, "workers", 1, "workers of each type this process runs (env "+EnvWorkers+")")
	fs.IntVar(&f.quorum, "quorum", 0, "distributor: hand out nothing until this many workers joined (env "+EnvQuorum+")")
	fs.DurationVar(&f.heartbeat, "heartbeat", engine.DefaultHeartbeat, "distributor: how often it and its peers send each other a heartbeat (env "+EnvHeartbeat+")")
	fs.DurationVar(&f.liveness, "liveness", engine.DefaultLivenessTimeout, "distributor: silence after which a peer, or the distributor, is taken for gone (env "+EnvLiveness+")")
	fs.DurationVar(&f.itemTimeout, "item-timeout", 0, "distributor: the execution deadline of every task type's attempts, replacing the pipeline's; a worker that holds items and finishes none for it plus -liveness is taken for gone; 0 keeps the pipeline's (env "+EnvItemTimeout+")")
	fs.IntVar(&f.maxPeers, "max-peers", engine.DefaultMaxPeers, "distributor: most peers at once; more are refused (env "+EnvMaxPeers+")")
	fs.IntVar(&f.maxInFlight, "max-in-flight", engine.DefaultMaxInFlight, "distributor: most items handed out and not yet acknowledged, across all workers (env "+EnvMaxInFlight+")")
	fs.StringVar(&f.journal, "journal", "", "distributor: a journal file that makes the run durable: started again with the same file, the distributor resumes the run (env "+EnvJournal+")")
	fs.DurationVar(&f.journalSync, "journal-sync", engine.DefaultJournalSync, "distributor: how often the journal is synced to disk; 0 syncs before every hand-out (env "+EnvJournalSync+")")
	fs.DurationVar(&f.rejoin, "rejoin", 0, "worker, collector: how long to wait for a lost distributor to come back; 0 stops at once (env "+EnvRejoin+")")
	fs.DurationVar(&f.grace, "grace", DefaultGrace, "worker: on SIGINT or SIGTERM, how long to finish the items held before handing back the rest (env "+EnvGrace+")")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics while the components run, ADDR host:port (:0 picks a port, printed on stderr); off if empty (env "+EnvMetrics+")")
	fs.BoolVar(&f.quiet, "quiet", false, "show no progress: no bar on a terminal, no progress lines otherwise (env "+EnvQuiet+")")
	fs.DurationVar(&f.progressEvery, "progress-every", DefaultProgressEvery, "when stdout is not a terminal, how often to print a progress line on stderr (env "+EnvProgress+")")
	fs.DurationVar(&f.watch, "watch", 0, "-role status: print the status again every D until interrupted; 0 prints it once")
	fs.BoolVar(&f.json, "json", false, "-role status: print the status as JSON, one line each time")
	fs.StringVar(&f.log, "log", "warn", "log level on stderr: debug, info, warn or error (env "+EnvLog+")")
	f.keys.register(fs)
}

// fromEnv fills the flags that were not given from the environment.
func (f *flags) fromEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	for _, v := range []struct {
		flag, env string
		str       *string
		num       *int
		dur       *time.Duration
		bool      *bool
	}{
		{"role", EnvRole, &f.role, nil, nil, nil},
		{"distributor", EnvDistributor, &f.distributor, nil, nil, nil},
		{"collector", EnvCollector, &f.collector, nil, nil, nil},
		{"types", EnvTypes, &f.types, nil, nil, nil},
		{"workers", EnvWorkers, nil, &f.workers, nil, nil},
		{"quorum", EnvQuorum, nil, &f.quorum, nil, nil},
		{"heartbeat", EnvHeartbeat, nil, nil, &f.heartbeat, nil},
		{"liveness", EnvLiveness, nil, nil, &f.liveness, nil},
		{"item-timeout", EnvItemTimeout, nil, nil, &f.itemTimeout, nil},
		{"max-peers", EnvMaxPeers, nil, &f.maxPeers, nil, nil},
		{"max-in-flight", EnvMaxInFlight, nil, &f.maxInFlight, nil, nil},
		{"journal", EnvJournal, &f.journal, nil, nil, nil},
		{"journal-sync", EnvJournalSync, nil, nil, &f.journalSync, nil},
		{"rejoin", EnvRejoin, nil, nil, &f.rejoin, nil},
		{"grace", EnvGrace, nil, nil, &f.grace, nil},
		{"log", EnvLog, &f.log, nil, nil, nil},
		{"metrics", EnvMetrics, &f.metrics, nil, nil, nil},
		{"quiet", EnvQuiet, nil, nil, nil, &f.quiet},
		{"progress-every", EnvProgress, nil, nil, &f.progressEvery, nil},
		{"key", EnvKey, &f.keys.key, nil, nil, nil},
		{"distributor-key", EnvDistributorKey, &f.keys.distributorKey, nil, nil, nil},
		{"collector-key", EnvCollectorKey, &f.keys.collectorKey, nil, nil, nil},
		{"access", EnvAccess, &f.keys.access, nil, nil, nil},
	} {
		val, ok := os.LookupEnv(v.env)
		if given[v.flag] || !ok || val == "" {
			continue
		}
		switch {
		case v.str != nil:
			*v.str = val
		case v.bool != nil:
			b, err := strconv.ParseBool(val)
			if err != nil {
				return fmt.Errorf("%w: %s=%q is not true or false", ErrUsage, v.env, val)
			}
			*v.bool = b
		case v.num != nil:
			n, err := strconv.Atoi(val)
			if err != nil {
				return fmt.Errorf("%w: %s=%q is not a number", ErrUsage, v.env, val)
			}
			*v.num = n
		default:
			d, err := time.ParseDuration(val)
			if err != nil {
				return fmt.Errorf("%w: %s=%q is not a duration (such as 500ms or 30s)", ErrUsage, v.env, val)
			}
			*v.dur = d
		}
	}
	return nil
}

// config checks the flags and makes the Config.
func (f *flags) config() (*Config, error) {
	c := &Config{
		Role:      Role(f.role),
		Endpoints: engine.Endpoints{Distributor: f.distributor, Collector: f.collector},
		Workers:   f.workers,
		Quorum:    f.quorum,
		Heartbeat: f.heartbeat,
		Liveness:  f.liveness,
		Rejoin:    f.rejoin,
		Grace:     f.grace,

		ItemTimeout: f.itemTimeout,
		MaxPeers:    f.maxPeers,
		MaxInFlight: f.maxInFlight,
		Journal:     f.journal,
		JournalSync: f.journalSync,
		Metrics:     f.metrics,

		Quiet:         f.quiet,
		ProgressEvery: f.progressEvery,
		Watch:         f.watch,
		JSON:          f.json,
	}
	if !slices.Contains(roles, c.Role) {
		return nil, fmt.Errorf("%w: -role %q: want all, distributor, collector, worker, metadata or status", ErrUsage, f.role)
	}
	if c.Workers < 1 {
		return nil, fmt.Errorf("%w: -workers %d: want at least 1", ErrUsage, c.Workers)
	}
	if c.Quorum < 0 {
		return nil, fmt.Errorf("%w: -quorum %d: want 0 or more", ErrUsage, c.Quorum)
	}
	if c.Rejoin < 0 || c.Grace < 0 || c.ItemTimeout < 0 || c.JournalSync < 0 {
		return nil, fmt.Errorf("%w: -rejoin %v, -grace %v, -item-timeout %v, -journal-sync %v: want 0 or more", ErrUsage, c.Rejoin, c.Grace, c.ItemTimeout, c.JournalSync)
	}
	if c.Watch < 0 {
		return nil, fmt.Errorf("%w: -watch %v: want 0 or more", ErrUsage, c.Watch)
	}
	if c.ProgressEvery <= 0 {
		return nil, fmt.Errorf("%w: -progress-every %v: want more than 0", ErrUsage, c.ProgressEvery)
	}
	if c.MaxPeers < 2 || c.MaxInFlight < 1 {
		return nil, fmt.Errorf("%w: -max-peers %d, -max-in-flight %d: want at least 2 peers (a worker and the collector) and 1 item", ErrUsage, c.MaxPeers, c.MaxInFlight)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.log)); err != nil {
		return nil, fmt.Errorf("%w: -log %q: want debug, info, warn or error", ErrUsage, f.log)
	}
	c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	for _, t := range strings.Split(f.types, ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.Types = append(c.Types, t)
		}
	}
	if c.Role == RoleStatus {
		c.Endpoints.Collector = "" // not used
		if strings.HasPrefix(f.distributor, "inproc://") {
			return nil, fmt.Errorf("%w: -role status asks a distributor in another process: give -distributor its ipc:// or tcp:// endpoint, not %q", ErrUsage, f.distributor)
		}
	} else if c.Role != RoleAll {
		for which, ep := range map[string]string{"-distributor": f.distributor, "-collector": f.collector} {
			if strings.HasPrefix(ep, "inproc://") {
				return nil, fmt.Errorf("%w: -role %s runs one part of the pipeline in this process, so the others must reach it: give %s an ipc:// or tcp:// endpoint, not %q", ErrUsage, c.Role, which, ep)
			}
		}
	}
	sec, err := f.keys.security(c)
	if err != nil {
		return nil, err
	}
	c.Security = sec
	return c, nil
}

// runStatus is -role status, which a signal stops.
func runStatus(ctx context.Context, cfg *Config, sigs <-chan os.Signal, w *os.File) error {
	secure, err := secureTransport(cfg)
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if sigs != nil {
		go func() {
			select {
			case <-sigs:
				stop()
			case <-ctx.Done():
			}
		}()
	}
	clear := cfg.Watch > 0 && !cfg.JSON && isTerminal(w)
	return showStatus(ctx, cfg, secure, w, clear)
}

// isTerminal reports whether f is a terminal that says how wide it is
// (one that does not, such as a bare pseudo-terminal, cannot show bars).
func isTerminal(f *os.File) bool {
	width, _, err := term.GetSize(int(f.Fd()))
	return err == nil && width > 0
}

// Run is Main without the exit, for tests and for programs that do more:
// it adds the flags to fs (so fs can go to Run only once), parses args, calls build with the Config, and
// runs the components of the chosen role until they complete (nil), ctx
// ends (an error wrapping ctx.Err()) or one fails. With -h it prints the
// flags and returns flag.ErrHelp. Errors about the command line or the
// configuration wrap ErrUsage or engine.ErrInvalidConfig.
func Run(ctx context.Context, fs *flag.FlagSet, args []string, build func(*Config) (*Pipeline, error)) (*Process, error) {
	return run(ctx, fs, args, build, nil, stdProgress)
}

// stdProgress shows progress as bars on stdout when it is a terminal, as
// lines on stderr otherwise.
func stdProgress(cfg *Config) progressOutput {
	out := progressOutput{w: os.Stderr, every: cfg.ProgressEvery, delay: progressDelay}
	if isTerminal(os.Stdout) {
		out.w, out.tty = os.Stdout, true
	}
	return out
}

// run is Run; with sigs, it handles the process's signals (watchSignals),
// and it shows progress where progress says.
func run(ctx context.Context, fs *flag.FlagSet, args []string, build func(*Config) (*Pipeline, error), sigs <-chan os.Signal,
	progress func(*Config) progressOutput) (*Process, error) {
	if build == nil {
		return nil, fmt.Errorf("%w: nil build function", ErrUsage)
	}
	var f flags
	f.register(fs, filepath.Base(fs.Name()))
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected arguments %q", ErrUsage, fs.Args())
	}
	if f.keys.keygen != "" {
		return nil, keygen(os.Stdout, f.keys.keygen)
	}
	if err := f.fromEnv(fs); err != nil {
		return nil, err
	}
	cfg, err := f.config()
	if err != nil {
		return nil, err
	}
	if cfg.Role == RoleStatus {
		return nil, runStatus(ctx, cfg, sigs, os.Stdout)
	}
	p, err := build(cfg)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("%w: the build function returned no pipeline", ErrUsage)
	}
	secure, err := secureTransport(cfg)
	if err != nil {
		return nil, err
	}
	proc, err := assemble(cfg, p, secure)
	if err != nil {
		return nil, err
	}
	if !cfg.Quiet {
		out := progress(cfg)
		proc.progress = &out
	}
	cfg.Logger.Info("running", "role", cfg.Role, "distributor", cfg.Endpoints.Distributor, "collector", cfg.Endpoints.Collector,
		"workers", len(proc.Workers))
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if sigs != nil {
		done := make(chan struct{})
		var watcher sync.WaitGroup
		watcher.Go(func() { watchSignals(sigs, done, proc, stop) })
		defer watcher.Wait()
		defer close(done)
	}
	if err := proc.run(ctx); err != nil {
		var stopped *StoppedError
		if errors.As(context.Cause(ctx), &stopped) {
			if d := proc.Distributor; d != nil {
				stopped.Done, stopped.Produced = d.Progress()
				stopped.hasProgress = true
			}
			return proc, stopped
		}
		return proc, err
	}
	if p.Done != nil {
		if err := p.Done(proc); err != nil {
			return proc, err
		}
	}
	return proc, nil
}
