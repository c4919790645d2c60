// Package manifest owns the manifest format: the description of one complete
// committed version of one replicated database (its ordered list of
// content-addressed chunks, inline first chunk, identity and timestamps), and
// its versioned, checksummed, zstd-compressed encoding. docs/FORMAT.md is the
// specification; this package is the reference implementation.
package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/klauspost/compress/zstd"
)

// FormatVersion is the format of full manifests.
const FormatVersion = 1

// DeltaFormatVersion is the format of delta manifests: the changes since
// a full (format-1) base manifest (delta.go).
const DeltaFormatVersion = 2

// HashSize is the size of a chunk hash (SHA-256).
const HashSize = sha256.Size

// MaxEncodedSize bounds a decoded manifest (64 MiB of chunk hashes is a
// 128 TiB database at 64 KiB chunks); larger inputs are rejected as corrupt.
const MaxEncodedSize = 64 << 20

// MinChunkSize and MaxChunkSize bound a manifest's chunk size (a power of
// two): the documented range of the chunk_size setting. A manifest outside
// it is corrupt, so no reader sizes a buffer from a hostile value.
const (
	MinChunkSize = 64 << 10
	MaxChunkSize = 16 << 20
)

// MaxChunkObjectSize bounds a stored chunk object: the encoding byte and
// the raw bytes of the largest chunk (writers use zstd only when smaller).
const MaxChunkObjectSize = 1 + MaxChunkSize

// MaxObjectSize bounds every object of the format: a manifest is a zstd
// frame of at most MaxEncodedSize bytes (zstd adds at most 3 bytes per
// 128 KiB block plus a header to incompressible input), and a chunk object
// is smaller. Readers refuse larger objects without reading them.
const MaxObjectSize = MaxEncodedSize + 1<<20

const magic = "VERNEUIL"

// ErrCorrupt is matched (errors.Is) by every decoding error, of manifests
// and of chunks alike.
var ErrCorrupt = errors.New("corrupt data")

// ErrCorruptChunk is wrapped by chunk decoding errors; it matches ErrCorrupt.
var ErrCorruptChunk error = corruptError("corrupt chunk")

// errCorruptManifest is wrapped by manifest decoding errors.
var errCorruptManifest error = corruptError("corrupt manifest")

// corruptError names what is corrupt and matches ErrCorrupt.
type corruptError string

func (e corruptError) Error() string        { return string(e) }
func (e corruptError) Is(target error) bool { return target == ErrCorrupt }

// Hash is a chunk's content address: SHA-256 of its bytes.
type Hash [HashSize]byte

// String returns the hash in lowercase hex, as used in object keys.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// HashOf returns the content address of data.
func HashOf(data []byte) Hash { return sha256.Sum256(data) }

// ParseHash parses a lowercase or uppercase hex hash.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*HashSize {
		return h, fmt.Errorf("chunk hash %q: want %d hex digits", s, 2*HashSize)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("chunk hash %q: %w", s, err)
	}
	return h, nil
}

// Manifest describes one committed version of a database.
type Manifest struct {
	// Name is the replica name of the database (see package names).
	Name string
	// Seq orders versions of one database: a newer commit has a larger Seq.
	Seq uint64
	// CommitTime is when the source committed this version.
	CommitTime time.Time
	// PageSize is the SQLite page size from the header (0 for an empty file).
	PageSize uint32
	// ChunkSize is the size of every chunk but possibly the last.
	ChunkSize uint32
	// Length is the database file length in bytes.
	Length int64
	// VersionID identifies the file state (version xattr + header bytes);
	// trackers compare it to recognise writes that bypassed the VFS.
	VersionID []byte
	// HeaderHash is SHA-256 of the first 100 bytes of the file.
	HeaderHash Hash
	// Chunk0 holds the bytes of chunk 0 inline (it changes on every commit).
	Chunk0 []byte
	// Chunks lists the hash of every chunk, in file order, Chunk0 included.
	Chunks []Hash
	// Locs says where the chunks stored in pack objects are (pack.go);
	// a chunk without an entry is its own chunks/HASH object. Nil for
	// manifests without packed chunks.
	Locs map[Hash]Location
	// Inline holds the bytes of chunks carried inside the object (a
	// latest object's chunks that are in no chunk object nor pack yet,
	// inline.go), by hash. Nil for history objects and most manifests.
	Inline map[Hash][]byte
}

// ChunkCount returns how many chunks a file of length bytes has.
func ChunkCount(length int64, chunkSize uint32) int {
	if length <= 0 {
		return 0
	}
	return int((length + int64(chunkSize) - 1) / int64(chunkSize))
}

// ChunkLen returns the length of chunk i of a file of length bytes.
func ChunkLen(i int, length int64, chunkSize uint32) int {
	start := int64(i) * int64(chunkSize)
	n := length - start
	if n > int64(chunkSize) {
		n = int64(chunkSize)
	}
	if n < 0 {
		n = 0
	}
	return int(n)
}

// Validate checks internal consistency (not chunk contents).
func (m *Manifest) Validate() error {
	if m.ChunkSize == 0 || m.ChunkSize&(m.ChunkSize-1) != 0 {
		return fmt.Errorf("%w: chunk size %d is not a power of two", errCorruptManifest, m.ChunkSize)
	}
	if m.ChunkSize < MinChunkSize || m.ChunkSize > MaxChunkSize {
		return fmt.Errorf("%w: chunk size %d is outside [%d, %d]", errCorruptManifest, m.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	if m.Length < 0 {
		return fmt.Errorf("%w: negative length", errCorruptManifest)
	}
	if want := ChunkCount(m.Length, m.ChunkSize); len(m.Chunks) != want {
		return fmt.Errorf("%w: %d chunks for length %d, want %d", errCorruptManifest, len(m.Chunks), m.Length, want)
	}
	if len(m.Chunks) > 0 {
		if len(m.Chunk0) != ChunkLen(0, m.Length, m.ChunkSize) {
			return fmt.Errorf("%w: inline chunk 0 has %d bytes, want %d", errCorruptManifest, len(m.Chunk0), ChunkLen(0, m.Length, m.ChunkSize))
		}
		if HashOf(m.Chunk0) != m.Chunks[0] {
			return fmt.Errorf("%w: inline chunk 0 does not match its hash", errCorruptManifest)
		}
	} else if len(m.Chunk0) != 0 {
		return fmt.Errorf("%w: inline chunk 0 in an empty database", errCorruptManifest)
	}
	return nil
}

// Encode returns the compressed, checksummed encoding of m (docs/FORMAT.md):
// a full manifest, format 1.
func (m *Manifest) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	b := m.body(true)
	sum := sha256.Sum256(b.Bytes())
	b.Write(sum[:])
	return encoder.EncodeAll(b.Bytes(), nil), nil
}

// Digest returns the content hash of m's format-1 encoding without inline
// chunks (the checksum that encoding ends with): the base digest that
// delta manifests name. Bases are history objects, which carry none.
func (m *Manifest) Digest() Hash {
	return sha256.Sum256(m.body(false).Bytes())
}

// body returns the format-1 encoding of m before its checksum, with its
// inline chunks when withInline is set.
func (m *Manifest) body(withInline bool) *bytes.Buffer {
	var b bytes.Buffer
	all := make([]int, max(len(m.Chunks)-1, 0))
	for i := range all {
		all[i] = i + 1
	}
	packed := hasLocations(m.Chunks, all, m.Locs)
	inline := withInline && hasInline(m.Chunks, all, m.Inline, m.Locs)
	var flags uint16
	if packed {
		flags = FlagLocations
	}
	if inline {
		flags |= FlagInline
	}
	m.writeHeader(&b, FormatVersion, flags)
	writeBytes(&b, m.Chunk0)
	_ = binary.Write(&b, binary.BigEndian, uint32(len(m.Chunks)))
	for _, h := range m.Chunks {
		b.Write(h[:])
	}
	if packed {
		writeLocations(&b, m.Chunks, all, m.Locs)
	}
	if inline {
		writeInline(&b, m.Chunks, all, m.Inline, m.Locs)
	}
	return &b
}

// writeHeader writes the fields formats 1 and 2 share, up to the header
// hash.
func (m *Manifest) writeHeader(b *bytes.Buffer, version, flags uint16) {
	b.WriteString(magic)
	w := func(v any) { _ = binary.Write(b, binary.BigEndian, v) }
	w(version)
	w(flags)
	w(m.Seq)
	w(m.CommitTime.UnixNano())
	w(m.PageSize)
	w(m.ChunkSize)
	w(m.Length)
	writeBytes(b, []byte(m.Name))
	writeBytes(b, m.VersionID)
	b.Write(m.HeaderHash[:])
}

func writeBytes(b *bytes.Buffer, p []byte) {
	_ = binary.Write(b, binary.BigEndian, uint32(len(p)))
	b.Write(p)
}

var (
	encoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	decoder, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(MaxEncodedSize), zstd.WithDecoderConcurrency(1))
)

// Decode parses and verifies an encoded full manifest. Every failure
// wraps ErrCorrupt and says what is wrong, except a delta manifest, which
// wraps ErrNeedsBase: Resolve reads both kinds.
func Decode(data []byte) (*Manifest, error) {
	m, d, err := DecodeObject(data)
	if err != nil {
		return nil, err
	}
	if d != nil {
		return nil, fmt.Errorf("%w: manifest %d is a delta against version %d", ErrNeedsBase, d.Seq, d.BaseSeq)
	}
	return m, nil
}

// ErrNeedsBase is returned by Decode for a delta manifest (format 2).
var ErrNeedsBase = errors.New("delta manifest: needs its base")

// DecodeObject parses and verifies a manifest object of either format: a
// full manifest (format 1) or a delta (format 2, to be applied to its
// base). Exactly one of the results is non-nil without an error; every
// failure wraps ErrCorrupt.
func DecodeObject(data []byte) (*Manifest, *Delta, error) {
	raw, err := decoder.DecodeAll(data, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: zstd: %v", errCorruptManifest, err)
	}
	if len(raw) > MaxEncodedSize {
		return nil, nil, fmt.Errorf("%w: %d bytes decoded, limit %d", errCorruptManifest, len(raw), MaxEncodedSize)
	}
	if len(raw) < len(magic)+HashSize || string(raw[:len(magic)]) != magic {
		return nil, nil, fmt.Errorf("%w: bad magic", errCorruptManifest)
	}
	body, sum := raw[:len(raw)-HashSize], raw[len(raw)-HashSize:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, nil, fmt.Errorf("%w: checksum mismatch", errCorruptManifest)
	}
	r := reader{b: body[len(magic):]}
	m := &Manifest{}
	v := r.u16()
	if r.err != nil {
		return nil, nil, r.err
	}
	if v != FormatVersion && v != DeltaFormatVersion {
		return nil, nil, fmt.Errorf("%w: unsupported format version %d (this build reads %d and %d)", errCorruptManifest, v, FormatVersion, DeltaFormatVersion)
	}
	flags := r.u16()
	if r.err == nil && flags&^(FlagLocations|FlagInline) != 0 {
		return nil, nil, fmt.Errorf("%w: unknown flags %#x", errCorruptManifest, flags)
	}
	m.Seq = r.u64()
	m.CommitTime = time.Unix(0, int64(r.u64()))
	m.PageSize = r.u32()
	m.ChunkSize = r.u32()
	m.Length = int64(r.u64())
	m.Name = string(r.bytes())
	m.VersionID = r.bytes()
	copy(m.HeaderHash[:], r.take(HashSize))
	if v == DeltaFormatVersion {
		d, err := decodeDelta(m, &r, flags&FlagLocations != 0, flags&FlagInline != 0)
		return nil, d, err
	}
	m.Chunk0 = r.bytes()
	n := int(r.u32())
	if r.err == nil && n > len(r.b)/HashSize {
		return nil, nil, fmt.Errorf("%w: %d chunk hashes announced, %d bytes left", errCorruptManifest, n, len(r.b))
	}
	if r.err == nil {
		m.Chunks = make([]Hash, n)
		for i := range m.Chunks {
			copy(m.Chunks[i][:], r.take(HashSize))
		}
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	if flags&(FlagLocations|FlagInline) != 0 {
		if err := m.Validate(); err != nil {
			return nil, nil, err // before sizing anything from it
		}
	}
	count := len(m.Chunks)
	hashAt := func(i uint32) (Hash, int, bool) {
		if i == 0 || int64(i) >= int64(count) {
			return Hash{}, 0, false
		}
		return m.Chunks[i], ChunkLen(int(i), m.Length, m.ChunkSize), true
	}
	if flags&FlagLocations != 0 {
		if m.Locs, err = readLocations(&r, hashAt); err != nil {
			return nil, nil, err
		}
	}
	if flags&FlagInline != 0 {
		if m.Inline, err = readInline(&r, m.Locs, hashAt); err != nil {
			return nil, nil, err
		}
	}
	if len(r.b) != 0 {
		return nil, nil, fmt.Errorf("%w: %d trailing bytes", errCorruptManifest, len(r.b))
	}
	if err := m.Validate(); err != nil {
		return nil, nil, err
	}
	return m, nil, nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return make([]byte, n)
	}
	if n < 0 || len(r.b) < n {
		r.err = fmt.Errorf("%w: truncated", errCorruptManifest)
		return make([]byte, max(n, 0))
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}
func (r *reader) u16() uint16 { return binary.BigEndian.Uint16(r.take(2)) }
func (r *reader) u32() uint32 { return binary.BigEndian.Uint32(r.take(4)) }
func (r *reader) u64() uint64 { return binary.BigEndian.Uint64(r.take(8)) }
func (r *reader) bytes() []byte {
	n := r.u32()
	if r.err == nil && int64(n) > int64(len(r.b)) {
		r.err = fmt.Errorf("%w: truncated field of %d bytes", errCorruptManifest, n)
		return nil
	}
	return append([]byte(nil), r.take(int(n))...)
}

// ZeroChunkHash returns the hash of an all-zero chunk of n bytes. Such
// chunks are never stored: readers synthesise them.
func ZeroChunkHash(n int) Hash {
	zeroMu.Lock()
	defer zeroMu.Unlock()
	if h, ok := zeroHashes[n]; ok {
		return h
	}
	h := HashOf(make([]byte, n))
	zeroHashes[n] = h
	return h
}
