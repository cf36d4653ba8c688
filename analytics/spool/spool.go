// Package spool is the producer's bounded on-disk buffer for call records
// that could not be written to Kafka. It is a directory of append-only
// segment files read oldest first; when the directory would exceed its
// bound the oldest segment is deleted (the drop-oldest policy) and the loss
// reported through a callback so it can be counted.
//
// Segment format: a sequence of frames
//
//	uint32 big-endian  payload length
//	uint32 big-endian  CRC-32C of the payload
//	payload            uvarint key length, key, value
//
// A frame that is cut short or fails its checksum (a partial write when the
// process crashed) ends the segment: Open truncates the file there.
//
// Durability: every Append reaches the operating system (one write call)
// before it returns, so a process crash loses nothing already appended.
// Files are fsynced when a segment is sealed, on Sync and on Close; the
// producer calls Sync every second, so an OS crash or power loss can lose
// at most the last second of spooled records.
//
// Read progress: Peek returns the oldest unacknowledged entries and Ack
// records how far they were delivered, in a small cursor file, so a restart
// replays at most the last unacknowledged Peek again.
//
// One writer per directory: Open locks the directory (flock on spool.lock,
// released by Close or when the process ends) and refuses a second opener
// with ErrInUse, since two spools in one directory would interleave
// segments and replay each other's records.
package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Defaults for Options.
const (
	DefaultSegmentBytes = 16 << 20
	DefaultMaxBytes     = 1 << 30
	// MaxEntryBytes bounds one frame; larger entries are refused.
	MaxEntryBytes = 8 << 20
)

const (
	frameHeader = 8
	segPrefix   = "seg-"
	segSuffix   = ".log"
	cursorFile  = "cursor"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrClosed is returned by operations on a closed spool.
var ErrClosed = errors.New("spool closed")

// ErrTooLarge is returned when one entry exceeds MaxEntryBytes.
var ErrTooLarge = errors.New("spool entry too large")

// Entry is one spooled Kafka message.
type Entry struct {
	Key   []byte
	Value []byte
}

// Options configure a spool.
type Options struct {
	// Dir holds the segment files; it is created if missing.
	Dir string
	// SegmentBytes is the size at which the active segment is sealed and a
	// new one started.
	SegmentBytes int64
	// MaxBytes bounds the spool on disk. When an append takes it above,
	// whole oldest segments are deleted.
	MaxBytes int64
	// OnDrop is called (with the spool's lock held; keep it cheap) when
	// records are lost: reason is "spool_full" for drop-oldest and
	// "corrupt" for frames skipped because a segment was damaged.
	OnDrop func(records int64, reason string)
	// Log receives repairs and drops. Nil discards.
	Log *slog.Logger
}

type segment struct {
	id      uint64
	path    string
	size    int64 // bytes on disk (after repair)
	records int64 // frames in the file
	// read is the offset up to which frames are acknowledged; readRecords
	// how many frames that is.
	read        int64
	readRecords int64
}

// Spool is safe for concurrent use.
type Spool struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	segs     []*segment // oldest first; the last one is active
	active   *os.File
	activeW  *bufio.Writer
	bytes    int64
	records  int64
	closed   bool
	scratch  []byte
	dirty    bool     // written since the last fsync
	readFile *os.File // open handle on the segment being read
	readSeg  uint64
	lock     *os.File // holds the directory's flock until Close
}

// Open opens (creating if needed) the spool in opts.Dir, repairing a
// partial last write. It fails with ErrInUse while another open spool
// holds the directory.
func Open(opts Options) (s *Spool, err error) {
	if opts.Dir == "" {
		return nil, errors.New("spool: Dir is required")
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxBytes < opts.SegmentBytes {
		opts.SegmentBytes = opts.MaxBytes
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", opts.Dir, err)
	}
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlockDir(lock)
		}
	}()
	s = &Spool{opts: opts, log: log, lock: lock}
	if err := s.load(); err != nil {
		return nil, err
	}
	if err := s.openActive(); err != nil {
		return nil, err
	}
	return s, nil
}

func segName(id uint64) string { return fmt.Sprintf("%s%020d%s", segPrefix, id, segSuffix) }

// load scans the directory: lists segments, validates every frame, truncates
// at the first bad frame, and applies the cursor.
func (s *Spool) load() error {
	ents, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return fmt.Errorf("spool: read %s: %w", s.opts.Dir, err)
	}
	var ids []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, segPrefix) || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, segPrefix), segSuffix), 10, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		seg := &segment{id: id, path: filepath.Join(s.opts.Dir, segName(id))}
		if err := s.scan(seg); err != nil {
			return err
		}
		s.segs = append(s.segs, seg)
		s.bytes += seg.size
		s.records += seg.records
	}
	s.readCursor()
	return nil
}

// scan counts the valid frames of seg and truncates anything after them.
func (s *Spool) scan(seg *segment) error {
	f, err := os.OpenFile(seg.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("spool: open %s: %w", seg.path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("spool: stat %s: %w", seg.path, err)
	}
	r := bufio.NewReaderSize(f, 256<<10)
	var off int64
	var hdr [frameHeader]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			break // clean end, or a cut header
		}
		n := binary.BigEndian.Uint32(hdr[0:4])
		if n > MaxEntryBytes || off+frameHeader+int64(n) > st.Size() {
			break
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			break
		}
		if crc32.Checksum(buf, crcTable) != binary.BigEndian.Uint32(hdr[4:8]) {
			break
		}
		off += frameHeader + int64(n)
		seg.records++
	}
	seg.size = off
	if off < st.Size() {
		s.log.Warn("spool: truncating damaged segment tail (partial write from a crash?)",
			"segment", seg.path, "valid_bytes", off, "file_bytes", st.Size())
		if err := f.Truncate(off); err != nil {
			return fmt.Errorf("spool: truncate %s: %w", seg.path, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("spool: sync %s: %w", seg.path, err)
		}
	}
	return nil
}

// readCursor applies the persisted "segment-id offset records" cursor.
func (s *Spool) readCursor() {
	b, err := os.ReadFile(filepath.Join(s.opts.Dir, cursorFile))
	if err != nil {
		return
	}
	fields := strings.Fields(string(b))
	if len(fields) != 3 {
		return
	}
	id, err1 := strconv.ParseUint(fields[0], 10, 64)
	off, err2 := strconv.ParseInt(fields[1], 10, 64)
	n, err3 := strconv.ParseInt(fields[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return
	}
	for _, seg := range s.segs {
		if seg.id == id && off <= seg.size && n <= seg.records {
			seg.read, seg.readRecords = off, n
			s.records -= n
			s.bytes -= off
		}
	}
}

func (s *Spool) writeCursor(seg *segment) error {
	tmp := filepath.Join(s.opts.Dir, cursorFile+".tmp")
	data := fmt.Sprintf("%d %d %d\n", seg.id, seg.read, seg.readRecords)
	if err := os.WriteFile(tmp, []byte(data), 0o640); err != nil {
		return fmt.Errorf("spool: write cursor: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.opts.Dir, cursorFile)); err != nil {
		return fmt.Errorf("spool: write cursor: %w", err)
	}
	return nil
}

// openActive starts a new active segment after the newest existing one.
// Existing segments are never appended to again: their tail may have been
// repaired, and a fresh file keeps the rules simple.
func (s *Spool) openActive() error {
	var id uint64 = 1
	if n := len(s.segs); n > 0 {
		id = s.segs[n-1].id + 1
	}
	seg := &segment{id: id, path: filepath.Join(s.opts.Dir, segName(id))}
	f, err := os.OpenFile(seg.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("spool: create %s: %w", seg.path, err)
	}
	if err := syncDir(s.opts.Dir); err != nil {
		_ = f.Close()
		return err
	}
	s.segs = append(s.segs, seg)
	s.active = f
	if s.activeW == nil {
		s.activeW = bufio.NewWriterSize(f, 256<<10)
	} else {
		s.activeW.Reset(f)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: open dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: sync dir: %w", err)
	}
	return nil
}

// Append writes entries, in order, to the active segment. It enforces the
// size bound afterwards by dropping the oldest segments.
func (s *Spool) Append(entries ...Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	act := s.segs[len(s.segs)-1]
	for _, e := range entries {
		payload := len(e.Key) + len(e.Value) + binary.MaxVarintLen64
		if payload > MaxEntryBytes {
			return ErrTooLarge
		}
		buf := s.scratch[:0]
		buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0) // header, filled below
		buf = binary.AppendUvarint(buf, uint64(len(e.Key)))
		buf = append(buf, e.Key...)
		buf = append(buf, e.Value...)
		n := len(buf) - frameHeader
		binary.BigEndian.PutUint32(buf[0:4], uint32(n))
		binary.BigEndian.PutUint32(buf[4:8], crc32.Checksum(buf[frameHeader:], crcTable))
		s.scratch = buf
		if _, err := s.activeW.Write(buf); err != nil {
			return fmt.Errorf("spool: write %s: %w", act.path, err)
		}
		act.size += int64(len(buf))
		act.records++
		s.bytes += int64(len(buf))
		s.records++
		if act.size >= s.opts.SegmentBytes {
			if err := s.sealLocked(); err != nil {
				return err
			}
			act = s.segs[len(s.segs)-1]
		}
	}
	if err := s.activeW.Flush(); err != nil {
		return fmt.Errorf("spool: write %s: %w", act.path, err)
	}
	s.dirty = true
	return s.enforceLocked()
}

// sealLocked fsyncs and closes the active segment and opens a new one.
func (s *Spool) sealLocked() error {
	if err := s.activeW.Flush(); err != nil {
		return fmt.Errorf("spool: flush: %w", err)
	}
	if err := s.active.Sync(); err != nil {
		return fmt.Errorf("spool: sync: %w", err)
	}
	if err := s.active.Close(); err != nil {
		return fmt.Errorf("spool: close segment: %w", err)
	}
	s.dirty = false
	return s.openActive()
}

// enforceLocked deletes the oldest sealed segments while the spool is above
// MaxBytes.
func (s *Spool) enforceLocked() error {
	for s.bytes > s.opts.MaxBytes {
		if len(s.segs) == 1 {
			// Only the active segment: seal it so it can be dropped.
			if err := s.sealLocked(); err != nil {
				return err
			}
		}
		old := s.segs[0]
		lost := old.records - old.readRecords
		if err := s.removeLocked(old); err != nil {
			return err
		}
		s.log.Warn("spool full: dropped the oldest segment", "segment", old.path,
			"records", lost, "max_bytes", s.opts.MaxBytes)
		if s.opts.OnDrop != nil && lost > 0 {
			s.opts.OnDrop(lost, "spool_full")
		}
	}
	return nil
}

// removeLocked deletes the oldest segment (not the active one).
func (s *Spool) removeLocked(seg *segment) error {
	if s.readFile != nil && s.readSeg == seg.id {
		_ = s.readFile.Close()
		s.readFile = nil
	}
	if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: remove %s: %w", seg.path, err)
	}
	s.segs = s.segs[1:]
	s.bytes -= seg.size - seg.read
	s.records -= seg.records - seg.readRecords
	return nil
}

// Sync fsyncs the active segment if it was written since the last sync.
func (s *Spool) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.dirty {
		return nil
	}
	if err := s.active.Sync(); err != nil {
		return fmt.Errorf("spool: sync: %w", err)
	}
	s.dirty = false
	return nil
}

// Len returns the number of unacknowledged records.
func (s *Spool) Len() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records
}

// Bytes returns the size of the unacknowledged records on disk.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// Batch is a run of entries returned by Peek, to be passed to Ack once
// delivered. Entries are valid until the next Peek.
type Batch struct {
	Entries []Entry
	seg     uint64
	end     int64
	count   int64
}

// Peek returns up to max of the oldest unacknowledged entries (all from
// one segment), or an empty batch when the spool is empty. Records in the
// active segment are made readable by sealing it. The entries share one
// buffer per batch.
func (s *Spool) Peek(max int) (Batch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Batch{}, ErrClosed
	}
	for {
		seg := s.segs[0]
		if seg.read < seg.size {
			if seg == s.segs[len(s.segs)-1] {
				if err := s.sealLocked(); err != nil {
					return Batch{}, err
				}
			}
			return s.readLocked(seg, max)
		}
		if len(s.segs) == 1 {
			return Batch{}, nil // only an empty active segment
		}
		// Fully read sealed segment (e.g. after a restart): remove it.
		if err := s.removeLocked(seg); err != nil {
			return Batch{}, err
		}
	}
}

func (s *Spool) readLocked(seg *segment, max int) (Batch, error) {
	if s.readFile == nil || s.readSeg != seg.id {
		if s.readFile != nil {
			_ = s.readFile.Close()
		}
		f, err := os.Open(seg.path)
		if err != nil {
			return Batch{}, fmt.Errorf("spool: open %s: %w", seg.path, err)
		}
		s.readFile, s.readSeg = f, seg.id
	}
	// Read a window of the file and cut frames from it.
	// A fresh buffer each time: the entries may still be referenced by a
	// Kafka write abandoned on a deadline.
	want := min(seg.size-seg.read, 4<<20)
	buf := make([]byte, want)
	if _, err := s.readFile.ReadAt(buf, seg.read); err != nil {
		return Batch{}, fmt.Errorf("spool: read %s: %w", seg.path, err)
	}
	b := Batch{seg: seg.id, end: seg.read}
	pos := 0
	for len(b.Entries) < max && pos+frameHeader <= len(buf) {
		n := int(binary.BigEndian.Uint32(buf[pos : pos+4]))
		if pos+frameHeader+n > len(buf) {
			if len(b.Entries) == 0 {
				// A frame larger than the window: read it alone.
				big := make([]byte, frameHeader+n)
				if _, err := s.readFile.ReadAt(big, seg.read); err != nil {
					return Batch{}, fmt.Errorf("spool: read %s: %w", seg.path, err)
				}
				buf, pos = big, 0
				continue
			}
			break
		}
		payload := buf[pos+frameHeader : pos+frameHeader+n]
		if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(buf[pos+4:pos+8]) {
			// Damaged on disk after it was written and scanned: skip the rest
			// of this segment rather than block the spool.
			lost := seg.records - seg.readRecords - b.count
			s.log.Error("spool: checksum mismatch, skipping the rest of the segment", "segment", seg.path, "records", lost)
			if s.opts.OnDrop != nil && lost > 0 {
				s.opts.OnDrop(lost, "corrupt")
			}
			b.end, b.count = seg.size, seg.records-seg.readRecords
			return b, nil
		}
		klen, k := binary.Uvarint(payload)
		if k <= 0 || uint64(len(payload)-k) < klen {
			lost := seg.records - seg.readRecords - b.count
			s.log.Error("spool: malformed frame, skipping the rest of the segment", "segment", seg.path, "records", lost)
			if s.opts.OnDrop != nil && lost > 0 {
				s.opts.OnDrop(lost, "corrupt")
			}
			b.end, b.count = seg.size, seg.records-seg.readRecords
			return b, nil
		}
		key := payload[k : k+int(klen)]
		b.Entries = append(b.Entries, Entry{Key: key, Value: payload[k+int(klen):]})
		pos += frameHeader + n
		b.end += int64(frameHeader + n)
		b.count++
	}
	return b, nil
}

// Ack marks a batch returned by Peek as delivered. A batch whose segment was
// dropped meanwhile (spool full) is ignored.
func (s *Spool) Ack(b Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if b.count == 0 && b.end == 0 {
		return nil
	}
	for _, seg := range s.segs {
		if seg.id != b.seg {
			continue
		}
		if b.end <= seg.read {
			return nil
		}
		s.bytes -= b.end - seg.read
		s.records -= b.count
		seg.read, seg.readRecords = b.end, seg.readRecords+b.count
		if seg.read >= seg.size && seg != s.segs[len(s.segs)-1] {
			return s.removeLocked(seg)
		}
		return s.writeCursor(seg)
	}
	return nil
}

// Close flushes and fsyncs the active segment.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.readFile != nil {
		_ = s.readFile.Close()
	}
	var errs []error
	if err := s.activeW.Flush(); err != nil {
		errs = append(errs, err)
	}
	if err := s.active.Sync(); err != nil {
		errs = append(errs, err)
	}
	if err := s.active.Close(); err != nil {
		errs = append(errs, err)
	}
	// An empty active segment is not worth keeping.
	if act := s.segs[len(s.segs)-1]; act.size == 0 {
		_ = os.Remove(act.path)
	}
	// Last: another process may take the directory from here on.
	unlockDir(s.lock)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spool: close: %w", err)
	}
	return nil
}
