// Package spool owns the local spool: one directory per replicated database
// holding the newest committed manifest and the chunks it references that
// are not yet in the blob store. Files are written to a temp (or spare)
// file and published with rename(2) (or an atomic exchange), so a crash
// leaves the old or the new state; the upload record is rewritten in place
// (see inplace.go). Every file is self-verifying (manifests carry a
// checksum, chunks are named by their hash), so damaged or torn state is
// detected and dropped rather than uploaded.
//
// Layout of a spool root (see docs/ARCHITECTURE.md):
//
//	ROOT/dbs/KEY/db.json        source path and replica name
//	ROOT/dbs/KEY/manifest       newest committed manifest
//	ROOT/dbs/KEY/uploaded       copy of the last manifest uploaded
//	ROOT/dbs/KEY/chunks/HASH    staged chunks (raw bytes)
//	ROOT/dbs/KEY/rescan         marker: staged data was lost, rescan the db
//	ROOT/dbs/KEY/lock           flock(2) serialising publish and GC
//	ROOT/dbs/KEY/upload.lock    flock(2) held by the process uploading the spool
//	ROOT/dbs/KEY/last_error     why the last upload failed (removed on success)
//	ROOT/dbs/KEY/tmp/           temp files and the spare manifest file
//	ROOT/dirty/KEY              marker: KEY's staged manifest may be pending (dirty.go)
package spool

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/failpoint"
	"github.com/verneuil-go/verneuil/internal/manifest"
)

// Info is the content of db.json.
type Info struct {
	Path string `json:"path"`
	Name string `json:"name"`
}

// Dir is the spool directory of one database. Methods are safe for
// concurrent use by goroutines and processes except where noted.
type Dir struct {
	Path string // ROOT/dbs/KEY
	Key  string

	seqCache   atomic.Pointer[seqStamp]
	noExchange atomic.Bool // publish with rename(2), not the spare file
	// opened is the Info a Dir from Open was opened with: such a Dir
	// recreates its spool when it was reclaimed under it (reclaim.go).
	opened atomic.Pointer[Info]
}

// DBsDir returns the directory holding every database's spool.
func DBsDir(root string) string { return filepath.Join(root, DBsDirName) }

// Open creates (if needed) and returns the spool directory of a database.
// The root is created 0700 if missing, and refused unless it is a real
// directory owned by the current user (config.CheckOwnedDir).
func Open(root, key string, info Info) (*Dir, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create spool root: %w", err)
	}
	if err := config.CheckOwnedDir(root); err != nil {
		return nil, fmt.Errorf("spool root: %w", err)
	}
	d := &Dir{Path: filepath.Join(DBsDir(root), key), Key: key}
	d.opened.Store(&info)
	for _, sub := range []string{ChunksDir, TmpDir} {
		if err := os.MkdirAll(filepath.Join(d.Path, sub), 0o700); err != nil {
			return nil, fmt.Errorf("create spool %s: %w", d.Path, err)
		}
	}
	d.removeStaleTemps(time.Minute)
	infoPath := filepath.Join(d.Path, InfoFile)
	if _, err := os.Stat(infoPath); errors.Is(err, fs.ErrNotExist) {
		data, _ := json.Marshal(info)
		if err := d.writeAtomic(InfoFile, data); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// removeStaleTemps deletes temp files older than age: leftovers of
// processes killed while writing (live writers rename theirs within
// milliseconds).
func (d *Dir) removeStaleTemps(age time.Duration) {
	ents, err := os.ReadDir(filepath.Join(d.Path, TmpDir))
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Name() == SpareFile {
			continue // in use by publishers, whatever its age
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > age {
			os.Remove(filepath.Join(d.Path, TmpDir, e.Name()))
		}
	}
}

// Existing returns the spool directory of key without creating anything.
func Existing(root, key string) (*Dir, error) {
	d := &Dir{Path: filepath.Join(DBsDir(root), key), Key: key}
	st, err := os.Stat(d.Path)
	if err != nil {
		return nil, fmt.Errorf("open spool %s: %w", d.Path, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("open spool %s: not a directory", d.Path)
	}
	return d, nil
}

// List returns the keys of every database spooled under root. A root that
// exists but fails config.CheckOwnedDir is an error.
func List(root string) ([]string, error) {
	if err := config.CheckOwnedDir(root); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list spool: %w", err)
	}
	ents, err := os.ReadDir(DBsDir(root))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list spool %s: %w", root, err)
	}
	var keys []string
	for _, e := range ents {
		if e.IsDir() {
			keys = append(keys, e.Name())
		}
	}
	return keys, nil
}

// Info reads db.json.
func (d *Dir) Info() (Info, error) {
	var info Info
	data, err := os.ReadFile(filepath.Join(d.Path, InfoFile))
	if err != nil {
		return info, fmt.Errorf("read spool info: %w", err)
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, fmt.Errorf("read spool info %s: %w", d.Path, err)
	}
	return info, nil
}

// writeAtomic writes data to name via a temp file and rename. It does not
// fsync: the spool is a cache of the database file, verified on use.
func (d *Dir) writeAtomic(name string, data []byte) error {
	return d.writeAtomicHook(name, data, nil)
}

// writeAtomicHook is writeAtomic with a hook run before the rename.
func (d *Dir) writeAtomicHook(name string, data []byte, beforeRename func()) error {
	f, err := os.CreateTemp(filepath.Join(d.Path, TmpDir), filepath.Base(name)+".*")
	if err != nil {
		return fmt.Errorf("spool write %s: %w", name, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if beforeRename != nil {
			beforeRename()
		}
		err = os.Rename(tmp, filepath.Join(d.Path, name))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("spool write %s/%s: %w", d.Path, name, err)
	}
	return nil
}

// Lock takes the spool's exclusive flock, blocking. flock locks belong to
// the open file description, so they do not interact with SQLite's POSIX
// locks on the database.
func (d *Dir) Lock() (unlock func(), err error) {
	f, err := d.lockFile(LockFile, syscall.LOCK_EX)
	if err != nil {
		return nil, fmt.Errorf("spool lock %s: %w", d.Path, err)
	}
	return func() { f.Close() }, nil
}

// TryLock takes the spool's exclusive flock, waiting at most wait for
// another holder to let it go. It returns (nil, nil) when the lock is still
// held elsewhere: callers that must not stall (a capture runs while SQLite
// holds SHARED and a writer may be waiting) defer their work instead.
func (d *Dir) TryLock(wait time.Duration) (unlock func(), err error) {
	deadline := time.Now().Add(wait)
	for {
		f, err := d.lockFile(LockFile, syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err != nil:
			return nil, fmt.Errorf("spool lock %s: %w", d.Path, err)
		case f != nil:
			return func() { f.Close() }, nil
		case !time.Now().Before(deadline):
			return nil, nil
		}
		time.Sleep(time.Millisecond)
	}
}

// UploadLock takes the spool's upload flock. When wait is false and
// another process holds it, it returns (nil, nil).
func (d *Dir) UploadLock(wait bool) (unlock func(), err error) {
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	f, err := d.lockFile(UploadLockFile, how)
	if err != nil {
		return nil, fmt.Errorf("spool upload lock %s: %w", d.Path, err)
	}
	if f == nil {
		return nil, nil
	}
	return func() { f.Close() }, nil
}

// ReadManifestFile reads and verifies one of the manifest files ("manifest"
// or "uploaded": ManifestFile, UploadedFile). A missing file returns (nil, nil, nil).
// A read that does not decode is retried a few times: it may have raced
// with a rewrite of the file (see inplace.go).
func (d *Dir) ReadManifestFile(name string) (*manifest.Manifest, []byte, error) {
	for try, moved := 1, 0; ; try++ {
		data, err := readCurrent(filepath.Join(d.Path, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, nil
		}
		if errors.Is(err, errMoved) && moved < 100 {
			moved++ // published meanwhile: read the new one
			try--
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read spool %s/%s: %w", d.Path, name, err)
		}
		m, err := manifest.Decode(data)
		if err == nil {
			return m, data, nil
		}
		if try == readManifestTries {
			return nil, nil, fmt.Errorf("read spool %s/%s: %w", d.Path, name, err)
		}
		time.Sleep(time.Duration(try) * time.Millisecond)
	}
}

// errMoved means the file read was no longer the one at its path.
var errMoved = errors.New("file replaced while read")

// readCurrent reads the file at path and checks that path still names the
// file read: a reader that opened the manifest just before it was
// exchanged could otherwise read the spare being rewritten with a version
// not yet published (see inplace.go).
func readCurrent(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	now, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !os.SameFile(st, now) {
		return nil, errMoved
	}
	return data, nil
}

// readManifestTries bounds the reads of a manifest file that does not
// decode before it is reported damaged.
const readManifestTries = 3

// Manifest reads the newest staged manifest.
func (d *Dir) Manifest() (*manifest.Manifest, []byte, error) {
	return d.ReadManifestFile(ManifestFile)
}

// Publish replaces the staged manifest with m if m is newer (larger Seq)
// than the staged one, then deletes staged chunks that m does not
// reference. A later state of the database (Follows) numbered at or below
// the staged one, by a clock that is behind, is renumbered after it: m.Seq
// is updated and m re-encoded; the caller compares m.Seq to notice. The
// caller must hold Lock.
func (d *Dir) Publish(m *manifest.Manifest, encoded []byte) (bool, error) {
	cur, err := os.Stat(filepath.Join(d.Path, ManifestFile))
	if err != nil {
		cur = nil // none, or unreadable: replaced
	}
	if seq, ok := d.stagedSeq(cur); ok && seq >= m.Seq {
		staged, _, err := d.Manifest()
		if err != nil || staged == nil || !Follows(m, staged) {
			return false, nil // an older state, or another process's
		}
		m.Seq = staged.Seq + 1
		if encoded, err = m.Encode(); err != nil {
			return false, fmt.Errorf("spool publish %s: renumber: %w", d.Path, err)
		}
	}
	// The dirty marker first, so that a crash after the publish leaves it
	// (dirty.go); checked again after, in case a copier removed it
	// meanwhile, having found the previous manifest uploaded. A marker
	// that cannot be made does not stop replication: the copier's scan
	// then fails to read the markers, says so, and falls back to full
	// passes.
	_ = MarkDirty(d.rootOf(), d.Key)
	if afterMarkHook != nil {
		afterMarkHook()
	}
	// A damaged staged manifest is simply replaced.
	published, err := d.publishManifest(encoded, cur)
	if err != nil {
		return false, err
	}
	_ = MarkDirty(d.rootOf(), d.Key)
	failpoint.Hit("publish-before-gc")
	if published != nil {
		d.seqCache.Store(&seqStamp{stat: stampOf(published), seq: m.Seq})
	}
	return true, d.gc(m)
}

// Follows reports whether m describes a later state of the database file
// than old, whatever their version numbers (which come from clocks): the
// SQLite file change counter (header offset 24), which every commit of a
// rollback-journal database in the NORMAL locking mode increments, is
// ahead (in serial-number arithmetic). In locking_mode=EXCLUSIVE SQLite
// increments it once per lock session, so consecutive states can share
// it; then the transaction seq of the version xattrs in their version ids
// decides, which the VFS computes from the previous one (at least
// previous + 1) along the chain of commits of the file. It is false when
// either has no header, or the counters are equal and either has no
// version xattr.
func Follows(m, old *manifest.Manifest) bool {
	if len(m.Chunk0) < 28 || len(old.Chunk0) < 28 {
		return false
	}
	cm := binary.BigEndian.Uint32(m.Chunk0[24:28])
	co := binary.BigEndian.Uint32(old.Chunk0[24:28])
	if cm != co {
		return int32(cm-co) > 0
	}
	xm, okm := xattrSeq(m.VersionID)
	xo, oko := xattrSeq(old.VersionID)
	return okm && oko && xm > xo
}

// xattrSeq returns the transaction seq of the version xattr in a version
// id (docs/FORMAT.md: inode, xattr length, xattr, header), if it has one.
func xattrSeq(id []byte) (uint64, bool) {
	const xattrLen = 24
	if len(id) < 9+xattrLen || id[8] != xattrLen {
		return 0, false
	}
	return binary.BigEndian.Uint64(id[9:17]), true
}

// SameState reports whether a and b describe the same state of the
// database, whatever their version numbers.
func SameState(a, b *manifest.Manifest) bool {
	return a.Length == b.Length && bytes.Equal(a.VersionID, b.VersionID) && slices.Equal(a.Chunks, b.Chunks)
}

// NeedsUpload reports whether the staged manifest m still has to be
// uploaded, up being the record of the last upload (nil when none): m is
// not the state uploaded. The record is a copy of an earlier staged
// manifest (renumbered by the uploader when a clock was behind), and the
// staged manifest only moves forward, so another state is a newer one
// whatever its number and change counter; an uploader numbered below the
// record renumbers it after it, and the store's latest decides the rest.
func NeedsUpload(m, up *manifest.Manifest) bool {
	return up == nil || !SameState(m, up)
}

// seqStamp remembers the version of the staged manifest file with the
// identity of that file, so that publishing does not decode a manifest
// this process wrote itself (another process's rename changes the stamp).
type seqStamp struct {
	stat fileStamp
	seq  uint64
}

type fileStamp struct {
	ino, size int64
	mtime     int64
}

func stampOf(st fs.FileInfo) fileStamp {
	fs := fileStamp{size: st.Size(), mtime: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		fs.ino = int64(sys.Ino)
	}
	return fs
}

// stagedSeq returns the version of the staged manifest whose file info is
// st (nil: there is none), if it is sound.
func (d *Dir) stagedSeq(st fs.FileInfo) (uint64, bool) {
	if st == nil {
		return 0, false
	}
	// Whole-second times are coarse: the stamp may repeat (Stamp.Reliable).
	if c := d.seqCache.Load(); c != nil && c.stat == stampOf(st) && c.stat.mtime%int64(time.Second) != 0 {
		return c.seq, true
	}
	cur, _, err := d.Manifest()
	if err != nil || cur == nil {
		return 0, false
	}
	return cur.Seq, true
}

// gc removes staged chunks that neither m nor the manifest being uploaded
// (Pin) references.
func (d *Dir) gc(m *manifest.Manifest) error {
	live := make(map[string]bool, len(m.Chunks))
	for _, h := range m.Chunks {
		live[h.String()] = true
	}
	if p := d.pinned(); p != nil {
		for _, h := range p.Chunks {
			live[h.String()] = true
		}
	}
	names, err := d.StagedChunks()
	if err != nil {
		return err
	}
	for _, n := range names {
		if !live[n] {
			if err := os.Remove(d.ChunkPath(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("spool gc: %w", err)
			}
		}
	}
	return nil
}

// ChunkPath is the staged file of a chunk.
func (d *Dir) ChunkPath(hexHash string) string {
	return filepath.Join(d.Path, ChunksDir, hexHash)
}

// HasChunk reports whether a chunk is staged.
func (d *Dir) HasChunk(h manifest.Hash) bool {
	_, err := os.Stat(d.ChunkPath(h.String()))
	return err == nil
}

// StageChunk writes a chunk unless it is already staged.
func (d *Dir) StageChunk(h manifest.Hash, data []byte) error {
	if d.HasChunk(h) {
		return nil
	}
	return d.writeAtomic(filepath.Join(ChunksDir, h.String()), data)
}

// RestageChunk writes a chunk even if a file of that name is staged (it
// may be damaged: rescans after lost data use this).
func (d *Dir) RestageChunk(h manifest.Hash, data []byte) error {
	return d.writeAtomic(filepath.Join(ChunksDir, h.String()), data)
}

// StagedChunks lists the hex hashes of staged chunks.
func (d *Dir) StagedChunks() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(d.Path, ChunksDir))
	if err != nil {
		return nil, fmt.Errorf("list staged chunks: %w", err)
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// ReadChunk returns a staged chunk after checking its hash. A damaged chunk
// is removed and reported as an error wrapping manifest.ErrCorrupt.
func (d *Dir) ReadChunk(h manifest.Hash) ([]byte, error) {
	p := d.ChunkPath(h.String())
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read staged chunk: %w", err)
	}
	if manifest.HashOf(data) != h {
		os.Remove(p)
		return nil, fmt.Errorf("staged chunk %s: %w: content does not match its name", p, manifest.ErrCorruptChunk)
	}
	return data, nil
}

// RemoveChunk deletes a staged chunk (after upload).
func (d *Dir) RemoveChunk(h manifest.Hash) error {
	if err := os.Remove(d.ChunkPath(h.String())); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove staged chunk: %w", err)
	}
	return nil
}

// WriteUploaded records the manifest that was last uploaded. The record
// is rewritten in place: a torn one reads as damaged, which only costs
// checking chunks the store may already hold.
func (d *Dir) WriteUploaded(encoded []byte) error { return d.writeInPlace(UploadedFile, encoded) }

// Uploaded reads the record of the last upload.
func (d *Dir) Uploaded() (*manifest.Manifest, []byte, error) {
	return d.uploadedForTargets() // inplace.go
}

// MarkRescan asks the tracker to rescan the database from scratch.
func (d *Dir) MarkRescan(reason string) error { return d.writeAtomic(RescanFile, []byte(reason)) }

// RescanWanted reports whether the rescan marker is set.
func (d *Dir) RescanWanted() bool {
	_, err := os.Stat(filepath.Join(d.Path, RescanFile))
	return err == nil
}

// TakeRescan reports whether the rescan marker was set, and clears it.
func (d *Dir) TakeRescan() bool {
	err := os.Remove(filepath.Join(d.Path, RescanFile))
	return err == nil
}

// Usage returns the bytes used by staged chunks and manifests.
func (d *Dir) Usage() (int64, error) {
	var total int64
	err := filepath.WalkDir(d.Path, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !e.IsDir() {
			if info, err := e.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("spool usage %s: %w", d.Path, err)
	}
	return total, nil
}
