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
	// (first chunk u32, count u32). All little-endian.
	chainRunsOff = 48
	chainMaxRuns = (chainRecordLen - chainRunsOff) / 8
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

// runs turns sorted, distinct chunk indices into (first, count) runs.
func runs(chunks []uint32) [][2]uint32 {
	var out [][2]uint32
	for _, c := range chunks {
		if n := len(out); n > 0 && out[n-1][0]+out[n-1][1] == c {
			out[n-1][1]++
			continue
		}
		out = append(out, [2]uint32{c, 1})
	}
	return out
}

// record writes the record of one commit from state pre to state post,
// leaving the file length postLen, which dirtied chunks (any order). A
// commit that cannot be described (no version xattrs, too many runs)
// writes nothing: a process that needs it falls back.
func (c *chainLog) record(pre, post []byte, postLen int64, chunks []uint32) error {
	hp, ok1 := chainHash(pre)
	hq, ok2 := chainHash(post)
	if !ok1 || !ok2 {
		return nil
	}
	sorted := slices.Clone(chunks)
	slices.Sort(sorted)
	rs := runs(slices.Compact(sorted))
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
		le.PutUint32(rec[chainRunsOff+8*i:], r[0])
		le.PutUint32(rec[chainRunsOff+8*i+4:], r[1])
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
	runs    [][2]uint32
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
		st.runs = make([][2]uint32, n)
		for j := range st.runs {
			st.runs[j] = [2]uint32{le.Uint32(buf[chainRunsOff+8*j:]), le.Uint32(buf[chainRunsOff+8*j+4:])}
		}
	}
	return st, found == 1
}

// walk returns the chunks that changed between state from (file length
// fromLen) and state to, according to the records, restricted to the
// first n chunks, or false when the records do not link the two states.
func (c *chainLog) walk(from, to []byte, fromLen int64, cs int64, n int64) (changed []uint32, ok bool) {
	hf, ok1 := chainHash(from)
	ht, ok2 := chainHash(to)
	if !ok1 || !ok2 {
		return nil, false
	}
	set := map[uint32]bool{}
	add := func(first, count uint64) {
		for x := first; x < first+count && int64(x) < n; x++ {
			set[uint32(x)] = true
		}
	}
	err := c.guard(func() {
		cur, length := hf, fromLen
		for range chainSlots {
			st, found := c.next(cur)
			if !found || st.postLen < 0 {
				return
			}
			for _, r := range st.runs {
				add(uint64(r[0]), uint64(r[1]))
			}
			if st.postLen != length {
				// Bytes past the shorter length may have changed
				// without a write (growth by a size hint, or a
				// truncation then growth).
				lo := min(length, st.postLen) / cs
				hi := (max(length, st.postLen) + cs - 1) / cs
				add(uint64(lo), uint64(hi-lo))
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
	changed = make([]uint32, 0, len(set))
	for x := range set {
		changed = append(changed, x)
	}
	slices.Sort(changed)
	return changed, true
}

// chainFrom maps the chain file if this process had not yet, and returns
// the chunks other processes changed between state from (this process's
// lastID, of length fromLen) and state to, the state the commit leaving
// the file at size started from; false when the records do not link them.
func (db *DB) chainFrom(from, to []byte, fromLen, size int64) ([]uint32, bool) {
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
	if err := db.chain.record(pre, post, size, ev.Dirty); err != nil {
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
