package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunPrintsEveryRow(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, options{n: 20, delay: time.Millisecond, repeat: 1, prefetch: -1, transport: "inproc"}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"sequential loop", "singlethread", "multithread", "added vs plain"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if got := strings.Count(text, "thread  "); got < len(rows) {
		t.Errorf("want %d rows:\n%s", len(rows), text)
	}
}

// TestRunWithAProcessPerRole builds the examples and runs every row with
// each role in its own process, over ipc and tcp.
func TestRunWithAProcessPerRole(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts processes")
	}
	for _, tr := range []string{"ipc", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(&out, options{n: 20, delay: time.Millisecond, repeat: 1, prefetch: -1, transport: tr}); err != nil {
				t.Fatal(err)
			}
			text := out.String()
			if !strings.Contains(text, tr+", a process per role") || strings.Count(text, "thread  ") < len(rows) {
				t.Errorf("want a row per example over %s:\n%s", tr, text)
			}
		})
	}
}

func TestParseReportNeedsEveryResult(t *testing.T) {
	report := "collected 20 results\nexpected execution time: 20.0\ncollection after the first result took: 19.5 milliseconds\noverhead: -2.5%\n"
	r, err := parseReport(report, "collection after the first result", 20)
	if err != nil || r.took != 19500*time.Microsecond || r.expected != 20*time.Millisecond {
		t.Fatalf("parseReport = %+v, %v; want 19.5ms of 20ms", r, err)
	}
	if _, err := parseReport(strings.Replace(report, "20 results", "19 results", 1), "collection after the first result", 20); err == nil {
		t.Fatal("a run that lost a result must be an error")
	}
	if _, err := parseReport(report, "pipeline execution", -1); err == nil {
		t.Fatal("a report of something else must be an error")
	}
}
