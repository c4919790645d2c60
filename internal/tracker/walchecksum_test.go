package tracker

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// walChecksumReference is SQLite's walChecksumBytes word by word, as the
// WAL format documents it.
func walChecksumReference(b []byte, bigEnd bool, s1, s2 uint32) (uint32, uint32) {
	var order binary.ByteOrder = binary.LittleEndian
	if bigEnd {
		order = binary.BigEndian
	}
	for i := 0; i+8 <= len(b); i += 8 {
		s1 += order.Uint32(b[i:]) + s2
		s2 += order.Uint32(b[i+4:]) + s1
	}
	return s1, s2
}

func TestWALChecksumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 8, 24, 32, 40, 64, 512, 4096, 4096 + 24, 65536} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		for _, bigEnd := range []bool{false, true} {
			s1, s2 := r.Uint32(), r.Uint32()
			g1, g2 := walChecksum(b, bigEnd, s1, s2)
			w1, w2 := walChecksumReference(b, bigEnd, s1, s2)
			if g1 != w1 || g2 != w2 {
				t.Errorf("len %d bigEnd %v: got %08x %08x, want %08x %08x", n, bigEnd, g1, g2, w1, w2)
			}
		}
	}
}

func BenchmarkWALChecksum(b *testing.B) {
	page := make([]byte, 4096)
	for i := range page {
		page[i] = byte(i * 7)
	}
	for _, c := range []struct {
		name string
		sum  func([]byte, bool, uint32, uint32) (uint32, uint32)
	}{{"walChecksum", walChecksum}, {"reference", walChecksumReference}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(page)))
			var s1, s2 uint32
			for b.Loop() {
				s1, s2 = c.sum(page, false, s1, s2)
			}
			if s1 == 0 && s2 == 0 {
				b.Log("zero checksum")
			}
		})
	}
}
