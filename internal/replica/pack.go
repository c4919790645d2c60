package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// A pack of the disk cache (see diskCache) is a sequence of records:
//
//	magic "VNC1" | data length, uint32 LE | chunk hash, 32 bytes |
//	CRC-32C of the 40 bytes before, uint32 LE | data
//
// The header's checksum tells a header from bytes being written or torn;
// the hash tells the data from them (readers verify it on every hit).
const recordHeader = 4 + 4 + manifest.HashSize + 4

var (
	recordMagic = [4]byte{'V', 'N', 'C', '1'}
	castagnoli  = crc32.MakeTable(crc32.Castagnoli)
)

// errNotRegular: something other than a regular file sits among the packs.
var errNotRegular = errors.New("not a regular file")

// maxRecordData bounds a record's data (a chunk): a larger length is a
// bad header.
const maxRecordData = 1 << 30

// pack is an open pack file.
type pack struct {
	name string // file name in the packs directory
	path string
	f    *os.File
	// own: this process appends to the pack (under diskCache.mu).
	own bool
	// end: the bytes of whole records known: appended by this process,
	// or indexed from another's (under diskCache.mu).
	end int64
	// touched: the pack's modification time as last known (unix ns).
	touched atomic.Int64
}

// encodeHeader returns the header of the record of chunk h of n bytes.
func encodeHeader(h manifest.Hash, n int) []byte {
	hdr := make([]byte, recordHeader)
	copy(hdr, recordMagic[:])
	binary.LittleEndian.PutUint32(hdr[4:], uint32(n))
	copy(hdr[8:], h[:])
	binary.LittleEndian.PutUint32(hdr[8+manifest.HashSize:], crc32.Checksum(hdr[:8+manifest.HashSize], castagnoli))
	return hdr
}

// decodeHeader returns the hash and data length of a record header; ok is
// false for bytes that are not one.
func decodeHeader(b []byte) (h manifest.Hash, n int64, ok bool) {
	if len(b) < recordHeader || [4]byte(b[:4]) != recordMagic {
		return h, 0, false
	}
	sum := binary.LittleEndian.Uint32(b[8+manifest.HashSize:])
	if crc32.Checksum(b[:8+manifest.HashSize], castagnoli) != sum {
		return h, 0, false
	}
	n = int64(binary.LittleEndian.Uint32(b[4:]))
	if n == 0 || n > maxRecordData {
		return h, 0, false
	}
	copy(h[:], b[8:])
	return h, n, true
}

// record is a chunk found in a pack: its data's offset and length.
type record struct {
	h   manifest.Hash
	off int64
	n   int
}

// scanRecords reads the record headers of f from off, a record boundary,
// up to size. It returns the whole records found and the offset past the
// last: the scan stops at a header that does not decode (being written, or
// torn by a crash) and at a record that ends past size.
func scanRecords(f *os.File, off, size int64) ([]record, int64) {
	var recs []record
	var hdr [recordHeader]byte
	for off+recordHeader <= size {
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			break
		}
		h, n, ok := decodeHeader(hdr[:])
		if !ok || off+recordHeader+n > size {
			break
		}
		recs = append(recs, record{h: h, off: off + recordHeader, n: int(n)})
		off += recordHeader + n
	}
	return recs, off
}

// createPack creates a new pack of this process in dir (made if missing).
func createPack(dir string) (*pack, error) {
	name := fmt.Sprintf("%d-%016x%s", os.Getpid(), rand.Uint64(), packSuffix)
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		f, err = os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if err != nil {
		return nil, err
	}
	pk := &pack{name: name, path: p, f: f, own: true}
	pk.touched.Store(time.Now().UnixNano())
	return pk, nil
}

// openPack opens another process's pack for reading. O_NONBLOCK: opening a
// FIFO put in a pack's place would otherwise block until a writer comes;
// it is then rejected as not a regular file.
func openPack(dir, name string) (*pack, int64, error) {
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s: %w", p, errNotRegular)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	pk := &pack{name: name, path: p, f: f}
	pk.touched.Store(fi.ModTime().UnixNano())
	return pk, fi.Size(), nil
}

// linked reports whether the pack is still in the directory (no other
// process evicted it).
func (p *pack) linked() bool {
	fi, err := p.f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || st.Nlink > 0
}

// touch marks the pack recently used (its modification time) when that
// is older than touchAfter.
func (p *pack) touch() {
	now := time.Now()
	old := p.touched.Load()
	if now.UnixNano()-old < int64(touchAfter) || !p.touched.CompareAndSwap(old, now.UnixNano()) {
		return
	}
	_ = os.Chtimes(p.path, now, now) // recency only; a failure costs nothing
}

// refresh indexes what other processes added to the cache: packs that
// appeared and records appended to known packs; it forgets packs that
// were deleted. looked is when the caller's lookup missed (unix ns). It
// reports whether the index may have changed since: a refresh ended after
// looked (the caller waits for one that is running), or this one ran. One
// refresh runs at a time, and at most one ends per refreshEvery.
func (c *diskCache) refresh(looked int64) bool {
	c.refreshing.Lock()
	defer c.refreshing.Unlock()
	if c.isClosed() {
		return false
	}
	last := c.lastRefresh.Load()
	if last > looked {
		return true
	}
	if looked-last < int64(refreshEvery) {
		return false
	}
	defer func() { c.lastRefresh.Store(time.Now().UnixNano()) }()
	entries, err := os.ReadDir(c.packDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	type job struct {
		p          *pack
		from, size int64
		isNew      bool
		recs       []record
	}
	c.mu.RLock()
	known := make(map[string]job, len(c.packs))
	for name, p := range c.packs {
		if !p.own {
			known[name] = job{p: p, from: p.end}
		}
	}
	own := func(name string) bool { p := c.packs[name]; return p != nil && p.own }
	var jobs []job
	listed := make(map[string]bool, len(entries))
	for _, d := range entries {
		name := d.Name()
		if !strings.HasSuffix(name, packSuffix) || !d.Type().IsRegular() {
			continue
		}
		listed[name] = true
		if j, ok := known[name]; ok {
			jobs = append(jobs, j)
		} else if !own(name) {
			jobs = append(jobs, job{p: &pack{name: name}, isNew: true})
		}
	}
	var gone []string
	for name := range known {
		if !listed[name] {
			gone = append(gone, name)
		}
	}
	c.mu.RUnlock()

	// Read the headers without the lock: readers go on meanwhile.
	for i := range jobs {
		j := &jobs[i]
		if j.isNew {
			p, size, err := openPack(c.packDir, j.p.name)
			if err != nil {
				j.p = nil
				continue
			}
			j.p, j.size = p, size
		} else if fi, err := j.p.f.Stat(); err == nil {
			j.size = fi.Size()
		}
		if j.size > j.from {
			j.recs, j.size = scanRecords(j.p.f, j.from, j.size)
		} else {
			j.size = j.from
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	for _, j := range jobs {
		if j.p == nil {
			continue
		}
		if j.isNew {
			c.packs[j.p.name] = j.p
		} else if c.packs[j.p.name] != j.p { // evicted meanwhile
			continue
		}
		for _, r := range j.recs {
			l := loc{p: j.p, off: r.off, n: r.n}
			if _, ok := c.index[r.h]; !ok {
				c.index[r.h] = l
			} else {
				c.dups[r.h] = append(c.dups[r.h], l)
			}
		}
		j.p.end = j.size
	}
	c.forgetLocked(gone)
	return true
}

// isClosed reports whether close ran.
func (c *diskCache) isClosed() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.closed
}
