package replica

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// diskCache is the on-disk chunk cache that every process of the host
// shares: DIR/chunks/HH/HASH holds the raw bytes of the chunk HASH (HH its
// first two hex digits), created exclusively (O_EXCL) and written in place.
// Readers check every file's length and hash: a short file is being
// written (or was left by a crash: removed after staleTemp) and counts as
// a miss; a file of the right length whose content does not match its
// name is deleted. There is no lock between processes: of two processes
// that miss the same chunk at once, one creates the file and the other
// finds it there.
//
// The size is bounded by max: each process counts what it adds and, past
// the bound, deletes the least recently used files (by modification time,
// which a hit refreshes when older than touchAfter) until the cache is at
// evictTo of max. The cache can therefore exceed max by what other
// processes added since this one last looked.
type diskCache struct {
	dir string
	max int64
	log *slog.Logger

	mu      sync.Mutex
	size    int64 // estimate: the last scan plus what this process added
	scanned bool
	// Write failures (an unwritable or full cache_dir) are logged once
	// per warnEvery, with the number of failures since the last warning.
	warnedAt time.Time
	failures int
}

const (
	// chunksDir is the directory under cache_dir that holds the chunks
	// (cache_dir/chunks/HH/HASH, docs/ARCHITECTURE.md).
	chunksDir = "chunks"
	// touchAfter: a hit refreshes a file's modification time (its
	// recency for eviction) when it is older than this.
	touchAfter = time.Minute
	// evictTo is the fraction of max an eviction leaves.
	evictTo = 0.9
	// staleTemp: short files older than this were left by a crash.
	staleTemp = time.Hour
	// warnEvery: at most one warning about failed writes per interval.
	warnEvery = time.Minute
	// tmpPrefix starts the names of temp files.
	tmpPrefix = ".tmp-"
)

func newDiskCache(dir string, max int64, log *slog.Logger) (*diskCache, error) {
	if dir == "" || max <= 0 {
		return nil, nil
	}
	// The directories are made by the first write: a process that never
	// reads a replica leaves no trace in cache_dir.
	return &diskCache{dir: dir, max: max, log: log}, nil
}

func (c *diskCache) path(h manifest.Hash) string {
	s := h.String()
	return filepath.Join(c.dir, chunksDir, s[:2], s)
}

// get returns the cached chunk h of n bytes, verified; a file that does
// not verify is removed.
func (c *diskCache) get(h manifest.Hash, n int) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	p := c.path(h)
	// O_NONBLOCK: opening a FIFO put in the cache's place would otherwise
	// block until a writer comes; it is then rejected as not a file.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false
	}
	if !fi.Mode().IsRegular() {
		c.drop(p, "not a regular file ("+fi.Mode().Type().String()+")")
		return nil, false
	}
	if fi.Size() != int64(n) {
		// Shorter: being written (a miss), or left by a crash.
		if fi.Size() > int64(n) || time.Since(fi.ModTime()) > staleTemp {
			c.drop(p, fmt.Sprintf("%d bytes, want %d", fi.Size(), n))
		}
		return nil, false
	}
	data := make([]byte, n)
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, false
	}
	if manifest.HashOf(data) != h {
		c.drop(p, "content does not match its hash")
		return nil, false
	}
	if now := time.Now(); now.Sub(fi.ModTime()) > touchAfter {
		_ = os.Chtimes(p, now, now) // recency only; a failure costs nothing
	}
	return data, true
}

func (c *diskCache) drop(p, why string) {
	c.log.Warn("snapshot cache: removing a bad chunk file", "file", p, "reason", why)
	_ = os.Remove(p)
}

// put stores chunk h (already verified) unless present.
func (c *diskCache) put(h manifest.Hash, data []byte) {
	if c == nil {
		return
	}
	p := c.path(h)
	written, err := c.write(p, data)
	if err != nil {
		c.writeFailed(err)
		return
	}
	if !written {
		return // already there
	}
	c.mu.Lock()
	c.size += int64(len(data))
	over := !c.scanned || c.size > c.max
	c.mu.Unlock()
	if over {
		c.evict()
	}
}

// writeFailed logs a failed write, at most once per warnEvery: a cache
// that cannot be written fails every chunk, and reads go on without it.
func (c *diskCache) writeFailed(err error) {
	c.mu.Lock()
	c.failures++
	now := time.Now()
	if !c.warnedAt.IsZero() && now.Sub(c.warnedAt) < warnEvery {
		c.mu.Unlock()
		return
	}
	n := c.failures
	c.warnedAt, c.failures = now, 0
	c.mu.Unlock()
	c.log.Warn("snapshot cache: cannot store chunks; reading without the disk cache",
		"failures", n, "dir", c.dir, "err", err)
}

// write creates the chunk file p exclusively and writes it: three system
// calls, no rename (creating files is the cache's main cost). A reader
// that opens the file while it is being written sees it short and takes
// it for a miss; a file left short by a crash is removed once older than
// staleTemp. written is false when the file exists.
func (c *diskCache) write(p string, data []byte) (written bool, err error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return false, err
		}
		f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return false, err
	}
	return true, nil
}

// evict scans the cache, then deletes the least recently used files while
// it is larger than max.
func (c *diskCache) evict() {
	c.mu.Lock()
	defer c.mu.Unlock()
	type entry struct {
		path  string
		size  int64
		mtime time.Time
	}
	var files []entry
	var total int64
	now := time.Now()
	_ = filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) { // older versions' temp files
			if now.Sub(fi.ModTime()) > staleTemp {
				os.Remove(p)
			}
			return nil
		}
		files = append(files, entry{p, fi.Size(), fi.ModTime()})
		total += fi.Size()
		return nil
	})
	c.scanned = true
	if total > c.max {
		sort.Slice(files, func(i, j int) bool { return files[i].mtime.Before(files[j].mtime) })
		target := int64(float64(c.max) * evictTo)
		for _, f := range files {
			if total <= target {
				break
			}
			if err := os.Remove(f.path); err == nil || errors.Is(err, fs.ErrNotExist) {
				total -= f.size
			}
		}
	}
	c.size = total
}
