package tracker

import (
	"errors"
	"log/slog"
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
	// hashes of chunks already staged (only while a commit past the
	// memory budget is streamed and published; see streamLocked).
	hashes map[uint32]manifest.Hash
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

// ErrWAL is returned for databases in WAL mode, which are not replicated.
var ErrWAL = errors.New("the database is in WAL mode (journal_mode=WAL); verneuil replicates rollback-journal databases only")

// isWAL reports whether a header says WAL mode (file format versions 2).
func isWAL(header []byte) bool {
	return len(header) >= 20 && (header[18] == 2 || header[19] == 2)
}
