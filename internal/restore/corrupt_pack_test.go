package restore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// hostileRanges answers ranged GETs of one pack with one byte flipped at
// an absolute offset of the pack, or cut short before it.
type hostileRanges struct {
	blob.Store
	key      string
	at       int64
	truncate bool
}

func (h *hostileRanges) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	b, err := h.Store.GetRange(ctx, key, off, n)
	if err != nil || key != h.key || h.at < off || h.at >= off+int64(len(b)) {
		return b, err
	}
	if h.truncate {
		return b[:h.at-off], nil
	}
	b = bytes.Clone(b)
	b[h.at-off] ^= 0x40
	return b, nil
}

// TestParallelRestoreCorruptRecord: a record in the middle of a pack that
// does not match its hash (or is cut off) fails the parallel restore, and
// ToFile leaves the destination as it was and no temp file behind.
func TestParallelRestoreCorruptRecord(t *testing.T) {
	ctx := context.Background()
	fs, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	m, data := packedVersion(t, fs, 48, 16, 9)
	// The middle record of the second pack, by offset.
	packs := m.PackNames()
	var recs []manifest.Location
	for _, l := range m.Locs {
		if l.Pack == packs[1] {
			recs = append(recs, l)
		}
	}
	if len(recs) < 3 {
		t.Fatalf("pack %s holds %d records", packs[1], len(recs))
	}
	offsets := map[uint32]manifest.Location{}
	var sorted []uint32
	for _, l := range recs {
		offsets[l.Offset] = l
		sorted = append(sorted, l.Offset)
	}
	slices.Sort(sorted)
	mid := offsets[sorted[len(sorted)/2]]
	key := names.PackKey(mid.Pack.String())
	for _, tc := range []struct {
		name     string
		at       int64
		truncate bool
	}{
		{"flipped byte", int64(mid.Offset) + int64(mid.Length)/2, false},
		{"flipped encoding byte", int64(mid.Offset), false},
		{"cut short", int64(mid.Offset) + 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &hostileRanges{Store: fs, key: key, at: tc.at, truncate: tc.truncate}
			for _, parallel := range []int{1, 2, 8} {
				f := &memFile{b: make([]byte, m.Length)}
				err := restore.Write(ctx, s, m, f, parallel)
				if !errors.Is(err, manifest.ErrCorruptChunk) {
					t.Errorf("%d workers: %v, want a corrupt chunk", parallel, err)
				}
			}
			dir := t.TempDir()
			out := filepath.Join(dir, "db")
			old := []byte("the previous database")
			if err := os.WriteFile(out, old, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := restore.ToFile(ctx, s, m, out); !errors.Is(err, manifest.ErrCorruptChunk) {
				t.Fatalf("ToFile: %v, want a corrupt chunk", err)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, old) {
				t.Error("ToFile replaced the destination after a corrupt record")
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("%d files left in the directory, want the destination only", len(ents))
			}
		})
	}
	// The same store answering honestly restores the same bytes.
	out := filepath.Join(t.TempDir(), "db")
	if err := restore.ToFile(ctx, fs, m, out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("restored bytes differ")
	}
}
