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
	if err := run(&out, 20, time.Millisecond, 1, -1); err != nil {
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
