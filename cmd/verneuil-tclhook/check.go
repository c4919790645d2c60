//go:build cgo && verneuil_extern

package main

/*
void vt_iosim_suspend(void);
void vt_iosim_resume(void);
*/
import "C"

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/verneuil-go/verneuil"
	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/copier"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

// The per-commit invariant check (VERNEUIL_CHECK_EVERY_COMMIT=1): DESIGN §3
// invariant 1, "a flushed replica is byte-identical to the database file",
// checked after every captured commit of every test.
//
// checker sits between the shim and the tracker. After the tracker has
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
// testfixture's I/O error simulation is suspended while the check reads
// (hook.c), so that the check does not move the point where a test's
// injected error fires.
//
// A capture that the tracker itself reports as failed (it logs the reason,
// and the next capture rescans) is counted, not checked: the replica is
// behind until the next capture, by design. The usual cause in the suite is
// an injected I/O error hitting the tracker's read.
//
// Results go to the directory VERNEUIL_TCL_STATE: stats.PID holds this
// process's counters (rewritten after every check); failures.PID gets one
// line per mismatch. scripts/sqlite-tcl/run.sh sums and reports them.
type checker struct {
	trk   *tracker.Manager
	store blob.Store
	log   *slog.Logger

	mu       sync.Mutex // serialises checks (and the I/O-simulation switch)
	paths    map[uint64]string
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
	commits, checked, captureFailed, failures, bytes int64
	elapsed                                          time.Duration
}

// maxCache bounds the chunk copies kept per process.
const maxCache = 256 << 20

// startChecked starts replication like verneuil.Start (same components,
// same configuration), with the checker between the shim and the tracker.
// verneuil.Start cannot be used here: it installs its tracker as the VFS
// hooks and does not expose it.
func startChecked(cfg *config.Config, stateDir string) error {
	if stateDir == "" {
		return errors.New("VERNEUIL_CHECK_EVERY_COMMIT=1 needs VERNEUIL_TCL_STATE (a directory for the results)")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := verneuil.NewLogger(cfg)
	ctx := context.Background()
	stores, err := verneuil.OpenTargets(ctx, cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		return fmt.Errorf("create spool directory: %w", err)
	}
	cp := copier.New(copier.Options{
		SpoolDir:     cfg.SpoolDir,
		Targets:      stores,
		Workers:      cfg.CopierWorkers,
		Interval:     cfg.UploadInterval.Duration(),
		ScanInterval: cfg.ScanInterval.Duration(),
		RateLimit:    cfg.RateLimit,
		RateBurst:    cfg.RateBurst,
		Logger:       log.With("component", "copier"),
	})
	cp.Start(ctx)
	trk := tracker.New(tracker.Options{
		SpoolDir:     cfg.SpoolDir,
		ChunkSize:    cfg.ChunkSize,
		Hostname:     cfg.Hostname,
		Names:        cfg.Names,
		Uploader:     cp,
		Logger:       log.With("component", "tracker"),
		FlushTimeout: cfg.FlushTimeout.Duration(),
		FlushOnClose: cfg.FlushOnClose,
	})
	trk.Start()
	statsF, err := os.OpenFile(filepath.Join(stateDir, fmt.Sprintf("stats.%d", os.Getpid())), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	c := &checker{trk: trk, store: stores[0], log: log, paths: map[uint64]string{},
		cache: map[string][]cachedChunk{}, statsF: statsF, stateDir: stateDir}
	if err := sqlite3vfs.Register(verneuil.VFSName, true, cfg.ChunkSize); err != nil {
		return err
	}
	sqlite3vfs.SetHooks(c, log)
	return nil
}

func (c *checker) Open(path string) uint64 {
	h := c.trk.Open(path)
	if h != 0 {
		c.mu.Lock()
		c.paths[h] = path
		c.mu.Unlock()
	}
	return h
}

func (c *checker) Release(h uint64) {
	c.mu.Lock()
	delete(c.paths, h)
	c.mu.Unlock()
	c.trk.Release(h)
}

func (c *checker) Pragma(h uint64, name, arg string) (string, error) {
	return c.trk.Pragma(h, name, arg)
}

func (c *checker) Capture(h uint64, src tracker.Source, ev tracker.Event) bool {
	want := c.trk.Capture(h, src, ev)
	if ev.Kind != tracker.Commit {
		return want
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.commits++
	if want {
		c.stats.captureFailed++
		c.writeStats()
		return want
	}
	path := c.paths[h]
	t0 := time.Now()
	C.vt_iosim_suspend()
	err := c.verify(path, src)
	C.vt_iosim_resume()
	c.stats.elapsed += time.Since(t0)
	c.stats.checked++
	if err != nil {
		c.stats.failures++
		c.fail(path, err)
	}
	c.writeStats()
	return want
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
		f, ferr := os.OpenFile(filepath.Join(c.stateDir, fmt.Sprintf("failures.%d", os.Getpid())), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if ferr != nil {
			return
		}
		c.failF = f
	}
	cwd, _ := os.Getwd()
	fmt.Fprintf(c.failF, "%s pid=%d cwd=%s db=%s: %v\n", time.Now().Format(time.RFC3339Nano), os.Getpid(), cwd, path, err)
}

// writeStats rewrites stats.PID: one line of "key=value" counters.
func (c *checker) writeStats() {
	s := c.stats
	line := fmt.Sprintf("commits=%d checked=%d capture_failed=%d failures=%d bytes=%d check_ms=%d\n",
		s.commits, s.checked, s.captureFailed, s.failures, s.bytes, s.elapsed.Milliseconds())
	// Fixed width, so that a shorter line never leaves a tail behind.
	line = fmt.Sprintf("%-127s\n", line[:len(line)-1])
	_, _ = c.statsF.WriteAt([]byte(line), 0)
}
