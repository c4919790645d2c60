package copier

import (
	"bytes"
	"context"
	"testing"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// TestNewBaseLatestIsDelta: when the chain rule starts a new base, its
// manifests/SEQ is the full manifest and latest the small delta of the
// same version against the previous base (one full upload per base, not
// two); latest restores that version, and the next versions are deltas
// against the new base.
func TestNewBaseLatestIsDelta(t *testing.T) {
	s := newMemStore()
	const fullEvery = 4
	c, root := newTestCopier(t, s, func(o *Options) { o.FullEvery = fullEvery })
	ctx := context.Background()
	data := randomBytes(40*testChunk, 3)
	var newBases int
	prevBase := uint64(0)
	for seq := uint64(1); seq <= 13; seq++ {
		data[27] = byte(seq) // the change counter: a new state
		data[int(seq)*testChunk+9] ^= 0xff
		stage(t, root, "nb", seq, data)
		if err := c.Upload(ctx, "nb"); err != nil {
			t.Fatalf("upload %d: %v", seq, err)
		}
		obj, _ := s.get(names.ManifestKey("nb", seq))
		_, hist, err := manifest.DecodeObject(obj)
		if err != nil {
			t.Fatalf("manifests/%d: %v", seq, err)
		}
		latestObj, _ := s.get(names.LatestKey("nb"))
		_, ld, err := manifest.DecodeObject(latestObj)
		if err != nil {
			t.Fatalf("latest at %d: %v", seq, err)
		}
		switch {
		case hist != nil:
			if !bytes.Equal(obj, latestObj) {
				t.Fatalf("version %d: latest differs from its delta under manifests/", seq)
			}
			if hist.BaseSeq != prevBase {
				t.Fatalf("version %d: delta against %d, want the base %d", seq, hist.BaseSeq, prevBase)
			}
		case ld == nil:
			prevBase = seq // a full manifest in both (no usable base yet)
		default:
			if ld.BaseSeq != prevBase {
				t.Fatalf("version %d is a new base: latest is a delta against %d, want the old base %d", seq, ld.BaseSeq, prevBase)
			}
			newBases++
			prevBase = seq
		}
		m, _, err := manifest.Resolve(latestObj, restore.BaseFetcher(ctx, s, "nb"))
		if err != nil {
			t.Fatalf("restore latest at %d: %v", seq, err)
		}
		f := memFile{make([]byte, m.Length)}
		if err := restore.Write(ctx, s, m, &f, 4); err != nil {
			t.Fatal(err)
		}
		if m.Seq != seq || !bytes.Equal(f.b, data) {
			t.Fatalf("latest at %d restores version %d, equal=%v", seq, m.Seq, bytes.Equal(f.b, data))
		}
	}
	if newBases < 2 {
		t.Fatalf("%d new bases in 13 versions with a chain bound of %d", newBases, fullEvery)
	}
}
