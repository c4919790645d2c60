package replica

import (
	"crypto/sha256"
	"testing"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// The readahead window, the ahead buffer and the disk writer's queue are
// bounded in bytes as well as in chunks: with the largest chunk size
// (16 MiB) a count alone would let gigabytes wait in memory.
func TestWindowLimitInBytes(t *testing.T) {
	for _, tc := range []struct {
		chunkSize uint32
		want      int
	}{
		{0, maxWindow},
		{manifest.MinChunkSize, maxWindow},
		{1 << 20, maxWindow},
		{4 << 20, 16},
		{manifest.MaxChunkSize, minWindow},
	} {
		if got := windowLimit(tc.chunkSize); got != tc.want {
			t.Errorf("windowLimit(%d) = %d, want %d", tc.chunkSize, got, tc.want)
		}
	}
}

func TestAheadBufferBoundedInBytes(t *testing.T) {
	mg := &Manager{ahead: map[manifest.Hash][]byte{}}
	const big = 16 << 20
	for i := range 40 {
		data := make([]byte, big)
		data[0] = byte(i)
		mg.putAhead(sha256.Sum256(data), data)
		if mg.aheadBytes > maxAheadBytes {
			t.Fatalf("after %d chunks of 16 MiB the ahead buffer holds %d bytes, bound %d", i+1, mg.aheadBytes, maxAheadBytes)
		}
	}
	if len(mg.ahead) != maxAheadBytes/big || len(mg.aheadOrder) != len(mg.ahead) {
		t.Fatalf("ahead buffer holds %d chunks (%d in order), want %d", len(mg.ahead), len(mg.aheadOrder), maxAheadBytes/big)
	}
	// Taking a chunk gives its bytes back; the newest chunks were kept.
	last := make([]byte, big)
	last[0] = 39
	h := sha256.Sum256(last)
	if _, ok := mg.takeAhead(h); !ok {
		t.Fatal("the newest chunk was evicted")
	}
	if want := (maxAheadBytes/big - 1) * big; mg.aheadBytes != want {
		t.Fatalf("after a take the buffer counts %d bytes, want %d", mg.aheadBytes, want)
	}
	// A single chunk larger than the bound is still kept (readahead of one
	// chunk must not be useless).
	mg2 := &Manager{ahead: map[manifest.Hash][]byte{}}
	huge := make([]byte, maxAheadBytes+1)
	mg2.putAhead(sha256.Sum256(huge), huge)
	if len(mg2.ahead) != 1 {
		t.Fatalf("a chunk over the bound alone: %d kept, want 1", len(mg2.ahead))
	}
}

func TestDiskQueueBoundedInBytes(t *testing.T) {
	mg := &Manager{pending: map[manifest.Hash][]byte{}, claimed: map[manifest.Hash]bool{}, writers: maxWriters}
	const big = 16 << 20
	for i := range 10 {
		data := make([]byte, big)
		data[0] = byte(i)
		mg.queueDisk(sha256.Sum256(data), data)
	}
	if want := maxPendingBytes / big; len(mg.pending) != want || mg.pendBytes != want*big {
		t.Fatalf("queue holds %d chunks, %d bytes; want %d chunks", len(mg.pending), mg.pendBytes, want)
	}
	if got := mg.stats.diskBehind.Load(); got != int64(10-maxPendingBytes/big) {
		t.Fatalf("dropped %d chunks, want %d", got, 10-maxPendingBytes/big)
	}
}
