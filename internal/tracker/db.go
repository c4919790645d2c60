package tracker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verneuil-go/verneuil/internal/failpoint"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// DB tracks one database file for every connection of the process.
type DB struct {
	m     *Manager
	path  string
	name  string
	key   string
	spool *spool.Dir
	log   *slog.Logger

	refs   int // guarded by m.mu
	queued atomic.Bool

	mu sync.Mutex
	// Identity (version xattr + header) of the newest committed state
	// captured; nil when unknown (the next capture compares with the spool
	// or rescans).
	lastID       []byte
	lastLen      int64
	lastSeq      uint64
	verified     bool
	lastErr      error // the last capture failed: the spool is behind
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
}

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

// commit captures a committed write transaction. The VFS holds SHARED.
func (db *DB) commit(src Source, ev Event) error {
	size, err := src.Size()
	if err != nil {
		return fmt.Errorf("file size: %w", err)
	}
	pre := identity(ev.Ino, ev.PreXattr, ev.PreHeader)
	db.mu.Lock()
	known := db.lastID != nil && bytes.Equal(pre, db.lastID)
	db.mu.Unlock()
	if !known {
		adopted, err := db.adoptSpool(pre)
		if err != nil {
			return err
		}
		if !adopted {
			db.log.Debug("file changed outside the tracker; rescanning")
			return db.rescan(src, ev.Ino, ev.PostXattr, ev.Seq)
		}
	}

	cs := db.chunkSize()
	n := (size + int64(cs) - 1) / int64(cs)
	db.mu.Lock()
	dirty := make(map[uint32]bool, len(ev.Dirty)+2)
	for _, c := range ev.Dirty {
		if int64(c) < n {
			dirty[c] = true
		}
	}
	// Growth the VFS may not have seen (fallocate for size hints) and the
	// partial last chunk after a shrink are re-read too.
	if size != db.lastLen {
		from := min(size, db.lastLen) / int64(cs)
		for c := from; c < n; c++ {
			dirty[uint32(c)] = true
		}
	}
	if db.pending == nil {
		db.pending = &pending{chunks: make(map[uint32][]byte, len(dirty))}
	}
	// Copy each dirty chunk over the pending copy of an earlier commit when
	// there is one (squashing it), else into a new buffer.
	failpoint.Hit("capture-before-copy")
	for c := range dirty {
		failpoint.Hit("capture-mid-copy")
		n := manifest.ChunkLen(int(c), size, uint32(cs))
		buf := db.pending.chunks[c]
		if len(buf) != n {
			db.pendingBytes += int64(n - len(buf))
			buf = make([]byte, n)
			db.pending.chunks[c] = buf
		}
		if err := src.ReadAt(buf, int64(c)*int64(cs)); err != nil {
			// The pending copies are now a mix of two states: drop them.
			db.pending, db.pendingBytes, db.lastID = nil, 0, nil
			db.mu.Unlock()
			return fmt.Errorf("read chunk %d: %w", c, err)
		}
	}
	header := make([]byte, HeaderLen)
	if c0, ok := db.pending.chunks[0]; ok {
		copy(header, c0)
	} else if err := src.ReadAt(header, 0); err != nil {
		db.pending, db.pendingBytes, db.lastID = nil, 0, nil
		db.mu.Unlock()
		return fmt.Errorf("read header: %w", err)
	}
	if isWAL(header) {
		db.pending, db.pendingBytes, db.lastID = nil, 0, nil
		db.mu.Unlock()
		return ErrWAL
	}
	seq := db.nextSeq(ev.Seq)
	vid := identity(ev.Ino, ev.PostXattr, header)
	db.pending.length = size
	db.pending.seq = seq
	db.pending.versionID = vid
	db.pending.commitTime = time.Now()
	db.lastID = vid
	db.lastLen = size
	db.lastSeq = seq
	db.verified = true
	over := db.pendingBytes > db.m.opts.MemoryBudget
	db.mu.Unlock()
	if over {
		return db.build()
	}
	db.m.schedule(db)
	return nil
}

// check verifies, once per tracker, that the file is the state last
// captured; otherwise it adopts the spool's manifest or rescans.
func (db *DB) check(src Source, ino uint64) error {
	db.mu.Lock()
	if db.verified {
		db.mu.Unlock()
		return nil
	}
	db.mu.Unlock()
	xattr, err := src.Xattr()
	if err != nil {
		xattr = nil // unsupported: identity falls back to the header
	}
	header := make([]byte, HeaderLen)
	if err := src.ReadAt(header, 0); err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	if isWAL(header) {
		return ErrWAL
	}
	cur := identity(ino, xattr, header)
	db.mu.Lock()
	known := db.lastID != nil && bytes.Equal(cur, db.lastID) && !db.spool.RescanWanted()
	db.mu.Unlock()
	if !known {
		adopted, err := db.adoptSpool(cur)
		if err != nil {
			return err
		}
		if !adopted {
			db.log.Debug("file does not match the spool; rescanning")
			if err := db.rescan(src, ino, xattr, seqFromXattr(xattr)); err != nil {
				return err
			}
		}
	}
	db.mu.Lock()
	db.verified = true
	db.mu.Unlock()
	return nil
}

// adoptSpool makes the spool's manifest the base when it describes the
// state whose identity is id (another process captured it).
func (db *DB) adoptSpool(id []byte) (bool, error) {
	if db.spool.RescanWanted() {
		return false, nil // the uploader lost staged data: rescan
	}
	man, _, err := db.spool.Manifest()
	if err != nil {
		db.log.Warn("ignoring damaged spool manifest", "err", err)
		return false, nil
	}
	if man == nil || !bytes.Equal(man.VersionID, id) || int(man.ChunkSize) != db.chunkSize() {
		return false, nil
	}
	db.buildMu.Lock()
	defer db.buildMu.Unlock()
	db.mu.Lock()
	defer db.mu.Unlock()
	// Pending copies predate the adopted state: drop them.
	db.pending, db.pendingBytes = nil, 0
	db.setBaseLocked(man)
	db.lastID = man.VersionID
	db.lastLen = man.Length
	db.lastSeq = max(db.lastSeq, man.Seq)
	return true, nil
}

// rescan reads and hashes the whole file (the VFS holds SHARED) and
// publishes it as a new version. Chunks of the last uploaded manifest are
// not staged again.
func (db *DB) rescan(src Source, ino uint64, xattr []byte, seq uint64) error {
	db.buildMu.Lock()
	defer db.buildMu.Unlock()
	db.mu.Lock()
	db.pending, db.pendingBytes = nil, 0
	db.lastID = nil
	seq = db.nextSeq(max(seq, uint64(time.Now().UnixNano())))
	db.mu.Unlock()

	// Only chunks of the last upload are known to be safe in the store;
	// everything else is (re)written, as staged files may be damaged.
	db.spool.TakeRescan()
	known := map[manifest.Hash]bool{}
	if up, _, err := db.spool.Uploaded(); err == nil && up != nil {
		for _, h := range up.Chunks {
			known[h] = true
		}
	}

	size, err := src.Size()
	if err != nil {
		return fmt.Errorf("file size: %w", err)
	}
	cs := db.chunkSize()
	n := manifest.ChunkCount(size, uint32(cs))
	m := &manifest.Manifest{Name: db.name, Seq: seq, CommitTime: time.Now(),
		ChunkSize: uint32(cs), Length: size, Chunks: make([]manifest.Hash, n)}
	unlock, err := db.spool.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	buf := make([]byte, cs)
	for i := range n {
		b := buf[:manifest.ChunkLen(i, size, uint32(cs))]
		if err := src.ReadAt(b, int64(i)*int64(cs)); err != nil {
			return fmt.Errorf("rescan chunk %d: %w", i, err)
		}
		h := manifest.HashOf(b)
		m.Chunks[i] = h
		if i == 0 {
			m.Chunk0 = append([]byte(nil), b...)
			continue
		}
		if known[h] || h == manifest.ZeroChunkHash(len(b)) {
			continue
		}
		if err := db.spool.RestageChunk(h, b); err != nil {
			return err
		}
		known[h] = true
	}
	header := make([]byte, HeaderLen)
	copy(header, m.Chunk0)
	finish(m, identity(ino, xattr, header), header)
	enc, err := m.Encode()
	if err != nil {
		return err
	}
	published, err := db.spool.Publish(m, enc)
	if err != nil {
		return err
	}
	db.warnRenumbered(seq, m)
	db.setBaseLocked(m)
	db.mu.Lock()
	db.lastID = m.VersionID
	db.lastLen = size
	db.lastSeq = max(db.lastSeq, m.Seq)
	db.mu.Unlock()
	if published {
		db.notify()
	}
	return nil
}

func finish(m *manifest.Manifest, vid, header []byte) {
	m.VersionID = vid
	m.HeaderHash = manifest.HashOf(header)
	if len(m.Chunk0) >= 18 {
		ps := uint32(binary.BigEndian.Uint16(m.Chunk0[16:18]))
		if ps == 1 {
			ps = 65536
		}
		m.PageSize = ps
	}
}

// build turns pending copies into a manifest, stages new chunks and
// publishes it in the spool.
func (db *DB) build() error {
	db.buildMu.Lock()
	defer db.buildMu.Unlock()
	db.mu.Lock()
	p := db.pending
	db.pending, db.pendingBytes = nil, 0
	db.mu.Unlock()
	if p == nil {
		return nil
	}
	err := db.buildLocked(p)
	if err != nil {
		db.mu.Lock()
		db.lastID = nil
		db.lastErr = err
		db.mu.Unlock()
	}
	return err
}

// setBaseLocked records the version the next build applies copies to.
// db.buildMu must be held.
func (db *DB) setBaseLocked(m *manifest.Manifest) {
	db.base, db.baseID, db.baseSeq = m, m.VersionID, m.Seq
	db.lastBuild = time.Now()
}

// loadBaseLocked returns the base version, reloading it from the spool if
// it was released. db.buildMu must be held.
func (db *DB) loadBaseLocked() (*manifest.Manifest, error) {
	if db.base != nil {
		return db.base, nil
	}
	if db.baseID == nil {
		return nil, errors.New("build manifest: no base version")
	}
	man, _, err := db.spool.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reload base version: %w", err)
	}
	if man == nil || man.Seq != db.baseSeq || !bytes.Equal(man.VersionID, db.baseID) {
		return nil, errors.New("reload base version: the spool no longer holds it")
	}
	db.base = man
	return man, nil
}

// releaseIfIdle drops the base version of a database that has not built
// for idle and has nothing pending.
func (db *DB) releaseIfIdle(idle time.Duration) {
	if !db.buildMu.TryLock() {
		return
	}
	defer db.buildMu.Unlock()
	db.mu.Lock()
	busy := db.pending != nil
	db.mu.Unlock()
	if !busy && db.base != nil && time.Since(db.lastBuild) > idle {
		db.base = nil
	}
}

func (db *DB) buildLocked(p *pending) error {
	base, err := db.loadBaseLocked()
	if err != nil {
		return err
	}
	cs := uint32(db.chunkSize())
	n := manifest.ChunkCount(p.length, cs)
	m := &manifest.Manifest{Name: db.name, Seq: p.seq, CommitTime: p.commitTime,
		ChunkSize: cs, Length: p.length, Chunks: make([]manifest.Hash, n)}
	copy(m.Chunks, base.Chunks)
	type staged struct {
		h    manifest.Hash
		data []byte
	}
	var stage []staged
	for c, data := range p.chunks {
		i := int(c)
		if i >= n {
			continue
		}
		if len(data) != manifest.ChunkLen(i, p.length, cs) {
			return fmt.Errorf("build manifest: chunk %d copy has %d bytes, want %d", i, len(data), manifest.ChunkLen(i, p.length, cs))
		}
		h := manifest.HashOf(data)
		m.Chunks[i] = h
		if i == 0 {
			m.Chunk0 = data
			continue
		}
		if i < len(base.Chunks) && base.Chunks[i] == h || h == manifest.ZeroChunkHash(len(data)) {
			continue
		}
		stage = append(stage, staged{h, data})
	}
	for i := len(base.Chunks); i < n; i++ {
		if _, ok := p.chunks[uint32(i)]; !ok {
			return fmt.Errorf("build manifest: chunk %d past the old end was not copied", i)
		}
	}
	if n > 0 && m.Chunk0 == nil {
		if len(base.Chunk0) != manifest.ChunkLen(0, p.length, cs) {
			return errors.New("build manifest: chunk 0 changed length but was not copied")
		}
		m.Chunk0 = base.Chunk0
	}
	header := make([]byte, HeaderLen)
	copy(header, m.Chunk0)
	finish(m, p.versionID, header)
	enc, err := m.Encode()
	if err != nil {
		return err
	}
	unlock, err := db.spool.Lock()
	if err != nil {
		return err
	}
	failpoint.Hit("build-before-stage")
	for _, s := range stage {
		failpoint.Hit("build-mid-stage")
		if err := db.spool.StageChunk(s.h, s.data); err != nil {
			unlock()
			return err
		}
	}
	published, err := db.spool.Publish(m, enc)
	unlock()
	if err != nil {
		return err
	}
	db.warnRenumbered(p.seq, m)
	db.setBaseLocked(m)
	if published {
		db.notify()
	}
	if db.spool.RescanWanted() {
		// An uploader (maybe another process) lost staged data: the next
		// capture rescans instead of building on what was lost.
		db.mu.Lock()
		db.lastID = nil
		db.mu.Unlock()
	}
	return nil
}

// warnRenumbered warns when the spool renumbered m, numbered seq, after a
// staged version of an older state (clock skew), and numbers later
// versions after it.
func (db *DB) warnRenumbered(seq uint64, m *manifest.Manifest) {
	if m.Seq == seq {
		return
	}
	db.log.Warn("clock skew: a new version was numbered at or below the staged one; renumbered after it (check the clocks of the processes writing this database)",
		"seq", seq, "renumbered", m.Seq)
	db.mu.Lock()
	db.lastSeq = max(db.lastSeq, m.Seq)
	db.mu.Unlock()
}

func (db *DB) notify() {
	if u := db.m.opts.Uploader; u != nil {
		u.Notify(db.key)
	}
}

// Flush builds pending captures and uploads the spool synchronously.
func (db *DB) Flush(ctx context.Context) error {
	if err := db.build(); err != nil {
		return err
	}
	db.mu.Lock()
	lastErr := db.lastErr
	db.mu.Unlock()
	if lastErr != nil {
		return fmt.Errorf("the last commit could not be captured (the next one rescans the file): %w", lastErr)
	}
	if u := db.m.opts.Uploader; u != nil {
		return u.Upload(ctx, db.key)
	}
	return nil
}
