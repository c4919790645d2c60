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
// of chunks already compared are cached per database).
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
	elapsed                                                    time.Duration
}

// maxCache bounds the chunk copies kept per process.
const maxCache = 256 << 20

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

// afterCommit runs after the tracker captured a commit of the database at
// path; failed is what the tracker returned (true: the capture failed).
func (c *checker) afterCommit(path string, src tracker.Source, failed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.writeStats()
	c.stats.commits++
	if failed {
		c.stats.captureFailed++
		return
	}
	if size, err := src.Size(); err == nil && size > c.max {
		c.stats.tooLarge++
		return
	}
	t0 := time.Now()
	err := c.verify(path, src)
	c.stats.elapsed += time.Since(t0)
	c.stats.checked++
	if err != nil {
		c.stats.failures++
		c.fail(path, err)
	}
}

// verify flushes the database at path and compares the replica in the
// store with the file. Caller holds c.mu; the shim holds SHARED.
func (c *checker) verify(path string, src tracker.Source) error {
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
	size, err := src.Size()
	if err != nil {
		return fmt.Errorf("file size: %w", err)
	}
	if m.Length != size {
		return fmt.Errorf("replica version %d has %d bytes, the file %d", m.Seq, m.Length, size)
	}
	cache := c.cache[db.Key()]
	if len(cache) < len(m.Chunks) {
		cache = append(cache, make([]cachedChunk, len(m.Chunks)-len(cache))...)
	}
	buf := make([]byte, m.ChunkSize)
	for i, h := range m.Chunks {
		n := manifest.ChunkLen(i, m.Length, m.ChunkSize)
		b := buf[:n]
		if err := src.ReadAt(b, int64(i)*int64(m.ChunkSize)); err != nil {
			return fmt.Errorf("read chunk %d of the file: %w", i, err)
		}
		c.stats.bytes += int64(n)
		var want []byte
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
			return fmt.Errorf("replica version %d differs from the file in chunk %d (first at byte %d of the file)", m.Seq, i, int64(i)*int64(m.ChunkSize)+int64(off))
		}
	}
	for i := len(m.Chunks); i < len(cache); i++ {
		c.cached -= int64(len(cache[i].data))
	}
	c.cache[db.Key()] = cache[:len(m.Chunks)]
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
	line := fmt.Sprintf("commits=%d checked=%d capture_failed=%d too_large=%d failures=%d bytes=%d check_ms=%d\n",
		s.commits, s.checked, s.captureFailed, s.tooLarge, s.failures, s.bytes, s.elapsed.Milliseconds())
	// Fixed width, so that a shorter line never leaves a tail behind.
	line = fmt.Sprintf("%-127s\n", line[:len(line)-1])
	_, _ = c.statsF.WriteAt([]byte(line), 0)
}
