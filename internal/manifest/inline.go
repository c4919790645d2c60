package manifest

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// FlagInline is the manifest flag (formats 1 and 2) saying that an
// inline chunk table follows the location table (or, without one, the
// chunk hashes or changes): the bytes of chunks that are in no chunks/
// object nor pack, carried inside the object itself. Only a database's
// latest object carries them (docs/FORMAT.md, "Inline chunks"); history
// objects never do, and manifests without inline chunks leave the flag
// clear and encode as before.
const FlagInline = 2

// writeInline appends the inline chunk table for the chunks of inline
// that have an index among indices (increasing): one entry per hash, at
// the first such index, holding its chunk object (EncodeChunk). A chunk
// that also has a location, or no such index (in a delta: unchanged
// since the base, which is self-contained), is left out.
func writeInline(b *bytes.Buffer, chunks []Hash, indices []int, inline map[Hash][]byte, locs map[Hash]Location) {
	type entry struct {
		index int
		obj   []byte
	}
	var entries []entry
	done := map[Hash]bool{}
	for _, i := range indices {
		h := chunks[i]
		data, ok := inline[h]
		if !ok || done[h] {
			continue
		}
		if _, packed := locs[h]; packed {
			continue
		}
		done[h] = true
		entries = append(entries, entry{i, EncodeChunk(data)})
	}
	w := func(v any) { _ = binary.Write(b, binary.BigEndian, v) }
	w(uint32(len(entries)))
	for _, e := range entries {
		w(uint32(e.index))
		writeBytes(b, e.obj)
	}
}

// hasInline reports whether writeInline would write any entry.
func hasInline(chunks []Hash, indices []int, inline map[Hash][]byte, locs map[Hash]Location) bool {
	if len(inline) == 0 {
		return false
	}
	for _, i := range indices {
		if _, ok := inline[chunks[i]]; ok {
			if _, packed := locs[chunks[i]]; !packed {
				return true
			}
		}
	}
	return false
}

// readInline reads an inline chunk table. hashAt returns the hash of the
// chunk an entry may name (ok false: the index may not carry a chunk
// here) and its exact length. Every entry is decoded and verified like a
// chunk object; a malformed table or a chunk that does not verify is
// corrupt, with the index and hash in the error.
func readInline(r *reader, locs map[Hash]Location, hashAt func(index uint32) (h Hash, chunkLen int, ok bool)) (map[Hash][]byte, error) {
	n := int(r.u32())
	if r.err == nil && n > len(r.b)/8 {
		return nil, fmt.Errorf("%w: %d inline chunks announced, %d bytes left", errCorruptManifest, n, len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	out := make(map[Hash][]byte, n)
	var last int64 = -1
	for i := 0; i < n; i++ {
		index := r.u32()
		obj := r.bytes()
		if r.err != nil {
			return nil, r.err
		}
		if int64(index) <= last {
			return nil, fmt.Errorf("%w: inline chunk %d (index %d) out of order", errCorruptManifest, i, index)
		}
		last = int64(index)
		h, clen, ok := hashAt(index)
		if !ok {
			return nil, fmt.Errorf("%w: inline chunk %d names chunk %d, which cannot be inline here", errCorruptManifest, i, index)
		}
		if _, dup := out[h]; dup {
			return nil, fmt.Errorf("%w: inline chunk %d carries chunk %s twice", errCorruptManifest, i, h)
		}
		if _, packed := locs[h]; packed {
			return nil, fmt.Errorf("%w: inline chunk %d (%s) also has a pack location", errCorruptManifest, i, h)
		}
		data, err := DecodeChunk(obj, h, clen)
		if err == nil && len(data) != clen {
			err = fmt.Errorf("chunk %s: %w: %d bytes, want %d", h, ErrCorruptChunk, len(data), clen)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: inline chunk at index %d: %w", errCorruptManifest, index, err)
		}
		out[h] = bytes.Clone(data)
	}
	return out, nil
}

// InlineBytes returns the total length of m's inline chunks.
func (m *Manifest) InlineBytes() int {
	n := 0
	for _, d := range m.Inline {
		n += len(d)
	}
	return n
}

// WithoutInline returns a copy of m without inline chunks (the same
// manifest when it has none): what its history object holds once they
// are stored as chunk objects.
func (m *Manifest) WithoutInline() *Manifest {
	if len(m.Inline) == 0 {
		return m
	}
	c := *m
	c.Inline = nil
	return &c
}

// validChunkSize reports whether a manifest may have chunks of size n.
func validChunkSize(n uint32) bool {
	return n&(n-1) == 0 && n >= MinChunkSize && n <= MaxChunkSize
}
