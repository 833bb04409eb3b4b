package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/transport"
)

// statusTimeout bounds how long -role status waits for each answer.
const statusTimeout = 5 * time.Second

// showStatus is -role status: it asks the distributor at cfg's endpoint
// how the run is and prints the answer to w, as a table (or, with -json,
// as one line of JSON), once, or every cfg.Watch until ctx ends or the
// distributor stops answering. A watched run that was complete when the
// distributor stopped answering has ended well: nil.
func showStatus(ctx context.Context, cfg *Config, opts []engine.Option, w io.Writer, clear bool) error {
	var last *engine.Status
	for {
		qctx, cancel := context.WithTimeout(ctx, statusTimeout)
		st, err := engine.QueryStatus(qctx, cfg.Endpoints.Distributor, opts...)
		cancel()
		switch {
		case err != nil && ctx.Err() != nil && last != nil:
			return nil // stopped by a signal while watching
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("stopped before the distributor answered: %w", context.Cause(ctx))
		case err != nil && last != nil && runComplete(*last):
			fmt.Fprintln(w, "the run completed; the distributor is gone")
			return nil
		case err != nil && last != nil:
			return fmt.Errorf("the distributor stopped answering (its run may have ended, or it was stopped): %w", err)
		case err != nil:
			return err
		}
		last = &st
		if cfg.JSON {
			if err := json.NewEncoder(w).Encode(st); err != nil {
				return err
			}
		} else {
			if clear {
				fmt.Fprint(w, "\x1b[H\x1b[2J") // home, and clear the screen
			} else if cfg.Watch > 0 {
				fmt.Fprintln(w)
			}
			if err := WriteStatus(w, cfg.Endpoints.Distributor, st); err != nil {
				return err
			}
		}
		if cfg.Watch <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(cfg.Watch):
		}
	}
}

// runComplete reports whether every task type of st is complete.
func runComplete(st engine.Status) bool {
	for _, t := range st.Tasks {
		if t.State != engine.TaskComplete {
			return false
		}
	}
	return st.Run != ""
}

// WriteStatus writes st, the status of the distributor at endpoint, to w
// as the tables -role status prints:
//
//	distributor tcp://10.0.0.5:5555, run 3f2ac1d09e4b7a11: running for 12.3s
//	items: 4500/10000 complete (45.0%), 128 in flight, 0 failed, 3 retried, 0 redelivered
//	rate: 1203 items/s, 4.6s left
//
//	TASK    STATE     DEPENDS ON  TOTAL  PRODUCED  IN FLIGHT  COMPLETE  FAILED  RETRIED  REDELIVERED
//	first   complete  -           5000   5000      0          5000      0       3        0
//	second  running   first       5000   200       128        72        0       0        0
//
//	WORKER    TYPE    WINDOW  GRANTED  HANDED  FINISHED  ITEMS/S  LAST SEEN  DRAINING
//	9f0c…     second  64      64       100     36        601      0.4s ago   no
//
//	collector: 77ab…; dropped: none; ignored: none
func WriteStatus(w io.Writer, endpoint string, st engine.Status) error {
	var b strings.Builder
	if st.Run == "" {
		fmt.Fprintf(&b, "distributor %s: the run has not begun (waiting for metadata or workers)\n", endpoint)
	} else {
		state := "running"
		if runComplete(st) {
			state = "complete"
		}
		fmt.Fprintf(&b, "distributor %s, run %s: %s for %s\n", endpoint, st.Run, state, st.Elapsed.Round(100*time.Millisecond))
	}
	if st.Total >= 0 {
		fmt.Fprintf(&b, "items: %d/%d complete (%.1f%%)", st.Completed, st.Total, percent(st.Completed, st.Total))
	} else {
		fmt.Fprintf(&b, "items: %d complete of %d produced so far", st.Completed, st.Produced)
	}
	fmt.Fprintf(&b, ", %d in flight, %d failed, %d retried, %d redelivered\n", st.InFlight, st.Failed, st.Retried, st.Redelivered)
	fmt.Fprintf(&b, "rate: %s", rateText(st.Rate))
	if st.Remaining > 0 {
		fmt.Fprintf(&b, ", %s left", leftText(st.Remaining))
	}
	b.WriteString("\n\n")

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tSTATE\tDEPENDS ON\tTOTAL\tPRODUCED\tIN FLIGHT\tCOMPLETE\tFAILED\tRETRIED\tREDELIVERED")
	for _, t := range st.Tasks {
		deps, total := "-", "?"
		if len(t.DependsOn) > 0 {
			deps = strings.Join(t.DependsOn, ",")
		}
		if t.Total >= 0 {
			total = fmt.Sprint(t.Total)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", t.Type, t.State, deps, total,
			t.Produced, t.InFlight, t.Completed, t.Failed, t.Retried, t.Redelivered)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b.WriteString("\n")
	if len(st.Workers) == 0 {
		b.WriteString("workers: none connected\n")
	} else {
		now := time.Now()
		fmt.Fprintln(tw, "WORKER\tTYPE\tWINDOW\tGRANTED\tHANDED\tFINISHED\tITEMS/S\tLAST SEEN\tDRAINING")
		for _, wk := range st.Workers {
			seen := "-"
			if !wk.LastSeen.IsZero() {
				seen = leftText(max(now.Sub(wk.LastSeen), 0)) + " ago"
			}
			draining := "no"
			if wk.Draining {
				draining = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.0f\t%s\t%s\n", wk.Peer, wk.TaskType, wk.Window, wk.Granted,
				wk.Handed, wk.Finished, wk.Rate, seen, draining)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	collector := st.Collector
	if collector == "" {
		collector = "none connected"
	}
	fmt.Fprintf(&b, "\ncollector: %s; dropped: %s; ignored: %s\n", collector,
		reasons(st.Stats.Transport.Dropped), reasons(st.Stats.Ignored))
	_, err := io.WriteString(w, b.String())
	return err
}

// reasons writes counts by reason, most first: "none" for none.
func reasons(counts map[transport.DropReason]uint64) string {
	if len(counts) == 0 {
		return "none"
	}
	keys := slices.Collect(maps.Keys(counts))
	slices.SortFunc(keys, func(a, b transport.DropReason) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", counts[k], k)
	}
	return strings.Join(parts, ", ")
}
