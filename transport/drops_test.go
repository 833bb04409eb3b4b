package transport

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A flood of drops writes one line per reason per interval, each saying
// how many it stands for; the counts are exact.
func TestDropCounterLogsOneLinePerReasonPerInterval(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	clock := time.Unix(1000, 0)
	c := &DropCounter{now: func() time.Time { return clock }}
	for range 1000 {
		c.Drop(log, DropMalformed, "message dropped")
		c.Drop(log, DropOversize, "message dropped")
		clock = clock.Add(time.Millisecond) // 1000 drops of each in 1 s
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	assert.Len(t, lines, 2, "the first of each reason only: %s", buf.String())
	assert.Contains(t, lines[0], "reason=malformed dropped=1 dropped_total=1")

	buf.Reset()
	clock = clock.Add(DropLogInterval)
	c.Drop(log, DropMalformed, "message dropped", "peer", "x")
	assert.Equal(t, 1, strings.Count(buf.String(), "\n"))
	assert.Contains(t, buf.String(), "peer=x reason=malformed dropped=1000 dropped_total=1001",
		"the next line stands for every drop since the last one")
	assert.Equal(t, map[DropReason]uint64{DropMalformed: 1001, DropOversize: 1000}, c.Counts())
	assert.Equal(t, uint64(2001), c.Total())
	assert.Nil(t, (&DropCounter{}).Counts())
}

func TestPeerIDPrintsBinaryIDsInHex(t *testing.T) {
	assert.Equal(t, "worker-1", PeerID("worker-1").String())
	assert.Equal(t, "806b8b4567", PeerID("\x80\x6b\x8b\x45\x67").String())
}
