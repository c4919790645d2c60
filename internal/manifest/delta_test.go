package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// evolve returns the next version of m: seq+1, its header bytes changed,
// chunks set to new contents, and length changed to length.
func evolve(m *Manifest, length int64, chunks ...int) *Manifest {
	n := *m
	n.Seq++
	n.Length = length
	n.Chunk0 = make([]byte, ChunkLen(0, length, m.ChunkSize))
	copy(n.Chunk0, m.Chunk0)
	if len(n.Chunk0) > 30 {
		n.Chunk0[27]++ // the change counter
	}
	count := ChunkCount(length, m.ChunkSize)
	n.Chunks = make([]Hash, count)
	copy(n.Chunks, m.Chunks)
	for i := len(m.Chunks); i < count; i++ {
		n.Chunks[i] = HashOf([]byte(fmt.Sprint("grown", n.Seq, i)))
	}
	for _, i := range chunks {
		n.Chunks[i] = HashOf([]byte(fmt.Sprint("changed", n.Seq, i)))
	}
	if count > 0 {
		n.Chunks[0] = HashOf(n.Chunk0)
	}
	return &n
}

func sameManifest(a, b *Manifest) bool {
	return a.Name == b.Name && a.Seq == b.Seq && a.CommitTime.Equal(b.CommitTime) && a.PageSize == b.PageSize &&
		a.ChunkSize == b.ChunkSize && a.Length == b.Length && bytes.Equal(a.VersionID, b.VersionID) &&
		a.HeaderHash == b.HeaderHash && bytes.Equal(a.Chunk0, b.Chunk0) && slices.Equal(a.Chunks, b.Chunks)
}

// fetchFrom serves encoded manifests by seq for Resolve.
func fetchFrom(objs map[uint64][]byte) func(uint64) ([]byte, error) {
	return func(seq uint64) ([]byte, error) {
		if b, ok := objs[seq]; ok {
			return b, nil
		}
		return nil, BaseMissing(errors.New("not found"))
	}
}

func TestDelta_RoundTrip(t *testing.T) {
	const cs = 1 << 16
	base := sample(t, 10*cs+100)
	cases := []struct {
		name string
		m    *Manifest
	}{
		{"header only", evolve(base, base.Length)},
		{"two chunks", evolve(base, base.Length, 3, 10)},
		{"grown", evolve(base, 14*cs, 2)},
		{"shrunk", evolve(base, 3*cs+5, 1)},
		{"chunk 0 only, shorter", evolve(base, 100)},
		{"emptied", evolve(base, 0)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := EncodeDelta(tc.m, base)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Decode(enc); !errors.Is(err, ErrNeedsBase) {
				t.Fatalf("Decode of a delta: %v, want ErrNeedsBase", err)
			}
			full, _ := base.Encode()
			got, d, err := Resolve(enc, fetchFrom(map[uint64][]byte{base.Seq: full}))
			if err != nil {
				t.Fatal(err)
			}
			if d == nil || d.BaseSeq != base.Seq {
				t.Fatalf("delta %+v, want one against %d", d, base.Seq)
			}
			if !sameManifest(got, tc.m) {
				t.Fatalf("round trip mismatch:\n got %+v\nwant %+v", got, tc.m)
			}
		})
	}
	// From an empty base too.
	empty := sample(t, 0)
	m := evolve(empty, 3*cs)
	enc, err := EncodeDelta(m, empty)
	if err != nil {
		t.Fatal(err)
	}
	full, _ := empty.Encode()
	if got, _, err := Resolve(enc, fetchFrom(map[uint64][]byte{empty.Seq: full})); err != nil || !sameManifest(got, m) {
		t.Fatalf("delta from an empty base: %v", err)
	}
	// Full manifests resolve without a fetch.
	if got, d, err := Resolve(full, nil); err != nil || d != nil || !sameManifest(got, empty) {
		t.Fatalf("full manifest through Resolve: %v", err)
	}
}

func TestDelta_EncodeRefusesUnusableBase(t *testing.T) {
	base := sample(t, 5<<16)
	other := *base
	other.Name = "other:/db"
	for name, b := range map[string]*Manifest{"same seq": base, "other database": &other} {
		m := evolve(base, base.Length, 1)
		if name == "same seq" {
			m.Seq = base.Seq
		}
		if _, err := EncodeDelta(m, b); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

func TestDelta_ResolveRejectsWrongBase(t *testing.T) {
	base := sample(t, 5<<16)
	m := evolve(base, base.Length, 2)
	enc, err := EncodeDelta(m, base)
	if err != nil {
		t.Fatal(err)
	}
	// Another full manifest under the base's number.
	impostor := evolve(base, base.Length, 3)
	impostor.Seq = base.Seq
	impEnc, _ := impostor.Encode()
	// A delta where the base should be.
	deltaBase := evolve(sample(t, 5<<16), 5<<16, 1)
	deltaBase.Seq = base.Seq
	prev := sample(t, 5<<16)
	prev.Seq = base.Seq - 1
	dbEnc, err := EncodeDelta(deltaBase, prev)
	if err != nil {
		t.Fatal(err)
	}
	fullOK, _ := base.Encode()
	cases := map[string]map[uint64][]byte{
		"missing":        {},
		"other content":  {base.Seq: impEnc},
		"delta as base":  {base.Seq: dbEnc},
		"damaged base":   {base.Seq: fullOK[:len(fullOK)-3]},
		"other seq only": {base.Seq + 100: fullOK},
	}
	for name, objs := range cases {
		if _, _, err := Resolve(enc, fetchFrom(objs)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	// A store failure is not corruption.
	boom := errors.New("network down")
	_, _, err = Resolve(enc, func(uint64) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
		t.Errorf("fetch failure: %v", err)
	}
}

func TestDelta_DecodeRejectsDamage(t *testing.T) {
	base := sample(t, 6<<16)
	enc, err := EncodeDelta(evolve(base, base.Length, 2, 4), base)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := decoder.DecodeAll(enc, nil)
	body := raw[:len(raw)-HashSize]
	resum := func(b []byte) []byte {
		sum := HashOf(b)
		return encoder.EncodeAll(append(append([]byte(nil), b...), sum[:]...), nil)
	}
	patched := func(f func(b []byte)) []byte {
		b := append([]byte(nil), body...)
		f(b)
		return resum(b)
	}
	last := len(body) - (4 + HashSize) // index of the last change
	cases := map[string][]byte{
		"truncated":       enc[:len(enc)-5],
		"bit flip":        func() []byte { r := append([]byte(nil), raw...); r[40] ^= 1; return encoder.EncodeAll(r, nil) }(),
		"cut short":       resum(body[:len(body)-10]),
		"trailing":        resum(append(append([]byte(nil), body...), 0)),
		"index too large": patched(func(b []byte) { copy(b[last:], []byte{0xff, 0xff, 0xff, 0xff}) }),
		"index zero":      patched(func(b []byte) { copy(b[last:], []byte{0, 0, 0, 0}) }),
		"out of order":    patched(func(b []byte) { copy(b[last:], []byte{0, 0, 0, 1}) }),
	}
	for name, data := range cases {
		if _, _, err := DecodeObject(data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecodeDelta(f *testing.F) {
	base := sample(f, 6<<16)
	fullEnc, err := base.Encode()
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range []*Manifest{evolve(base, base.Length, 1), evolve(base, 9<<16, 2), evolve(base, 10), evolve(base, 0)} {
		enc, err := EncodeDelta(m, base)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, d, err := Resolve(data, fetchFrom(map[uint64][]byte{base.Seq: fullEnc}))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("resolved manifest invalid: %v", err)
		}
		if d == nil {
			return
		}
		enc, err := EncodeDelta(m, base)
		if err != nil {
			t.Fatalf("resolved delta does not re-encode: %v", err)
		}
		again, _, err := Resolve(enc, fetchFrom(map[uint64][]byte{base.Seq: fullEnc}))
		if err != nil || !sameManifest(again, m) {
			t.Fatalf("re-encoded delta does not resolve to the same manifest: %v", err)
		}
	})
}

// BenchmarkManifestBytesPerVersion prints the manifest bytes uploaded
// per version (manifests/SEQ and latest) of a database committing
// one-row transactions, format 1 against format 2 (deltas against a full
// base under WantFull, as the copier writes them). Every commit changes
// the header in chunk 0 (inline, incompressible here), the last chunk
// (the row appended to its table) and a random chunk (an index page);
// "scattered" commits also rewrite 100 random bytes of chunk 0 and one
// more random chunk.
func BenchmarkManifestBytesPerVersion(b *testing.B) {
	const cs = 1 << 16
	const maxDeltas = 1024
	for _, scattered := range []bool{false, true} {
		for _, size := range []int64{16 << 20, 256 << 20, 1 << 30} {
			name := fmt.Sprintf("append/%dMiB", size>>20)
			if scattered {
				name = fmt.Sprintf("scattered/%dMiB", size>>20)
			}
			b.Run(name, func(b *testing.B) { benchManifestBytes(b, size, cs, maxDeltas, scattered) })
		}
	}
}

func benchManifestBytes(b *testing.B, size int64, cs uint32, maxDeltas int, scattered bool) {
	rng := rand.New(rand.NewPCG(1, uint64(size)))
	m := &Manifest{Name: "host:/db", Seq: 1, ChunkSize: cs, PageSize: 4096, Length: size, VersionID: []byte("vid")}
	m.Chunk0 = make([]byte, cs)
	for i := range m.Chunk0 {
		m.Chunk0[i] = byte(rng.Uint32())
	}
	m.Chunks = make([]Hash, ChunkCount(size, cs))
	for i := range m.Chunks {
		m.Chunks[i] = HashOf([]byte(fmt.Sprint(i)))
	}
	m.Chunks[0] = HashOf(m.Chunk0)
	var f1, f2, versions int64
	var base *Manifest
	var chainBytes, chainLen int
	for b.Loop() {
		changed := []int{len(m.Chunks) - 1, 1 + rng.IntN(len(m.Chunks)-1)}
		if scattered {
			changed = append(changed, 1+rng.IntN(len(m.Chunks)-1))
		}
		n := evolve(m, size, changed...)
		if scattered {
			n.Chunk0 = bytes.Clone(n.Chunk0)
			off := rng.IntN(int(cs) - 100)
			for i := range 100 {
				n.Chunk0[off+i] = byte(rng.Uint32())
			}
			n.Chunks[0] = HashOf(n.Chunk0)
		}
		full, err := n.Encode()
		if err != nil {
			b.Fatal(err)
		}
		wire, latest := full, full // manifests/SEQ, latest (copier.wireEncoding)
		if base != nil {
			delta, err := EncodeDelta(n, base)
			if err != nil {
				b.Fatal(err)
			}
			if !WantFull(len(full), len(delta), chainBytes, chainLen, maxDeltas) {
				wire = delta
				chainBytes += len(delta)
				chainLen++
			}
			if SmallDelta(len(full), len(delta)) {
				latest = delta
			}
		}
		if len(wire) == len(full) {
			base, chainBytes, chainLen = n, 0, 0
		}
		f1 += 2 * int64(len(full))
		f2 += int64(len(wire) + len(latest))
		versions++
		m = n
	}
	b.ReportMetric(float64(f1)/float64(versions), "format1-B/version")
	b.ReportMetric(float64(f2)/float64(versions), "format2-B/version")
	b.ReportMetric(2, "requests/version")
}
