package manifest

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func sample(t testing.TB, length int64) *Manifest {
	t.Helper()
	const cs = 1 << 16
	m := &Manifest{Name: "host:/db", Seq: 42, CommitTime: time.Unix(1700000000, 123), PageSize: 4096,
		ChunkSize: cs, Length: length, VersionID: []byte("vid")}
	for i := range ChunkCount(length, cs) {
		data := bytes.Repeat([]byte{byte(i + 1)}, ChunkLen(i, length, cs))
		if i == 0 {
			m.Chunk0 = data
		}
		m.Chunks = append(m.Chunks, HashOf(data))
	}
	return m
}

func TestManifest_RoundTrip(t *testing.T) {
	for _, length := range []int64{0, 512, 65536, 65537, 3*65536 + 100} {
		m := sample(t, length)
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("length %d: encode: %v", length, err)
		}
		got, err := Decode(enc)
		if err != nil {
			t.Fatalf("length %d: decode: %v", length, err)
		}
		if got.Seq != m.Seq || got.Length != m.Length || got.Name != m.Name || !got.CommitTime.Equal(m.CommitTime) ||
			len(got.Chunks) != len(m.Chunks) || !bytes.Equal(got.Chunk0, m.Chunk0) || !bytes.Equal(got.VersionID, m.VersionID) {
			t.Fatalf("length %d: round trip mismatch: %+v", length, got)
		}
	}
}

func TestManifest_DecodeRejectsDamage(t *testing.T) {
	enc, err := sample(t, 200000).Encode()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := decoder.DecodeAll(enc, nil)
	cases := map[string][]byte{
		"empty":     {},
		"truncated": enc[:len(enc)/2],
		"not zstd":  []byte("hello"),
		"bit flip in body": func() []byte {
			r := append([]byte(nil), raw...)
			r[20] ^= 1
			return encoder.EncodeAll(r, nil)
		}(),
		"trailing bytes": func() []byte {
			r := append(append([]byte(nil), raw[:len(raw)-HashSize]...), 0)
			return encoder.EncodeAll(r, nil)
		}(),
	}
	for name, data := range cases {
		if _, err := Decode(data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v, want ErrCorrupt", name, err)
		}
	}
}

func TestChunk_EncodeDecode(t *testing.T) {
	for _, data := range [][]byte{{1}, bytes.Repeat([]byte("abc"), 20000), make([]byte, 65536)} {
		h := HashOf(data)
		got, err := DecodeChunk(EncodeChunk(data), h, 65536)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("chunk round trip: %v", err)
		}
		if _, err := DecodeChunk(EncodeChunk(data), HashOf([]byte("other")), 65536); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("wrong hash accepted: %v", err)
		}
	}
	if _, err := DecodeChunk([]byte{9, 1, 2}, Hash{}, 10); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unknown encoding accepted")
	}
}

func FuzzDecode(f *testing.F) {
	for _, l := range []int64{0, 100, 70000} {
		enc, err := sample(f, l).Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNeedsBase) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded manifest does not re-encode: %v", err)
		}
		if _, err := Decode(enc); err != nil {
			t.Fatalf("re-encoded manifest does not decode: %v", err)
		}
	})
}

func FuzzDecodeChunk(f *testing.F) {
	f.Add(EncodeChunk([]byte("hello")))
	f.Add(EncodeChunk(make([]byte, 4096)))
	f.Fuzz(func(t *testing.T, obj []byte) {
		data, err := DecodeChunk(obj, HashOf([]byte("hello")), 1<<16)
		if err == nil && !bytes.Equal(data, []byte("hello")) {
			t.Fatalf("accepted bytes that do not match the hash")
		}
	})
}
