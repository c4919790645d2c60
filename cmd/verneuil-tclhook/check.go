//go:build cgo && verneuil_extern

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

// The per-commit invariant check (VERNEUIL_CHECK_EVERY_COMMIT=1):
// docs/ARCHITECTURE.md invariant 1, "a flushed replica is byte-identical to the database file",
// checked after every captured commit of every test.
//
// The hooks layer (hooks.go) calls the checker after the tracker has
// captured a commit, and while the shim still holds SHARED on the database
// (so no process can change the file), it flushes the database to the first
// target, fetches the "latest" manifest from there and compares the replica
// with the file, chunk by chunk: length, chunk 0 (inline in the manifest)
// byte for byte, and every other chunk byte for byte against the stored
// object (fetched and verified against its hash by internal/restore; copies
// of chunks already compared are cached per database). A WAL commit is
// compared the same way with the state the commit left, composed from the
// file and the -wal by walref.go (afterWALCommit says which commit), and
// the replica's version id must hold that commit's WAL position.
//
// The file is read through the Source the shim hands to the tracker, i.e.
// through SQLite's own unix file: the check never opens the database file
// (closing a second descriptor would drop this process's POSIX locks). The
// testfixture's I/O error simulation is always suspended while the check
// reads (hooks.go), so that the check never moves the point where a test's
// injected error fires. Files larger than VERNEUIL_CHECK_MAX_BYTES (256 MiB
// by default; bigfile*.test makes sparse multi-GiB files) are counted, not
// compared.
//
// A capture that the tracker itself reports as failed (it logs the reason,
// and the next capture rescans) is counted, not checked: the replica is
// behind until the next capture, by design. In the suite that happens when
// a test's injected I/O error hits the tracker's read, i.e. only with
// VERNEUIL_TCL_FAULTS_IN_CAPTURE=1.
//
// Results go to the directory VERNEUIL_TCL_STATE: stats.PID holds this
// process's counters (rewritten after every check); failures.PID gets one
// line per mismatch. scripts/sqlite-tcl/run.sh sums and reports them.
type checker struct {
	trk   *tracker.Manager
	store blob.Store
	log   *slog.Logger
	max   int64

	mu       sync.Mutex
	cache    map[string][]cachedChunk // replica key -> chunk copies already compared
	cached   int64
	walScans map[string]*walScan // -wal path -> how far the last check's walk got
	perPath  map[string]int64    // database path -> commits seen (sample)
	stats    checkStats
	statsF   *os.File
	failF    *os.File
	stateDir string
}

type cachedChunk struct {
	h    manifest.Hash
	data []byte
}

type checkStats struct {
	commits, checked, captureFailed, tooLarge, failures, bytes int64
	checkedWAL, walUnchecked                                   int64
	bytesUnchanged                                             int64 // WAL chunks not read again (compare)
	sampledOut                                                 int64 // commits sample left out
	elapsed                                                    time.Duration
}

// maxCache bounds the chunk copies kept per process.
const maxCache = 256 << 20

// Every commit of a database is checked up to checkAllCommits of them
// while it stays open in the process (forget ends a count), then one in sparseEvery up to checkSparseCommits, then one in
// rareEvery: each check flushes and reads the replica back (about 5 ms),
// and a test file committing tens of thousands of times to one database
// (e_walauto) would otherwise outlast its batch's time limit. A later
// check compares the whole state again (for WAL, every chunk changed since
// the last check), so only states that no later commit carries go
// unchecked; they are counted as sampled_out.
const (
	checkAllCommits    = 2000
	sparseEvery        = 10
	checkSparseCommits = 20000
	rareEvery          = 100
)

// sample counts a commit of the database at path and says whether to
// check it.
func (c *checker) sample(path string) bool {
	if c.perPath == nil || len(c.perPath) >= maxPaths {
		c.perPath = map[string]int64{}
	}
	c.perPath[path]++
	switch n := c.perPath[path]; {
	case n <= checkAllCommits:
		return true
	case n <= checkSparseCommits:
		return n%sparseEvery == 0
	default:
		return n%rareEvery == 0
	}
}

// forget ends the count of commits of the database at path: it is closed
// by every connection of the process.
func (c *checker) forget(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.perPath, path)
}

// maxPaths bounds the databases whose commits sample counts.
const maxPaths = 4096

// maxWALScans bounds the -wal walks kept to continue (walScan).
const maxWALScans = 64

func newChecker(trk *tracker.Manager, store blob.Store, log *slog.Logger, opts hookOptions) (*checker, error) {
	if opts.stateDir == "" {
		return nil, errors.New("VERNEUIL_CHECK_EVERY_COMMIT=1 needs VERNEUIL_TCL_STATE (a directory for the results)")
	}
	f, err := statsFile(opts.stateDir, "stats", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return nil, err
	}
	return &checker{trk: trk, store: store, log: log, max: opts.maxCheckBytes,
		cache: map[string][]cachedChunk{}, statsF: f, stateDir: opts.stateDir}, nil
}

// afterCommit runs after the tracker captured the commit ev of the
// database at path; failed is what the tracker returned (true: the capture
// failed). Rollback-journal commits are compared with the file, WAL commits
// with the state composed from the file and the -wal (walref.go).
func (c *checker) afterCommit(path string, src tracker.Source, ev tracker.Event, failed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.writeStats()
	c.stats.commits++
	if failed {
		c.stats.captureFailed++
		return
	}
	if !c.sample(path) {
		c.stats.sampledOut++
		return
	}
	if ev.Kind != tracker.Commit {
		c.afterWALCommit(path, src, ev)
		return
	}
	// A rollback-journal commit: the file changed outside any WAL walk.
	delete(c.walScans, path+"-wal")
	delete(c.walScans, ev.WALPath)
	size, err := src.Size()
	if err == nil && size > c.max {
		c.stats.tooLarge++
		return
	}
	t0 := time.Now()
	if err == nil {
		err = c.verify(path, size, src.ReadAt, nil, nil)
	} else {
		err = fmt.Errorf("file size: %w", err)
	}
	c.stats.elapsed += time.Since(t0)
	c.stats.checked++
	if err != nil {
		c.stats.failures++
		c.fail(path, err)
	}
}

// afterWALCommit checks a WAL commit (tracker.WALCommit with the wal-index
// in shared memory, tracker.WALHeapCommit with it in heap memory). The
// commit's position is, for the former, the wal-index header SQLite left at
// the release of the WAL write lock (the event's WALNow; the -wal must hold
// a valid chain of frames up to it), for the latter the last commit frame
// of the -wal's valid chain (SQLite's recovery reads it so; the connection
// holds EXCLUSIVE, no one else appends). A hold that left no commit frame
// (a restart or truncation without a commit, a header SQLite itself would
// not trust) publishes nothing new and is counted as wal_unchecked.
func (c *checker) afterWALCommit(path string, src tracker.Source, ev tracker.Event) {
	var want *walPosition
	var wantPages uint32
	if ev.Kind == tracker.WALCommit {
		pos, nPage, ok := walIndexPosition(ev.WALNow)
		if !ok || pos.mx == 0 {
			c.stats.walUnchecked++
			return
		}
		want, wantPages = &pos, nPage
	}
	t0 := time.Now()
	defer func() { c.stats.elapsed += time.Since(t0) }()
	var upTo uint32
	if want != nil {
		upTo = want.mx
	}
	ref, scan, f, err := openWALRef(src, ev.WALPath, upTo, c.walScans[ev.WALPath])
	if err == nil {
		if c.walScans == nil || len(c.walScans) >= maxWALScans {
			c.walScans = map[string]*walScan{}
		}
		c.walScans[ev.WALPath] = scan
	} else {
		delete(c.walScans, ev.WALPath)
	}
	if errors.Is(err, errNoCommit) && want == nil {
		c.stats.walUnchecked++
		return
	}
	if err == nil {
		defer f.Close()
		if want != nil && (ref.pos != *want || ref.nPage != wantPages) {
			err = fmt.Errorf("the -wal's valid frames end at %s (%d pages), the wal-index header announces %s (%d pages)",
				ref.pos, ref.nPage, want, wantPages)
		}
	}
	if err == nil && ref.Size() > c.max {
		c.stats.tooLarge++
		return
	}
	if err == nil {
		err = c.verify(path, ref.Size(), ref.ReadAt, ref.pos.id(), scan.changedChunks)
	}
	c.stats.checkedWAL++
	if err == nil {
		scan.checked = true
	} else {
		delete(c.walScans, ev.WALPath)
		c.stats.failures++
		c.fail(path, fmt.Errorf("WAL commit: %w", err))
	}
}

// verify flushes the database at path and compares the replica in the
// store with the state of size bytes that read returns: for a WAL state,
// walPos is its position, which the replica's version id must hold, with
// the state's first 100 bytes. changed, when not nil, gives for a chunk
// size the chunks whose state may differ from the last comparison (see
// compare). Caller holds c.mu; the shim holds SHARED.
func (c *checker) verify(path string, size int64, read func([]byte, int64) error, walPos []byte, changed func(chunkSize int64) func(int) bool) error {
	db := c.trk.DB(path)
	if db == nil {
		return errors.New("the tracker does not know the database")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	m, err := restore.Latest(ctx, c.store, db.Key())
	if err != nil {
		return err
	}
	var dirty func(int) bool
	if changed != nil {
		dirty = changed(int64(m.ChunkSize))
	}
	return c.compare(ctx, db.Key(), m, size, read, walPos, dirty)
}

// compare compares the replica m with the state: length, the WAL position
// and header of its version id (walPos not nil), then every chunk byte for
// byte (chunk 0 inline, the others fetched, verified against their hashes
// and cached per key). dirty, when not nil, says which chunks of the state
// may differ from the last comparison of this key: a chunk it leaves out,
// whose hash in the replica is still the cached one, is not read again (the
// same state bytes against the same replica bytes); chunk 0 and the last
// chunk are always compared.
func (c *checker) compare(ctx context.Context, key string, m *manifest.Manifest, size int64, read func([]byte, int64) error, walPos []byte, dirty func(int) bool) error {
	if m.Length != size {
		return fmt.Errorf("replica version %d has %d bytes, the state %d", m.Seq, m.Length, size)
	}
	if walPos != nil {
		pos, header, err := versionIDPosition(m.VersionID)
		if err != nil {
			return fmt.Errorf("replica version %d: %w", m.Seq, err)
		}
		if !bytes.Equal(pos, walPos) {
			return fmt.Errorf("replica version %d is at WAL position %x, the commit at %x", m.Seq, pos, walPos)
		}
		want := make([]byte, min(size, refDBHeaderBytes))
		if err := read(want, 0); err != nil {
			return fmt.Errorf("read the header of the state: %w", err)
		}
		if !bytes.Equal(header, want) {
			return fmt.Errorf("replica version %d: the header in its version id differs from the state's (first at byte %d)", m.Seq, firstDiff(header, want))
		}
	}
	cache := c.cache[key]
	if len(cache) < len(m.Chunks) {
		cache = append(cache, make([]cachedChunk, len(m.Chunks)-len(cache))...)
	}
	buf := make([]byte, m.ChunkSize)
	for i, h := range m.Chunks {
		n := manifest.ChunkLen(i, m.Length, m.ChunkSize)
		if dirty != nil && !dirty(i) && i != 0 && i != len(m.Chunks)-1 && cache[i].h == h && len(cache[i].data) == n {
			c.stats.bytesUnchanged += int64(n)
			continue
		}
		b := buf[:n]
		if err := read(b, int64(i)*int64(m.ChunkSize)); err != nil {
			return fmt.Errorf("read chunk %d of the state: %w", i, err)
		}
		c.stats.bytes += int64(n)
		var want []byte
		var err error
		if i == 0 {
			want = m.Chunk0
		} else if cache[i].h == h && len(cache[i].data) == n {
			want = cache[i].data
		} else {
			want, err = restore.Chunk(ctx, c.store, m, i)
			if err != nil {
				return fmt.Errorf("replica version %d: %w", m.Seq, err)
			}
			c.cached += int64(len(want) - len(cache[i].data))
			cache[i] = cachedChunk{h, want}
		}
		if !bytes.Equal(b, want) {
			off := firstDiff(b, want)
			return fmt.Errorf("replica version %d differs from the state in chunk %d (first at byte %d of the database)", m.Seq, i, int64(i)*int64(m.ChunkSize)+int64(off))
		}
	}
	for i := len(m.Chunks); i < len(cache); i++ {
		c.cached -= int64(len(cache[i].data))
	}
	if c.cache == nil {
		c.cache = map[string][]cachedChunk{}
	}
	c.cache[key] = cache[:len(m.Chunks)]
	if c.cached > maxCache {
		c.cache, c.cached = map[string][]cachedChunk{}, 0
	}
	return nil
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func (c *checker) fail(path string, err error) {
	c.log.Error("per-commit check failed", "db", path, "err", err)
	if c.failF == nil {
		f, ferr := statsFile(c.stateDir, "failures", os.O_WRONLY|os.O_CREATE|os.O_APPEND)
		if ferr != nil {
			return
		}
		c.failF = f
	}
	fmt.Fprintf(c.failF, "%s test=%s pid=%d db=%s: %v\n", time.Now().Format(time.RFC3339Nano),
		os.Getenv("VERNEUIL_TCL_LABEL"), os.Getpid(), path, err)
}

// writeStats rewrites stats.PID: one line of "key=value" counters.
func (c *checker) writeStats() {
	s := c.stats
	// WAL commits the VFS queued (no capture call: not counted in
	// commits, checked with the capture or build that applies them) and
	// queues the tracker dropped (read from the -wal instead).
	_, _, dropped := tracker.WALQueueStats()
	line := fmt.Sprintf("commits=%d checked=%d checked_wal=%d wal_unchecked=%d capture_failed=%d too_large=%d failures=%d bytes=%d bytes_unchanged=%d sampled_out=%d check_ms=%d wal_queued=%d wal_queue_dropped=%d\n",
		s.commits, s.checked, s.checkedWAL, s.walUnchecked, s.captureFailed, s.tooLarge, s.failures, s.bytes, s.bytesUnchanged, s.sampledOut, s.elapsed.Milliseconds(),
		sqlite3vfs.ReadStats().WALQueued, dropped)
	// Fixed width, so that a shorter line never leaves a tail behind.
	line = fmt.Sprintf("%-255s\n", line[:len(line)-1])
	_, _ = c.statsF.WriteAt([]byte(line), 0)
}
