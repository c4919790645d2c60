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
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// diskCache is the on-disk chunk cache that every process of the host
// shares: DIR/chunks/HH/HASH holds the raw bytes of the chunk HASH (HH its
// first two hex digits), written to a temp file beside it and renamed into place, so a
// reader sees a whole file or none. Readers verify every file against its
// name and delete one that does not match. There is no lock between
// processes: two processes that miss the same chunk at once both write
// it, and the second rename replaces the first file with identical bytes.
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
}

const (
	// touchAfter: a hit refreshes a file's modification time (its
	// recency for eviction) when it is older than this.
	touchAfter = time.Minute
	// evictTo is the fraction of max an eviction leaves.
	evictTo = 0.9
	// staleTemp: temp files older than this were left by a crash.
	staleTemp = time.Hour
	// tmpPrefix starts the names of temp files.
	tmpPrefix = ".tmp-"
)

func newDiskCache(dir string, max int64, log *slog.Logger) (*diskCache, error) {
	if dir == "" || max <= 0 {
		return nil, nil
	}
	for _, d := range []string{dir, filepath.Join(dir, "chunks")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("snapshot cache: %w", err)
		}
	}
	return &diskCache{dir: dir, max: max, log: log}, nil
}

func (c *diskCache) path(h manifest.Hash) string {
	s := h.String()
	return filepath.Join(c.dir, "chunks", s[:2], s)
}

// get returns the cached chunk h of n bytes, verified; a file that does
// not verify is removed.
func (c *diskCache) get(h manifest.Hash, n int) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	p := c.path(h)
	f, err := os.Open(p)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() != int64(n) {
		if err == nil {
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
	if _, err := os.Stat(p); err == nil {
		return
	}
	if err := c.write(p, data); err != nil {
		c.log.Warn("snapshot cache: cannot store a chunk", "err", err)
		return
	}
	c.mu.Lock()
	c.size += int64(len(data))
	over := !c.scanned || c.size > c.max
	c.mu.Unlock()
	if over {
		c.evict()
	}
}

func (c *diskCache) write(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	// The temp file goes beside its final name: renames within one of
	// 256 directories do not all contend for one directory's lock.
	f, err := os.CreateTemp(filepath.Dir(p), tmpPrefix+"*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
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
		if strings.HasPrefix(d.Name(), tmpPrefix) {
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
