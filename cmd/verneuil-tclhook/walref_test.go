//go:build cgo && verneuil_extern

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// testWAL writes a -wal as SQLite does: header, then frames whose
// checksums continue from the header's.
type testWAL struct {
	buf      bytes.Buffer
	order    binary.ByteOrder
	pageSize int
	salt     [8]byte
	s        [2]uint32
}

func newTestWAL(pageSize int, bigEnd bool, salt [8]byte) *testWAL {
	w := &testWAL{order: binary.LittleEndian, pageSize: pageSize, salt: salt}
	magic := uint32(refWALMagicLE)
	if bigEnd {
		w.order, magic = binary.BigEndian, refWALMagicBE
	}
	h := make([]byte, refWALHeaderLen)
	binary.BigEndian.PutUint32(h, magic)
	binary.BigEndian.PutUint32(h[4:], refWALVersion)
	binary.BigEndian.PutUint32(h[8:], uint32(pageSize))
	copy(h[16:], salt[:])
	w.s = cksum(w.order, h[:24], [2]uint32{})
	binary.BigEndian.PutUint32(h[24:], w.s[0])
	binary.BigEndian.PutUint32(h[28:], w.s[1])
	w.buf.Write(h)
	return w
}

// frame appends a copy of page pg filled with fill; commit is the
// database size in pages for a commit frame, else 0. It returns the
// position after the frame.
func (w *testWAL) frame(pg uint32, fill byte, commit uint32) walPosition {
	f := make([]byte, refFrameHeadLen+w.pageSize)
	binary.BigEndian.PutUint32(f, pg)
	binary.BigEndian.PutUint32(f[4:], commit)
	copy(f[8:], w.salt[:])
	for i := refFrameHeadLen; i < len(f); i++ {
		f[i] = fill
	}
	w.s = cksum(w.order, f[:8], w.s)
	w.s = cksum(w.order, f[refFrameHeadLen:], w.s)
	binary.BigEndian.PutUint32(f[16:], w.s[0])
	binary.BigEndian.PutUint32(f[20:], w.s[1])
	w.buf.Write(f)
	n := uint32((w.buf.Len() - refWALHeaderLen) / len(f))
	return walPosition{salt: w.salt, mx: n, ck: w.s}
}

// memDB is a database file in memory; bytes past its end read as zeros,
// as tracker.Source's do.
type memDB []byte

func (m memDB) ReadAt(p []byte, off int64) error {
	clear(p)
	if off < int64(len(m)) {
		copy(p, m[off:])
	}
	return nil
}

func pages(pageSize int, fills ...byte) memDB {
	var b []byte
	for _, f := range fills {
		b = append(b, bytes.Repeat([]byte{f}, pageSize)...)
	}
	return b
}

func readAll(t *testing.T, r *walRef) []byte {
	t.Helper()
	b := make([]byte, r.Size())
	if err := r.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestComposeWAL(t *testing.T) {
	const ps = 512
	salt := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	db := pages(ps, 'a', 'b', 'c')
	for _, bigEnd := range []bool{false, true} {
		w := newTestWAL(ps, bigEnd, salt)
		w.frame(2, 'x', 0)
		c1 := w.frame(4, 'y', 4) // commit 1: 4 pages
		w.frame(2, 'z', 0)
		c2 := w.frame(1, 'w', 2) // commit 2: the database shrinks to 2 pages
		w.frame(3, 'u', 0)       // an uncommitted tail
		data := w.buf.Bytes()
		cases := []struct {
			name string
			wal  []byte
			upTo uint32
			pos  walPosition
			want memDB
		}{
			{"last commit", data, 0, c2, pages(ps, 'w', 'z')},
			{"up to commit 1", data, c1.mx, c1, pages(ps, 'a', 'x', 'c', 'y')},
			{"up to frame 3 (not a commit)", data, 3, c1, pages(ps, 'a', 'x', 'c', 'y')},
			{"torn last frame", data[:len(data)-1], 0, c2, pages(ps, 'w', 'z')},
		}
		for _, tc := range cases {
			ref, err := composeWAL(db, bytes.NewReader(tc.wal), int64(len(tc.wal)), tc.upTo)
			if err != nil {
				t.Fatalf("%s (big-endian %v): %v", tc.name, bigEnd, err)
			}
			if ref.pos != tc.pos {
				t.Errorf("%s: position %s, want %s", tc.name, ref.pos, tc.pos)
			}
			if got := readAll(t, ref); !bytes.Equal(got, tc.want) {
				t.Errorf("%s (big-endian %v): composed state differs at byte %d", tc.name, bigEnd, firstDiff(got, tc.want))
			}
		}
	}
}

func TestComposeWALStopsAtInvalidFrames(t *testing.T) {
	const ps = 512
	db := pages(ps, 'a', 'b')
	w := newTestWAL(ps, false, [8]byte{9})
	c1 := w.frame(1, 'x', 2)
	w.frame(2, 'y', 2)
	good := bytes.Clone(w.buf.Bytes())
	f2 := refWALHeaderLen + refFrameHeadLen + ps // offset of frame 2
	mutate := map[string]func(b []byte){
		"page data":       func(b []byte) { b[f2+refFrameHeadLen+7] ^= 1 },
		"salt":            func(b []byte) { b[f2+8] ^= 1 },
		"checksum":        func(b []byte) { b[f2+20] ^= 1 },
		"page number 0":   func(b []byte) { binary.BigEndian.PutUint32(b[f2:], 0) },
		"commit size":     func(b []byte) { binary.BigEndian.PutUint32(b[f2+4:], 1) },
		"frame 2 missing": func(b []byte) {},
	}
	for name, m := range mutate {
		b := bytes.Clone(good)
		if name == "frame 2 missing" {
			b = b[:f2]
		}
		m(b)
		ref, err := composeWAL(db, bytes.NewReader(b), int64(len(b)), 0)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ref.pos != c1 {
			t.Errorf("%s: the walk went past the invalid frame to %s", name, ref.pos)
		}
	}
	bad := bytes.Clone(good)
	bad[30] ^= 1 // the WAL header's checksum
	if _, err := composeWAL(db, bytes.NewReader(bad), int64(len(bad)), 0); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("a WAL header with a wrong checksum: %v", err)
	}
	empty := newTestWAL(ps, false, [8]byte{9}).buf.Bytes()
	if _, err := composeWAL(db, bytes.NewReader(empty), int64(len(empty)), 0); err != errNoCommit {
		t.Errorf("a WAL without frames: %v, want errNoCommit", err)
	}
}

func TestWALIndexPosition(t *testing.T) {
	h := make([]byte, refWALIndexLen)
	nativeOrder.PutUint32(h[0:], refWALVersion)
	h[12] = 1
	nativeOrder.PutUint16(h[14:], 4096)
	nativeOrder.PutUint32(h[16:], 7)  // mxFrame
	nativeOrder.PutUint32(h[20:], 12) // nPage
	nativeOrder.PutUint32(h[24:], 0xdeadbeef)
	nativeOrder.PutUint32(h[28:], 0x01020304)
	copy(h[32:40], []byte{1, 2, 3, 4, 5, 6, 7, 8})
	s := cksum(nativeOrder, h[:40], [2]uint32{})
	nativeOrder.PutUint32(h[40:], s[0])
	nativeOrder.PutUint32(h[44:], s[1])
	pos, n, ok := walIndexPosition(h)
	want := walPosition{salt: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, mx: 7, ck: [2]uint32{0xdeadbeef, 0x01020304}}
	if !ok || pos != want || n != 12 {
		t.Fatalf("walIndexPosition = %s, %d, %v; want %s, 12, true", pos, n, ok, want)
	}
	h[16]++ // mxFrame changed without the checksum
	if _, _, ok := walIndexPosition(h); ok {
		t.Error("a wal-index header with a wrong checksum was trusted")
	}
}

// replicaOf is a one-chunk manifest of state at position pos.
func replicaOf(state []byte, pos walPosition) *manifest.Manifest {
	vid := make([]byte, 8, 8+1+23+100)
	id := pos.id()
	vid = append(vid, byte(len(id)))
	vid = append(append(vid, id...), state[:100]...)
	return &manifest.Manifest{Seq: 5, ChunkSize: 65536, Length: int64(len(state)), VersionID: vid,
		Chunk0: state, Chunks: []manifest.Hash{manifest.HashOf(state)}}
}

// TestCheckFindsWrongWALReplicas feeds the per-commit comparison replicas
// that a faulty capture could publish: each must be a mismatch, and the
// right replica must pass.
func TestCheckFindsWrongWALReplicas(t *testing.T) {
	const ps = 1024
	db := pages(ps, 'a', 'b', 'c')
	w := newTestWAL(ps, false, [8]byte{7, 7})
	old := w.frame(2, 'x', 3)
	w.frame(2, 'y', 0)
	w.frame(3, 'z', 0)
	now := w.frame(2, 'q', 3) // the last copy of page 2 wins
	walPath := filepath.Join(t.TempDir(), "db-wal")
	if err := os.WriteFile(walPath, w.buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ref, _, f, err := openWALRef(db, walPath, now.mx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	state := readAll(t, ref)
	if want := pages(ps, 'a', 'q', 'z'); !bytes.Equal(state, want) {
		t.Fatalf("composed state differs from the expected one at byte %d", firstDiff(state, want))
	}
	firstCopy := pages(ps, 'a', 'x', 'z')
	rollbackHdr := bytes.Clone(state)
	rollbackHdr[18], rollbackHdr[19] = 1, 1
	cases := []struct {
		name    string
		replica *manifest.Manifest
		wantErr string
	}{
		{"right", replicaOf(state, now), ""},
		{"first copy of a page wins", replicaOf(firstCopy, now), "differs from the state in chunk 0 (first at byte 1024"},
		{"an earlier commit", replicaOf(pages(ps, 'a', 'x', 'c'), old), "at WAL position"},
		{"right bytes, wrong position", replicaOf(state, old), "at WAL position"},
		{"not cut to the commit size", replicaOf(append(bytes.Clone(state), make([]byte, ps)...), now), "bytes, the state"},
		{"header bytes 18-19 changed", replicaOf(rollbackHdr, now), "header in its version id"},
	}
	for _, tc := range cases {
		c := &checker{}
		err := c.compare(context.Background(), "k", tc.replica, ref.Size(), ref.ReadAt, ref.pos.id(), nil)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.wantErr)
		}
	}
}
