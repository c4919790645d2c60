package copier

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/spool"
)

// TestIdleScanWorkFollowsChangedDatabases: between full passes the
// background scan examines only the spools marked dirty: none while every
// database is idle, and a version published by another process (no
// Notify to this copier: a crashed writer, or one with its own copier)
// is found through its marker and uploaded.
func TestIdleScanWorkFollowsChangedDatabases(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	const n = 40
	c, root := newTestCopier(t, s, func(o *Options) { o.ScanMinAge = -1; o.FullScanInterval = time.Hour })
	for i := range n {
		stage(t, root, fmt.Sprintf("db%02d", i), uint64(i+1), randomBytes(testChunk, uint64(i)))
	}
	if err := c.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	if keys, err := spool.DirtyKeys(root); err != nil || len(keys) != 0 {
		t.Fatalf("dirty markers after every upload: %v, %v; want none", keys, err)
	}
	c.scan(ctx, false) // the first full pass
	before := c.Stats().SpoolsScanned
	if before != n {
		t.Fatalf("first pass examined %d spools, want %d", before, n)
	}
	for range 3 {
		c.scan(ctx, false)
	}
	if got := c.Stats().SpoolsScanned - before; got != 0 {
		t.Fatalf("idle scans examined %d spools, want 0", got)
	}

	// Another process publishes: no Notify reaches this copier.
	stage(t, root, "db07", 500, randomBytes(testChunk, 500))
	c.scan(ctx, false)
	if got := c.Stats().SpoolsScanned - before; got != 1 {
		t.Fatalf("scan after one commit examined %d spools, want 1", got)
	}
	waitFor(t, 10*time.Second, "the other process's version uploaded", func() bool {
		return latestSeq(t, s, "db07") == 500
	})
	waitFor(t, 10*time.Second, "the marker cleared by the upload", func() bool {
		keys, _ := spool.DirtyKeys(root)
		return len(keys) == 0
	})
}

// TestCrashLeftVersionIsFoundByANewCopier: a version published by a
// process that died before uploading is uploaded by the next copier,
// through its marker, even when that copier's full pass is already over.
func TestCrashLeftVersionIsFoundByANewCopier(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	c, root := newTestCopier(t, s, func(o *Options) { o.ScanMinAge = -1 })
	stage(t, root, "a", 1, randomBytes(testChunk, 1))
	if err := c.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	next := New(Options{SpoolDir: root, Targets: c.opts.Targets, ScanInterval: -1, ScanMinAge: -1, RateLimit: 10000})
	next.Start(ctx)
	t.Cleanup(func() { next.Close(ctx) })
	next.scan(ctx, false)                             // its full pass: nothing pending
	stage(t, root, "a", 2, randomBytes(testChunk, 2)) // the "crashed" writer
	next.scan(ctx, false)
	waitFor(t, 10*time.Second, "the crashed writer's version uploaded", func() bool {
		return latestSeq(t, s, "a") == 2
	})
}

// TestClearDirtyRemarksARacingPublish: a marker cleared for a stamp that
// is no longer the staged manifest's is made again, and the marker of a
// removed spool is dropped.
func TestClearDirtyRemarksARacingPublish(t *testing.T) {
	root := t.TempDir()
	stage(t, root, "a", 1, randomBytes(testChunk, 1))
	d := &spool.Dir{Path: filepath.Join(spool.DBsDir(root), "a"), Key: "a"}
	old, err := d.ManifestStamp()
	if err != nil {
		t.Fatal(err)
	}
	stage(t, root, "a", 2, randomBytes(testChunk, 2)) // published after old was found uploaded
	if err := spool.ClearDirty(root, "a", old); err != nil {
		t.Fatal(err)
	}
	if keys, _ := spool.DirtyKeys(root); len(keys) != 1 {
		t.Fatalf("markers after clearing a stale stamp: %v, want [a]", keys)
	}
	cur, _ := d.ManifestStamp()
	if err := spool.ClearDirty(root, "a", cur); err != nil {
		t.Fatal(err)
	}
	if keys, _ := spool.DirtyKeys(root); len(keys) != 0 {
		t.Fatalf("markers after clearing the current stamp: %v, want none", keys)
	}
	if err := spool.MarkDirty(root, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(spool.DBsDir(root), "gone")); err != nil {
		t.Fatal(err)
	}
	if err := spool.ClearDirty(root, "gone", cur); err != nil {
		t.Fatal(err)
	}
	if keys, _ := spool.DirtyKeys(root); len(keys) != 0 {
		t.Fatalf("marker of a removed spool kept: %v", keys)
	}
}

// TestUnusableDirtyDirFallsBackToFullPasses: a stray file where the
// marker directory belongs does not stop publishing, and the scans,
// unable to read markers, run full passes that find another process's
// version.
func TestUnusableDirtyDirFallsBackToFullPasses(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	c, root := newTestCopier(t, s, func(o *Options) { o.ScanMinAge = -1 })
	if err := os.WriteFile(spool.DirtyDir(root), []byte("stray"), 0o600); err != nil {
		t.Fatal(err)
	}
	stage(t, root, "a", 1, randomBytes(testChunk, 1))
	if err := c.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	c.scan(ctx, false) // the first full pass
	stage(t, root, "a", 2, randomBytes(testChunk, 2))
	errs := c.Stats().ScanErrors
	c.scan(ctx, false)
	waitFor(t, 10*time.Second, "the version found by a full pass uploaded", func() bool {
		return latestSeq(t, s, "a") == 2
	})
	if c.Stats().ScanErrors == errs {
		t.Fatal("unreadable markers not counted as a scan error")
	}
}
