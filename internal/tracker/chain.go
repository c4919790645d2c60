// The commit chain: how a capture continues from commits of other
// processes.
//
// When two processes write one database in turn, each commit starts from a
// state the committing process did not capture (the other one committed),
// so step 1 of the state machine (capture.go) does not apply, and adopting
// the spool's manifest rarely does either (the other process builds it
// 100 ms later): every commit would rescan. Instead, every process that has
// seen another process's commit records each of its own commits in the
// spool's chain file (spool.ChainFile, docs/FORMAT.md), shared by all
// processes through a MAP_SHARED mapping: the identity hashes of the state
// the commit started from and of the state it produced, the file length
// after it, and the chunks it dirtied (as runs). The record is written
// during the capture, while the VFS still holds SHARED: before any other
// process can commit.
//
// A commit that starts from a state other than lastID walks the records
// from lastID to that state; when the chain is complete, the chunks the
// other processes dirtied (and those their length changes touched) are
// re-read whole, with the commit's own, into pending, which then again
// holds every chunk changed since the base: the capture is incremental.
// Anything else (no record, a damaged one, a chain longer than the file
// holds, two records leaving one state, states without a version xattr)
// falls back to adopting or rescanning. A record is only ever the truth
// about one transition between two unique states (version xattrs carry a
// random per-process id and a counter), so a stale record is harmless; a
// torn one (a writer killed mid-write) fails its checksum. The file's
// counter may be torn too: that only chooses which slot is overwritten.
//
// A process maps the file only once it has seen a commit of another
// process (idle and single-writer databases cost no mapping), and unmaps
// it when the database's last connection closes. Accesses to the mapping
// run with debug.SetPanicOnFault, so a file truncated under it (an
// operator) disables the chain instead of crashing the process.

package tracker

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/verneuil-go/verneuil/internal/spool"
)

// The chain file's layout (docs/FORMAT.md): a header of chainHeaderLen
// bytes (magic, then a little-endian uint64 counter of records written),
// then chainSlots records of chainRecordLen bytes.
const (
	chainMagic     = "VNLCHN01"
	chainHeaderLen = 64
	chainRecordLen = 512
	chainSlots     = 31
	chainFileLen   = chainHeaderLen + chainSlots*chainRecordLen
	// A record: crc32 (IEEE, of bytes 4..512) u32, number of runs u32,
	// pre hash [16], post hash [16], length after u64, then runs of
	// (first chunk u32, count u32, first byte written in the first chunk
	// u32, end of the bytes written in the last chunk u32). All
	// little-endian.
	chainRunsOff = 48
	chainRunLen  = 16
	chainMaxRuns = (chainRecordLen - chainRunsOff) / chainRunLen
	chainHashLen = 16
)

// chainLog is this process's mapping of a database's chain file.
type chainLog struct {
	mem []byte
}

// openChain maps the chain file of the spool at dir, creating it.
func openChain(dir string) (*chainLog, error) {
	path := filepath.Join(dir, spool.ChainFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open chain file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("chain file: %w", err)
	}
	if st.Size() != chainFileLen {
		// New (or damaged: all its records are then ignored or
		// overwritten). Truncating a file another process has mapped
		// would fault its accesses, which it survives (see above).
		if err := f.Truncate(chainFileLen); err != nil {
			return nil, fmt.Errorf("size chain file: %w", err)
		}
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, chainFileLen, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map chain file: %w", err)
	}
	c := &chainLog{mem: mem}
	if err := c.guard(func() {
		if string(mem[:8]) != chainMagic {
			copy(mem[:8], chainMagic)
		}
	}); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// close unmaps the file (nil-safe).
func (c *chainLog) close() {
	if c != nil && c.mem != nil {
		syscall.Munmap(c.mem)
		c.mem = nil
	}
}

// guard runs f, turning a fault on the mapping (the file was truncated
// under it) into an error.
func (c *chainLog) guard(f func()) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = fmt.Errorf("chain file: %v", r)
		}
	}()
	f()
	return nil
}

// chainHash is the hash a record stores for a state's identity, or false
// when the identity has no version xattr (it is then not unique: header
// only).
func chainHash(id []byte) ([chainHashLen]byte, bool) {
	var h [chainHashLen]byte
	if len(id) < 9 || id[8] != xattrLen {
		return h, false
	}
	sum := sha256.Sum256(id)
	copy(h[:], sum[:])
	return h, true
}

// xattrLen is the length of the version xattr the VFS writes.
const xattrLen = 24

// chainRun is a run of dirty chunks: count chunks from first; the
// transaction wrote from byte lo on in the first and below byte hi in the
// last (0 and the chunk size when unknown).
type chainRun struct{ first, count, lo, hi uint32 }

// runs turns dirty chunks (any order) and their written ranges (extents:
// nil, or [lo, hi) for each chunk, as Event.Extents) into runs.
func runs(dirty, extents []uint32, cs uint32) []chainRun {
	type chunk struct{ c, lo, hi uint32 }
	cl := make([]chunk, len(dirty))
	for i, c := range dirty {
		cl[i] = chunk{c, 0, cs}
		if len(extents) == 2*len(dirty) {
			cl[i].lo, cl[i].hi = extents[2*i], extents[2*i+1]
		}
	}
	slices.SortFunc(cl, func(a, b chunk) int { return int(int64(a.c) - int64(b.c)) })
	var out []chainRun
	for _, x := range cl {
		if n := len(out); n > 0 {
			r := &out[n-1]
			if r.first+r.count-1 == x.c { // the same chunk twice
				if r.count == 1 {
					r.lo = min(r.lo, x.lo)
				}
				r.hi = max(r.hi, x.hi)
				continue
			}
			if r.first+r.count == x.c {
				r.count++
				r.hi = x.hi
				continue
			}
		}
		out = append(out, chainRun{x.c, 1, x.lo, x.hi})
	}
	return out
}

// record writes the record of one commit from state pre to state post,
// leaving the file length postLen, which dirtied chunks (any order) in
// the ranges extents (nil: whole chunks; else as Event.Extents). A commit
// that cannot be described (no version xattrs, too many runs) writes
// nothing: a process that needs it falls back.
func (c *chainLog) record(pre, post []byte, postLen int64, dirty, extents []uint32, cs uint32) error {
	hp, ok1 := chainHash(pre)
	hq, ok2 := chainHash(post)
	if !ok1 || !ok2 {
		return nil
	}
	rs := runs(dirty, extents, cs)
	if len(rs) > chainMaxRuns {
		return nil
	}
	var rec [chainRecordLen]byte
	le := binary.LittleEndian
	le.PutUint32(rec[4:], uint32(len(rs)))
	copy(rec[8:], hp[:])
	copy(rec[24:], hq[:])
	le.PutUint64(rec[40:], uint64(postLen))
	for i, r := range rs {
		b := rec[chainRunsOff+chainRunLen*i:]
		le.PutUint32(b, r.first)
		le.PutUint32(b[4:], r.count)
		le.PutUint32(b[8:], r.lo)
		le.PutUint32(b[12:], r.hi)
	}
	le.PutUint32(rec[0:], crc32.ChecksumIEEE(rec[4:]))
	return c.guard(func() {
		ctr := (*uint64)(unsafe.Pointer(&c.mem[8]))
		n := atomic.LoadUint64(ctr)
		slot := chainHeaderLen + int(n%chainSlots)*chainRecordLen
		copy(c.mem[slot:slot+chainRecordLen], rec[:])
		atomic.StoreUint64(ctr, n+1)
	})
}

// chainStep is one record, decoded.
type chainStep struct {
	post    [chainHashLen]byte
	postLen int64
	runs    []chainRun
}

// next returns the one valid record leaving state h; false when there is
// none or more than one.
func (c *chainLog) next(h [chainHashLen]byte) (chainStep, bool) {
	var st chainStep
	found := 0
	le := binary.LittleEndian
	for i := range chainSlots {
		rec := c.mem[chainHeaderLen+i*chainRecordLen:][:chainRecordLen]
		if !bytes.Equal(rec[8:24], h[:]) {
			continue
		}
		var buf [chainRecordLen]byte
		copy(buf[:], rec) // one read of the shared bytes
		n := le.Uint32(buf[4:])
		if n > chainMaxRuns || le.Uint32(buf[0:]) != crc32.ChecksumIEEE(buf[4:]) || !bytes.Equal(buf[8:24], h[:]) {
			continue
		}
		found++
		copy(st.post[:], buf[24:40])
		st.postLen = int64(le.Uint64(buf[40:]))
		st.runs = make([]chainRun, n)
		for j := range st.runs {
			b := buf[chainRunsOff+chainRunLen*j:]
			st.runs[j] = chainRun{le.Uint32(b), le.Uint32(b[4:]), le.Uint32(b[8:]), le.Uint32(b[12:])}
		}
	}
	return st, found == 1
}

// walk returns the chunks that changed between state from (file length
// fromLen) and state to according to the records, among the first n,
// each with the range of it that changed ([0, cs) when not known better),
// or false when the records do not link the two states.
func (c *chainLog) walk(from, to []byte, fromLen int64, cs int64, n int64) (changed map[uint32][2]uint32, ok bool) {
	hf, ok1 := chainHash(from)
	ht, ok2 := chainHash(to)
	if !ok1 || !ok2 {
		return nil, false
	}
	changed = map[uint32][2]uint32{}
	add := func(x uint64, lo, hi uint32) {
		if int64(x) >= n {
			return
		}
		lo, hi = min(lo, uint32(cs)), min(hi, uint32(cs))
		if lo >= hi {
			lo, hi = 0, uint32(cs) // not a range a writer records
		}
		if r, seen := changed[uint32(x)]; seen {
			lo, hi = min(lo, r[0]), max(hi, r[1])
		}
		changed[uint32(x)] = [2]uint32{lo, hi}
	}
	err := c.guard(func() {
		cur, length := hf, fromLen
		for range chainSlots {
			st, found := c.next(cur)
			if !found || st.postLen < 0 {
				return
			}
			for _, r := range st.runs {
				last := uint64(r.first) + uint64(r.count) - 1
				for x := uint64(r.first); x <= last && int64(x) < n; x++ {
					lo, hi := uint32(0), uint32(cs)
					if x == uint64(r.first) {
						lo = r.lo
					}
					if x == last {
						hi = r.hi
					}
					add(x, lo, hi)
				}
			}
			if st.postLen != length {
				// Bytes past the shorter length may have changed
				// without a write (growth by a size hint, or a
				// truncation then growth).
				for x := min(length, st.postLen) / cs; x < (max(length, st.postLen)+cs-1)/cs && x < n; x++ {
					add(uint64(x), 0, uint32(cs))
				}
			}
			cur, length = st.post, st.postLen
			if cur == ht {
				ok = true
				return
			}
		}
	})
	if err != nil || !ok {
		return nil, false
	}
	return changed, true
}

// chainFrom maps the chain file if this process had not yet, and returns
// the chunks other processes changed between state from (this process's
// lastID, of length fromLen) and state to, the state the commit leaving
// the file at size started from; false when the records do not link them.
func (db *DB) chainFrom(from, to []byte, fromLen, size int64) (map[uint32][2]uint32, bool) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if !db.mapChainLocked() || db.sliced != nil || !bytes.Equal(db.lastID, from) {
		return nil, false
	}
	cs := int64(db.chunkSize())
	changed, ok := db.chain.walk(from, to, fromLen, cs, (size+cs-1)/cs)
	if ok {
		chainContinued.Add(1)
	} else {
		chainMissed.Add(1)
	}
	return changed, ok
}

// mapChainLocked maps the chain file once; false when it cannot be (the
// process then falls back as before). db.mu must be held.
func (db *DB) mapChainLocked() bool {
	if db.chain != nil {
		return true
	}
	if db.chainErr != nil {
		return false
	}
	c, err := openChain(db.spool.Path)
	if err != nil {
		db.chainErr = err
		db.log.Warn("commits of other processes will be captured by rescans", "err", err)
		return false
	}
	db.chain = c
	return true
}

// recordCommit records a commit in the chain file once this process maps
// it, whether or not its own capture succeeded: the record describes the
// file, which changed. It reads the header after the commit (the VFS
// holds SHARED).
func (db *DB) recordCommit(src Source, ev Event, pre []byte, size int64) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.chain == nil {
		return
	}
	header := make([]byte, HeaderLen)
	if err := src.ReadAt(header, 0); err != nil {
		return // no record: the others fall back
	}
	post := identity(ev.Ino, ev.PostXattr, header)
	var ext []uint32
	if len(ev.Extents) == 2*len(ev.Dirty) {
		ext = ev.Extents
	}
	if err := db.chain.record(pre, post, size, ev.Dirty, ext, uint32(db.chunkSize())); err != nil {
		db.log.Warn("chain file damaged; commits of other processes will be captured by rescans", "err", err)
		db.chain.close()
		db.chain, db.chainErr = nil, err
	}
}

// closeChain unmaps the chain file (the database's last connection
// closed).
func (db *DB) closeChain() {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.chain.close()
	db.chain = nil
}

// chainContinued counts the commits captured by continuing from other
// processes' records, chainMissed those whose records did not link the
// states (they adopted or rescanned).
var chainContinued, chainMissed atomic.Int64

// ChainCounts returns how many commits of this process started from
// another process's commit and were captured by continuing from the
// records (continued), or adopted or rescanned (missed): tests and
// benchmarks.
func ChainCounts() (continued, missed int64) { return chainContinued.Load(), chainMissed.Load() }

// mapChainIfShared maps the chain file at open when it exists (other
// processes write the database, or did): the process records its commits
// from the first one, so that the others continue from them. db must not
// be shared yet.
func (db *DB) mapChainIfShared() {
	if _, err := os.Stat(filepath.Join(db.spool.Path, spool.ChainFile)); err == nil {
		db.mapChainLocked()
	}
}

// mergeRanges adds the ranges other processes changed (foreign) to the
// ranges this transaction wrote (own: nil when not known, and then every
// chunk of ownDirty is re-read whole): the union of both for each chunk,
// so that a pending copy of the state before is refreshed by re-reading
// only that. A chunk absent from the result is re-read whole.
func mergeRanges(own map[uint32][2]uint32, ownDirty []uint32, foreign map[uint32][2]uint32) map[uint32][2]uint32 {
	if len(foreign) == 0 {
		return own
	}
	out := make(map[uint32][2]uint32, len(own)+len(foreign))
	for c, r := range foreign {
		out[c] = r
	}
	if own == nil {
		for _, c := range ownDirty {
			delete(out, c)
		}
		return out
	}
	for c, r := range own {
		if f, ok := out[c]; ok {
			r = [2]uint32{min(r[0], f[0]), max(r[1], f[1])}
		}
		out[c] = r
	}
	return out
}
