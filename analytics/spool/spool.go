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
// Durability: every Append reaches the operating system (a write call)
// before it returns, so a process crash loses nothing already appended.
// Concurrent Appends share write calls (group commit): while one caller
// writes, the others add their frames to the next group, which the first
// of them to find the file free writes at once. When the operating system
// is asked to put the data on the disk is the Fsync policy: FsyncInterval
// (the default) on Sync, which the producer calls every second, so an OS
// crash or power loss can lose the last second of records; FsyncAlways
// after every group write, before the Appends of the group return;
// FsyncNever only on Close.
//
// Read progress: Peek returns the oldest unacknowledged entries, from the
// segment being written too, and Ack records how far they were delivered,
// in a small cursor file, so a restart replays at most the last
// unacknowledged Peek again. The cursor is one fixed-size line with its own
// checksum, overwritten in place (one write call per Ack; it was a new file
// renamed over the old one, four file system calls and a rename that made
// ext4 start writing the new file back, per batch fed to Kafka, which cost a
// gateway at one connection more CPU than the records' own appends). A
// cursor that fails its checksum (damaged by an OS crash) is ignored: the
// segments are then read again from their start, as from an earlier run.
// Appends and reads run concurrently: a group write and a Peek's file read
// never hold the spool's lock.
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

// FsyncPolicy says when written records are forced to the disk.
type FsyncPolicy int

// Fsync policies; see the package comment.
const (
	FsyncInterval FsyncPolicy = iota
	FsyncAlways
	FsyncNever
)

// ParseFsyncPolicy reads "interval", "always" or "never".
func ParseFsyncPolicy(s string) (FsyncPolicy, error) {
	switch s {
	case "interval", "":
		return FsyncInterval, nil
	case "always":
		return FsyncAlways, nil
	case "never":
		return FsyncNever, nil
	}
	return 0, fmt.Errorf("fsync policy %q: want interval, always or never", s)
}

// String returns the policy's name as ParseFsyncPolicy reads it.
func (p FsyncPolicy) String() string {
	switch p {
	case FsyncAlways:
		return "always"
	case FsyncNever:
		return "never"
	}
	return "interval"
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
	// Fsync is when written data is forced to the disk (default
	// FsyncInterval: on Sync).
	Fsync FsyncPolicy
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

	mu      sync.Mutex
	written *sync.Cond // a group write ended (with mu)
	segs    []*segment // oldest first; the last one is active
	active  *os.File
	bytes   int64 // unacknowledged bytes written
	records int64 // unacknowledged records written
	closed  bool
	dirty   bool // written since the last fsync
	// Group commit: frames of the group being collected, its record
	// count, and whether a group write is under way (only its writer
	// touches the active file then).
	group    *group
	pend     []byte
	pendRecs int64
	writing  bool
	spare    []byte
	unsynced []*os.File // sealed segments awaiting their fsync (FsyncInterval)
	dirDirty bool       // a segment file was created since the last fsync
	lock     *os.File   // holds the directory's flock until Close
	firstOwn uint64     // id of the first segment this Spool created
	readMu   sync.Mutex // one reader at a time; guards the fields below
	readFile *os.File   // open handle on the segment being read
	readSeg  uint64
	// cursor is the cursor file, open for overwriting in place once a
	// first Ack wrote it in the current format.
	cursor *os.File
}

// group is one group commit: the Appends that share a write learn its
// outcome here.
type group struct {
	done bool
	err  error
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
	s = &Spool{opts: opts, log: log, lock: lock, group: &group{}}
	s.written = sync.NewCond(&s.mu)
	if err := s.load(); err != nil {
		return nil, err
	}
	if err := s.openActive(); err != nil {
		return nil, err
	}
	s.firstOwn = s.segs[len(s.segs)-1].id
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

// cursorLen is the size of the cursor line: "segment-id offset records
// crc\n", the numbers zero-padded to 20 digits so that every line has the
// same size and overwrites the previous one whole, the CRC-32C (8 hex
// digits) of what precedes it.
const cursorLen = 3*20 + 2 + 1 + 8 + 1

// appendCursor appends seg's cursor line to b.
func appendCursor(b []byte, seg *segment) []byte {
	start := len(b)
	b = fmt.Appendf(b, "%020d %020d %020d", seg.id, seg.read, seg.readRecords)
	return fmt.Appendf(b, " %08x\n", crc32.Checksum(b[start:], crcTable))
}

// readCursor applies the persisted cursor. It also reads the line without
// a checksum that earlier versions wrote (by a rename, so never torn).
func (s *Spool) readCursor() {
	b, err := os.ReadFile(filepath.Join(s.opts.Dir, cursorFile))
	if err != nil {
		return
	}
	fields := strings.Fields(string(b))
	if len(fields) == 4 {
		const body = cursorLen - 10 // the line without " crc\n"
		want, err := strconv.ParseUint(fields[3], 16, 32)
		if err != nil || len(b) != cursorLen || crc32.Checksum(b[:body], crcTable) != uint32(want) {
			s.log.Warn("spool: cursor damaged (an OS crash?); reading the spool from its start again",
				"file", filepath.Join(s.opts.Dir, cursorFile))
			return
		}
		fields = fields[:3]
	}
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

// writeCursor persists seg's read progress (readMu held). The first call
// of a Spool replaces the file by a rename (it may hold an older, shorter
// line); later calls overwrite the line in place with one write call. A
// process crash cannot cut a write call short; a torn line after an OS
// crash fails its checksum.
func (s *Spool) writeCursor(seg *segment) error {
	var arr [cursorLen]byte
	data := appendCursor(arr[:0], seg)
	if s.cursor != nil {
		if _, err := s.cursor.WriteAt(data, 0); err != nil {
			return fmt.Errorf("spool: write cursor: %w", err)
		}
		return nil
	}
	path := filepath.Join(s.opts.Dir, cursorFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o640); err != nil {
		return fmt.Errorf("spool: write cursor: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("spool: write cursor: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("spool: open cursor: %w", err)
	}
	s.cursor = f
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
	// The new directory entry reaches the disk with the next fsync the
	// policy asks for, not here: this runs in the path of an Append.
	s.dirDirty = true
	if s.opts.Fsync == FsyncAlways {
		if err := syncDir(s.opts.Dir); err != nil {
			_ = f.Close()
			return err
		}
		s.dirDirty = false
	}
	s.segs = append(s.segs, seg)
	s.active = f
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

// Append writes entries, in order, to the active segment, and returns once
// they reached the operating system (and the disk, with FsyncAlways). It
// enforces the size bound afterwards by dropping the oldest segments.
//
// Concurrent Appends are committed in groups: each adds its frames to the
// group being collected, and the first caller to find no write under way
// writes the whole group with one write call while the next group
// collects. A lone caller therefore writes its own frames at once.
func (s *Spool) Append(entries ...Entry) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	for _, e := range entries {
		if len(e.Key)+len(e.Value)+binary.MaxVarintLen64 > MaxEntryBytes {
			s.mu.Unlock()
			return ErrTooLarge
		}
	}
	for _, e := range entries {
		s.pend = appendFrame(s.pend, e)
	}
	s.pendRecs += int64(len(entries))
	g := s.group
	for !g.done {
		if s.writing {
			s.written.Wait()
			continue
		}
		s.writeGroupLocked()
	}
	s.mu.Unlock()
	return g.err
}

// appendFrame appends e's frame to buf.
func appendFrame(buf []byte, e Entry) []byte {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0) // header, filled below
	buf = binary.AppendUvarint(buf, uint64(len(e.Key)))
	buf = append(buf, e.Key...)
	buf = append(buf, e.Value...)
	payload := buf[start+frameHeader:]
	binary.BigEndian.PutUint32(buf[start:start+4], uint32(len(payload)))
	binary.BigEndian.PutUint32(buf[start+4:start+8], crc32.Checksum(payload, crcTable))
	return buf
}

// writeGroupLocked writes the collected group. It is called with mu held
// and returns with mu held, releasing it during the write itself.
func (s *Spool) writeGroupLocked() {
	g, buf, recs := s.group, s.pend, s.pendRecs
	s.group, s.pend, s.pendRecs = &group{}, s.spare[:0], 0
	s.writing = true
	f, act := s.active, s.segs[len(s.segs)-1]
	s.mu.Unlock()

	_, err := f.Write(buf)
	if err == nil && s.opts.Fsync == FsyncAlways {
		err = f.Sync()
	}
	if err != nil {
		// Cut a partial write off so the file ends with a whole frame.
		_ = f.Truncate(act.size)
		err = fmt.Errorf("spool: write %s: %w", act.path, err)
	}

	s.mu.Lock()
	s.writing = false
	if len(buf) <= 4<<20 {
		s.spare = buf[:0]
	}
	if err == nil {
		act.size += int64(len(buf))
		act.records += recs
		s.bytes += int64(len(buf))
		s.records += recs
		s.dirty = s.opts.Fsync != FsyncAlways
		if act.size >= s.opts.SegmentBytes {
			err = s.sealLocked()
		}
		if err == nil {
			err = s.enforceLocked()
		}
	}
	g.done, g.err = true, err
	s.written.Broadcast()
}

// sealLocked closes the active segment (its fsync is left to the policy)
// and opens a new one. Only called while no group write is under way.
func (s *Spool) sealLocked() error {
	old := s.active
	if s.opts.Fsync == FsyncInterval {
		// The next Sync fsyncs and closes it (also when a Sync running
		// now took the file before this seal).
		s.unsynced = append(s.unsynced, old)
	} else if err := old.Close(); err != nil {
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

// removeLocked deletes the oldest segment (not the active one). A reader
// holding the file open keeps reading it; Ack then ignores its batch.
func (s *Spool) removeLocked(seg *segment) error {
	if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: remove %s: %w", seg.path, err)
	}
	s.segs = s.segs[1:]
	s.bytes -= seg.size - seg.read
	s.records -= seg.records - seg.readRecords
	return nil
}

// Sync forces what was written since the last Sync to the disk: the active
// segment, segments sealed since, and the directory. With FsyncNever it
// does nothing; with FsyncAlways there is nothing left to do.
func (s *Spool) Sync() error {
	if s.opts.Fsync == FsyncNever {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	sealed := s.unsynced
	s.unsynced = nil
	var active *os.File
	if s.dirty {
		// Fsync runs beside group writes (what a write adds meanwhile is
		// synced by the next Sync); a seal meanwhile closes the file only
		// once this fsync has returned (os.File counts its users).
		active, s.dirty = s.active, false
	}
	dir := s.dirDirty
	s.dirDirty = false
	s.mu.Unlock()

	var errs []error
	for _, f := range sealed {
		if err := f.Sync(); err != nil {
			errs = append(errs, err)
		}
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if active != nil {
		if err := active.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if dir {
		if err := syncDir(s.opts.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spool: sync: %w", err)
	}
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
	start   int64
	end     int64
	count   int64
	// earlier: the entries were appended by an earlier Spool on the
	// directory (a previous run of the process).
	earlier bool
}

// FromEarlierRun reports whether the entries were appended before this
// Spool was opened: a previous process may have delivered them already
// without acknowledging them (it crashed in between).
func (b Batch) FromEarlierRun() bool { return b.earlier }

// Position is a place in the spool, ordered like the entries.
type Position struct {
	seg uint64
	off int64
}

// Start and End are where the batch begins and ends.
func (b Batch) Start() Position { return Position{b.seg, b.start} }

// End is where the batch ends (see Start).
func (b Batch) End() Position { return Position{b.seg, b.end} }

// Before reports whether p comes before q.
func (p Position) Before(q Position) bool {
	return p.seg < q.seg || (p.seg == q.seg && p.off < q.off)
}

// Peek returns up to max of the oldest unacknowledged entries (all from
// one segment, possibly the one being written), or an empty batch when the
// spool is empty. The entries share one buffer per batch. Peek and Ack are
// meant for one reader; Appends go on while Peek reads the file.
func (s *Spool) Peek(max int) (Batch, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Batch{}, ErrClosed
	}
	var seg segment // a snapshot: the written part of seg is immutable
	for {
		head := s.segs[0]
		if head.read < head.size {
			seg = *head
			break
		}
		if len(s.segs) == 1 {
			s.mu.Unlock()
			return Batch{}, nil // only an empty (or fully read) active segment
		}
		// Fully read sealed segment (e.g. after a restart): remove it.
		if err := s.removeLocked(head); err != nil {
			s.mu.Unlock()
			return Batch{}, err
		}
	}
	s.mu.Unlock()
	return s.read(&seg, max)
}

// read cuts up to max frames of seg from seg.read on (readMu held).
func (s *Spool) read(seg *segment, max int) (Batch, error) {
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
	b := Batch{seg: seg.id, start: seg.read, end: seg.read, earlier: seg.id < s.firstOwn,
		Entries: make([]Entry, 0, framesIn(buf, max))}
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
		bad := crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(buf[pos+4:pos+8])
		klen, k := binary.Uvarint(payload)
		if !bad && (k <= 0 || uint64(len(payload)-k) < klen) {
			bad = true
		}
		if bad {
			// Damaged on disk after it was written and scanned: skip the
			// rest of what this segment holds rather than block the spool.
			lost := seg.records - seg.readRecords - b.count
			s.log.Error("spool: damaged frame, skipping the rest of the segment", "segment", seg.path, "records", lost)
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

// framesIn counts the whole frames at the start of buf, up to limit (at least
// 1), to size a batch's entries: room for 4096 entries whatever the batch
// held was a 196 KB allocation, zeroed, per Peek, which for the small
// batches of a lightly loaded process cost more CPU than the read itself.
func framesIn(buf []byte, limit int) int {
	n, pos := 0, 0
	for n < limit && pos+frameHeader <= len(buf) {
		pos += frameHeader + int(binary.BigEndian.Uint32(buf[pos:pos+4]))
		if pos > len(buf) {
			break
		}
		n++
	}
	return max(n, 1)
}

// Ack marks a batch returned by Peek as delivered. A batch whose segment was
// dropped meanwhile (spool full) is ignored.
func (s *Spool) Ack(b Batch) error {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if b.count == 0 && b.end == 0 {
		s.mu.Unlock()
		return nil
	}
	for _, seg := range s.segs {
		if seg.id != b.seg {
			continue
		}
		if b.end <= seg.read {
			break
		}
		s.bytes -= b.end - seg.read
		s.records -= b.count
		seg.read, seg.readRecords = b.end, seg.readRecords+b.count
		if seg.read >= seg.size && seg != s.segs[len(s.segs)-1] {
			err := s.removeLocked(seg)
			s.mu.Unlock()
			return err
		}
		cur := *seg
		s.mu.Unlock()
		// Outside mu: Appends do not wait for the cursor file. Only the
		// reader (readMu) writes it.
		return s.writeCursor(&cur)
	}
	s.mu.Unlock()
	return nil
}

// Close writes what is collected, fsyncs, and releases the directory.
func (s *Spool) Close() error {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	for s.writing {
		s.written.Wait()
	}
	var errs []error
	if s.pendRecs > 0 {
		// Appends waiting for a group write: write it for them.
		s.writeGroupLocked()
	}
	s.closed = true
	if s.readFile != nil {
		_ = s.readFile.Close()
	}
	if s.cursor != nil {
		if err := s.cursor.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range s.unsynced {
		if err := f.Sync(); err != nil {
			errs = append(errs, err)
		}
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.unsynced = nil
	if s.opts.Fsync != FsyncNever {
		if err := s.active.Sync(); err != nil {
			errs = append(errs, err)
		}
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
