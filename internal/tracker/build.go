package tracker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/verneuil-go/verneuil/internal/failpoint"
	"github.com/verneuil-go/verneuil/internal/manifest"
)

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

// testHookBuilding, when set by a test, runs in build after the pending
// copies were taken and before they are built (a commit can land there).
var testHookBuilding func(db *DB)

// build turns pending copies into a manifest, stages new chunks and
// publishes it in the spool. It may wait for locks: it never runs inside a
// capture.
func (db *DB) build() (err error) {
	if db.disabled != nil {
		return nil // never captured
	}
	db.buildMu.Lock()
	defer db.buildMu.Unlock()
	db.mu.Lock()
	// The VFS's queued commits apply to these chunk copies: taken with
	// them, which stops the queueing until the next capture.
	db.takeWALQueueLocked(false)
	p := db.pending
	db.pending, db.pendingBytes = nil, 0
	db.mu.Unlock()
	if p == nil {
		return nil
	}
	ok := false
	defer func() {
		if ok {
			return
		}
		db.mu.Lock()
		defer db.mu.Unlock()
		// Never lose dirty-chunk information: a commit may have started
		// a new pending set during the build, holding only its own
		// chunks. Put the failed copies back under it (newer copies win),
		// so that the next build still describes the whole change since
		// the base.
		db.requeueLocked(p)
		// The spool is behind and a manifest built after this failure is
		// not trusted by its version id: the next capture rescans instead
		// of adopting it.
		db.lastID = nil
		db.suspect = true
		if err != nil {
			db.lastErr = err
		} else {
			db.lastErr = errors.New("build manifest: panic")
		}
	}()
	if testHookBuilding != nil {
		testHookBuilding(db)
	}
	base := &manifest.Manifest{}
	if !p.full {
		if base, err = db.loadBaseLocked(); err != nil {
			return err
		}
	}
	if err := db.buildWith(p, base); err != nil {
		return err
	}
	ok = true
	p.close()
	if p.full {
		db.mu.Lock()
		db.suspect = false // the published version was read from the file
		db.mu.Unlock()
	}
	return nil
}

// requeueLocked merges the copies of a failed build into the pending set,
// under any copy taken since. db.mu must be held.
func (db *DB) requeueLocked(p *pending) {
	if db.pending != nil && p.full {
		db.pending.full = true // it now holds every chunk too
	}
	if db.pending == nil {
		db.pending = p
		db.pendingBytes = 0
		for _, data := range p.chunks {
			db.pendingBytes += int64(len(data))
		}
		return
	}
	for c, data := range p.chunks {
		if !db.pending.has(c) {
			db.pending.chunks[c] = data
			db.pendingBytes += int64(len(data))
		}
	}
	for c, r := range p.spilled {
		if !db.pending.has(c) {
			if db.pending.spilled == nil {
				db.pending.spilled = map[uint32]spillRef{}
			}
			db.pending.spilled[c] = r
		}
	}
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

// buildWith applies the copies of p to base, stages the new chunks and
// publishes the result. db.buildMu must be held.
func (db *DB) buildWith(p *pending, base *manifest.Manifest) error {
	cs := uint32(db.chunkSize())
	n := manifest.ChunkCount(p.length, cs)
	m := &manifest.Manifest{Name: db.name, Seq: p.seq, CommitTime: p.commitTime,
		ChunkSize: cs, Length: p.length, Chunks: make([]manifest.Hash, n)}
	copy(m.Chunks, base.Chunks)
	// A spilled chunk is read twice (to hash it, then to stage it under
	// the spool's lock), so that memory stays at one chunk.
	type staged struct {
		h    manifest.Hash
		data []byte   // a copy in memory
		ref  spillRef // or a spilled one
	}
	var stage []staged
	var buf []byte
	readSpilled := func(c uint32, r spillRef) ([]byte, error) {
		if len(buf) < r.n {
			buf = make([]byte, cs)
		}
		b := buf[:r.n]
		if _, err := r.f.ReadAt(b, r.off); err != nil {
			return nil, fmt.Errorf("build manifest: read spilled chunk %d: %w", c, err)
		}
		return b, nil
	}
	add := func(c uint32, data []byte, ref spillRef) error {
		i := int(c)
		if len(data) != manifest.ChunkLen(i, p.length, cs) {
			return fmt.Errorf("build manifest: chunk %d copy has %d bytes, want %d", i, len(data), manifest.ChunkLen(i, p.length, cs))
		}
		h := manifest.HashOf(data)
		m.Chunks[i] = h
		if i == 0 {
			m.Chunk0 = data
			return nil
		}
		if i < len(base.Chunks) && base.Chunks[i] == h || h == manifest.ZeroChunkHash(len(data)) {
			return nil
		}
		if ref.f != nil {
			data = nil
		}
		stage = append(stage, staged{h, data, ref})
		return nil
	}
	for c, data := range p.chunks {
		if int(c) < n {
			if err := add(c, data, spillRef{}); err != nil {
				return err
			}
		}
	}
	for c, r := range p.spilled {
		if int(c) >= n {
			continue
		}
		data, err := readSpilled(c, r)
		if err != nil {
			return err
		}
		if err := add(c, data, r); err != nil {
			return err
		}
	}
	for i := len(base.Chunks); i < n; i++ {
		if !p.has(uint32(i)) {
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
	// A full set restages what the last upload does not have: staged
	// files may be damaged (that is one reason for a rescan).
	known := map[manifest.Hash]bool{}
	if p.full {
		if up, _, err := db.spool.Uploaded(); err == nil && up != nil {
			for _, h := range up.Chunks {
				known[h] = up.Inline[h] == nil // inline only: not in the store
			}
		}
	}
	unlock, err := db.spool.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	failpoint.Hit("build-before-stage")
	for _, s := range stage {
		if p.full && known[s.h] {
			continue
		}
		failpoint.Hit("build-mid-stage")
		data := s.data
		if s.ref.f != nil {
			if data, err = readSpilled(0, s.ref); err != nil {
				return err
			}
			if manifest.HashOf(data) != s.h {
				return errors.New("build manifest: a spilled chunk changed while building")
			}
		}
		if p.full {
			err = db.spool.RestageChunk(s.h, data)
			known[s.h] = true
		} else {
			err = db.spool.StageChunk(s.h, data)
		}
		if err != nil {
			return err
		}
	}
	published, err := db.spool.Publish(m, enc)
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
	if db.disabled != nil {
		return db.disabled
	}
	if err := db.build(); err != nil {
		return err
	}
	db.mu.Lock()
	lastErr := db.lastErr
	if lastErr == nil {
		lastErr = db.slicedErr
	}
	db.mu.Unlock()
	if lastErr != nil {
		return fmt.Errorf("the last commit could not be captured (the next one rescans the file): %w", lastErr)
	}
	if u := db.m.opts.Uploader; u != nil {
		return db.reclaimedIsUploaded(u.Upload(ctx, db.key))
	}
	return nil
}
