// Package engine is the task pipeline: a Distributor hands the work items of
// registered task types to Workers that asked for them, Workers send results
// to a Collector, the Collector acknowledges each one back to the
// Distributor, task types may depend on others, and a MetadataSource can
// hand a map to everyone before work starts.
//
// # Roles and endpoints
//
// Every component takes the same Endpoints: the distributor binds
// Endpoints.Distributor and the collector binds Endpoints.Collector; workers
// dial both, the collector and the metadata source dial the distributor. The
// scheme picks the transport: "inproc://" runs the pipeline as goroutines in
// one process over channels, "ipc://" and "tcp://" over ZeroMQ (the ZeroMQ
// transport registers itself when its package is imported), or a
// transport handed to the component with WithTransport. Task, worker and
// collector code does not change between the two. Components may start in
// any order; RunAll runs several components together in one process, and
// package engine/cli turns a whole program into the role its flags
// choose.
//
// A listening component reports where it listens once bound (Bound, Addr:
// "tcp://host:0" binds a port the system picks), and a joining one when
// the distributor welcomed it (Joined), so callers wait for order instead
// of guessing.
//
// One endpoint per distributor, rather than the original's one per task type
// plus a separate ACK endpoint, is a deliberate change: a worker names its
// task type in its handshake, so a pipeline is configured by two strings
// whatever its number of task types, and the distributor's single goroutine
// sees credits, ACKs and metadata in one ordered stream.
//
// # An item's life
//
// A worker announces its capacity after its init hooks: its goroutines
// plus a prefetch window (by default one spare item per goroutine, doubled
// while items are shorter than a round trip or much shorter than a
// millisecond; see DefaultPrefetch). For each credit the distributor asks
// the worker's task for its next item, but only when the type's
// dependencies are complete, the metadata (if awaited) arrived and the
// task is not waiting for an ACK. The item goes to the worker whose credit
// has waited longest. The worker executes it and sends the result (or the
// failure) to the collector (a reporter goroutine encodes and sends it, so
// the executing goroutine goes straight on to its next item), which calls
// the user's handler and ACKs the item, with any data the handler
// returned, to the distributor; the distributor passes the ACK to the
// task's AckHandler (and to its own, WithAckHandler) and gives the worker
// its credit back. A task type is complete when its last item was produced
// and every one of its items was acknowledged; only then do its dependents
// get items.
//
// # Batches
//
// Items travel in batches: a work message carries what one dispatch hands
// one worker, a result message what one executing goroutine finished, an
// ACK message the ACKs of one result message (PROTOCOL.md, since version 4).
// Nothing waits to fill a batch. The distributor hands out, in one message
// per worker, as many items as the credit that came back with one ACK
// message allows; executing goroutines put each outcome in the worker's
// outbox as they finish the item, and the reporter sends all it holds when
// it holds an eighth of the window, when a goroutine is about to wait for
// an item, or once the oldest has waited 500 µs, whichever comes first. So an item of 10 ms travels alone and at once,
// and a million items of a microsecond travel a hundred or more to a
// message: each message's cost (a channel hand-off, a ZeroMQ frame, a
// wake-up) is shared, and the per-item work that is left (a token, a table
// slot, a map of held batches) allocates nothing in a steady run. Every
// per-item rule holds inside a batch: each item has its own attempt,
// token and ACK, the collector handles each at most once, and a batch is
// bounded by the credit, so batching changes how many items share a
// message, never which worker holds them. A batch larger than a
// transport's size limit is split by the transport into several messages.
//
// This replaces the original's message per item, and the engine's own
// before version 4: per-item messages spent three wake-ups of a goroutine
// or thread, and three ZeroMQ frames, on each item, which bounded no-op
// items at a few tens of thousands per second across processes whatever
// the window.
//
// Returning credit with the ACK, rather than by a message from the worker as
// in the original design, saves a message per item and makes the window a
// bound on everything a worker has in flight, results not yet handled
// included, so a slow collector slows the hand-out instead of growing
// queues. The prefetch window hides the extra hop.
//
// The run ends when every type is complete. The distributor then sends the
// end to the collector and the workers and waits for each to confirm; the
// collector runs its finished hook before confirming. Because the end
// follows the last ACK, no result can still be in flight when it is sent.
// If the distributor stops early (its context ends or a task fails) it tells
// every peer, whose Run then returns an error wrapping ErrAborted.
//
// # Failures
//
// A worker handler's error or panic fails that attempt: the item goes out
// again after a backoff (WithRetryBackoff), up to its task type's attempt
// limit (TaskSpec.MaxAttempts); its last failure, or one wrapping
// ErrPermanent, reaches the collector's failure handler as an *ItemError
// with the type, id, attempt and message, and the run goes on. Bad
// configuration is an ErrInvalidConfig error from the constructor; a worker
// whose type the distributor does not know gets ErrUnknownTaskType from Run.
//
// # Liveness
//
// The distributor and each peer it welcomed send each other a heartbeat
// every interval; a side that hears nothing from the other for the
// liveness timeout takes it for gone (WithHeartbeat). A worker taken for
// gone, or whose connection closed, has its items handed to other workers
// with the attempt raised; one that comes back is told so, drops what it
// holds and joins again. A lost collector makes every item in flight go out
// again once a collector joins, and a collector handles each item at most
// once per run (a duplicate is acknowledged, counted, and not handled). A
// peer that loses its distributor returns ErrDistributorLost, or waits for
// another with WithRejoin and takes part in its run, a new run: every
// message carries its run's id. The README's "Failure semantics" says what
// each guarantee costs.
//
// The distributor never waits on one peer: what a peer's full buffer
// cannot take waits in that peer's backlog, bounded by its credits, so no
// window or prefetch setting can wedge the pipeline. Liveness counts the
// distributor's own heartbeat ticks, not wall time, so a distributor held
// up by a slow task does not take its peers for gone for its own silence;
// a peer measures its distributor's silence only while it waits for it.
//
// # Durable runs
//
// With WithJournal the distributor records the run in a journal (package
// journal): each item before it goes out, each ACK as it arrives. A
// distributor started again on the same file resumes the run, with the
// same run id: it asks the tasks again for their journaled items (or
// calls Resume on a Resumer), replays the ACKs, and hands out again what
// was not acknowledged; peers with WithRejoin join it, and a collector is
// told which items are complete, so it handles none of them again. See
// WithJournal for what survives a crash and a power loss.
//
// # Hostile peers
//
// Without keys every peer that reaches an endpoint is trusted with the
// role it asks for; with a transport that authenticates (zmqtransport with
// CURVE and an access list, see package auth) each key takes only its
// roles: a hello for another is refused with an error wrapping
// auth.ErrForbidden. Either way the collector handles only results that
// carry the assignment token the distributor issued with that item's
// attempt, the distributor takes ACKs only from the collector it welcomed,
// and the distributor's state stays bounded (WithLimits): a worker is
// handed at most 32 items until its results come back, a worker that holds
// items of a type with a TaskSpec.Timeout and finishes none for the
// timeout plus the liveness timeout is taken for gone, and a peer gets one
// hello handled per heartbeat interval. The README's "Security" gives the
// threat model and the limits.
//
// # Goroutines and logging
//
// Every component's Run returns only after every goroutine it started has
// exited. Task methods run on the distributor's goroutine and need no
// locking. Handlers should honour their context: Run waits for them.
// Components log through log/slog (WithLogger), quietly by default, and
// nothing per item unless the logger is at debug level.
//
// # Options
//
// Each component has its own option type (DistributorOption, WorkerOption,
// CollectorOption, MetadataOption), so an option given to a component it
// does not fit does not compile; an Option (WithLogger, WithCodec,
// WithTransport) fits every one.
//
// # Counters
//
// Every component's Stats says what it threw away: what its transports
// dropped, by reason (malformed, oversize, for a departed peer), and the
// well-formed messages it ignored because they did not fit the run. Such
// messages are also logged at warn level, sparingly, so that a peer that
// sends many cannot flood the log.
//
// Distributor.Status is a live view of the run, safe to call at any time:
// per task type the items produced, in flight, completed, failed for
// good, retried and redelivered and whether it waits for a dependency;
// per worker its window, the items handed to it and finished, and when it
// was last heard from; the rate and, for tasks that know their total
// (Sized, as Items does), the time left. It costs the run an atomic add
// per counter and item and a snapshot of the peers per heartbeat interval.
// The collector's Summary counts results, failures and duplicates per
// task type.
//
// The engine imports the transport contract and, to make inproc endpoints
// work with no set-up, the pure-Go package transport/inproc; it never
// imports ZeroMQ, so a program that uses inproc endpoints alone builds with
// CGO_ENABLED=0.
package engine
