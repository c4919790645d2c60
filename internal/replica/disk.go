package replica

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// diskCache is the on-disk chunk cache that every process of the host
// shares. Chunks are appended to pack files, DIR/packs/PID-RANDOM.pack:
// each process appends to its own pack (one open file, one pwrite per
// chunk: creating a file per chunk cost more CPU than fetching it) and
// starts a new one past packMax. A pack is a sequence of records, each a
// header (magic, length, hash, checksum of the header) and the chunk's
// bytes (pack.go).
//
// Other processes find the chunks by listing DIR/packs and reading the
// record headers of the packs they have not indexed yet, or past what
// they indexed of a pack that grew: on a miss, at most once per
// refreshEvery. Nothing is renamed or locked: a pack is only ever
// appended to by the process that created it. Readers verify every chunk
// against its hash: a record being written, or torn by a writer killed in
// the middle, ends the index of that pack (a bad header, or a length past
// the end of the file) or fails its hash and counts as a miss; it is never
// served.
//
// The size is bounded by max: each process counts what it adds and, past
// the bound, lists the packs and deletes the least recently used ones (by
// modification time: appends and hits refresh it, hits when older than
// touchAfter) until the cache is at evictTo of max, sparing its own pack
// being appended to. A process appending to a pack that another deleted
// notices it (the link count is 0) and starts a new pack. The cache can
// exceed max by what other processes added since this one last looked;
// each looks again whenever it starts a pack, so that is at most about a
// pack (packMax) and a chunk per process.
//
// Chunk files of the earlier layout (DIR/chunks/HH/HASH, one file per
// chunk) are removed by the first process that writes to the cache.
type diskCache struct {
	dir     string // cache_dir
	packDir string // cache_dir/packs
	max     int64
	packMax int64 // a process starts a new pack past this size
	// packLimit bounds the number of packs: maxPacks, or twice the
	// full packs that max holds when that is more.
	packLimit int
	log       *slog.Logger

	// mu guards index and packs; readers hold it (shared) while they read
	// a record, so that a pack's file is never closed under them.
	mu    sync.RWMutex
	index map[manifest.Hash]loc
	// dups: other copies of indexed chunks (processes that fetched a
	// chunk at once both append it), used when a copy does not verify.
	dups  map[manifest.Hash][]loc
	packs map[string]*pack // by file name

	// refreshing: one listing at a time; the others miss meanwhile.
	refreshing  sync.Mutex
	lastRefresh atomic.Int64 // unix nanoseconds

	// appendMu serializes appends, rotation and eviction; cur is the
	// process's pack being appended to (nil before the first put).
	appendMu sync.Mutex
	cur      *pack
	size     int64 // estimate: the last listing plus what this process added
	scanned  bool
	// closed: close ran (under appendMu and mu); the cache is then empty
	// and stores nothing more.
	closed bool
	// Write failures (an unwritable or full cache_dir) are logged once
	// per warnEvery, with the number of failures since the last warning.
	warnedAt time.Time
	failures int
}

// loc is where a chunk is: its record's data in a pack.
type loc struct {
	p   *pack
	off int64 // of the data
	n   int
}

const (
	// packsDir is the directory under cache_dir that holds the packs
	// (docs/ARCHITECTURE.md); legacyChunksDir held one file per chunk.
	packsDir        = "packs"
	legacyChunksDir = "chunks"
	packSuffix      = ".pack"
	// maxPackSize bounds a pack; a smaller cache has packs of an eighth
	// of its bound, so that eviction by whole packs stays fine-grained.
	maxPackSize = 32 << 20
	// refreshEvery: at most one listing of the packs per interval, taken
	// on a miss; the misses during a listing wait for it.
	refreshEvery = 50 * time.Millisecond
	// touchAfter: a hit refreshes a pack's modification time (its
	// recency for eviction) when it is older than this.
	touchAfter = time.Minute
	// maxPacks bounds the number of packs (each short-lived process leaves
	// one, however little it wrote, and a reader holds every pack it
	// indexed open): past it, eviction deletes the least recently used.
	// A cache larger than 128 full packs allows twice its full packs.
	maxPacks = 256
	// evictTo is the fraction of max an eviction leaves (and of packLimit:
	// evict keeps nine tenths of it).
	evictTo = 0.9
	// warnEvery: at most one warning about failed writes per interval.
	warnEvery = time.Minute
)

func newDiskCache(dir string, max int64, log *slog.Logger) (*diskCache, error) {
	if dir == "" || max <= 0 {
		return nil, nil
	}
	packMax := min(max/8, maxPackSize)
	packLimit := int64(maxPacks)
	if packMax > 0 && 2*(max/packMax) > packLimit {
		packLimit = 2 * (max / packMax)
	}
	// The directories are made by the first write: a process that never
	// reads a replica leaves no trace in cache_dir.
	return &diskCache{
		dir: dir, packDir: filepath.Join(dir, packsDir), max: max,
		packMax: packMax, packLimit: int(packLimit), log: log,
		index: map[manifest.Hash]loc{}, dups: map[manifest.Hash][]loc{}, packs: map[string]*pack{},
	}, nil
}

// get returns the cached chunk h of n bytes, verified. A record that does
// not verify is dropped from the index (logged) and counts as a miss.
func (c *diskCache) get(h manifest.Hash, n int) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	looked := time.Now().UnixNano()
	data, l, found, ok := c.read(h, n)
	if !found && c.refresh(looked) {
		data, l, found, ok = c.read(h, n)
	}
	for found {
		if ok && manifest.HashOf(data) == h {
			l.p.touch()
			return data, true
		}
		if !c.drop(h, l) {
			break
		}
		data, l, found, ok = c.read(h, n) // another copy
	}
	return nil, false
}

// read reads the record of h from its pack, unverified. found: the index
// has h at length n; ok: its n bytes were read. A record of h at another
// length is not found: either the manifest asking is wrong (one hash, one
// content, one length) and the record stays for other readers, or the
// record's header is, and another copy may serve.
func (c *diskCache) read(h manifest.Hash, n int) (data []byte, l loc, found, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	l, found = c.lookupLocked(h, n)
	if !found {
		return nil, l, false, false
	}
	data = make([]byte, n)
	if _, err := l.p.f.ReadAt(data, l.off); err != nil {
		return nil, l, true, false
	}
	return data, l, true, true
}

// lookupLocked returns the indexed copy of h at length n, or another copy
// at that length. The caller holds mu.
func (c *diskCache) lookupLocked(h manifest.Hash, n int) (loc, bool) {
	l, found := c.index[h]
	if found && l.n == n {
		return l, true
	}
	if found {
		for _, d := range c.dups[h] {
			if d.n == n {
				return d, true
			}
		}
	}
	return l, false
}

// drop forgets a record that did not verify (the pack's other records
// stay). It reports whether the index has another copy of the chunk;
// without one, a later put appends the chunk again.
func (c *diskCache) drop(h manifest.Hash, l loc) bool {
	c.log.Warn("snapshot cache: a cached chunk does not match its hash; ignoring it",
		"pack", l.p.path, "offset", l.off, "hash", h.String())
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := c.index[h]
	if !ok {
		return false
	}
	if cur != l {
		// A copy among dups, or replaced meanwhile.
		c.dups[h] = slices.DeleteFunc(c.dups[h], func(d loc) bool { return d == l })
		if len(c.dups[h]) == 0 {
			delete(c.dups, h)
		}
		return true
	}
	return c.nextCopyLocked(h)
}

// nextCopyLocked replaces the indexed copy of h by another copy, if there
// is one, or drops h from the index. The caller holds mu.
func (c *diskCache) nextCopyLocked(h manifest.Hash) bool {
	alt := c.dups[h]
	if len(alt) == 0 {
		delete(c.index, h)
		return false
	}
	c.index[h] = alt[0]
	if len(alt) == 1 {
		delete(c.dups, h)
	} else {
		c.dups[h] = alt[1:]
	}
	return true
}

// has reports whether the index holds h (tests).
func (c *diskCache) has(h manifest.Hash) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.index[h]
	return ok
}

// put stores chunk h (already verified) unless the index has it.
func (c *diskCache) put(h manifest.Hash, data []byte) {
	if c == nil {
		return
	}
	c.appendMu.Lock()
	defer c.appendMu.Unlock()
	c.mu.RLock()
	_, have := c.lookupLocked(h, len(data))
	c.mu.RUnlock()
	if c.closed || have {
		return
	}
	if !c.scanned {
		c.removeLegacy()
		c.evict()
	}
	n, newPack, err := c.append(h, data)
	if err != nil {
		c.writeFailed(err)
		return
	}
	c.size += n
	if c.size > c.max || newPack {
		// Looking again at each new pack (at most packMax of this
		// process's writes apart) bounds what the others added unseen.
		c.evict()
	}
}

// append writes the record of h at the end of the process's pack, starting
// a new pack when there is none, it is full or it was deleted. It returns
// the bytes added, and whether it started a new pack.
func (c *diskCache) append(h manifest.Hash, data []byte) (n int64, newPack bool, err error) {
	hdr := encodeHeader(h, len(data))
	size := int64(len(hdr) + len(data))
	if p := c.cur; p != nil && (p.end > 0 && p.end+size > c.packMax || !p.linked()) {
		c.retire()
	}
	if c.cur == nil {
		p, err := createPack(c.packDir)
		if err != nil {
			return 0, false, err
		}
		c.mu.Lock()
		c.packs[p.name] = p
		c.mu.Unlock()
		c.cur = p
		newPack = true
	}
	// Two writes rather than a copy of the chunk: a reader sees the record
	// only once the file reaches its end, and verifies the data anyway.
	p := c.cur
	_, err = p.f.WriteAt(hdr, p.end)
	if err == nil {
		_, err = p.f.WriteAt(data, p.end+recordHeader)
	}
	if err != nil {
		// A full or failing disk: cut the partial record off and go on
		// with this pack (a new pack per failure would leave a file per
		// chunk). If even that fails, the pack ends with a torn record,
		// where readers stop, and is appended to no more.
		if terr := p.f.Truncate(p.end); terr != nil {
			c.retire()
		}
		return 0, newPack, fmt.Errorf("append to %s: %w", p.name, err)
	}
	c.mu.Lock()
	c.index[h] = loc{p: p, off: p.end + recordHeader, n: len(data)}
	p.end += size
	c.mu.Unlock()
	return size, newPack, nil
}

// retire stops appending to the current pack; it stays readable (as the
// packs of other processes are) until it is deleted.
func (c *diskCache) retire() {
	c.mu.Lock()
	c.cur.own = false
	c.mu.Unlock()
	c.cur = nil
}

// writeFailed logs a failed write, at most once per warnEvery: a cache
// that cannot be written fails every chunk, and reads go on without it.
// The caller holds appendMu.
func (c *diskCache) writeFailed(err error) {
	c.failures++
	now := time.Now()
	if !c.warnedAt.IsZero() && now.Sub(c.warnedAt) < warnEvery {
		return
	}
	n := c.failures
	c.warnedAt, c.failures = now, 0
	c.log.Warn("snapshot cache: cannot store chunks; reading without the disk cache",
		"failures", n, "dir", c.dir, "err", err)
}

// removeLegacy removes the chunk files of the earlier layout, whose size
// would otherwise count against the bound forever. The caller holds
// appendMu.
func (c *diskCache) removeLegacy() {
	old := filepath.Join(c.dir, legacyChunksDir)
	if _, err := os.Lstat(old); err != nil {
		return
	}
	if err := os.RemoveAll(old); err != nil {
		c.log.Warn("snapshot cache: cannot remove the chunk files of the earlier layout", "dir", old, "err", err)
		return
	}
	c.log.Info("snapshot cache: removed the chunk files of the earlier layout", "dir", old)
}

// evict lists the packs, then deletes the least recently used ones while
// the cache is larger than max or has more than packLimit packs. The caller
// holds appendMu.
func (c *diskCache) evict() {
	entries, err := os.ReadDir(c.packDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return
	}
	type entry struct {
		name  string
		size  int64
		mtime time.Time
	}
	var files []entry
	var total int64
	for _, d := range entries {
		fi, err := d.Info()
		if err != nil || !strings.HasSuffix(d.Name(), packSuffix) {
			continue
		}
		files = append(files, entry{d.Name(), fi.Size(), fi.ModTime()})
		total += fi.Size()
	}
	c.scanned = true
	if total > c.max || len(files) > c.packLimit {
		slices.SortFunc(files, func(a, b entry) int { return a.mtime.Compare(b.mtime) })
		target := int64(float64(c.max) * evictTo)
		count, countTarget := len(files), c.packLimit*9/10
		var gone []string
		for _, f := range files {
			if total <= target && count <= countTarget {
				break
			}
			if c.cur != nil && f.name == c.cur.name {
				continue
			}
			if err := os.Remove(filepath.Join(c.packDir, f.name)); err == nil || errors.Is(err, fs.ErrNotExist) {
				total -= f.size
				count--
				gone = append(gone, f.name)
			}
		}
		c.forget(gone)
	}
	c.size = total
}

// forget closes the deleted packs and drops their records from the index.
func (c *diskCache) forget(names []string) {
	if len(names) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgetLocked(names)
}

// forgetLocked is forget with mu held.
func (c *diskCache) forgetLocked(names []string) {
	var gone []*pack
	for _, name := range names {
		if p := c.packs[name]; p != nil && !p.own {
			delete(c.packs, name)
			gone = append(gone, p)
		}
	}
	if len(gone) == 0 {
		return
	}
	isGone := func(l loc) bool { return slices.Contains(gone, l.p) }
	for h, alt := range c.dups {
		if alt = slices.DeleteFunc(alt, isGone); len(alt) == 0 {
			delete(c.dups, h)
		} else {
			c.dups[h] = alt
		}
	}
	for h, l := range c.index {
		if isGone(l) {
			c.nextCopyLocked(h)
		}
	}
	for _, p := range gone {
		p.f.Close()
	}
}

// close closes the cache's files (the Manager is closed): later lookups
// miss and later puts store nothing. Packs stay on disk for other
// processes and later Managers.
func (c *diskCache) close() {
	if c == nil {
		return
	}
	c.appendMu.Lock()
	defer c.appendMu.Unlock()
	c.refreshing.Lock()
	defer c.refreshing.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.packs {
		p.f.Close()
	}
	c.closed, c.cur = true, nil
	c.index, c.dups, c.packs = map[manifest.Hash]loc{}, map[manifest.Hash][]loc{}, map[string]*pack{}
}
