package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine/journal"
	"github.com/zmqpipeline/zmqpipeline/transport"
)

// ErrJournalMismatch is wrapped by the error of a distributor started on
// a journal of another pipeline: other task types, or other dependencies.
var ErrJournalMismatch = errors.New("engine: the journal is of another pipeline")

// ErrNotDeterministic is wrapped by the error of a distributor resuming a
// run whose task, asked again for an item the journal records, produced
// another one (or none). A task that cannot repeat its items in order
// implements Resumer instead.
var ErrNotDeterministic = errors.New("engine: a task did not produce its items again in the same order")

// Resumer is a Task that can continue a durable run from where it got to,
// instead of producing its first items again. A distributor resuming a
// run calls Resume once, after it replayed the journal's ACKs to the
// task's HandleAck (if it has one) and before it asks for a new item, with
// the number of items the journal says the task produced: Next must then
// return the item after them. The journal keeps the payloads of a
// Resumer's items, so that those still in flight at the crash can go out
// again.
type Resumer interface {
	Task
	Resume(ctx context.Context, produced int) error
}

// errResumedComplete ends a resumed run whose journal holds an ACK for
// every item: Run returns nil.
var errResumedComplete = errors.New("engine: the journal's run is complete")

// reserveBlock is how many item ids a durable run reserves at once: the
// reservation is synced before any id in it is used, so that ids handed
// out but not yet synced are never given to other items after a power
// loss.
const reserveBlock = 1 << 12

// durable is a distributor's journal and what it read from it.
type durable struct {
	path string
	opts journal.Options
	j    *journal.Journal // open once the run's tasks are initialised

	// From the first reading.
	begun    bool
	run      uint64
	key      transport.Token
	md       []byte
	hasMD    bool
	complete bool
	reserved uint64 // ids up to here may be in use
	torn     *journal.Torn

	replaying bool
	resumed   int // items produced again from the journal
	acked     int // of those, completed
}

// readJournal reads the run's identity from the journal at path, if there
// is one, and checks that it is of this pipeline.
func readJournal(d *Distributor) (*durable, error) {
	dur := &durable{path: d.s.journalPath, opts: journal.Options{SyncInterval: d.s.journalSync}}
	first := true
	torn, err := journal.Read(dur.path, func(rec journal.Record) error {
		if first && rec.Kind != journal.KindBegin {
			return fmt.Errorf("%w: it does not begin with a run", journal.ErrCorrupt)
		}
		first = false
		switch rec.Kind {
		case journal.KindBegin:
			if err := sameTypes(d.specs, rec.Types); err != nil {
				return fmt.Errorf("%w %s: %w", ErrJournalMismatch, dur.path, err)
			}
			dur.begun, dur.run, dur.key = true, rec.Run, rec.Key
		case journal.KindMetadata:
			dur.md, dur.hasMD = rec.Data, true
		case journal.KindReserved:
			dur.reserved = max(dur.reserved, rec.Item)
		case journal.KindComplete:
			dur.complete = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("distributor: %w", err)
	}
	dur.torn = torn
	return dur, nil
}

// journalTypes is how a journal records the pipeline's task types.
func journalTypes(specs []TaskSpec) []journal.TaskType {
	out := make([]journal.TaskType, len(specs))
	for i, s := range specs {
		out[i] = journal.TaskType{Name: s.Type, DependsOn: slices.Clone(s.DependsOn)}
	}
	return out
}

// sameTypes says how the journal's task types differ from specs, if they
// do.
func sameTypes(specs []TaskSpec, recorded []journal.TaskType) error {
	names := func(ts []journal.TaskType) []string {
		out := make([]string, len(ts))
		for i, t := range ts {
			out[i] = t.Name
		}
		return out
	}
	want := journalTypes(specs)
	if !slices.Equal(names(want), names(recorded)) {
		return fmt.Errorf("it has the task types %q, this distributor %q", names(recorded), names(want))
	}
	for i, t := range want {
		a, b := slices.Sorted(slices.Values(t.DependsOn)), slices.Sorted(slices.Values(recorded[i].DependsOn))
		if !slices.Equal(a, b) {
			return fmt.Errorf("task type %q depends on %q in it, on %q here", t.Name, b, a)
		}
	}
	return nil
}

// openJournal opens the journal once the tasks are initialised: a new one
// gets the run's identity and metadata, an existing one is replayed into
// the tasks, and what was in flight goes out again.
func (r *distRun) openJournal(ctx context.Context) error {
	dur := r.dur
	dur.replaying = true
	j, _, err := journal.Open(dur.path, dur.opts, func(rec journal.Record) error { return r.replay(ctx, rec) })
	dur.replaying = false
	if err != nil {
		return fmt.Errorf("distributor: %w", err)
	}
	dur.j = j
	if !dur.begun {
		j.Append(journal.Record{Kind: journal.KindBegin, Run: r.runID, Key: r.tokenKey, Types: journalTypes(r.d.specs)})
		dur.begun = true
	}
	if !dur.hasMD && r.md != nil {
		j.Append(journal.Record{Kind: journal.KindMetadata, Data: r.md})
		dur.hasMD = true
	}
	if err := j.Sync(); err != nil {
		return fmt.Errorf("distributor: %w", err)
	}
	if dur.resumed == 0 {
		return nil
	}
	if r.tracker.AllComplete() {
		// Every item was acknowledged, but the record of the end was
		// lost (torn by a power loss): the run is complete.
		if err := r.journalComplete(); err != nil {
			return err
		}
		return errResumedComplete
	}
	for _, ts := range r.order {
		if res, ok := ts.spec.Task.(Resumer); ok {
			if err := protect(func() error { return res.Resume(ctx, ts.produced) }); err != nil {
				return fmt.Errorf("task %q: resume after %d items: %w", ts.spec.Type, ts.produced, err)
			}
		}
	}
	// What was in flight at the crash goes out again, attempt raised.
	open := r.items.ids()
	for _, id := range open {
		r.requeue(r.items.get(id))
	}
	r.nextID = max(r.nextID, dur.reserved)
	attrs := []any{"run", runName(r.runID), "produced", dur.resumed, "acknowledged", dur.acked, "to_hand_out_again", len(open)}
	if dur.torn != nil {
		attrs = append(attrs, "torn_bytes_cut", dur.torn.Bytes)
	}
	r.d.log.Info("run resumed from its journal", attrs...)
	return nil
}

// replay applies one journal record to the run: an item produced is asked
// of its task again (or, for a Resumer, taken from the journal), an item
// acknowledged completes as it did then.
func (r *distRun) replay(ctx context.Context, rec journal.Record) error {
	switch rec.Kind {
	case journal.KindProduced:
		if int(rec.Type) >= len(r.order) || rec.Item == 0 {
			return fmt.Errorf("%w: item %d of task type %d", journal.ErrCorrupt, rec.Item, rec.Type)
		}
		ts := r.order[rec.Type]
		if _, ok := ts.spec.Task.(Resumer); ok {
			r.track(ts, rec.Item, rec.Data, rec.Flag)
		} else {
			r.nextID = rec.Item - 1
			f, err := r.produce(ctx, ts)
			if err != nil {
				return err
			}
			if f == nil || itemHash(f.payload) != rec.Hash || ts.exhausted != rec.Flag {
				return fmt.Errorf("%w: task %q, asked again for its item %d (item id %d), gave another", ErrNotDeterministic, ts.spec.Type, ts.produced, rec.Item)
			}
		}
		r.dur.resumed++
	case journal.KindAcked:
		f := r.items.get(rec.Item)
		if f == nil {
			return nil
		}
		ack := transport.Item{ID: f.id, Attempt: f.attempt, Payload: rec.Data}
		if rec.Flag {
			ack.Flags = transport.FlagFailed | transport.FlagFinal
		}
		r.dur.acked++
		return r.complete(ctx, f, &ack)
	}
	return nil
}

// itemHash is what the journal keeps of an item's payload, to check that
// a task produces it again.
func itemHash(payload []byte) uint64 {
	h := fnv.New64a()
	_, _ = h.Write(payload)
	return h.Sum64()
}

// journalProduced records an item before it goes out, reserving ids (and
// syncing the reservation) as they run out.
func (r *distRun) journalProduced(f *flight) error {
	dur := r.dur
	if dur == nil || dur.replaying {
		return nil
	}
	if f.id > dur.reserved {
		dur.reserved = f.id + reserveBlock - 1
		dur.j.Append(journal.Record{Kind: journal.KindReserved, Item: dur.reserved})
		if err := dur.j.Sync(); err != nil {
			return fmt.Errorf("distributor: %w", err)
		}
	}
	rec := journal.Record{Kind: journal.KindProduced, Item: f.id, Type: f.ts.index, Flag: f.ts.exhausted, Hash: itemHash(f.payload)}
	if _, ok := f.ts.spec.Task.(Resumer); ok {
		rec.Data = f.payload
	}
	dur.j.Append(rec)
	return nil
}

// journalAcked records an item's completion.
func (r *distRun) journalAcked(f *flight, ack *transport.Item) {
	if r.dur == nil || r.dur.replaying {
		return
	}
	r.dur.j.Append(journal.Record{Kind: journal.KindAcked, Item: f.id, Flag: ack.Flags&transport.FlagFailed != 0, Data: ack.Payload})
}

// writeJournal hands what was recorded to the operating system: before
// any item it records goes out, so that a distributor killed after
// handing it out finds it in the journal.
func (r *distRun) writeJournal() error {
	if r.dur == nil || r.dur.j == nil || !r.dur.j.Pending() {
		return nil
	}
	if err := r.dur.j.Write(); err != nil {
		return fmt.Errorf("distributor: %w", err)
	}
	return nil
}

// journalComplete records, synced, that every item of the run is
// complete: from then on a distributor started on the journal has nothing
// to do, even if this one dies before the peers confirm the end.
func (r *distRun) journalComplete() error {
	dur := r.dur
	if dur == nil || dur.j == nil || dur.replaying || dur.complete {
		return nil
	}
	dur.complete = true
	dur.j.Append(journal.Record{Kind: journal.KindComplete})
	if err := dur.j.Sync(); err != nil {
		return fmt.Errorf("distributor: %w", err)
	}
	return nil
}

// closeJournal records the end of a completed run, if it was not
// recorded yet, and closes the journal.
func (r *distRun) closeJournal(complete bool) error {
	if r.dur == nil || r.dur.j == nil {
		return nil
	}
	if complete {
		if err := r.journalComplete(); err != nil {
			_ = r.dur.j.Close()
			return err
		}
	}
	return r.dur.j.Close()
}

// DefaultJournalSync is how often a durable run's journal is synced by
// default (WithJournalSync).
const DefaultJournalSync = 50 * time.Millisecond
