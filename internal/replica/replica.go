// Package replica reads replicas lazily, for the read-only snapshot VFS
// "verneuil_snapshot": it resolves a database name to a replica key and a
// pin, loads manifests (only through internal/restore's loaders), keeps one
// Source per replicated database per process (shared by every connection
// to it), refreshes it at most once per interval with a conditional
// request, and fetches chunks verified against their hashes, merging
// concurrent misses on one chunk, reading ahead when chunks are read in
// order, and sharing an on-disk cache with the other processes of the
// host.
//
// The package builds without cgo; the C side of the VFS
// (internal/sqlite3vfs) holds the in-memory chunk cache and calls in once
// per chunk miss and once per read transaction at most.
package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// Defaults of Options.
const (
	DefaultRefreshInterval = time.Second
	DefaultTimeout         = 30 * time.Second
	DefaultDiskCache       = 1 << 30 // bytes
	DefaultReadahead       = 16      // chunk fetches in flight per process
	// maxWindow bounds a readahead window, in chunks, and
	// maxWindowBytes in bytes: with large chunks (up to 16 MiB) a window
	// holds fewer chunks, never fewer than minWindow.
	maxWindow      = 64
	maxWindowBytes = 64 << 20
	minWindow      = 8
	// maxAhead bounds the chunks fetched ahead and not read yet, and
	// maxAheadBytes their bytes (16 MiB at 64 KiB chunks; with 16 MiB
	// chunks, two windows).
	maxAhead      = 4 * maxWindow
	maxAheadBytes = 256 << 20
	// maxPending bounds the fetched chunks waiting for the disk writer
	// (32 MiB at 64 KiB chunks), and maxPendingBytes their bytes;
	// maxWriters bounds the writers (one: the disk cache appends to one
	// pack per process).
	maxPending      = 512
	maxPendingBytes = 64 << 20
	maxWriters      = 1
	// keepIdle is how many sources without connections a Manager keeps
	// (their manifests), so that reopening costs no request.
	keepIdle = 16
)

// MemCache is the process's in-memory chunk cache (the C side of the VFS):
// readahead skips the chunks it holds.
type MemCache interface {
	Has(h manifest.Hash) bool
}

// Options configure a Manager.
type Options struct {
	// Store is where replicas are read from.
	Store blob.Store
	// CacheDir holds the on-disk chunk cache ("" or DiskCache < 0: none).
	CacheDir string
	// DiskCache bounds the on-disk cache in bytes (0: DefaultDiskCache).
	DiskCache int64
	// RefreshInterval is the minimum time between two checks of a
	// database's latest version (0: DefaultRefreshInterval).
	RefreshInterval time.Duration
	// Timeout bounds every request to the store (0: DefaultTimeout).
	Timeout time.Duration
	// Readahead is the number of chunk fetches in flight for readahead
	// (0: DefaultReadahead).
	Readahead int
	// Hostname is this host's name in replica names.
	Hostname string
	// LocalKey returns the replica key of a local database path (the
	// configuration's names map applies); nil: HOST:CANONICAL_PATH.
	LocalKey func(path string) (string, error)
	// Mem is the memory cache of the VFS, whose chunks readahead skips
	// (nil: none).
	Mem    MemCache
	Logger *slog.Logger
}

// Stats count a Manager's work.
type Stats struct {
	ManifestLoads  int64 `json:"manifest_loads"`  // manifests loaded from the store
	TagChecks      int64 `json:"tag_checks"`      // reads of latest: opens, then conditional (If-None-Match) checks
	ChunkFetches   int64 `json:"chunk_fetches"`   // chunk GETs from the store
	ChunkBytes     int64 `json:"chunk_bytes"`     // bytes of chunks fetched (decoded)
	DiskHits       int64 `json:"disk_hits"`       // chunks read from the disk cache
	Readaheads     int64 `json:"readaheads"`      // chunks fetched by readahead
	RefreshErrors  int64 `json:"refresh_errors"`  // failed refresh checks
	MergedMisses   int64 `json:"merged_misses"`   // misses that joined a fetch in flight
	ChunkErrors    int64 `json:"chunk_errors"`    // chunk fetches that failed
	SourcesCreated int64 `json:"sources_created"` // sources loaded
	DiskBehind     int64 `json:"disk_behind"`     // fetched chunks not written to the disk cache, the disk writer being behind
}

// Manager owns the sources of one process.
type Manager struct {
	opts Options
	log  *slog.Logger
	disk *diskCache
	sem  chan struct{}

	mu      sync.Mutex
	sources map[string]*Source
	byID    map[uint64]*Source
	idle    []*Source

	bg         sync.WaitGroup // readahead in the background
	flightMu   sync.Mutex
	flights    map[manifest.Hash]*flight
	ahead      map[manifest.Hash][]byte
	aheadOrder []manifest.Hash
	aheadBytes int                      // bytes in ahead
	pending    map[manifest.Hash][]byte // fetched, not yet in the disk cache
	claimed    map[manifest.Hash]bool   // pending chunks a writer is writing
	inWrite    int                      // pending chunks being written
	pendBytes  int                      // bytes in pending
	writers    int                      // disk writers running

	stats struct {
		manifestLoads, tagChecks, chunkFetches, chunkBytes, diskHits,
		readaheads, refreshErrors, mergedMisses, chunkErrors, sourcesCreated, diskBehind atomic.Int64
	}
}

// New returns a Manager; it starts no goroutine.
func New(opts Options) (*Manager, error) {
	if opts.Store == nil {
		return nil, errors.New("replica: no store")
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Readahead <= 0 {
		opts.Readahead = DefaultReadahead
	}
	if opts.DiskCache == 0 {
		opts.DiskCache = DefaultDiskCache
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.Hostname = names.Hostname(opts.Hostname)
	m := &Manager{opts: opts, log: opts.Logger, sem: make(chan struct{}, opts.Readahead),
		sources: map[string]*Source{}, byID: map[uint64]*Source{}, flights: map[manifest.Hash]*flight{}, ahead: map[manifest.Hash][]byte{}, pending: map[manifest.Hash][]byte{}, claimed: map[manifest.Hash]bool{}}
	d, err := newDiskCache(opts.CacheDir, opts.DiskCache, opts.Logger)
	if err != nil {
		// The cache is an optimisation: read without it.
		m.log.Warn("snapshot: no disk cache", "dir", opts.CacheDir, "err", err)
	}
	m.disk = d
	return m, nil
}

// Stats returns the counters.
func (m *Manager) Stats() Stats {
	s := &m.stats
	return Stats{s.manifestLoads.Load(), s.tagChecks.Load(), s.chunkFetches.Load(), s.chunkBytes.Load(),
		s.diskHits.Load(), s.readaheads.Load(), s.refreshErrors.Load(), s.mergedMisses.Load(),
		s.chunkErrors.Load(), s.sourcesCreated.Load(), s.diskBehind.Load()}
}

// Target is a resolved database name: a replica key, or a local manifest
// file, with an optional pin.
type Target struct {
	Key          string
	ManifestFile string
	Version      uint64    // 0: not pinned to a version
	At           time.Time // zero: not pinned to a time
	// What says, for error messages, what the name was taken as.
	What string
}

func (t Target) pinned() bool { return t.ManifestFile != "" || t.Version != 0 || !t.At.IsZero() }

func (t Target) id() string {
	switch {
	case t.ManifestFile != "":
		return "file:" + t.ManifestFile
	case t.Version != 0:
		return fmt.Sprintf("%s@v%d", t.Key, t.Version)
	case !t.At.IsZero():
		return fmt.Sprintf("%s@t%d", t.Key, t.At.UnixNano())
	}
	return t.Key
}

// Scheme starts the names of other hosts' databases:
// verneuil://HOST/ABS/PATH (verneuil:///ABS/PATH for this host).
const Scheme = "verneuil://"

// sqliteMagic starts every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// Resolve interprets a database name as the snapshot VFS receives it:
// verneuil://HOST/ABS/PATH, an absolute local path (this host's replica of
// that database, or a manifest file saved by verneuilctl manifest --out),
// or a replica key; version and at (either may be "") pin a version.
func (m *Manager) Resolve(name, version, at string) (Target, error) {
	var t Target
	switch {
	case strings.HasPrefix(name, Scheme):
		rest := name[len(Scheme):]
		slash := strings.IndexByte(rest, '/')
		if slash < 0 || slash == len(rest)-1 {
			return t, fmt.Errorf("%q: want verneuil://HOST/ABSOLUTE/PATH", name)
		}
		host, path := rest[:slash], rest[slash:]
		if host == "" {
			host = m.opts.Hostname
		}
		rn := names.Replica(host, path)
		t.Key, t.What = names.Key(rn), fmt.Sprintf("the replica of %s on host %s (key %s)", path, host, names.Key(rn))
	case strings.HasPrefix(name, "/"):
		if isManifestFile(name) {
			t.ManifestFile, t.What = name, "the manifest file "+name
			break
		}
		key, err := m.localKey(name)
		if err != nil {
			return t, fmt.Errorf("%s: %w", name, err)
		}
		t.Key, t.What = key, fmt.Sprintf("this host's replica of %s (key %s)", name, key)
	default:
		if len(name) < 6 || name[4] != '-' || strings.ContainsAny(name, "/\x00") {
			return t, fmt.Errorf("%q is not a replica name: want verneuil://HOST/PATH, an absolute path, a manifest file or a replica key (verneuilctl manifest-name)", name)
		}
		t.Key, t.What = name, "the replica key "+name
	}
	if version != "" && at != "" {
		return t, errors.New("give at most one of version= and at=")
	}
	if version != "" {
		n, err := parseUint(version)
		if err != nil || n == 0 {
			return t, fmt.Errorf("version=%q: want a version number (verneuilctl list --versions)", version)
		}
		t.Version = n
		t.What += fmt.Sprintf(", version %d", n)
	}
	if at != "" {
		tm, err := restore.ParseTime(at)
		if err != nil {
			return t, fmt.Errorf("at=: %w", err)
		}
		t.At = tm
		t.What += ", as of " + tm.UTC().Format(time.RFC3339Nano)
	}
	if t.ManifestFile != "" && (t.Version != 0 || !t.At.IsZero()) {
		return t, errors.New("a manifest file is already one version: version= and at= do not apply")
	}
	return t, nil
}

// parseUint parses a version number: decimal digits only, as list
// --versions prints it (no sign, base prefix, exponent or spaces).
func parseUint(s string) (uint64, error) {
	return strconv.ParseUint(s, 10, 64)
}

func (m *Manager) localKey(path string) (string, error) {
	if m.opts.LocalKey != nil {
		return m.opts.LocalKey(path)
	}
	canon, err := names.Canonical(path)
	if err != nil {
		return "", err
	}
	return names.Key(names.Replica(m.opts.Hostname, canon)), nil
}

// isManifestFile says whether path is an existing non-empty file that is
// not an SQLite database: a saved manifest.
func isManifestFile(path string) bool {
	// Non-blocking, and checked to be a file before any read: opening a
	// FIFO for reading would wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return false
	}
	buf := make([]byte, len(sqliteMagic))
	n, _ := f.Read(buf)
	return n > 0 && string(buf[:n]) != sqliteMagic
}

// ctx returns a context bounded by the store timeout.
func (m *Manager) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), m.opts.Timeout)
}

// Open returns the source of t, shared with the other connections of the
// process, loading its manifest when it is new (for the latest version one
// GET of latest with its tag, and one of its base when it is a delta).
// Close releases it.
func (m *Manager) Open(t Target) (*Source, error) {
	id := t.id()
	m.mu.Lock()
	if s := m.sources[id]; s != nil {
		s.refs++
		m.unidle(s)
		m.mu.Unlock()
		return s, nil
	}
	m.mu.Unlock()
	s, err := m.load(t)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.sources[id]; old != nil { // another connection won the race
		old.refs++
		m.unidle(old)
		return old, nil
	}
	s.id = nextSourceID.Add(1)
	s.refs = 1
	m.sources[id] = s
	m.byID[s.id] = s
	m.stats.sourcesCreated.Add(1)
	return s, nil
}

// nextSourceID numbers the sources of every Manager of the process: the
// VFS keys its per-source state by this handle, and a file opened under a
// Manager that was replaced (a restart with live connections) must never
// find the source of another database under the same number.
var nextSourceID atomic.Uint64

// Source returns the open source with handle id.
func (m *Manager) Source(id uint64) *Source {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byID[id]
}

func (m *Manager) unidle(s *Source) {
	for i, x := range m.idle {
		if x == s {
			m.idle = append(m.idle[:i], m.idle[i+1:]...)
			return
		}
	}
}

// Close releases a reference to s taken by Open. A source without
// references is kept (up to keepIdle of them) for a later Open.
//
// When the last reference goes, Close waits (at most closeDrain) until the
// chunks fetched so far are in the disk cache: a process that exits right
// after closing its connection (the sqlite3 shell, a script) would
// otherwise lose the last ones, and the next process fetch them again.
func (m *Manager) Close(s *Source) {
	m.mu.Lock()
	s.refs--
	last := s.refs <= 0
	if last {
		m.idle = append(m.idle, s)
		for len(m.idle) > keepIdle {
			old := m.idle[0]
			m.idle = m.idle[1:]
			delete(m.sources, old.target.id())
			delete(m.byID, old.id)
		}
	}
	m.mu.Unlock()
	if last {
		m.drainDisk(closeDrain)
	}
}

// closeDrain bounds how long closing a source's last connection waits for
// the disk cache writer (pwrites to the page cache: milliseconds, unless
// the disk is stuck).
const closeDrain = time.Second

// drainDisk waits, at most d, until no fetched chunk waits for the disk
// writer. Readahead still in flight is not waited for.
func (m *Manager) drainDisk(d time.Duration) {
	if m.disk == nil {
		return
	}
	deadline := time.Now().Add(d)
	for {
		m.flightMu.Lock()
		n := len(m.pending)
		m.flightMu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (m *Manager) load(t Target) (*Source, error) {
	ctx, cancel := m.ctx()
	defer cancel()
	s := &Source{mgr: m, target: t, held: map[uint64]*held{}, lastMiss: -2}
	var mf *manifest.Manifest
	var err error
	switch {
	case t.ManifestFile != "":
		mf, err = restore.ManifestFile(ctx, m.opts.Store, t.ManifestFile)
	case t.Version != 0:
		mf, err = restore.Version(ctx, m.opts.Store, t.Key, t.Version)
	case !t.At.IsZero():
		mf, err = restore.At(ctx, m.opts.Store, t.Key, t.At)
	default:
		// One read of latest with its tag (and of the delta's base).
		m.stats.tagChecks.Add(1)
		mf, s.tag, err = restore.LatestTagged(ctx, m.opts.Store, t.Key, "", &s.bases)
	}
	if err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return nil, fmt.Errorf("no replica found for %s in %s: %w", t.What, m.opts.Store, err)
		}
		return nil, fmt.Errorf("cannot load %s from %s: %w", t.What, m.opts.Store, err)
	}
	if t.ManifestFile == "" {
		m.stats.manifestLoads.Add(1)
	}
	s.cur = mf
	s.lastCheck = time.Now()
	return s, nil
}

// Wait waits until the work running in the background (readahead, disk
// cache writes) is done.
func (m *Manager) Wait() { m.bg.Wait() }

// Shutdown waits for the background work, then closes the disk cache's files
// (the replicator is closing).
// Reads through m still work afterwards, from the store only.
func (m *Manager) Shutdown() {
	m.bg.Wait()
	m.disk.close()
}

// RefreshInterval is the minimum time between two checks of a database.
func (m *Manager) RefreshInterval() time.Duration { return m.opts.RefreshInterval }
