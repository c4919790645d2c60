package manifest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
)

// FlagLocations is the manifest flag (formats 1 and 2) saying that a
// location table follows the chunk hashes (format 1) or the changes
// (format 2): where the chunks stored in pack objects are. Manifests
// without packed chunks leave it clear and encode as before.
const FlagLocations = 1

// MaxPackSize bounds a pack object, and therefore every location: a
// record that would end past it is corrupt. Writers' packs are smaller
// (the pack_bytes setting).
const MaxPackSize = 64 << 20

// Location says where a packed chunk is stored: the record of Length
// bytes at Offset of the pack object named by the SHA-256 of its bytes
// (packs/HASH). The record is a chunk object (EncodeChunk), verified
// against the chunk's hash like any other.
type Location struct {
	Pack   Hash
	Offset uint32
	Length uint32
}

// End returns the offset just past the record.
func (l Location) End() int64 { return int64(l.Offset) + int64(l.Length) }

// locEntry is one row of an encoded location table.
type locEntry struct {
	index, pack, offset, length uint32
}

// writeLocations appends a location table for the chunks at indices
// (increasing) of chunks that locs places: the pack names in order of
// first use, then one entry per hash, at the first index it occurs.
func writeLocations(b *bytes.Buffer, chunks []Hash, indices []int, locs map[Hash]Location) {
	var packs []Hash
	packIdx := map[Hash]uint32{}
	var entries []locEntry
	done := map[Hash]bool{}
	for _, i := range indices {
		h := chunks[i]
		l, ok := locs[h]
		if !ok || done[h] {
			continue
		}
		done[h] = true
		p, ok := packIdx[l.Pack]
		if !ok {
			p = uint32(len(packs))
			packIdx[l.Pack] = p
			packs = append(packs, l.Pack)
		}
		entries = append(entries, locEntry{uint32(i), p, l.Offset, l.Length})
	}
	w := func(v any) { _ = binary.Write(b, binary.BigEndian, v) }
	w(uint32(len(packs)))
	for _, p := range packs {
		b.Write(p[:])
	}
	w(uint32(len(entries)))
	for _, e := range entries {
		w(e.index)
		w(e.pack)
		w(e.offset)
		w(e.length)
	}
}

// hasLocations reports whether any chunk at indices has a location.
func hasLocations(chunks []Hash, indices []int, locs map[Hash]Location) bool {
	if len(locs) == 0 {
		return false
	}
	for _, i := range indices {
		if _, ok := locs[chunks[i]]; ok {
			return true
		}
	}
	return false
}

// readLocations reads a location table. hashAt returns the hash of the
// chunk an entry may name (ok false: the index may not carry a location)
// and the chunk's length. Every malformed table is corrupt: an index out
// of order or not allowed, a pack index out of range, a pack no entry
// uses, an empty or oversize record, a record past MaxPackSize, records
// of one pack that overlap, or one hash placed twice.
func readLocations(r *reader, hashAt func(index uint32) (h Hash, chunkLen int, ok bool)) (map[Hash]Location, error) {
	np := int(r.u32())
	if r.err == nil && np > len(r.b)/HashSize {
		return nil, fmt.Errorf("%w: %d packs announced, %d bytes left", errCorruptManifest, np, len(r.b))
	}
	packs := make([]Hash, 0, max(np, 0))
	for i := 0; i < np && r.err == nil; i++ {
		var p Hash
		copy(p[:], r.take(HashSize))
		packs = append(packs, p)
	}
	ne := int(r.u32())
	if r.err == nil && ne > len(r.b)/16 {
		return nil, fmt.Errorf("%w: %d chunk locations announced, %d bytes left", errCorruptManifest, ne, len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	locs := make(map[Hash]Location, ne)
	used := make([]bool, np)
	perPack := make([][]Location, np)
	var last int64 = -1
	for i := 0; i < ne && r.err == nil; i++ {
		e := locEntry{r.u32(), r.u32(), r.u32(), r.u32()}
		if r.err != nil {
			break
		}
		if int64(e.index) <= last {
			return nil, fmt.Errorf("%w: chunk location %d (index %d) out of order", errCorruptManifest, i, e.index)
		}
		last = int64(e.index)
		h, n, ok := hashAt(e.index)
		if !ok {
			return nil, fmt.Errorf("%w: chunk location %d names chunk %d, which cannot be packed here", errCorruptManifest, i, e.index)
		}
		if int64(e.pack) >= int64(np) {
			return nil, fmt.Errorf("%w: chunk location %d names pack %d of %d", errCorruptManifest, i, e.pack, np)
		}
		if e.length == 0 || int64(e.length) > 1+int64(n) {
			return nil, fmt.Errorf("%w: chunk location %d: a %d-byte record for a %d-byte chunk", errCorruptManifest, i, e.length, n)
		}
		l := Location{Pack: packs[e.pack], Offset: e.offset, Length: e.length}
		if l.End() > MaxPackSize {
			return nil, fmt.Errorf("%w: chunk location %d ends at %d, past the largest pack (%d bytes)", errCorruptManifest, i, l.End(), MaxPackSize)
		}
		if _, dup := locs[h]; dup {
			return nil, fmt.Errorf("%w: chunk location %d places chunk %s twice", errCorruptManifest, i, h)
		}
		locs[h] = l
		used[e.pack] = true
		perPack[e.pack] = append(perPack[e.pack], l)
	}
	if r.err != nil {
		return nil, r.err
	}
	for p := range packs {
		if !used[p] {
			return nil, fmt.Errorf("%w: pack %d (%s) holds no chunk of the manifest", errCorruptManifest, p, packs[p])
		}
		recs := perPack[p]
		slices.SortFunc(recs, func(a, b Location) int { return int(a.Offset) - int(b.Offset) })
		for j := 1; j < len(recs); j++ {
			if int64(recs[j].Offset) < recs[j-1].End() {
				return nil, fmt.Errorf("%w: records at %d and %d of pack %s overlap", errCorruptManifest, recs[j-1].Offset, recs[j].Offset, packs[p])
			}
		}
	}
	return locs, nil
}

// PackRecord returns record l of a pack (or of a range of it starting at
// offset base), decoded and checked against h; chunkLen is the exact
// length the chunk must have. A record outside the bytes given, or that
// does not verify, is an error wrapping ErrCorruptChunk, never data.
func PackRecord(pack []byte, base int64, l Location, h Hash, chunkLen int) ([]byte, error) {
	return PackRecordInto(nil, pack, base, l, h, chunkLen)
}

// PackRecordInto is PackRecord decoding into buf (DecodeChunkInto).
func PackRecordInto(buf, pack []byte, base int64, l Location, h Hash, chunkLen int) ([]byte, error) {
	start := int64(l.Offset) - base
	if start < 0 || start+int64(l.Length) > int64(len(pack)) {
		return nil, fmt.Errorf("chunk %s: %w: record [%d, %d) of pack %s is not in the %d bytes read at %d (truncated pack?)",
			h, ErrCorruptChunk, l.Offset, l.End(), l.Pack, len(pack), base)
	}
	data, err := DecodeChunkInto(buf, pack[start:start+int64(l.Length)], h, chunkLen)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", l.Pack, err)
	}
	if len(data) != chunkLen {
		return nil, fmt.Errorf("chunk %s: %w: %d bytes in pack %s, want %d", h, ErrCorruptChunk, len(data), l.Pack, chunkLen)
	}
	return data, nil
}

// PackBuilder assembles a pack object from chunk records.
type PackBuilder struct {
	buf    []byte
	hashes []Hash
	locs   []Location // Pack is filled in by Finish
}

// Add appends the chunk object (EncodeChunk) of the chunk with hash h.
func (p *PackBuilder) Add(h Hash, obj []byte) {
	p.hashes = append(p.hashes, h)
	p.locs = append(p.locs, Location{Offset: uint32(len(p.buf)), Length: uint32(len(obj))})
	p.buf = append(p.buf, obj...)
}

// Len returns the pack's size so far.
func (p *PackBuilder) Len() int { return len(p.buf) }

// Finish returns the pack object, its name (SHA-256 of its bytes) and
// the location of every chunk added.
func (p *PackBuilder) Finish() (obj []byte, name Hash, locs map[Hash]Location) {
	name = HashOf(p.buf)
	locs = make(map[Hash]Location, len(p.hashes))
	for i, h := range p.hashes {
		l := p.locs[i]
		l.Pack = name
		locs[h] = l
	}
	return p.buf, name, locs
}

// PackNames returns the packs that m's locations name, sorted.
func (m *Manifest) PackNames() []Hash {
	set := map[Hash]bool{}
	for _, l := range m.Locs {
		set[l.Pack] = true
	}
	out := make([]Hash, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Hash) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// Located reports where chunk h of m is stored: in a pack (ok true) or,
// when m has no location for it, as its own chunks/HASH object.
func (m *Manifest) Located(h Hash) (Location, bool) {
	l, ok := m.Locs[h]
	return l, ok
}

// pruneLocations keeps only the locations of chunks m references.
func (m *Manifest) pruneLocations() {
	if len(m.Locs) == 0 {
		m.Locs = nil
		return
	}
	in := make(map[Hash]bool, len(m.Chunks))
	for _, h := range m.Chunks[min(1, len(m.Chunks)):] {
		in[h] = true
	}
	for h := range m.Locs {
		if !in[h] {
			delete(m.Locs, h)
		}
	}
	if len(m.Locs) == 0 {
		m.Locs = nil
	}
}
