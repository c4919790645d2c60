package copier

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// TestScanTidiesUploadKilledAfterRecord: an uploader killed after it
// recorded its upload but before it removed its pin and the staged chunks
// it uploaded (the state is rebuilt here as SIGKILL leaves it) left the
// spool holding a whole version's chunks, which nothing removed until the
// database's next commit: forever, for a database no longer written. The
// next process's scan removes the stale pin and those chunks; a damaged pin
// goes the same way.
func TestScanTidiesUploadKilledAfterRecord(t *testing.T) {
	for _, pin := range []string{"stale", "damaged"} {
		t.Run(pin, func(t *testing.T) {
			ctx := context.Background()
			s := newMemStore()
			first, root := newTestCopier(t, s)
			data := randomBytes(6*testChunk, 9)
			m := stage(t, root, "k", 10, data)
			if err := first.Upload(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			d, err := spool.Existing(root, "k")
			if err != nil {
				t.Fatal(err)
			}
			_, enc, err := d.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if pin == "damaged" {
				enc = enc[:len(enc)/2]
			}
			if err := os.WriteFile(filepath.Join(d.Path, spool.PinFile), enc, 0o600); err != nil {
				t.Fatal(err)
			}
			for i := 1; i < len(m.Chunks); i++ {
				c := data[i*testChunk : (i+1)*testChunk]
				if err := d.StageChunk(manifest.HashOf(c), c); err != nil {
					t.Fatal(err)
				}
			}
			// The next process.
			next := New(Options{SpoolDir: root, Targets: []blob.Store{s}, ScanInterval: -1, ReclaimAfter: -1})
			next.Scan(ctx)
			if staged, err := d.StagedChunks(); err != nil || len(staged) != 0 {
				t.Errorf("staged chunks after the scan: %d (%v), want none: all uploaded", len(staged), err)
			}
			if _, err := os.Stat(filepath.Join(d.Path, spool.PinFile)); !os.IsNotExist(err) {
				t.Errorf("pin of the killed upload still there: %v", err)
			}
			// Still replicated, and nothing to upload.
			if got := latestSeq(t, s, "k"); got != 10 {
				t.Errorf("latest = %d, want 10", got)
			}
		})
	}
}
