package manifest

import (
	"fmt"
	"runtime"
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
	// chunkDecoders holds one decoder per output cap (a power of two
	// from MinChunkSize to MaxChunkSize): a decoder stops as soon as its
	// output would exceed its cap, so an object cannot inflate to more
	// than twice the expected length, or MinChunkSize for a short chunk
	// (a smaller cap refuses the frames the encoder writes for short
	// inputs: "window size exceeded", for a chunk that is fine).
	chunkDecodersMu sync.Mutex
	chunkDecoders   = map[int]*zstd.Decoder{}
)

// decodeSlack is the spare capacity DecodeAll's output needs past the
// decoded bytes to use its fast copies (zstd's compressedBlockOverAlloc).
const decodeSlack = 64

// chunkDecoder returns a decoder whose output is capped at maxLen rounded
// up to a power of two, at least MinChunkSize.
func chunkDecoder(maxLen int) (*zstd.Decoder, error) {
	if maxLen < 0 || maxLen > MaxChunkSize {
		return nil, fmt.Errorf("chunk length limit %d outside [0, %d]", maxLen, MaxChunkSize)
	}
	capLen := MinChunkSize
	for capLen < maxLen {
		capLen <<= 1
	}
	chunkDecodersMu.Lock()
	defer chunkDecodersMu.Unlock()
	if d := chunkDecoders[capLen]; d != nil {
		return d, nil
	}
	// DecodeAll runs at most "concurrency" decodes at once per decoder:
	// one would serialize a restore's parallel workers on it.
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(uint64(capLen)), zstd.WithDecoderMaxWindow(uint64(max(capLen, zstd.MinWindowSize))))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	chunkDecoders[capLen] = d
	return d, nil
}

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
// want. maxLen (at most MaxChunkSize) bounds the decoded size: decoding
// stops, and allocates no more, once the output would exceed it.
func DecodeChunk(obj []byte, want Hash, maxLen int) ([]byte, error) {
	return DecodeChunkInto(nil, obj, want, maxLen)
}

// DecodeChunkBufLen is the capacity a buffer given to DecodeChunkInto
// needs for chunks of up to maxLen bytes.
func DecodeChunkBufLen(maxLen int) int { return maxLen + decodeSlack }

// DecodeChunkInto is DecodeChunk that decodes a compressed chunk into
// buf's storage when its capacity is DecodeChunkBufLen(maxLen) or more
// (a restore reuses one buffer per worker). The result may alias buf, or
// obj for a chunk stored raw: it is valid until either is reused.
func DecodeChunkInto(buf, obj []byte, want Hash, maxLen int) ([]byte, error) {
	if len(obj) == 0 {
		return nil, fmt.Errorf("chunk %s: %w: empty object", want, ErrCorruptChunk)
	}
	if len(obj) > 1+maxLen {
		// Writers store zstd only when smaller than the raw form.
		return nil, fmt.Errorf("chunk %s: %w: %d-byte object for at most %d bytes", want, ErrCorruptChunk, len(obj), maxLen)
	}
	var data []byte
	switch obj[0] {
	case chunkRaw:
		data = obj[1:]
	case chunkZstd:
		dec, err := chunkDecoder(maxLen)
		if err != nil {
			return nil, fmt.Errorf("chunk %s: %w", want, err)
		}
		// The slack past maxLen lets the decoder copy in whole 32-byte
		// blocks (its fast path, about twice as fast as bounds-exact).
		dst := buf[:0]
		if cap(dst) < DecodeChunkBufLen(maxLen) {
			dst = make([]byte, 0, DecodeChunkBufLen(maxLen))
		}
		data, err = dec.DecodeAll(obj[1:], dst)
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
