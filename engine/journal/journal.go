// Package journal is the distributor's embedded write-ahead log: what a
// durable run (engine.WithJournal) records so that a distributor started
// again on the same file resumes the run instead of starting over.
//
// A journal is one append-only file of records, each framed by its length
// and a CRC-32C of its contents:
//
//	length (4 bytes, little-endian: kind and body) | crc32c (4) | kind (1) | body
//
// Opening a journal reads every record in order and hands it to a
// callback; a last record cut short or whose checksum fails (a write torn
// by a crash or a power loss) is reported and cut off, and appending goes
// on from the last good record.
//
// # Why a log of its own
//
// The distributor writes a record per item produced and per item
// acknowledged, and reads them back only when it starts: the shape an
// append-only log serves best. Measured on this project's 2-core machines,
// writing 100,000 records of 24 bytes in batches of 16 (one batch per
// write or transaction):
//
//	                                     records/s
//	this log, synced every 50 ms         13,600,000
//	bbolt, NoSync, synced every 50 ms       382,000
//	this log, synced after every batch       72,000
//	bbolt, synced by every transaction       41,000
//
// go.etcd.io/bbolt rewrites B+tree pages on every transaction, which the
// journal never needs: it is replayed, never queried. An LSM such as
// github.com/cockroachdb/pebble batches well, but brings a large
// dependency, background compaction and a directory of files for one
// sequential stream. So the journal is a few hundred lines over os.File:
// one write(2) per batch of records (about a microsecond), and one fsync
// (about 160 µs) covering everything written since the last, run on its
// own goroutine every sync interval (group commit).
//
// # Durability
//
// Write hands records to the operating system: once it returns they
// survive the process being killed (kill -9). They survive a power loss or
// a kernel crash once synced: Sync does it at once, and with a sync
// interval a goroutine does it that often when anything was written. The
// engine syncs at once what must never be lost even then (the run's
// identity, the item ids it reserves before using them, the end of the
// run) and leaves the rest to the interval; see engine.WithJournal for
// what a power loss within the interval costs.
package journal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Kind is a record's kind.
type Kind byte

// The kinds of record.
const (
	// KindBegin opens a journal: the run's id, its assignment key and its
	// task types.
	KindBegin Kind = 'B'
	// KindMetadata holds the run's metadata, encoded.
	KindMetadata Kind = 'M'
	// KindProduced records an item the distributor produced: its id, its
	// task type (an index into Begin's types), whether it was its type's
	// last, a hash of its encoded payload, and the payload itself when the
	// task resumes from a cursor (engine.Resumer).
	KindProduced Kind = 'P'
	// KindAcked records an item's completion: its id, whether it failed,
	// and the collector's ACK data (or the failure's text).
	KindAcked Kind = 'A'
	// KindReserved records that item ids up to Item may be in use.
	KindReserved Kind = 'R'
	// KindComplete records that the run completed.
	KindComplete Kind = 'C'
)

// TaskType is a task type as Begin records it.
type TaskType struct {
	Name      string
	DependsOn []string
}

// Record is one entry of a journal; which fields count depends on its
// Kind.
type Record struct {
	Kind Kind
	// Begin.
	Run   uint64
	Key   [16]byte
	Types []TaskType
	// Produced, Acked, Reserved.
	Item uint64
	// Produced: the index of the item's task type in Begin's Types.
	Type uint32
	// Produced: the item was its task type's last. Acked: the item failed.
	Flag bool
	// Produced: a hash of the encoded payload.
	Hash uint64
	// Metadata, Produced (when kept) and Acked: the bytes.
	Data []byte
}

// ErrCorrupt is wrapped by the errors of a journal that cannot be read:
// a record whose contents do not parse although its checksum holds.
var ErrCorrupt = errors.New("journal: corrupt")

// ErrInUse is returned by Open for a journal another process (or another
// Journal in this one) has open.
var ErrInUse = errors.New("journal: in use by another distributor")

// maxRecord bounds one record, so a damaged length cannot make Open
// allocate without limit.
const maxRecord = 1 << 30

// headerLen is the length and checksum before each record's kind.
const headerLen = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Journal is an open journal, appended to by one goroutine.
type Journal struct {
	f        *os.File
	path     string
	interval time.Duration
	buf      []byte // records not yet written

	dirty    atomic.Bool // written since the last sync
	syncMu   sync.Mutex  // serialises syncs, and guards syncErr
	syncErr  error
	stop     chan struct{}
	syncerWG sync.WaitGroup
}

// Options tune a journal.
type Options struct {
	// SyncInterval is how often a goroutine syncs what was written since
	// the last sync. Zero makes every Write sync before it returns.
	SyncInterval time.Duration
}

// Torn describes what Open cut off the end of a journal.
type Torn struct {
	// Offset is where the cut-off record began; Bytes how many bytes
	// from there were dropped.
	Offset, Bytes int64
}

// Open opens the journal at path, creating it (mode 0600: it holds the
// run's assignment key) if it does not exist, and hands every record in it
// to replay, in order, before it returns; an error from replay stops the
// reading and is returned. A torn last record is cut off and reported. The
// caller appends from there and closes the journal.
func Open(path string, opts Options, replay func(Record) error) (*Journal, *Torn, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	// One writer: two distributors appending to one journal would
	// interleave their runs.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil, fmt.Errorf("%w: %s", ErrInUse, path)
		}
		return nil, nil, fmt.Errorf("journal %s: lock: %w", path, err)
	}
	good, torn, err := read(f, replay)
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("journal %s: %w", path, err)
	}
	if torn != nil {
		if err := f.Truncate(good); err != nil {
			_ = f.Close()
			return nil, nil, fmt.Errorf("journal %s: cut off a torn record: %w", path, err)
		}
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("journal %s: %w", path, err)
	}
	j := &Journal{f: f, path: path, interval: opts.SyncInterval, stop: make(chan struct{})}
	if opts.SyncInterval > 0 {
		j.syncerWG.Go(func() { j.syncEvery(opts.SyncInterval) })
	} else {
		j.dirty.Store(true) // Write syncs; Close syncs what Open truncated
	}
	return j, torn, nil
}

// Read hands every good record of the journal at path to fn, in order,
// without changing the file; a journal that does not exist has none. It
// returns what a torn last record would cost, as Open would cut it.
func Read(path string, fn func(Record) error) (*Torn, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	_, torn, err := read(f, fn)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	return torn, nil
}

// read hands every good record of f to replay and returns the offset past
// the last one, and what follows it if that is a torn record: one cut
// short by the end of the file, a last one whose checksum fails, or zeros
// to the end (a file a crash extended before its data was written). A bad
// record with more after it is not a torn write but damage: an error.
func read(f *os.File, replay func(Record) error) (good int64, torn *Torn, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, nil, err
	}
	size := st.Size()
	r := bufio.NewReaderSize(f, 1<<16)
	tornHere := func() *Torn { return &Torn{Offset: good, Bytes: size - good} }
	var head [headerLen]byte
	var body []byte
	for good < size {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return good, tornHere(), nil
		}
		n := int64(binary.LittleEndian.Uint32(head[:4]))
		switch {
		case n == 0 && head == [headerLen]byte{}:
			if zeros, err := onlyZeros(r); err != nil || !zeros {
				return good, nil, fmt.Errorf("%w: zeros at offset %d, then data", ErrCorrupt, good)
			}
			return good, tornHere(), nil
		case n == 0 || n > maxRecord:
			return good, nil, fmt.Errorf("%w: a record of %d bytes at offset %d", ErrCorrupt, n, good)
		case n > size-good-headerLen:
			return good, tornHere(), nil // cut short by the end of the file
		}
		if int64(cap(body)) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			return good, nil, fmt.Errorf("journal: read at offset %d: %w", good, err)
		}
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(head[4:]) {
			if good+headerLen+n == size {
				return good, tornHere(), nil // the last record, half written
			}
			return good, nil, fmt.Errorf("%w: checksum of the record at offset %d fails, and records follow it", ErrCorrupt, good)
		}
		rec, err := decode(body)
		if err != nil {
			return good, nil, fmt.Errorf("%w: record at offset %d: %w", ErrCorrupt, good, err)
		}
		if err := replay(rec); err != nil {
			return good, nil, err
		}
		good += headerLen + n
	}
	return good, nil, nil
}

// onlyZeros reports whether r holds nothing but zeros to its end.
func onlyZeros(r io.Reader) (bool, error) {
	buf := make([]byte, 1<<12)
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			if c != 0 {
				return false, nil
			}
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// Append adds rec to the records Write writes next.
func (j *Journal) Append(rec Record) {
	start := len(j.buf)
	j.buf = append(j.buf, make([]byte, headerLen)...)
	j.buf = encode(j.buf, rec)
	body := j.buf[start+headerLen:]
	binary.LittleEndian.PutUint32(j.buf[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(j.buf[start+4:], crc32.Checksum(body, castagnoli))
}

// Pending reports whether records wait to be written.
func (j *Journal) Pending() bool { return len(j.buf) > 0 }

// Write hands the appended records to the operating system: from then on
// they survive the process. Without a sync interval it also syncs them.
// It returns the error of a failed sync, too: a journal that cannot sync
// does not keep the run's promises.
func (j *Journal) Write() error {
	if j.interval == 0 {
		return j.Sync()
	}
	if err := j.writeBuffered(); err != nil {
		return err
	}
	return j.lastSyncErr()
}

// writeBuffered writes the appended records to the file.
func (j *Journal) writeBuffered() error {
	if len(j.buf) == 0 {
		return nil
	}
	if _, err := j.f.Write(j.buf); err != nil {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	j.buf = j.buf[:0]
	j.dirty.Store(true)
	return nil
}

// Sync writes the appended records and syncs everything written: from
// then on it survives a power loss.
func (j *Journal) Sync() error {
	if err := j.writeBuffered(); err != nil {
		return err
	}
	return j.sync()
}

func (j *Journal) sync() error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	if j.syncErr != nil {
		return j.syncErr
	}
	if !j.dirty.Swap(false) {
		return nil
	}
	if err := j.f.Sync(); err != nil {
		j.syncErr = fmt.Errorf("journal %s: sync: %w", j.path, err)
	}
	return j.syncErr
}

func (j *Journal) lastSyncErr() error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	return j.syncErr
}

// syncEvery syncs what was written, every interval, until Close.
func (j *Journal) syncEvery(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-t.C:
			_ = j.sync() // kept in syncErr, returned by the next Write
		}
	}
}

// Close writes and syncs what is left and closes the file.
func (j *Journal) Close() error {
	close(j.stop)
	j.syncerWG.Wait()
	err := j.Sync()
	if cerr := j.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("journal %s: %w", j.path, cerr)
	}
	return err
}
