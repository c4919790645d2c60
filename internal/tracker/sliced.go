// The sliced rescan: the first capture of a large file copies it outside
// the capture, one bounded SHARED hold per slice.
//
// A Check capture (a read transaction) that must rescan a file larger than
// one slice, through a Source that can open a SliceReader, records the
// file's Stamp (inode, version xattr, header, size, and mtime and ctime to
// the nanosecond) while the VFS holds SHARED, and returns. A goroutine,
// holding buildMu and the spool's flock that the capture took, then copies
// the file in slices of 1 MiB: for each slice it takes SHARED on a private
// file (never waiting: a busy lock is retried after a millisecond, for at
// most sliceBusyLimit in a row), reads the slice, takes the Stamp again
// and releases SHARED. A Stamp that differs from the first one (a commit, a
// writer's crash or the rollback of one) abandons the copy: nothing is
// published, Flush reports ErrDeferred and the next read transaction
// rescans again. Where timestamps have no nanoseconds the capture copies
// the file itself, as before.
//
// A commit captured while the copy runs abandons it (the commit rescans
// under its own lock, as before); Flush, Close and verneuil_flush wait for
// it (buildMu), so a flush still ends with the replica equal to the file.

package tracker

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// sliceBytes is how much of the file one SHARED hold reads.
const sliceBytes = 1 << 20

// sliceBusyLimit bounds how long a slice waits, in a row, for a writer's
// lock before the sliced copy gives up (ErrDeferred).
const sliceBusyLimit = 2 * time.Second

// Stamp describes the database file at one moment.
type Stamp struct {
	Ino                 uint64
	Size                int64
	MtimeSec, MtimeNsec int64
	CtimeSec, CtimeNsec int64
	Xattr               []byte // nil when absent or unsupported
	Header              []byte // the first HeaderLen bytes
}

// fine reports whether the timestamps have nanoseconds: coarse ones
// could miss a rollback between two slices.
func (s Stamp) fine() bool { return s.MtimeNsec != 0 || s.CtimeNsec != 0 }

func (s Stamp) equal(o Stamp) bool {
	return s.Ino == o.Ino && s.Size == o.Size && s.MtimeSec == o.MtimeSec && s.MtimeNsec == o.MtimeNsec &&
		s.CtimeSec == o.CtimeSec && s.CtimeNsec == o.CtimeNsec &&
		bytes.Equal(s.Xattr, o.Xattr) && bytes.Equal(s.Header, o.Header)
}

// SliceReader reads the database file outside a capture, under SHARED
// locks of its own. It is used by one goroutine at a time.
type SliceReader interface {
	// Lock takes SHARED without waiting; ok false when a writer holds
	// the file.
	Lock() (ok bool, err error)
	// Unlock releases SHARED.
	Unlock() error
	// ReadAt fills p from offset off (SHARED held); bytes past the end
	// read as zeros.
	ReadAt(p []byte, off int64) error
	// Stamp describes the file now (SHARED held, by Lock or by the
	// capture that opened the reader).
	Stamp() (Stamp, error)
	// Close releases the reader (and SHARED if held).
	Close() error
}

// SlicedSource is a Source that can open a SliceReader on its file during
// a capture; the VFS's sources are.
type SlicedSource interface {
	Source
	OpenSlices() (SliceReader, error)
}

// slicedRun is a sliced copy in progress.
type slicedRun struct {
	abort atomic.Bool   // a commit supersedes the copy
	done  chan struct{} // closed after buildMu was released
}

// errSlicedAborted: a commit captured during the copy superseded it.
var errSlicedAborted = errors.New("sliced rescan superseded by a commit")

// startSliced starts a sliced rescan of the file (step 4) when src can
// read slices, the file is larger than one slice and its timestamps have
// nanoseconds; started false otherwise (the caller rescans under the
// capture). On success the goroutine owns unlock (buildMu and the spool's
// flock, held by the caller). The VFS holds SHARED.
func (db *DB) startSliced(src Source, ino uint64, xattr []byte, seq uint64, unlock func()) (started bool) {
	ss, ok := src.(SlicedSource)
	if !ok {
		return false
	}
	size, err := src.Size()
	if err != nil || size <= sliceBytes {
		return false
	}
	r, err := ss.OpenSlices()
	if err != nil {
		db.log.Debug("sliced rescan unavailable; rescanning under the capture", "err", err)
		return false
	}
	st0, err := r.Stamp()
	if err != nil || !st0.fine() || st0.Ino != ino || st0.Size != size || !bytes.Equal(st0.Xattr, xattr) || IsWAL(st0.Header) {
		r.Close()
		return false
	}
	db.spool.TakeRescan()
	run := &slicedRun{done: make(chan struct{})}
	db.mu.Lock()
	db.pending.close()
	db.pending, db.pendingBytes = nil, 0
	db.lastID = nil
	db.slicedErr = nil
	seq = db.nextSeq(max(seq, uint64(time.Now().UnixNano())))
	db.sliced = run // done is closed by runSliced, whatever happens
	db.mu.Unlock()
	go db.runSliced(r, st0, seq, unlock, run)
	return true
}

// runSliced copies the file for startSliced and makes the copy the
// pending set, or gives up.
func (db *DB) runSliced(r SliceReader, st0 Stamp, seq uint64, unlock func(), run *slicedRun) {
	defer close(run.done)
	defer unlock()
	defer r.Close()
	var p *pending
	err := func() (err error) {
		defer func() {
			if v := recover(); v != nil {
				db.log.Error("panic in sliced rescan (recovered)", "panic", v, "stack", string(debug.Stack()))
				err = fmt.Errorf("panic in sliced rescan: %v", v)
			}
		}()
		p, err = db.copySlices(r, st0, &run.abort)
		return err
	}()
	db.mu.Lock()
	defer db.mu.Unlock()
	db.sliced = nil
	if err != nil {
		p.close()
		if !errors.Is(err, errSlicedAborted) {
			db.log.Info("sliced rescan abandoned; the next read transaction rescans", "err", err)
			db.lastID = nil
			db.verified = false
			db.slicedErr = err
		}
		return
	}
	vid := identity(st0.Ino, st0.Xattr, st0.Header)
	p.length, p.seq, p.versionID, p.commitTime = st0.Size, seq, vid, time.Now()
	db.pending, db.pendingBytes = p, int64(len(p.chunks[0]))
	db.lastID = vid
	db.lastLen = st0.Size
	db.lastSeq = max(db.lastSeq, seq)
	db.m.schedule(db)
}

// copySlices copies the file described by st0 into a new full pending set,
// one SHARED hold per slice, checking after each that the file is still
// st0.
func (db *DB) copySlices(r SliceReader, st0 Stamp, abort *atomic.Bool) (p *pending, err error) {
	p, buf, err := db.newRescanSet(st0.Size)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.close()
			p = nil
		}
	}()
	cs := db.chunkSize()
	n := manifest.ChunkCount(st0.Size, uint32(cs))
	slice := len(buf) / cs
	for i := 0; i < n; i += slice {
		k := min(slice, n-i)
		b := buf[:min(st0.Size, int64(i+k)*int64(cs))-int64(i)*int64(cs)]
		if err := lockSlice(r, abort); err != nil {
			return nil, err
		}
		rerr := r.ReadAt(b, int64(i)*int64(cs))
		st, serr := r.Stamp()
		uerr := r.Unlock()
		if err := errors.Join(rerr, serr, uerr); err != nil {
			return nil, fmt.Errorf("rescan chunk %d: %w", i, err)
		}
		if !st.equal(st0) {
			return nil, fmt.Errorf("rescan: the file changed during the sliced copy: %w", ErrDeferred)
		}
		if err := db.addSlice(p, b, i, k, st0.Size); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// lockSlice takes SHARED for one slice, retrying while a writer holds the
// file, for at most sliceBusyLimit.
func lockSlice(r SliceReader, abort *atomic.Bool) error {
	deadline := time.Now().Add(sliceBusyLimit)
	for {
		if abort.Load() {
			return errSlicedAborted
		}
		ok, err := r.Lock()
		if err != nil {
			return fmt.Errorf("rescan: lock: %w", err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rescan: a writer held the file for %v: %w", sliceBusyLimit, ErrDeferred)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitSliced supersedes (abort true) or waits for a sliced copy in
// progress. It must not be called with buildMu held.
func (db *DB) waitSliced(abort bool) {
	db.mu.Lock()
	run := db.sliced
	db.mu.Unlock()
	if run == nil {
		return
	}
	if abort {
		run.abort.Store(true)
	}
	<-run.done
}

// slicedUnsettled reports whether a sliced copy runs or was abandoned:
// the VFS then checks again at the next read transaction (which rescans
// after an abandoned copy).
func (db *DB) slicedUnsettled() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.sliced != nil || db.slicedErr != nil
}

// newRescanSet returns an empty full pending set for a file of size bytes
// (with its spill file when the file has more than one chunk) and a buffer
// of one slice.
func (db *DB) newRescanSet(size int64) (*pending, []byte, error) {
	cs := db.chunkSize()
	n := manifest.ChunkCount(size, uint32(cs))
	p := &pending{chunks: map[uint32][]byte{}, spilled: make(map[uint32]spillRef, n), full: true}
	if n > 1 {
		f, err := os.CreateTemp(filepath.Join(db.spool.Path, "tmp"), "spill.*")
		if err != nil {
			return nil, nil, fmt.Errorf("rescan: %w", err)
		}
		os.Remove(f.Name()) // anonymous: gone with the process
		p.spill = f
	}
	slice := max(1, sliceBytes/cs) // chunks per read
	return p, make([]byte, slice*cs), nil
}

// addSlice adds the k chunks from chunk i that b holds to the rescan set
// p of a file of size bytes: chunk 0 in memory, the others to the spill
// file.
func (db *DB) addSlice(p *pending, b []byte, i, k int, size int64) error {
	cs := db.chunkSize()
	for j := range k {
		c := i + j
		data := b[j*cs : j*cs+manifest.ChunkLen(c, size, uint32(cs))]
		if c == 0 {
			p.chunks[0] = append([]byte(nil), data...)
			continue
		}
		p.spilled[uint32(c)] = spillRef{f: p.spill, off: p.spillEnd, n: len(data)}
		p.spillEnd += int64(len(data))
	}
	from := 0
	if i == 0 {
		from = len(p.chunks[0]) // chunk 0 stays in memory
	}
	if from < len(b) {
		if _, err := p.spill.WriteAt(b[from:], p.spillEnd-int64(len(b)-from)); err != nil {
			return fmt.Errorf("rescan: spill: %w", err)
		}
	}
	return nil
}
