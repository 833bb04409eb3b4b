package journal_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/zmqpipeline/zmqpipeline/engine/journal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// records is one of every kind.
var records = []journal.Record{
	{Kind: journal.KindBegin, Run: 0x1b2c3d4e5f607182, Key: [16]byte{1, 2, 3}, Types: []journal.TaskType{
		{Name: "first"}, {Name: "second", DependsOn: []string{"first"}},
	}},
	{Kind: journal.KindReserved, Item: 4096},
	{Kind: journal.KindMetadata, Data: []byte{0x81, 0xa1, 0x6b, 0x01}},
	{Kind: journal.KindProduced, Item: 1, Type: 0, Hash: 0xfeedface},
	{Kind: journal.KindProduced, Item: 2, Type: 1, Flag: true, Hash: 7, Data: []byte("kept payload")},
	{Kind: journal.KindAcked, Item: 2, Data: []byte{0xc0}},
	{Kind: journal.KindAcked, Item: 1, Flag: true, Data: []byte("it failed")},
	{Kind: journal.KindComplete},
}

func write(t *testing.T, path string, opts journal.Options, recs ...journal.Record) {
	t.Helper()
	j, torn, err := journal.Open(path, opts, func(journal.Record) error { return nil })
	require.NoError(t, err)
	require.Nil(t, torn)
	for _, r := range recs {
		j.Append(r)
	}
	require.NoError(t, j.Write())
	require.NoError(t, j.Close())
}

func readAll(t *testing.T, path string) ([]journal.Record, *journal.Torn) {
	t.Helper()
	var got []journal.Record
	j, torn, err := journal.Open(path, journal.Options{}, func(r journal.Record) error {
		got = append(got, r)
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, j.Close())
	return got, torn
}

func TestRecordsComeBackInOrder(t *testing.T) {
	for _, opts := range []journal.Options{{}, {SyncInterval: time.Millisecond}} {
		path := filepath.Join(t.TempDir(), "run.journal")
		write(t, path, opts, records[:4]...)
		write(t, path, opts, records[4:]...) // appended on a second opening
		got, torn := readAll(t, path)
		assert.Nil(t, torn)
		require.Len(t, got, len(records))
		for i, want := range records {
			if len(want.Data) == 0 {
				want.Data = nil
			}
			if len(got[i].Data) == 0 {
				got[i].Data = nil
			}
			assert.Equal(t, want, got[i], "record %d", i)
		}
		st, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "it holds the run's key")
	}
}

// TestATornLastRecordIsCutOff cuts the file at every byte of its last
// record, as a crash mid-write would: the records before it come back,
// the torn one is reported and cut off, and appending goes on after the
// last good record.
func TestATornLastRecordIsCutOff(t *testing.T) {
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole")
	write(t, whole, journal.Options{}, records[:5]...)
	data, err := os.ReadFile(whole)
	require.NoError(t, err)
	write(t, filepath.Join(dir, "four"), journal.Options{}, records[:4]...)
	four, err := os.ReadFile(filepath.Join(dir, "four"))
	require.NoError(t, err)
	for cut := len(four) + 1; cut < len(data); cut++ {
		path := filepath.Join(dir, "cut")
		require.NoError(t, os.WriteFile(path, data[:cut], 0o600))
		got, torn := readAll(t, path)
		require.Len(t, got, 4, "cut at %d", cut)
		require.NotNil(t, torn, "cut at %d", cut)
		assert.Equal(t, journal.Torn{Offset: int64(len(four)), Bytes: int64(cut - len(four))}, *torn)
		write(t, path, journal.Options{}, records[5])
		got, torn = readAll(t, path)
		assert.Nil(t, torn)
		assert.Len(t, got, 5, "appended after the cut")
	}
	// A last record whose bytes are wrong, and zeros a crash left.
	bad := append([]byte(nil), data...)
	bad[len(bad)-1] ^= 0xff
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad"), bad, 0o600))
	got, torn := readAll(t, filepath.Join(dir, "bad"))
	assert.Len(t, got, 4)
	assert.NotNil(t, torn)
	zeros := append(append([]byte(nil), four...), make([]byte, 100)...)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "zeros"), zeros, 0o600))
	got, torn = readAll(t, filepath.Join(dir, "zeros"))
	assert.Len(t, got, 4)
	assert.Equal(t, &journal.Torn{Offset: int64(len(four)), Bytes: 100}, torn)
}

// TestDamageInTheMiddleIsAnError: a bad record with good ones after it is
// not a torn write; cutting there would lose what follows.
func TestDamageInTheMiddleIsAnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "j")
	write(t, path, journal.Options{}, records...)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	data[20] ^= 0x40 // inside the first record
	require.NoError(t, os.WriteFile(path, data, 0o600))
	_, _, err = journal.Open(path, journal.Options{}, func(journal.Record) error { return nil })
	assert.ErrorIs(t, err, journal.ErrCorrupt)
	assert.ErrorContains(t, err, "offset 0")
}

func TestReplayErrorsStopTheOpening(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	write(t, path, journal.Options{}, records...)
	stop := assert.AnError
	n := 0
	_, _, err := journal.Open(path, journal.Options{}, func(journal.Record) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 3, n)
}

// FuzzOpen: any file opens to its good records, a torn tail or an error;
// never a panic or a runaway allocation.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "seed")
	j, _, err := journal.Open(path, journal.Options{}, func(journal.Record) error { return nil })
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range records {
		j.Append(r)
	}
	if err := j.Close(); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-3])
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "j")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Skip(err)
		}
		j, _, err := journal.Open(path, journal.Options{}, func(journal.Record) error { return nil })
		if err == nil {
			_ = j.Close()
		}
	})
}

func TestOneWriterAtATime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, _, err := journal.Open(path, journal.Options{}, func(journal.Record) error { return nil })
	require.NoError(t, err)
	_, _, err = journal.Open(path, journal.Options{}, func(journal.Record) error { return nil })
	assert.ErrorIs(t, err, journal.ErrInUse)
	require.NoError(t, j.Close())
	j, _, err = journal.Open(path, journal.Options{}, func(journal.Record) error { return nil })
	require.NoError(t, err, "free again once closed")
	require.NoError(t, j.Close())
}
