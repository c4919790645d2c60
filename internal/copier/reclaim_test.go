package copier

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/spool"
)

// openSpoolFor creates the spool of key for the database file at path (so
// that stage, which does not overwrite db.json, stages versions of it).
func openSpoolFor(t *testing.T, root, key, path string) {
	t.Helper()
	if _, err := spool.Open(root, key, spool.Info{Path: path, Name: "test:" + key}); err != nil {
		t.Fatal(err)
	}
}

func spoolExists(root, key string) bool {
	_, err := os.Stat(spoolPath(root, key))
	return err == nil
}

// TestScanReclaimsOnlyUploadedSpoolsOfDeletedDatabases: a scan removes
// the spool of a deleted database whose last version is uploaded (even
// with a rescan asked for, which no one can do any more), and never one
// with a version still to upload or whose database file exists.
func TestScanReclaimsOnlyUploadedSpoolsOfDeletedDatabases(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	// ScanMinAge: the scans leave the pending spool to "its writer" (else,
	// on a slow machine, the first scan uploads it and the second reclaims it).
	c, root := newTestCopier(t, s, func(o *Options) { o.ReclaimAfter = time.Nanosecond; o.ScanMinAge = time.Hour })
	dir := t.TempDir()
	cases := []struct {
		key       string
		deleted   bool
		uploaded  bool
		rescan    bool
		reclaimed bool
	}{
		{"gone-uploaded", true, true, false, true},
		{"gone-pending", true, false, false, false},
		// Nothing can rescan a deleted file: a rescan asked for only
		// delays the reclaim like a write (ReclaimAfter).
		{"gone-rescan", true, true, true, true},
		{"live-uploaded", false, true, false, false},
	}
	for i, tc := range cases {
		path := filepath.Join(dir, tc.key+".db")
		if err := os.WriteFile(path, []byte("db"), 0o600); err != nil {
			t.Fatal(err)
		}
		openSpoolFor(t, root, tc.key, path)
		stage(t, root, tc.key, uint64(10+i), randomBytes(3*testChunk, uint64(i)))
		if tc.uploaded {
			if err := c.Upload(ctx, tc.key); err != nil {
				t.Fatal(err)
			}
		}
		if tc.rescan {
			d, err := spool.Existing(root, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.MarkRescan("test"); err != nil {
				t.Fatal(err)
			}
		}
		if tc.deleted {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.Scan(ctx)
	c.Scan(ctx) // a second pass finds the spools known clean
	for _, tc := range cases {
		if got := !spoolExists(root, tc.key); got != tc.reclaimed {
			t.Errorf("%s: reclaimed = %v, want %v", tc.key, got, tc.reclaimed)
		}
	}
	if _, err := os.Stat(filepath.Join(root, spool.ReclaimedDirName)); err == nil {
		ents, _ := os.ReadDir(filepath.Join(root, spool.ReclaimedDirName))
		if len(ents) != 0 {
			t.Errorf("reclaimed spools left behind: %v", ents)
		}
	}
}

// TestRecreatedDatabaseReplicatesAfterReclaim: a database deleted, its
// spool reclaimed, then created again at the same path replicates again,
// numbered after what the store has.
func TestRecreatedDatabaseReplicatesAfterReclaim(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	c, root := newTestCopier(t, s, func(o *Options) { o.ReclaimAfter = time.Nanosecond })
	path := filepath.Join(t.TempDir(), "a.db")
	if err := os.WriteFile(path, []byte("db"), 0o600); err != nil {
		t.Fatal(err)
	}
	openSpoolFor(t, root, "a", path)
	stage(t, root, "a", 100, randomBytes(2*testChunk, 1))
	if err := c.Upload(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	c.Scan(ctx)
	if spoolExists(root, "a") {
		t.Fatal("spool of the deleted database not reclaimed")
	}
	if err := os.WriteFile(path, []byte("db2"), 0o600); err != nil {
		t.Fatal(err)
	}
	openSpoolFor(t, root, "a", path)
	stage(t, root, "a", 200, randomBytes(2*testChunk, 2))
	c.Notify("a")
	waitFor(t, 10*time.Second, "the re-created database's version in the store", func() bool {
		return latestSeq(t, s, "a") == 200
	})
	c.Scan(ctx)
	if !spoolExists(root, "a") {
		t.Fatal("spool of the re-created database reclaimed")
	}
}

// TestScanWorkIsBoundedPerScan: with many spools, one scan reads at most
// ScanBatch of them, and successive scans cover them all; the records of
// spools found uploaded are not kept.
func TestScanWorkIsBoundedPerScan(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	const n, batch = 50, 7
	c, root := newTestCopier(t, s, func(o *Options) { o.ScanBatch = batch; o.ScanMinAge = -1 })
	for i := range n {
		stage(t, root, fmt.Sprintf("db%02d", i), uint64(i+1), randomBytes(testChunk, uint64(i)))
	}
	c.Scan(ctx)
	c.mu.Lock()
	records := len(c.dbs)
	c.mu.Unlock()
	if records > batch {
		t.Fatalf("one scan made %d records, want at most %d", records, batch)
	}
	for range n/batch + 1 {
		c.Scan(ctx)
	}
	waitFor(t, 10*time.Second, "every spool uploaded", func() bool {
		for i := range n {
			if latestSeq(t, s, fmt.Sprintf("db%02d", i)) != uint64(i+1) {
				return false
			}
		}
		return true
	})
}

// TestRestartDoesNotReadEveryOldSpool: a process started over many
// uploaded spools examines only ScanBatch of them at its first scan,
// keeps no record for them (a stamp only), and drops the records of
// databases idle for ForgetIdle; a commit makes the record again.
func TestRestartDoesNotReadEveryOldSpool(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	const n, batch = 300, 100
	first, root := newTestCopier(t, s)
	for i := range n {
		stage(t, root, fmt.Sprintf("db%03d", i), uint64(i+1), randomBytes(testChunk, uint64(i)))
	}
	if err := first.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	c := New(Options{SpoolDir: root, Targets: first.opts.Targets, ScanInterval: -1, ScanBatch: batch,
		ForgetIdle: time.Nanosecond, RateLimit: 10000})
	t.Cleanup(func() { c.Close(ctx) })
	c.Scan(ctx)
	if got := c.Stats().Databases; got != batch {
		t.Fatalf("first scan of a restart knows %d databases, want %d (one batch)", got, batch)
	}
	c.mu.Lock()
	records, idle := len(c.dbs), len(c.idle)
	c.mu.Unlock()
	if records != 0 || idle != batch {
		t.Fatalf("after a scan of uploaded spools: %d records and %d idle stamps, want 0 and %d", records, idle, batch)
	}
	stage(t, root, "db000", 1000, randomBytes(testChunk, 1000))
	if err := c.Upload(ctx, "db000"); err != nil {
		t.Fatal(err)
	}
	if latestSeq(t, s, "db000") != 1000 {
		t.Fatal("commit after the record was dropped not uploaded")
	}
	c.mu.Lock()
	_, recorded := c.dbs["db000"]
	c.mu.Unlock()
	if !recorded {
		t.Fatal("no record made for a database that committed")
	}
	c.Scan(ctx) // forgets it again: idle for more than ForgetIdle
	c.mu.Lock()
	records = len(c.dbs)
	c.mu.Unlock()
	if records != 0 {
		t.Fatalf("%d records after idle, want 0", records)
	}
}

// TestUploadOfReclaimedSpool: an upload of a spool that another process
// reclaimed meanwhile says it is not found, is not retried, and leaves no
// pending or failing record (it is then forgotten).
func TestUploadOfReclaimedSpool(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	c, root := newTestCopier(t, s)
	stage(t, root, "r", 5, randomBytes(testChunk, 5))
	if err := c.Upload(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	done, err := spool.Reclaim(root, "r", 0, c.recordCovers)
	if err != nil || !done {
		t.Fatalf("Reclaim = %v, %v", done, err)
	}
	if err := c.Upload(ctx, "r"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Upload of a reclaimed spool = %v, want not found", err)
	}
	if err := c.UploadAll(ctx); err != nil {
		t.Fatalf("UploadAll with a reclaimed spool: %v", err)
	}
	c.Notify("r") // a stale signal: the background upload finds it gone
	waitFor(t, 10*time.Second, "the stale signal settled", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		st := c.dbs["r"]
		return st == nil || (st.sched == idle && !st.pending)
	})
	c.Scan(ctx)
	c.mu.Lock()
	_, kept := c.dbs["r"]
	c.mu.Unlock()
	if kept {
		t.Fatal("record of a reclaimed spool kept")
	}
}
