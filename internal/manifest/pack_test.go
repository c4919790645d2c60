package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"maps"
	"testing"
)

// packed returns m with chunks at indices placed in one pack, records
// back to back (sizes as if stored raw).
func packed(m *Manifest, pack Hash, indices ...int) *Manifest {
	p := *m
	p.Locs = map[Hash]Location{}
	maps.Copy(p.Locs, m.Locs)
	off := uint32(0)
	for _, i := range indices {
		n := uint32(1 + ChunkLen(i, m.Length, m.ChunkSize))
		p.Locs[m.Chunks[i]] = Location{Pack: pack, Offset: off, Length: n}
		off += n
	}
	return &p
}

func TestPack_ManifestRoundTrip(t *testing.T) {
	m := packed(sample(t, 6<<16+10), HashOf([]byte("pack A")), 1, 2, 5)
	m = packed(m, HashOf([]byte("pack B")), 3)
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got.Locs, m.Locs) {
		t.Fatalf("locations: got %v, want %v", got.Locs, m.Locs)
	}
	if got.Digest() != m.Digest() {
		t.Fatal("digest changed through a round trip")
	}
	// Without locations, the encoding is the one of builds before packs:
	// flags 0, nothing after the hashes.
	plain := sample(t, 6<<16+10)
	penc, _ := plain.Encode()
	raw, _ := decoder.DecodeAll(penc, nil)
	if flags := binary.BigEndian.Uint16(raw[len(magic)+2:]); flags != 0 {
		t.Fatalf("flags %#x in a manifest without packed chunks", flags)
	}
	if want := len(magic) + 2 + 2 + 8 + 8 + 4 + 4 + 8 + 4 + len(plain.Name) + 4 + len(plain.VersionID) + HashSize +
		4 + len(plain.Chunk0) + 4 + HashSize*len(plain.Chunks) + HashSize; len(raw) != want {
		t.Fatalf("plain manifest body of %d bytes, want %d", len(raw), want)
	}
	// Locations of chunks the manifest does not reference are dropped.
	extra := packed(plain, HashOf([]byte("c")))
	extra.Locs[HashOf([]byte("not a chunk of it"))] = Location{Pack: HashOf([]byte("c")), Length: 10}
	eenc, _ := extra.Encode()
	if !bytes.Equal(eenc, penc) {
		t.Fatal("a location of an unreferenced chunk changed the encoding")
	}
}

func TestPack_DeltaKeepsBaseLocations(t *testing.T) {
	packA, packB := HashOf([]byte("A")), HashOf([]byte("B"))
	base := packed(sample(t, 8<<16), packA, 1, 2, 3)
	benc, err := base.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// Chunk 2 changes and goes to pack B; 1 and 3 stay in pack A; the
	// file grows by two chunks, one packed, one a chunk object.
	m := evolve(base, 10<<16, 2)
	m.Locs = map[Hash]Location{
		m.Chunks[1]: base.Locs[base.Chunks[1]],
		m.Chunks[3]: base.Locs[base.Chunks[3]],
		m.Chunks[2]: {Pack: packB, Offset: 0, Length: 1 + 1<<16},
		m.Chunks[8]: {Pack: packB, Offset: 1 + 1<<16, Length: 1 + 1<<16},
	}
	denc, err := EncodeDelta(m, base)
	if err != nil {
		t.Fatal(err)
	}
	got, d, err := Resolve(denc, fetchFrom(map[uint64][]byte{base.Seq: benc}))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Locs) != 2 {
		t.Errorf("the delta carries %d locations, want the 2 of its changed chunks", len(d.Locs))
	}
	if !maps.Equal(got.Locs, m.Locs) {
		t.Fatalf("applied locations %v, want %v", got.Locs, m.Locs)
	}
	// A delta that drops a base chunk drops its location too.
	shrunk := evolve(base, 2<<16)
	shrunk.Locs = map[Hash]Location{shrunk.Chunks[1]: base.Locs[base.Chunks[1]]}
	senc, _ := EncodeDelta(shrunk, base)
	got, _, err = Resolve(senc, fetchFrom(map[uint64][]byte{base.Seq: benc}))
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got.Locs, shrunk.Locs) {
		t.Fatalf("locations after shrinking: %v, want %v", got.Locs, shrunk.Locs)
	}
}

// hostile encodes m (format 1) with the given flags and a location table
// written by table, checksummed: only the table is wrong.
func hostile(m *Manifest, flags uint16, table func(w func(...uint32), b *bytes.Buffer)) []byte {
	var b bytes.Buffer
	m.writeHeader(&b, FormatVersion, flags)
	writeBytes(&b, m.Chunk0)
	_ = binary.Write(&b, binary.BigEndian, uint32(len(m.Chunks)))
	for _, h := range m.Chunks {
		b.Write(h[:])
	}
	table(func(vs ...uint32) {
		for _, v := range vs {
			_ = binary.Write(&b, binary.BigEndian, v)
		}
	}, &b)
	sum := sha256.Sum256(b.Bytes())
	b.Write(sum[:])
	return encoder.EncodeAll(b.Bytes(), nil)
}

func TestPack_MalformedLocationTablesAreCorrupt(t *testing.T) {
	m := sample(t, 6<<16)
	pa, pb := HashOf([]byte("a")), HashOf([]byte("b"))
	full := uint32(1 + 1<<16)
	cases := []struct {
		name  string
		flags uint16
		table func(w func(...uint32), b *bytes.Buffer)
	}{
		{"unknown flag", 2, func(w func(...uint32), b *bytes.Buffer) {}},
		{"flag without table", FlagLocations, func(w func(...uint32), b *bytes.Buffer) {}},
		{"pack index out of range", FlagLocations, func(w func(...uint32), b *bytes.Buffer) {
			w(1)
			b.Write(pa[:])
			w(1, 1, 1, 0, full)
		}},
		{"overlapping records", FlagLocations, func(w func(...uint32), b *bytes.Buffer) {
			w(1)
			b.Write(pa[:])
			w(2, 1, 0, 0, full, 2, 0, full-1, full)
		}},
		{"oversize record", FlagLocations, func(w func(...uint32), b *bytes.Buffer) {
			w(1)
			b.Write(pa[:])
			w(1, 1, 0, 0, full+1)
		}},
		{"empty record", FlagLocations, func(w func(...uint32), b *bytes.Buffer) {
			w(1)
			b.Write(pa[:])
			w(1, 1, 0, 0, 0)
		}},
		{"record past the largest pack", FlagLocations, func(w func(...uint32), b *bytes.Buffer) {
			w(1)
			b.Write(pa[:])
			w(1, 1, 0, MaxPackSize-10, full)
		}},
		{"chunk 0", FlagLocations, func(w func(...uint32), b *bytes.Buffer) {
			w(1)
			b.Write(pa[:])
			w(1, 0, 0, 0, full)
		}},
		{"index past the chunks", FlagLocations, func(w func(...uint32), b *bytes.Buffer) {
			w(1)
			b.Write(pa[:])
			w(1, 6, 0, 0, full)
		}},
		{"out of order", FlagLocations, func(w func(...uint32), b *bytes.Buffer) {
			w(1)
			b.Write(pa[:])
			w(2, 3, 0, 0, full, 2, 0, full, full)
		}},
		{"unused pack", FlagLocations, func(w func(...uint32), b *bytes.Buffer) {
			w(2)
			b.Write(pa[:])
			b.Write(pb[:])
			w(1, 1, 0, 0, full)
		}},
		{"truncated table", FlagLocations, func(w func(...uint32), b *bytes.Buffer) {
			w(1)
			b.Write(pa[:])
			w(2, 1, 0, 0, full)
		}},
		{"huge counts", FlagLocations, func(w func(...uint32), b *bytes.Buffer) {
			w(1 << 30)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(hostile(m, tc.flags, tc.table))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode = %v, want a corrupt-manifest error", err)
			}
		})
	}
	// The same table, well formed, decodes.
	ok := hostile(m, FlagLocations, func(w func(...uint32), b *bytes.Buffer) {
		w(1)
		b.Write(pa[:])
		w(2, 1, 0, 0, full, 2, 0, full, full)
	})
	if _, err := Decode(ok); err != nil {
		t.Fatalf("well-formed table: %v", err)
	}
}

func TestPack_DeltaLocationOnlyForChangedChunks(t *testing.T) {
	base := sample(t, 4<<16)
	benc, _ := base.Encode()
	m := evolve(base, base.Length, 2)
	// Encode a delta placing chunk 2 (changed), then rewrite its table
	// entry to name chunk 1 (unchanged): corrupt.
	m.Locs = map[Hash]Location{m.Chunks[2]: {Pack: HashOf([]byte("p")), Length: 100}}
	enc, err := EncodeDelta(m, base)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := decoder.DecodeAll(enc, nil)
	body := raw[:len(raw)-HashSize]
	// The table's last entry starts 16 bytes from the end: its index.
	binary.BigEndian.PutUint32(body[len(body)-16:], 1)
	sum := sha256.Sum256(body)
	bad := encoder.EncodeAll(append(bytes.Clone(body), sum[:]...), nil)
	if _, _, err := Resolve(bad, fetchFrom(map[uint64][]byte{base.Seq: benc})); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("delta placing an unchanged chunk: %v, want corrupt", err)
	}
	if _, _, err := Resolve(enc, fetchFrom(map[uint64][]byte{base.Seq: benc})); err != nil {
		t.Fatalf("well-formed delta: %v", err)
	}
}

func TestPack_RecordsVerify(t *testing.T) {
	chunks := [][]byte{bytes.Repeat([]byte("a"), 1000), bytes.Repeat([]byte{7, 3, 9}, 400), []byte("short")}
	var b PackBuilder
	for _, c := range chunks {
		b.Add(HashOf(c), EncodeChunk(c))
	}
	obj, name, locs := b.Finish()
	if name != HashOf(obj) {
		t.Fatal("pack not named by its content")
	}
	for _, c := range chunks {
		l := locs[HashOf(c)]
		got, err := PackRecord(obj, 0, l, HashOf(c), len(c))
		if err != nil || !bytes.Equal(got, c) {
			t.Fatalf("record: %v", err)
		}
		// A range of the pack that holds the record.
		got, err = PackRecord(obj[l.Offset:l.End()], int64(l.Offset), l, HashOf(c), len(c))
		if err != nil || !bytes.Equal(got, c) {
			t.Fatalf("record from a range: %v", err)
		}
	}
	l := locs[HashOf(chunks[1])]
	flipped := bytes.Clone(obj)
	flipped[l.End()-1] ^= 1
	cases := map[string]func() ([]byte, error){
		"flipped byte":   func() ([]byte, error) { return PackRecord(flipped, 0, l, HashOf(chunks[1]), len(chunks[1])) },
		"truncated pack": func() ([]byte, error) { return PackRecord(obj[:l.End()-1], 0, l, HashOf(chunks[1]), len(chunks[1])) },
		"wrong range": func() ([]byte, error) {
			return PackRecord(obj[1:], 1+int64(l.Offset), l, HashOf(chunks[1]), len(chunks[1]))
		},
		"wrong length": func() ([]byte, error) { return PackRecord(obj, 0, l, HashOf(chunks[1]), len(chunks[1])-1) },
		"wrong hash":   func() ([]byte, error) { return PackRecord(obj, 0, l, HashOf(chunks[0]), len(chunks[1])) },
	}
	for name, f := range cases {
		if data, err := f(); !errors.Is(err, ErrCorrupt) || data != nil {
			t.Errorf("%s: %d bytes, %v; want a corrupt-chunk error and no data", name, len(data), err)
		}
	}
}

// FuzzDecodeLocations: manifests and deltas with location tables decode
// to valid manifests whose locations re-encode, or are corrupt.
func FuzzDecodeLocations(f *testing.F) {
	base := packed(sample(f, 6<<16), HashOf([]byte("A")), 1, 2, 4)
	benc, err := base.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(benc)
	m := evolve(base, 8<<16, 2)
	m.Locs = map[Hash]Location{m.Chunks[2]: {Pack: HashOf([]byte("B")), Length: 1 + 1<<16},
		m.Chunks[7]: {Pack: HashOf([]byte("B")), Offset: 1 + 1<<16, Length: 300}}
	denc, err := EncodeDelta(m, base)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(denc)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, _, err := Resolve(data, fetchFrom(map[uint64][]byte{base.Seq: benc}))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		for h, l := range got.Locs {
			if l.Length == 0 || l.End() > MaxPackSize {
				t.Fatalf("accepted location %+v of %s", l, h)
			}
		}
		enc, err := got.Encode()
		if err != nil {
			t.Fatalf("decoded manifest does not re-encode: %v", err)
		}
		again, err := Decode(enc)
		if err != nil || !maps.Equal(again.Locs, got.Locs) {
			t.Fatalf("re-encoded manifest: %v", err)
		}
	})
}
