//go:build cgo

package sqlite3vfs

/*
#include <stdint.h>
#include <stdlib.h>
#include "snapshot.h"
*/
import "C"

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/replica"
)

// SQLite result codes of the snapshot VFS.
const (
	sqliteIOErrRead     = 10 | 1<<8
	sqliteIOErrCorrupFS = 10 | 33<<8
)

var snapMgr atomic.Pointer[replica.Manager]

// SnapshotMemCache is the in-memory chunk cache of the snapshot VFS (C
// memory), for replica.Options.Mem.
func SnapshotMemCache() replica.MemCache { return cMemCache{} }

type cMemCache struct{}

func (cMemCache) Has(h manifest.Hash) bool {
	return C.vsnap_cache_has((*C.uchar)(unsafe.Pointer(&h[0]))) != 0
}

// RegisterSnapshot registers the read-replica VFS under name, reading
// through m, with memBytes of in-memory chunk cache per process (0: 64
// MiB). Registering again replaces the manager (nil: opens fail).
func RegisterSnapshot(name string, m *replica.Manager, memBytes int64) error {
	snapMgr.Store(m)
	regMu.Lock()
	defer regMu.Unlock()
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if rc := C.vsnap_register(cname, C.int64_t(memBytes)); rc != sqliteOK {
		return fmt.Errorf("register vfs %s: sqlite error %d", name, int(rc))
	}
	return nil
}

// SetSnapshotManager replaces the manager of the snapshot VFS (nil: new
// opens fail; open files fail their next chunk miss).
func SetSnapshotManager(m *replica.Manager) { snapMgr.Store(m) }

// SnapshotStats are the C side's counters.
type SnapshotStats struct {
	Reads      int64 `json:"reads"`       // xRead calls
	Misses     int64 `json:"misses"`      // chunk misses handed to Go
	Begins     int64 `json:"begins"`      // read transactions that called Go
	Versions   int64 `json:"versions"`    // versions loaded into C
	CacheBytes int64 `json:"cache_bytes"` // bytes in the memory cache now
	Evictions  int64 `json:"evictions"`   // chunks evicted from it
}

// ReadSnapshotStats returns the snapshot VFS's counters.
func ReadSnapshotStats() SnapshotStats {
	var s C.vsnap_stats
	C.vsnap_get_stats(&s)
	return SnapshotStats{int64(s.reads), int64(s.misses), int64(s.begins), int64(s.versions), int64(s.cacheBytes), int64(s.evictions)}
}

func snapRecover(where string, rc *C.int) {
	if r := recover(); r != nil {
		logger().Error("panic in verneuil_snapshot callback (recovered)", "where", where, "panic", r, "stack", string(debug.Stack()))
		if rc != nil {
			*rc = sqliteInternal
		}
	}
}

func snapSource(h C.uint64_t) (*replica.Manager, *replica.Source, error) {
	m := snapMgr.Load()
	if m == nil {
		return nil, nil, errors.New("verneuil_snapshot: not configured (verneuil.Start not called, or closed)")
	}
	s := m.Source(uint64(h))
	if s == nil {
		return nil, nil, fmt.Errorf("verneuil_snapshot: no source %d", uint64(h))
	}
	return m, s, nil
}

func goStr(z *C.char) string {
	if z == nil {
		return ""
	}
	return C.GoString(z)
}

// verneuilGoSnapOpen resolves and opens the replica that a main database
// file names; 0 and a malloc'd message in *zErr when there is none.
//
//export verneuilGoSnapOpen
func verneuilGoSnapOpen(zName, zVersion, zAt *C.char, zErr **C.char) (h C.uint64_t) {
	defer snapRecover("open", nil)
	name := goStr(zName)
	fail := func(err error) C.uint64_t {
		logger().Error("verneuil_snapshot: cannot open", "name", name, "err", err)
		*zErr = C.CString(fmt.Sprintf("%s: %v", name, err))
		return 0
	}
	m := snapMgr.Load()
	if m == nil {
		return fail(errors.New("not configured (verneuil.Start not called, or closed)"))
	}
	t, err := m.Resolve(name, goStr(zVersion), goStr(zAt))
	if err != nil {
		return fail(err)
	}
	s, err := m.Open(t)
	if err != nil {
		return fail(err)
	}
	return C.uint64_t(s.ID())
}

// verneuilGoSnapBegin returns the source's current version, checking for
// a newer one when the refresh interval has passed (or with force). A
// version other than curSeq is held for C until verneuilGoSnapRelease. A
// failed check keeps the current version (the refresh pragma reports it).
//
//export verneuilGoSnapBegin
func verneuilGoSnapBegin(h C.uint64_t, force C.int, curSeq C.uint64_t, info *C.vsnap_info) (rc C.int) {
	defer snapRecover("begin", &rc)
	m, s, err := snapSource(h)
	if err != nil {
		logger().Error("verneuil_snapshot: begin", "err", err)
		return sqliteIOErrRead
	}
	mf := s.HoldCurrent(force != 0, uint64(curSeq))
	info.seq = C.uint64_t(mf.Seq)
	info.length = C.int64_t(mf.Length)
	info.commitNanos = C.int64_t(mf.CommitTime.UnixNano())
	info.intervalNanos = C.int64_t(m.RefreshInterval())
	if s.Pinned() {
		info.intervalNanos = -1
	}
	shift := 0
	for 1<<shift < int(mf.ChunkSize) {
		shift++
	}
	info.chunkShift = C.int(shift)
	info.nChunk = C.int(len(mf.Chunks))
	return sqliteOK
}

// verneuilGoSnapHashes copies the chunk hashes of a held version into
// aHash (n of them) and the first bytes of the database (up to 100) into
// hdr.
//
//export verneuilGoSnapHashes
func verneuilGoSnapHashes(h, seq C.uint64_t, aHash *C.uchar, n C.int, hdr *C.uchar, nHdr *C.int) (rc C.int) {
	defer snapRecover("hashes", &rc)
	_, s, err := snapSource(h)
	if err != nil {
		return sqliteIOErrRead
	}
	mf, err := s.Version(uint64(seq))
	if err != nil || len(mf.Chunks) != int(n) {
		logger().Error("verneuil_snapshot: version", "seq", uint64(seq), "err", err)
		return sqliteIOErrRead
	}
	dst := unsafe.Slice((*byte)(unsafe.Pointer(aHash)), int(n)*manifest.HashSize)
	for i, c := range mf.Chunks {
		copy(dst[i*manifest.HashSize:], c[:])
	}
	*nHdr = 0
	if len(mf.Chunks) > 0 {
		c0, err := s.ReadChunk(uint64(seq), 0)
		if err != nil {
			logger().Error("verneuil_snapshot: header", "err", err)
			return sqliteIOErrRead
		}
		k := min(len(c0), C.VSNAP_HEADER_LEN)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(hdr)), k), c0)
		*nHdr = C.int(k)
	}
	return sqliteOK
}

//export verneuilGoSnapRelease
func verneuilGoSnapRelease(h, seq C.uint64_t) {
	defer snapRecover("release", nil)
	if _, s, err := snapSource(h); err == nil {
		s.Release(uint64(seq))
	}
}

//export verneuilGoSnapClose
func verneuilGoSnapClose(h C.uint64_t) {
	defer snapRecover("close", nil)
	if m, s, err := snapSource(h); err == nil {
		m.Close(s)
	}
}

// verneuilGoSnapChunk fills buf with chunk i of version seq (n bytes).
//
//export verneuilGoSnapChunk
func verneuilGoSnapChunk(h, seq C.uint64_t, i C.int, buf unsafe.Pointer, n C.int) (rc C.int) {
	defer snapRecover("chunk", &rc)
	_, s, err := snapSource(h)
	if err != nil {
		logger().Error("verneuil_snapshot: read", "err", err)
		return sqliteIOErrRead
	}
	data, err := s.ReadChunk(uint64(seq), int(i))
	if err == nil && len(data) != int(n) {
		err = fmt.Errorf("chunk %d: %d bytes, want %d: %w", int(i), len(data), int(n), manifest.ErrCorruptChunk)
	}
	if err != nil {
		// replica logged the cause; SQLite reports an I/O error.
		if errors.Is(err, manifest.ErrCorrupt) {
			return sqliteIOErrCorrupFS
		}
		return sqliteIOErrRead
	}
	copy(unsafe.Slice((*byte)(buf), int(n)), data)
	return sqliteOK
}

// verneuilGoSnapPragma answers the verneuil_snapshot_* pragmas of a
// connection whose pinned version is seq (committed at commit ns); *out
// gets the result or the error message (malloc'd).
//
//export verneuilGoSnapPragma
func verneuilGoSnapPragma(h C.uint64_t, name, arg *C.char, seq C.uint64_t, commit C.int64_t, out **C.char) (rc C.int) {
	defer snapRecover("pragma", &rc)
	m, s, err := snapSource(h)
	if err != nil {
		*out = C.CString(err.Error())
		return sqliteError
	}
	res, err := snapshotPragma(m, s, goStr(name), uint64(seq), time.Unix(0, int64(commit)))
	if err != nil {
		*out = C.CString(err.Error())
		return sqliteError
	}
	*out = C.CString(res)
	return sqliteOK
}

func snapshotPragma(m *replica.Manager, s *replica.Source, name string, seq uint64, commit time.Time) (string, error) {
	switch name {
	case "verneuil_snapshot_version":
		return strconv.FormatUint(seq, 10) + " " + commit.UTC().Format(time.RFC3339Nano), nil
	case "verneuil_snapshot_lag":
		return strconv.FormatFloat(time.Since(commit).Seconds(), 'f', 3, 64), nil
	case "verneuil_snapshot_refresh":
		st := s.Status()
		if st.LastError != nil {
			return "", fmt.Errorf("verneuil_snapshot: refresh of %s failed (%d checks failed since %s; reading version %d): %v",
				s.What(), st.Failures, st.ErrorSince.UTC().Format(time.RFC3339), st.Version, st.LastError)
		}
		return strconv.FormatUint(st.Version, 10), nil
	case "verneuil_snapshot_stats":
		m.Wait() // settled figures: readahead done, in the disk cache
		st := s.Status()
		out := map[string]any{"version": strconv.FormatUint(st.Version, 10), "commit_time": st.CommitTime.UTC(), "last_check": st.LastCheck.UTC(),
			"process": m.Stats(), "memory": ReadSnapshotStats()}
		if st.LastError != nil {
			out["last_error"], out["failing_since"], out["failures"] = st.LastError.Error(), st.ErrorSince.UTC(), st.Failures
		}
		b, err := json.Marshal(out)
		return string(b), err
	}
	return "", fmt.Errorf("verneuil_snapshot: unknown pragma %s (have verneuil_snapshot_refresh, verneuil_snapshot_version, verneuil_snapshot_lag, verneuil_snapshot_stats)", name)
}
