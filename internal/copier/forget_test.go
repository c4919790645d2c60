package copier

import (
	"context"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/spool"
)

// TestRegression_ScanNoticesForgottenUploadRecord: another process drops
// a spool's upload record (a writer started with other targets forgets
// records that do not cover them). The staged manifest is unchanged, but
// the database is pending again: the scan of a copier that had found the
// spool clean must upload it, not skip it on its unchanged stamp forever
// (the copier daemon left such spools pending).
func TestRegression_ScanNoticesForgottenUploadRecord(t *testing.T) {
	s := newMemStore()
	c, root := newTestCopier(t, s)
	ctx := context.Background()
	stage(t, root, "db", 1, randomBytes(2*testChunk, 1))
	if err := c.Upload(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	c.Scan(ctx) // finds it clean
	d, err := spool.Existing(root, "db")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.ForgetUploaded(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the scan to upload the spool again", func() bool {
		c.Scan(ctx) // the manifest may still be too fresh for the scan
		up, _, err := d.Uploaded()
		return err == nil && up != nil
	})
}
