package tracker

import (
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// DB tracks one database file for every connection of the process.
type DB struct {
	m     *Manager
	path  string
	name  string
	key   string
	spool *spool.Dir // nil when disabled is set
	log   *slog.Logger
	// disabled says why the database is not replicated (another file
	// open in the process has this replica name, or its spool could not
	// be opened): its connections pass through, and flushing it fails
	// with this error.
	disabled error

	refs   int // guarded by m.mu
	queued atomic.Bool

	mu sync.Mutex
	// Identity (version xattr + header) of the newest committed state
	// captured; nil when unknown (the next capture compares with the spool
	// or rescans).
	lastID   []byte
	lastLen  int64
	lastSeq  uint64
	verified bool
	lastErr  error // the last capture failed: the spool is behind
	// suspect is set when a build failed: until a rescan, the spool's
	// manifest is not adopted on its version id alone.
	suspect      bool
	pending      *pending
	pendingBytes int64
	sliced       *slicedRun   // a sliced rescan in progress (sliced.go)
	wal          *walState    // WAL mode: the position last captured (wal.go)
	walCopy      walCopyState // a sliced WAL rescan (walsliced.go)
	// slicedErr: the last sliced rescan was abandoned, and no capture
	// established the file's state since (Flush reports it). Kept apart
	// from lastErr, which a capture ending after the copy would clear.
	slicedErr error
	// chain is this process's mapping of the spool's chain file, made
	// once another process's commit was seen (chain.go); chainErr says
	// why it could not be made.
	chain    *chainLog
	chainErr error

	// id identifies the database to the VFS (Manager.DBID); walq is its
	// queue of WAL commits (walqueue.go), nil without one. lastHeader is
	// the database header of the state last captured (guarded by mu).
	id         uint64
	walq       WALQueue
	lastHeader []byte
	draining   atomic.Bool // a drainWALQueue goroutine runs

	// buildMu serialises building, rescans and publishing; base is the
	// version the next build applies pending copies to.
	buildMu sync.Mutex
	base    *manifest.Manifest
	// An idle database drops base (chunk 0 and the hash list) to save
	// memory and reloads it from the spool, checking that it is still the
	// version baseSeq with identity baseID.
	baseID    []byte
	baseSeq   uint64
	lastBuild time.Time
}

// pending is the merge of captures not yet built: newer copies of a chunk
// replace older ones, so intermediate versions are squashed.
type pending struct {
	chunks     map[uint32][]byte
	length     int64
	seq        uint64
	versionID  []byte
	commitTime time.Time
	// spilled holds the chunks of commits past the memory budget: they
	// are copied, one chunk at a time, to unlinked spill files in the
	// spool's tmp/ (see spillDirty), not into memory.
	spilled  map[uint32]spillRef
	spill    *os.File // the spill file new chunks are appended to
	spillEnd int64
	extra    []*os.File // other spill files of sets merged into this one
	// full: the set holds every chunk (a rescan, and commits squashed
	// into it): it is built on no base, and its chunks are restaged
	// unless the last upload has them (staged files may be damaged).
	full bool
}

// spillRef is where a chunk copy lies in a spill file.
type spillRef struct {
	f   *os.File
	off int64
	n   int
}

// has reports whether p holds a copy of chunk c.
func (p *pending) has(c uint32) bool {
	if _, ok := p.chunks[c]; ok {
		return true
	}
	_, ok := p.spilled[c]
	return ok
}

// close releases the spill files of a pending set that is dropped or
// built (nil-safe).
func (p *pending) close() {
	if p == nil {
		return
	}
	seen := map[*os.File]bool{}
	for _, r := range p.spilled {
		if !seen[r.f] {
			seen[r.f] = true
			r.f.Close()
		}
	}
	for _, f := range append(p.extra, p.spill) {
		if f != nil && !seen[f] {
			seen[f] = true
			f.Close()
		}
	}
	p.spilled, p.spill, p.extra = nil, nil, nil
}

// ErrNameCollision says that two database files open in the process have
// one replica name (see the configuration's names).
var ErrNameCollision = errors.New("replica name collision")

// Key returns the replica key of the database.
func (db *DB) Key() string { return db.key }

// Path returns the canonical path of the database.
func (db *DB) Path() string { return db.path }

func (db *DB) chunkSize() int { return db.m.opts.ChunkSize }

func (db *DB) nextSeq(seq uint64) uint64 {
	if seq == 0 {
		seq = uint64(time.Now().UnixNano())
	}
	if seq <= db.lastSeq {
		seq = db.lastSeq + 1
	}
	return seq
}

// ErrWAL says that a database is in WAL mode where that is not supported:
// a commit the VFS reported as a rollback-journal one on a file whose
// header says WAL before and after it (a WAL it could not follow), and
// verneuilctl sync and verify.
var ErrWAL = errors.New("the database is in WAL mode (journal_mode=WAL)")

// IsWAL reports whether a SQLite header says WAL mode (file format
// versions 2).
func IsWAL(header []byte) bool {
	return len(header) >= 20 && (header[18] == 2 || header[19] == 2)
}
