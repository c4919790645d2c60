// Package tracker owns change capture: for every database opened through the
// replicating VFS it keeps the identity of the newest committed state it
// captured, copies dirty chunks out of the file at commit (while the VFS
// holds SHARED), and builds manifests from those copies in the background,
// staging them in the spool and signalling the uploader.
//
// The package is pure Go. The VFS (internal/sqlite3vfs) calls it through
// Manager.Open, Manager.Capture, Manager.Pragma and Manager.Release, and
// hands it a Source that reads the database through SQLite's own file
// descriptor.
package tracker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// Kind says why the VFS calls Capture.
type Kind int

const (
	// Commit: a write transaction committed; Event lists the dirty chunks.
	Commit Kind = 1
	// Rollback: the file was written but no commit was seen.
	Rollback Kind = 2
	// Check: a read transaction ends; verify the file's identity.
	Check Kind = 3
	// Rescan: a write transaction committed but the VFS lost track of
	// its dirty chunks (out of memory): capture the whole file.
	Rescan Kind = 4
	// WALCommit: the WAL write lock of a database in WAL mode is about to
	// be released and the wal-index header changed (commits, a restart):
	// see wal.go. Event carries the headers and the -wal path.
	WALCommit Kind = 5
	// WALHeapCommit: a transaction committed on a database in WAL mode
	// whose wal-index is in heap memory (exclusive locking): see
	// walheap.go. Event carries the -wal path and the session.
	WALHeapCommit Kind = 6
)

// HeaderLen is the length of the SQLite header that is part of a file's
// identity.
const HeaderLen = 100

// DefaultBuildDelay is the default Options.BuildDelay. Uploads happen at
// most once per upload interval (1 s by default), so building manifests
// more often than this only costs CPU on the writer's machine.
const DefaultBuildDelay = 100 * time.Millisecond

// DefaultMemoryBudget bounds the bytes of chunk copies waiting to be built
// per database; past it, the capture is built synchronously.
const DefaultMemoryBudget = 64 << 20

// Source reads the database file during a capture. It must only be used
// while the VFS holds at least SHARED, i.e. inside Capture.
type Source interface {
	// ReadAt fills p from offset off; bytes past the end read as zeros.
	ReadAt(p []byte, off int64) error
	// Size returns the file length.
	Size() (int64, error)
	// Xattr returns the version xattr (nil when absent); an error when
	// xattrs are unsupported.
	Xattr() ([]byte, error)
}

// Event describes one capture.
type Event struct {
	Kind  Kind
	Dirty []uint32 // dirty chunk indices (Commit)
	// Extents, when not nil, holds for each dirty chunk Dirty[i] the byte
	// range [Extents[2i], Extents[2i+1]) of the chunk the transaction
	// wrote: a chunk whose copy from an earlier commit is still pending is
	// refreshed by re-reading that range only. nil: whole chunks.
	Extents   []uint32
	PreXattr  []byte // version xattr before the transaction
	PreHeader []byte // header before the transaction
	PostXattr []byte // version xattr written by the transaction
	Seq       uint64 // sequence number of the transaction
	Ino       uint64 // inode of the open file (part of its identity)
	// WALCommit: the wal-index header when the write lock was granted
	// (nil: unknown) and at its release (nil: unreadable), and the path of
	// the -wal file. WAL, when not nil, reads the -wal during the capture
	// (a descriptor the VFS holds: no open per commit; WALPath is then
	// opened only by a sliced rescan's copy after the capture); nil:
	// WALPath is opened.
	WALPrior, WALNow []byte
	WALPath          string
	// WALHeapCommit: the session of the connection (it held EXCLUSIVE
	// with this -wal open throughout one session), and the inode of the
	// -wal it opened (0: unknown).
	WALSession, WALIno uint64
	WAL                io.ReaderAt
	// WALWritten, when not nil, holds the bytes the committing connection
	// wrote to the -wal from offset WALWrittenAt during the hold, as it
	// wrote them through the VFS: frames read from there are not read from
	// the file again (their checksums are still validated). Valid during
	// the capture only.
	WALWritten   []byte
	WALWrittenAt int64
}

// Uploader is the part of the copier the tracker uses.
type Uploader interface {
	// Notify signals (without blocking) that a spool has a new manifest.
	Notify(key string)
	// Upload synchronously uploads the spool of key.
	Upload(ctx context.Context, key string) error
}

// Options configures a Manager.
type Options struct {
	SpoolDir     string
	ChunkSize    int
	Hostname     string
	Names        map[string]string // canonical path → replica name
	Uploader     Uploader          // may be nil (spool only)
	Logger       *slog.Logger
	MemoryBudget int64
	Builders     int // background manifest builders; default 2
	// BuildDelay is how long captures accumulate before a background build
	// (commits in between are squashed); default DefaultBuildDelay.
	BuildDelay   time.Duration
	FlushTimeout time.Duration // PRAGMA verneuil_flush; default 60s
	// IdleRelease is how long a database may go without building before
	// its in-memory base version (chunk 0 and the hash list) is released
	// and reloaded from the spool when needed; default 30s.
	IdleRelease  time.Duration
	FlushOnClose bool
	// CheckSpool, when set, is called with a database's spool when this
	// process starts tracking the database, before the spool's manifest is
	// adopted (the copier drops an upload record made for other targets).
	CheckSpool func(*spool.Dir) error
	// WALQueues, when set, returns the VFS's queue of WAL commits of the
	// database with the given id (walqueue.go).
	WALQueues func(id uint64) WALQueue
}

// Manager tracks every replicated database of the process.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	dbs     map[string]*DB // by fileKey: one tracker per file, whatever its name
	handles map[uint64]*DB
	refused map[uint64]bool // unknown handles already logged

	// fileKeys is the dbs key of each tracked database.
	fileKeys map[*DB]string

	work   chan *DB
	stop   chan struct{}
	wg     sync.WaitGroup
	closed bool
}

// lastHandle numbers connection handles for every Manager of the process:
// the VFS keeps a connection's handle across a Close and a new Start, so a
// handle is never reused, and one from an earlier Manager is refused.
var lastHandle atomic.Uint64

// lastDBID numbers tracked databases, for every Manager of the process.
var lastDBID atomic.Uint64

// New returns a Manager with defaults applied. Start launches its builders.
func New(opts Options) *Manager {
	if opts.ChunkSize == 0 {
		opts.ChunkSize = 64 << 10
	}
	if opts.MemoryBudget == 0 {
		opts.MemoryBudget = DefaultMemoryBudget
	}
	if opts.BuildDelay == 0 {
		opts.BuildDelay = DefaultBuildDelay
	}
	if opts.Builders <= 0 {
		opts.Builders = 2
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = 60 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.IdleRelease <= 0 {
		opts.IdleRelease = 30 * time.Second
	}
	opts.Hostname = names.Hostname(opts.Hostname)
	return &Manager{
		opts:    opts,
		log:     opts.Logger,
		dbs:     map[string]*DB{},
		handles: map[uint64]*DB{},
		refused: map[uint64]bool{},
		work:    make(chan *DB, 1024),
		stop:    make(chan struct{}),

		fileKeys: map[*DB]string{},
	}
}

// Start launches the background builders and the idle sweeper.
func (m *Manager) Start() {
	for range m.opts.Builders {
		m.wg.Add(1)
		go m.builder()
	}
	m.wg.Add(1)
	go m.sweeper()
}

// sweeper releases the memory of idle databases: one goroutine for all.
func (m *Manager) sweeper() {
	defer m.wg.Done()
	t := time.NewTicker(m.opts.IdleRelease / 2)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		m.mu.Lock()
		dbs := make([]*DB, 0, len(m.dbs))
		for _, db := range m.dbs {
			dbs = append(dbs, db)
		}
		m.mu.Unlock()
		for _, db := range dbs {
			db.releaseIfIdle(m.opts.IdleRelease)
		}
	}
}

// Close builds everything pending and stops the builders.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	dbs := make([]*DB, 0, len(m.dbs))
	for _, db := range m.dbs {
		dbs = append(dbs, db)
	}
	m.mu.Unlock()
	var errs []error
	for _, db := range dbs {
		if err := db.build(); err != nil {
			errs = append(errs, err)
		}
	}
	close(m.stop)
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}

func (m *Manager) builder() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case db := <-m.work:
			db.queued.Store(false)
			if err := db.buildRecovering(); err != nil { // recover.go
				db.log.Error("build manifest", "err", err)
			}
		}
	}
}

func (m *Manager) schedule(db *DB) {
	if db.queued.Swap(true) {
		return
	}
	// The timer exists only while captures wait: idle databases cost
	// nothing.
	time.AfterFunc(m.opts.BuildDelay, func() { m.enqueue(db) })
}

func (m *Manager) enqueue(db *DB) {
	select {
	case <-m.stop:
		db.queued.Store(false)
		return
	default:
	}
	select {
	case m.work <- db:
	default:
		// Queue full: build here rather than lose the signal.
		db.queued.Store(false)
		if err := db.build(); err != nil {
			db.log.Error("build manifest", "err", err)
		}
	}
}

// Open registers a connection to the database at path and returns its
// handle, or 0 (with the reason logged) when it cannot be replicated.
func (m *Manager) Open(path string) uint64 {
	canon, err := names.Canonical(path)
	if err != nil {
		m.log.Error("replication disabled for database", "db", path, "err", err)
		return m.openDisabled(path, err)
	}
	fk := fileKey(canon)
	// Before m.mu, which captures take: resolving names keys reads the
	// file system.
	name, _ := names.Override(m.opts.Names, canon) // also a key through a symlink
	m.mu.Lock()
	defer m.mu.Unlock()
	db, found := m.dbs[fk], true
	if db == nil {
		// openDB releases m.mu while it reads and creates the spool; it
		// returns the tracker another connection registered meanwhile as
		// found (open.go).
		db, found, err = m.openDB(fk, canon, name)
	}
	if !found {
		if errors.Is(err, ErrNameCollision) {
			// Tracked (so that flushes fail naming the collision) but
			// never captured: its writes pass through unreplicated.
			m.log.Error("replication disabled for database", "db", canon, "err", err)
		} else if err != nil {
			m.log.Error("replication disabled for database", "db", canon, "err", err)
			return m.openDisabledLocked(canon, err)
		}
		m.dbs[fk] = db
		m.fileKeys[db] = fk
	} else if db.path != canon {
		m.log.Debug("database opened through another name (hard link): one tracker and one replica",
			"db", db.path, "name", canon)
	}
	db.refs++
	h := lastHandle.Add(1)
	m.handles[h] = db
	return h
}

// openDisabled returns a handle for a connection to a database that cannot
// be replicated (err says why), and is not tracked: the next connection
// tries again. Its writes pass through; PRAGMA verneuil_flush fails with
// the reason (with no handle, SQLite would ignore it as an unknown pragma,
// without an error).
func (m *Manager) openDisabled(path string, err error) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.openDisabledLocked(path, err)
}

func (m *Manager) openDisabledLocked(path string, err error) uint64 {
	db := &DB{m: m, path: path, refs: 1, log: m.log.With("db", path),
		disabled: fmt.Errorf("database %s is not replicated: %w", path, err)}
	h := lastHandle.Add(1)
	m.handles[h] = db
	return h
}

// Release drops a connection handle. A handle this Manager did not issue
// (one from before a restart) is ignored.
func (m *Manager) Release(h uint64) {
	m.mu.Lock()
	db := m.handles[h]
	delete(m.handles, h)
	delete(m.refused, h)
	last := false
	if db != nil {
		db.refs--
		if db.refs == 0 {
			if _, tracked := m.fileKeys[db]; tracked {
				m.forgetLocked(db)
			}
			last = true
		}
	}
	m.mu.Unlock()
	if db == nil || !last {
		return
	}
	if err := db.build(); err != nil {
		db.log.Error("build manifest at close", "err", err)
	}
	if db.disabled == nil {
		db.closeChain()
	}
	if m.opts.FlushOnClose && m.opts.Uploader != nil && db.disabled == nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.opts.FlushTimeout)
		defer cancel()
		if err := m.opts.Uploader.Upload(ctx, db.key); err != nil {
			db.log.Error("flush on close", "err", err)
		}
	}
}

// lookup returns the database of handle h, or nil for a handle this Manager
// did not issue: a connection opened before replication was restarted. Such
// a connection passes through unreplicated; that is logged once.
func (m *Manager) lookup(h uint64) *DB {
	m.mu.Lock()
	defer m.mu.Unlock()
	db := m.handles[h]
	if db == nil && h != 0 && !m.refused[h] {
		m.refused[h] = true
		m.log.Warn("connection opened before replication was restarted: its writes are not replicated; reopen it", "handle", h)
	}
	return db
}

// SpoolDir returns the spool directory of the database of handle h, or ""
// for an unknown handle.
func (m *Manager) SpoolDir(h uint64) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if db := m.handles[h]; db != nil && db.spool != nil {
		return db.spool.Path
	}
	return ""
}

// Capture handles one VFS event. It returns whether the VFS should call
// again with Check at the next read transaction. It never fails: problems
// are logged and force a rescan later.
func (m *Manager) Capture(h uint64, src Source, ev Event) (wantCheck bool) {
	db := m.lookup(h)
	if db == nil || db.disabled != nil {
		return false
	}
	if err := db.capture(src, ev); err != nil {
		switch {
		case errors.Is(err, ErrDeferred):
			db.log.Info("capture deferred; the database will be rescanned or adopted at the next capture", "err", err)
		case errors.Is(err, ErrWALShort):
			db.log.Info("capture skipped: the WAL's frames have not reached the file; the next capture rescans", "err", err)
		case errors.Is(err, ErrWALMissing):
			// Every commit says it again until the -wal is back (walmissing.go).
			db.logRepeated(ErrWALMissing, err, slog.LevelWarn,
				"commits not captured until the -wal is opened again at its path (the next capture rescans)",
				"commit not captured: the -wal is still missing")
		case errors.Is(err, ErrWAL):
			// Every commit of such a database says it again: logged when
			// it starts (flushes and status keep reporting it).
			db.logRepeated(ErrWAL, err, slog.LevelError,
				"commit not replicated: the file says WAL mode but the VFS saw a rollback-journal commit "+
					"(a WAL it cannot follow: its wal-index is kept by a VFS stacked above it)",
				"commit not captured: still in WAL mode without a wal-index the VFS sees")
		default:
			db.log.Error("capture failed; the database will be rescanned", "err", err)
		}
		db.mu.Lock()
		db.lastID = nil
		db.verified = false // the next Check retries
		db.lastErr = err
		db.mu.Unlock()
		return true
	}
	if ev.Kind != Rollback {
		db.mu.Lock()
		db.lastErr = nil
		db.mu.Unlock()
	}
	return ev.Kind != Rollback && db.slicedUnsettled()
}

// Pragma runs a verneuil_* pragma for the connection h. src may only be
// used to read the header (the connection may hold no lock).
func (m *Manager) Pragma(h uint64, src Source, name, arg string) (string, error) {
	db := m.lookup(h)
	if db == nil {
		return "", errors.New("verneuil: replication is not enabled for this database")
	}
	if db.disabled != nil {
		return "", fmt.Errorf("%s: %w", name, db.disabled)
	}
	switch name {
	case "verneuil_flush":
		header := make([]byte, HeaderLen)
		wal := src != nil && src.ReadAt(header, 0) == nil && IsWAL(header)
		db.waitSliced(false)    // a sliced rescan in progress
		if src != nil && !wal { // WAL mode: commits are captured at the write lock (wal.go)
			if err := m.recheck(db, src); err != nil {
				return "", fmt.Errorf("verneuil_flush: %w", err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), m.opts.FlushTimeout)
		defer cancel()
		if err := db.Flush(ctx); err != nil {
			return "", fmt.Errorf("verneuil_flush: %w", err)
		}
		return "ok", nil
	case "verneuil_manifest_name":
		return db.key, nil
	}
	return "", fmt.Errorf("verneuil: unknown pragma %s", name)
}

// ForceRescan makes the next capture of the database with replica key
// rescan the file (the uploader found staged data missing or damaged).
func (m *Manager) ForceRescan(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, db := range m.dbs {
		if db.key == key {
			db.mu.Lock()
			db.lastID = nil
			db.mu.Unlock()
		}
	}
}

// ContinueAfter makes the database with replica key number its next
// versions after seq: the copier published one of its versions renumbered
// seq because the clock-derived number was not above the stored one.
func (m *Manager) ContinueAfter(key string, seq uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, db := range m.dbs {
		if db.key == key {
			db.mu.Lock()
			db.lastSeq = max(db.lastSeq, seq)
			db.mu.Unlock()
		}
	}
}

// DB returns the tracked database at path (or at another name of the same
// file), or nil.
func (m *Manager) DB(path string) *DB {
	canon, err := names.Canonical(path)
	if err != nil {
		return nil
	}
	fk := fileKey(canon)
	m.mu.Lock()
	defer m.mu.Unlock()
	if db := m.dbs[fk]; db != nil {
		return db
	}
	// The file open under that name was renamed, unlinked or replaced
	// while connections kept it open: they still capture into the
	// database opened under path.
	for _, db := range m.dbs {
		if db.path == canon {
			return db
		}
	}
	return nil
}

// forgetLocked drops a database whose last connection closed. m.mu must
// be held.
func (m *Manager) forgetLocked(db *DB) {
	delete(m.dbs, m.fileKeys[db])
	delete(m.fileKeys, db)
}

// fileKey identifies the file at canon by device and inode, so that two
// names of one file (hard links) share one tracker: a second tracker would
// keep a second replica that only its own connections' commits update.
// The canonical path stands in when the file cannot be stat'ed.
func fileKey(canon string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(canon, &st); err != nil {
		return "path:" + canon
	}
	return fmt.Sprintf("file:%d:%d", uint64(st.Dev), st.Ino)
}

// Flush builds and uploads every tracked database.
func (m *Manager) Flush(ctx context.Context) error {
	m.mu.Lock()
	dbs := make([]*DB, 0, len(m.dbs))
	for _, db := range m.dbs {
		dbs = append(dbs, db)
	}
	m.mu.Unlock()
	var errs []error
	for _, db := range dbs {
		if err := db.Flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush %s: %w", db.path, err))
		}
	}
	return errors.Join(errs...)
}

// recheck compares the file's identity with the newest state captured,
// by this process or in the spool, before a flush: the identity check of a
// tracker runs once, so a change made since then by a writer that bypasses
// the VFS, a forked child, or another process writing through another name
// of the file (a hard link, with its own spool) would otherwise be flushed
// as a stale replica with no error. src holds no lock, so a commit of
// another process may be in flight: its capture is waited for (its build
// delay) before the difference counts.
func (m *Manager) recheck(db *DB, src Source) error {
	deadline := time.Now().Add(5*m.opts.BuildDelay + 500*time.Millisecond)
	for {
		xattr, header, err := readState(src)
		if err != nil {
			return nil // cannot tell; the flush reports what it can
		}
		// The Source does not know the inode: compare what follows it.
		cur := identity(0, xattr, header)[8:]
		db.mu.Lock()
		last := db.lastID
		db.mu.Unlock()
		if len(last) > 8 && bytes.Equal(last[8:], cur) {
			return nil
		}
		if man, _, err := db.spool.Manifest(); err == nil && man != nil && len(man.VersionID) > 8 && bytes.Equal(man.VersionID[8:], cur) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("database %s changed outside capture since the last capture (a writer that bypasses the VFS, "+
				"a forked child, or a process writing through another name of the file): its replica lags behind the file "+
				"until the next write through verneuil, or verneuilctl sync %s", db.path, db.path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func seqFromXattr(x []byte) uint64 {
	if len(x) >= 8 {
		return binary.BigEndian.Uint64(x)
	}
	return 0
}

// identity is what must match for a capture to build on the previous one:
// the inode of the file (a file replaced by a copy is another file), its
// version xattr and its header.
func identity(ino uint64, xattr, header []byte) []byte {
	id := make([]byte, 0, 8+1+len(xattr)+len(header))
	id = binary.BigEndian.AppendUint64(id, ino)
	id = append(id, byte(len(xattr)))
	id = append(id, xattr...)
	return append(id, header...)
}

// readState reads what a file state's identity is made of, besides the
// inode: the version xattr (nil when absent or unsupported: identity falls
// back to the header) and the first HeaderLen bytes.
func readState(src Source) (xattr, header []byte, err error) {
	xattr, err = src.Xattr()
	if err != nil {
		xattr = nil
	}
	header = make([]byte, HeaderLen)
	if err := src.ReadAt(header, 0); err != nil {
		return nil, nil, fmt.Errorf("read header: %w", err)
	}
	return xattr, header, nil
}

// Identity returns the identity of a file state as the tracker computes it
// and manifests record it (manifest.Manifest.VersionID): the inode of the
// file, its version xattr (nil when absent or unsupported) and its first
// HeaderLen bytes.
func Identity(ino uint64, xattr, header []byte) []byte { return identity(ino, xattr, header) }
