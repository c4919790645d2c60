package manifest

import (
	"math/rand"
	"testing"
)

// TestDecodeChunk_ShortChunkExactLimit: a short chunk (the last of a
// file, or a small database) decodes when the limit is its exact length,
// as a pack's record is read (PackRecord). The decoder's cap used to be
// that length rounded up to a power of two, which refused the zstd frames
// the encoder writes for inputs of about 1 KiB and less ("window size
// exceeded"): a packed short chunk was unreadable.
func TestDecodeChunk_ShortChunkExactLimit(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, n := range []int{1, 100, 512, 1000, 1024, 1025, 1500, 4096, 5000, 40000, 65535, 65536} {
		for range 5 {
			data := make([]byte, n)
			for i := range data {
				if r.Intn(4) == 0 {
					data[i] = byte(r.Intn(256))
				}
			}
			obj := EncodeChunk(data)
			got, err := DecodeChunk(obj, HashOf(data), n)
			if err != nil {
				t.Fatalf("%d bytes (encoding %d): %v", n, obj[0], err)
			}
			if len(got) != n {
				t.Fatalf("%d bytes decoded to %d", n, len(got))
			}
			if n > 1 {
				if _, err := DecodeChunk(obj, HashOf(data), n-1); err == nil {
					t.Fatalf("%d bytes decoded under a limit of %d", n, n-1)
				}
			}
		}
	}
}
