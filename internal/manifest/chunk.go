package manifest

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

var (
	zeroMu     sync.Mutex
	zeroHashes = map[int]Hash{}
)

// Chunk object encodings: the first byte of a stored chunk object.
const (
	chunkRaw  = 0
	chunkZstd = 1
)

var (
	chunkEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	chunkDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(1<<30), zstd.WithDecoderConcurrency(1))
)

// EncodeChunk returns the stored form of a chunk: one encoding byte, then the
// raw bytes or, when that is smaller, a zstd frame.
func EncodeChunk(data []byte) []byte {
	z := chunkEncoder.EncodeAll(data, make([]byte, 1, len(data)/2+16))
	if len(z) < len(data)+1 {
		z[0] = chunkZstd
		return z
	}
	out := make([]byte, 1+len(data))
	out[0] = chunkRaw
	copy(out[1:], data)
	return out
}

// DecodeChunk returns the bytes of a stored chunk and checks them against
// want. maxLen bounds the decoded size.
func DecodeChunk(obj []byte, want Hash, maxLen int) ([]byte, error) {
	if len(obj) == 0 {
		return nil, fmt.Errorf("chunk %s: %w: empty object", want, ErrCorruptChunk)
	}
	var data []byte
	switch obj[0] {
	case chunkRaw:
		data = obj[1:]
	case chunkZstd:
		var err error
		data, err = chunkDecoder.DecodeAll(obj[1:], make([]byte, 0, maxLen))
		if err != nil {
			return nil, fmt.Errorf("chunk %s: %w: zstd: %v", want, ErrCorruptChunk, err)
		}
	default:
		return nil, fmt.Errorf("chunk %s: %w: unknown encoding %d", want, ErrCorruptChunk, obj[0])
	}
	if len(data) > maxLen {
		return nil, fmt.Errorf("chunk %s: %w: %d bytes, more than %d", want, ErrCorruptChunk, len(data), maxLen)
	}
	if got := HashOf(data); got != want {
		return nil, fmt.Errorf("chunk %s: %w: content hash is %s", want, ErrCorruptChunk, got)
	}
	return data, nil
}
