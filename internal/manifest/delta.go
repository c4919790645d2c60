package manifest

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// patchBlock is the granularity at which a delta patches inline chunk 0
// against its base's: a one-row commit changes a few bytes of the header
// and of a page or two.
const patchBlock = 16

// Delta is a decoded delta manifest (format 2): one version described as
// the changes since a full base manifest of the same database.
type Delta struct {
	// Header holds the version's fields but Chunk0 and Chunks.
	Header Manifest
	// Seq is the version's sequence number (Header.Seq).
	Seq uint64
	// BaseSeq and BaseDigest name the base: its sequence number and the
	// Digest of its full manifest.
	BaseSeq    uint64
	BaseDigest Hash
	// Chunk0Len is the length of inline chunk 0; Patches are the blocks
	// of it that differ from the base's (zero-extended).
	Chunk0Len uint32
	Patches   []Patch
	// Changes are the chunks (index ≥ 1, increasing) whose hash differs
	// from the base's, or that the base does not have.
	Changes []Change
	// Locs places changed chunks stored in packs; the other chunks keep
	// the base's locations.
	Locs map[Hash]Location
	// Inline holds the changed chunks carried inside the object
	// (inline.go).
	Inline map[Hash][]byte
}

// Patch replaces Data at Offset of chunk 0.
type Patch struct {
	Offset uint32
	Data   []byte
}

// Change sets the hash of chunk Index.
type Change struct {
	Index uint32
	Hash  Hash
}

// EncodeDelta returns the delta encoding (format 2) of m against base, a
// full manifest of the same database with a smaller Seq and the same
// chunk size.
func EncodeDelta(m, base *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("encode delta manifest: %w", err)
	}
	if base.Name != m.Name || base.ChunkSize != m.ChunkSize || base.Seq >= m.Seq {
		return nil, fmt.Errorf("encode delta manifest %d: version %d is not a usable base", m.Seq, base.Seq)
	}
	var changed []int
	for i := 1; i < len(m.Chunks); i++ {
		if i >= len(base.Chunks) || base.Chunks[i] != m.Chunks[i] {
			changed = append(changed, i)
		}
	}
	packed := hasLocations(m.Chunks, changed, m.Locs)
	inline := hasInline(m.Chunks, changed, m.Inline, m.Locs)
	var flags uint16
	if packed {
		flags = FlagLocations
	}
	if inline {
		flags |= FlagInline
	}
	var b bytes.Buffer
	m.writeHeader(&b, DeltaFormatVersion, flags)
	w := func(v any) { _ = binary.Write(&b, binary.BigEndian, v) }
	w(base.Seq)
	digest := base.Digest()
	b.Write(digest[:])
	w(uint32(len(m.Chunk0)))
	var patches []Patch
	for off := 0; off < len(m.Chunk0); off += patchBlock {
		end := min(off+patchBlock, len(m.Chunk0))
		old := make([]byte, end-off)
		if off < len(base.Chunk0) {
			copy(old, base.Chunk0[off:min(end, len(base.Chunk0))])
		}
		if !bytes.Equal(old, m.Chunk0[off:end]) {
			if n := len(patches); n > 0 && int(patches[n-1].Offset)+len(patches[n-1].Data) == off {
				patches[n-1].Data = m.Chunk0[patches[n-1].Offset:end]
			} else {
				patches = append(patches, Patch{uint32(off), m.Chunk0[off:end]})
			}
		}
	}
	w(uint32(len(patches)))
	for _, p := range patches {
		w(p.Offset)
		writeBytes(&b, p.Data)
	}
	w(uint32(len(changed)))
	for _, i := range changed {
		w(uint32(i))
		b.Write(m.Chunks[i][:])
	}
	if packed {
		writeLocations(&b, m.Chunks, changed, m.Locs)
	}
	if inline {
		writeInline(&b, m.Chunks, changed, m.Inline, m.Locs)
	}
	sum := sha256.Sum256(b.Bytes())
	b.Write(sum[:])
	return encoder.EncodeAll(b.Bytes(), nil), nil
}

// decodeDelta reads the rest of a format-2 body after the shared header.
func decodeDelta(h *Manifest, r *reader, located, inline bool) (*Delta, error) {
	if !validChunkSize(h.ChunkSize) {
		// Before anything is sized or divided by it (ChunkCount).
		return nil, fmt.Errorf("%w: chunk size %d is not a power of two in [%d, %d]", errCorruptManifest, h.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	d := &Delta{Header: *h, Seq: h.Seq}
	d.BaseSeq = r.u64()
	copy(d.BaseDigest[:], r.take(HashSize))
	d.Chunk0Len = r.u32()
	np := int(r.u32())
	if r.err == nil && np > len(r.b)/8 {
		return nil, fmt.Errorf("%w: %d chunk 0 patches announced, %d bytes left", errCorruptManifest, np, len(r.b))
	}
	end := 0
	for i := 0; i < np && r.err == nil; i++ {
		p := Patch{Offset: r.u32(), Data: r.bytes()}
		if r.err == nil && (int64(p.Offset) < int64(end) || len(p.Data) == 0 || int64(p.Offset)+int64(len(p.Data)) > int64(d.Chunk0Len)) {
			return nil, fmt.Errorf("%w: chunk 0 patch %d out of order or out of range", errCorruptManifest, i)
		}
		end = int(p.Offset) + len(p.Data)
		d.Patches = append(d.Patches, p)
	}
	nc := int(r.u32())
	if r.err == nil && nc > len(r.b)/(4+HashSize) {
		return nil, fmt.Errorf("%w: %d chunk changes announced, %d bytes left", errCorruptManifest, nc, len(r.b))
	}
	count := ChunkCount(h.Length, h.ChunkSize)
	for i := 0; i < nc && r.err == nil; i++ {
		var c Change
		c.Index = r.u32()
		copy(c.Hash[:], r.take(HashSize))
		if r.err == nil && (c.Index == 0 || int64(c.Index) >= int64(count) || (i > 0 && c.Index <= d.Changes[i-1].Index)) {
			return nil, fmt.Errorf("%w: chunk change %d (index %d) out of order or out of range", errCorruptManifest, i, c.Index)
		}
		d.Changes = append(d.Changes, c)
	}
	if r.err != nil {
		return nil, r.err
	}
	changedAt := func(i uint32) (Hash, int, bool) {
		k, found := slices.BinarySearchFunc(d.Changes, i, func(c Change, i uint32) int { return cmp.Compare(c.Index, i) })
		if !found {
			return Hash{}, 0, false
		}
		return d.Changes[k].Hash, ChunkLen(int(i), h.Length, h.ChunkSize), true
	}
	if located {
		var err error
		if d.Locs, err = readLocations(r, changedAt); err != nil {
			return nil, err
		}
	}
	if inline {
		var err error
		if d.Inline, err = readInline(r, d.Locs, changedAt); err != nil {
			return nil, err
		}
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errCorruptManifest, len(r.b))
	}
	if d.BaseSeq >= d.Seq {
		return nil, fmt.Errorf("%w: delta %d names base %d, not an earlier version", errCorruptManifest, d.Seq, d.BaseSeq)
	}
	if want := ChunkLen(0, h.Length, h.ChunkSize); int(d.Chunk0Len) != want {
		return nil, fmt.Errorf("%w: inline chunk 0 of %d bytes, want %d", errCorruptManifest, d.Chunk0Len, want)
	}
	return d, nil
}

// Apply returns the full manifest d describes, given its base. A base
// that is not the one d names (sequence number, digest, database, chunk
// size) is refused as corrupt, never applied.
func (d *Delta) Apply(base *Manifest) (*Manifest, error) {
	if base.Seq != d.BaseSeq || base.Digest() != d.BaseDigest {
		return nil, fmt.Errorf("%w: delta %d: base version %d does not match (want version %d with digest %s)", errCorruptManifest, d.Seq, base.Seq, d.BaseSeq, d.BaseDigest)
	}
	if base.Name != d.Header.Name || base.ChunkSize != d.Header.ChunkSize {
		return nil, fmt.Errorf("%w: delta %d: base %d is of another database or chunk size", errCorruptManifest, d.Seq, base.Seq)
	}
	if len(base.Inline) > 0 {
		return nil, fmt.Errorf("%w: delta %d: base %d carries inline chunks (a base is a history object, which never does)", errCorruptManifest, d.Seq, base.Seq)
	}
	m := d.Header
	m.Chunk0 = make([]byte, d.Chunk0Len)
	copy(m.Chunk0, base.Chunk0)
	for _, p := range d.Patches {
		copy(m.Chunk0[p.Offset:], p.Data)
	}
	count := ChunkCount(m.Length, m.ChunkSize)
	m.Chunks = make([]Hash, count)
	copy(m.Chunks, base.Chunks)
	next := 0
	for i := 1; i < count; i++ {
		if next < len(d.Changes) && int(d.Changes[next].Index) == i {
			m.Chunks[i] = d.Changes[next].Hash
			next++
		} else if i >= len(base.Chunks) {
			return nil, fmt.Errorf("%w: delta %d: chunk %d is neither in the base nor changed", errCorruptManifest, d.Seq, i)
		}
	}
	if count > 0 {
		m.Chunks[0] = HashOf(m.Chunk0)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if len(base.Locs) > 0 || len(d.Locs) > 0 {
		m.Locs = make(map[Hash]Location, len(base.Locs)+len(d.Locs))
		for h, l := range base.Locs {
			m.Locs[h] = l
		}
		for h, l := range d.Locs {
			m.Locs[h] = l
		}
		m.pruneLocations()
	}
	if len(d.Inline) > 0 {
		m.Inline = d.Inline
	}
	return &m, nil
}

// Resolve decodes a manifest object of either format and returns the full
// manifest: a delta is applied to its base, which fetch returns the
// encoding of (one more GET). A base that is missing, not a full
// manifest, or not the one the delta names makes the delta corrupt;
// other fetch errors are returned wrapped.
func Resolve(data []byte, fetch func(seq uint64) ([]byte, error)) (*Manifest, *Delta, error) {
	m, d, err := DecodeObject(data)
	if err != nil || d == nil {
		return m, nil, err
	}
	enc, err := fetch(d.BaseSeq)
	if err != nil {
		if errors.Is(err, errBaseMissing) {
			return nil, d, fmt.Errorf("%w: delta %d: %w: version %d", errCorruptManifest, d.Seq, ErrBaseMissing, d.BaseSeq)
		}
		return nil, d, fmt.Errorf("fetch base %d of delta manifest %d: %w", d.BaseSeq, d.Seq, err)
	}
	base, _, err := DecodeObject(enc)
	if err != nil {
		return nil, d, fmt.Errorf("delta %d: base version %d: %w", d.Seq, d.BaseSeq, err)
	}
	if base == nil {
		return nil, d, fmt.Errorf("%w: delta %d: base version %d is itself a delta", errCorruptManifest, d.Seq, d.BaseSeq)
	}
	m, err = d.Apply(base)
	return m, d, err
}

// ErrBaseMissing is wrapped (with ErrCorrupt) by Resolve's error for a
// delta whose base is not stored: a reader that may race a collection
// deleting both (restore.At) can tell it from other damage.
var ErrBaseMissing = errors.New("base manifest missing")

// errBaseMissing is what a Resolve fetch function wraps when the base is
// not stored (see BaseMissing).
var errBaseMissing = errors.New("base manifest missing")

// BaseMissing wraps err (a not-found answer) for a Resolve fetch function:
// the delta is then corrupt rather than vanished.
func BaseMissing(err error) error { return fmt.Errorf("%w: %w", errBaseMissing, err) }

// WantFull is the chain rule (docs/FORMAT.md, "Delta manifests"): given
// the sizes of a version's full and delta encodings, the bytes of the
// deltas already published against the current base and how many, it
// reports whether to publish the full manifest (a new base) instead. A
// delta is written while it is under a quarter of the full size, the
// deltas since the base add up to less than the base itself (so the
// bytes per version stay within twice the best fixed interval's), and
// the chain is shorter than maxDeltas.
func WantFull(fullLen, deltaLen, chainBytes, chainLen, maxDeltas int) bool {
	return !SmallDelta(fullLen, deltaLen) || chainBytes+deltaLen > fullLen || chainLen+1 >= maxDeltas
}

// SmallDelta reports whether a delta of deltaLen bytes is worth writing
// instead of a full encoding of fullLen bytes: under a quarter of it.
// When WantFull starts a new base for another reason, such a delta is
// still what the version's latest object holds (against the old base),
// while manifests/SEQ holds the full manifest that becomes the new base.
func SmallDelta(fullLen, deltaLen int) bool { return deltaLen*4 <= fullLen }
