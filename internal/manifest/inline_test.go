package manifest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
)

// withInline returns m whose chunks at indices are real bytes carried
// inline (their hashes replaced to match).
func withInline(m *Manifest, indices ...int) *Manifest {
	c := *m
	c.Chunks = append([]Hash(nil), m.Chunks...)
	c.Inline = map[Hash][]byte{}
	for _, i := range indices {
		data := bytes.Repeat([]byte(fmt.Sprint("inline", c.Seq, i, ";")), 1<<14)[:ChunkLen(i, c.Length, c.ChunkSize)]
		c.Chunks[i] = HashOf(data)
		c.Inline[c.Chunks[i]] = data
	}
	return &c
}

func sameInline(a, b map[Hash][]byte) bool {
	return maps.EqualFunc(a, b, bytes.Equal)
}

func TestInline_RoundTripFullAndDelta(t *testing.T) {
	base := sample(t, 6<<16+100)
	benc, err := base.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		m       *Manifest
		inlined []int
	}{
		{"full, tail chunk", withInline(evolve(base, 6<<16+300), 6), []int{6}},
		{"full, grown", withInline(evolve(base, 9<<16, 7), 7, 8), []int{7, 8}},
		{"no inline chunks", evolve(base, 6<<16+100, 2), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			full, err := tc.m.Encode()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(full)
			if err != nil {
				t.Fatal(err)
			}
			if !sameManifest(got, tc.m) || !sameInline(got.Inline, tc.m.Inline) {
				t.Fatalf("full round trip: inline %d chunks, want %d", len(got.Inline), len(tc.m.Inline))
			}
			if got.Digest() != tc.m.WithoutInline().Digest() {
				t.Fatal("the digest depends on inline chunks: a history object would not be a base")
			}
			delta, err := EncodeDelta(tc.m, base)
			if err != nil {
				t.Fatal(err)
			}
			res, d, err := Resolve(delta, fetchFrom(map[uint64][]byte{base.Seq: benc}))
			if err != nil || d == nil {
				t.Fatalf("resolve delta: %v", err)
			}
			if !sameManifest(res, tc.m) || !sameInline(res.Inline, tc.m.Inline) {
				t.Fatalf("delta round trip: inline %d chunks, want %d", len(res.Inline), len(tc.m.Inline))
			}
			plain, _ := tc.m.WithoutInline().Encode()
			if (len(tc.inlined) == 0) != bytes.Equal(plain, full) {
				t.Fatal("inline chunks change the encoding exactly when there are some")
			}
		})
	}
}

// An inline chunk unchanged since a delta's base is in the base (which is
// self-contained): the delta does not carry it.
func TestInline_DeltaLeavesOutChunksOfTheBase(t *testing.T) {
	base := sample(t, 4<<16)
	m := evolve(base, 4<<16, 2)
	m.Inline = map[Hash][]byte{m.Chunks[1]: bytes.Repeat([]byte{2}, 1<<16)} // chunk 1 is the base's
	benc, _ := base.Encode()
	delta, err := EncodeDelta(m, base)
	if err != nil {
		t.Fatal(err)
	}
	res, _, err := Resolve(delta, fetchFrom(map[uint64][]byte{base.Seq: benc}))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Inline) != 0 {
		t.Fatalf("delta carries %d inline chunks of its base", len(res.Inline))
	}
}

func TestInline_BaseWithInlineChunksIsRefused(t *testing.T) {
	base := withInline(sample(t, 4<<16), 3)
	benc, _ := base.Encode()
	delta, err := EncodeDelta(evolve(base.WithoutInline(), 4<<16, 2), base.WithoutInline())
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Resolve(delta, fetchFrom(map[uint64][]byte{base.Seq: benc}))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "inline") {
		t.Fatalf("delta on a base with inline chunks: %v, want corrupt", err)
	}
}

// hostileInline encodes m (format 1) with FlagInline and an inline table
// of the given entries, checksummed: only the table is wrong.
func hostileInline(m *Manifest, entries ...any) []byte {
	return hostile(m, FlagInline, func(w func(...uint32), b *bytes.Buffer) {
		w(uint32(len(entries) / 2))
		for k := 0; k < len(entries); k += 2 {
			w(uint32(entries[k].(int)))
			obj := entries[k+1].([]byte)
			w(uint32(len(obj)))
			b.Write(obj)
		}
	})
}

func TestInline_MalformedTablesAreCorrupt(t *testing.T) {
	m := withInline(sample(t, 3<<16+500), 1, 3)
	c1, c3 := EncodeChunk(m.Inline[m.Chunks[1]]), EncodeChunk(m.Inline[m.Chunks[3]])
	other := EncodeChunk(bytes.Repeat([]byte{9}, 1<<16))
	flipped := append([]byte{0}, m.Inline[m.Chunks[1]]...) // raw, not zstd
	flipped[len(flipped)-1] ^= 1
	short := EncodeChunk(m.Inline[m.Chunks[1]][:100])
	if good, err := Decode(hostileInline(m, 1, c1, 3, c3)); err != nil || len(good.Inline) != 2 {
		t.Fatalf("well-formed table: %v", err)
	}
	cases := map[string]struct {
		enc  []byte
		want string
	}{
		"hash mismatch":      {hostileInline(m, 1, other), "inline chunk at index 1"},
		"flipped byte":       {hostileInline(m, 1, flipped), "content hash"},
		"wrong length":       {hostileInline(m, 1, short), "inline chunk at index 1"},
		"chunk 0":            {hostileInline(m, 0, EncodeChunk(m.Chunk0)), "cannot be inline"},
		"past the last":      {hostileInline(m, 4, c1), "cannot be inline"},
		"out of order":       {hostileInline(m, 3, c3, 1, c1), "out of order"},
		"empty object":       {hostileInline(m, 1, []byte{}), "inline chunk at index 1"},
		"count past the end": {hostile(m, FlagInline, func(w func(...uint32), _ *bytes.Buffer) { w(1000) }), "announced"},
		"truncated entry":    {hostile(m, FlagInline, func(w func(...uint32), _ *bytes.Buffer) { w(1, 1, 70000) }), "truncated"},
		"unknown flag":       {hostile(m, 4, func(func(...uint32), *bytes.Buffer) {}), "unknown flags"},
	}
	for name, tc := range cases {
		got, err := Decode(tc.enc)
		if !errors.Is(err, ErrCorrupt) || got != nil {
			t.Errorf("%s: %v, want corrupt", name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want it to say %q", name, err, tc.want)
		}
	}
}

// FuzzDecodeInline: manifest bodies with inline tables (checksummed and
// compressed here, so that mutations reach the table) decode to valid
// manifests whose inline chunks match their hashes and re-encode, or
// are corrupt.
func FuzzDecodeInline(f *testing.F) {
	base := sample(f, 6<<16)
	benc, err := base.Encode()
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range []*Manifest{withInline(evolve(base, 6<<16+70), 6), withInline(evolve(base, 8<<16), 3, 7)} {
		f.Add(body(m))
		enc, err := EncodeDelta(m, base)
		if err != nil {
			f.Fatal(err)
		}
		raw, _ := decoder.DecodeAll(enc, nil)
		f.Add(raw[:len(raw)-HashSize])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sum := sha256.Sum256(b)
		data := encoder.EncodeAll(append(bytes.Clone(b), sum[:]...), nil)
		got, _, err := Resolve(data, fetchFrom(map[uint64][]byte{base.Seq: benc}))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		for h, d := range got.Inline {
			if HashOf(d) != h {
				t.Fatalf("accepted inline chunk %s whose bytes do not match", h)
			}
		}
		enc, err := got.Encode()
		if err != nil {
			t.Fatalf("decoded manifest does not re-encode: %v", err)
		}
		again, err := Decode(enc)
		if err != nil || !sameInline(again.Inline, got.Inline) {
			t.Fatalf("re-encoded manifest: %v", err)
		}
	})
}

// body is m's full encoding before its checksum, uncompressed.
func body(m *Manifest) []byte { return m.body(true).Bytes() }
