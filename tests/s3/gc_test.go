//go:build cgo

package s3

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/s3test"
	"github.com/verneuil-go/verneuil/internal/gc"
	"github.com/verneuil-go/verneuil/internal/gc/gctest"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
)

// gcRun runs verneuilctl gc --json with args and returns its summary.
func gcRun(t *testing.T, cfgJSON func(...string) (string, string, int), args ...string) gc.Summary {
	t.Helper()
	out, errOut, code := cfgJSON(append([]string{"gc", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("gc %v: exit %d: %s", args, code, errOut)
	}
	var sums []gc.Summary
	if err := json.Unmarshal([]byte(out), &sums); err != nil || len(sums) != 1 {
		t.Fatalf("gc --json output %q: %v", out, err)
	}
	return sums[0]
}

// TestGCS3: retention and collection against the real server: the policy
// drops old versions at once, chunks wait for the grace period, and
// afterwards every retained version restores byte-identically and
// nothing unreferenced remains.
func TestGCS3(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	cfg := s3Config(t.TempDir(), endpoint, bucket, "gc")
	store := openStore(t, cfg)
	f := gctest.Build(t, store, 3, 5, 5, 7)
	run := func(args ...string) (string, string, int) { return ctl(t, cfg, args...) }

	dry := gcRun(t, run, "--dry-run", "--keep-last", "2", "--grace", "0")
	if dry.ManifestsDeleted != 9 || dry.MissingChunks != 0 {
		t.Fatalf("dry run: %+v", dry)
	}
	if n := f.CheckRestores(t, store); n != 15 {
		t.Fatalf("dry run deleted versions: %d left", n)
	}
	// Last-Modified has a one-second resolution.
	time.Sleep(1100 * time.Millisecond)
	first := gcRun(t, run, "--keep-last", "2", "--grace", "0")
	if first.ManifestsDeleted != 9 || first.ChunksDeleted == 0 || first.Requests.Deletes == 0 || first.MissingChunks != 0 {
		t.Fatalf("first run: %+v", first)
	}
	// An unreferenced chunk within the grace period stays.
	data := bytes.Repeat([]byte("orphan"), 1000)
	key := names.ChunkKey(manifest.HashOf(data).String())
	if err := store.Put(context.Background(), key, manifest.EncodeChunk(data)); err != nil {
		t.Fatal(err)
	}
	second := gcRun(t, run, "--grace", "1h")
	if second.ManifestsDeleted != 0 || second.ChunksDeleted != 0 || second.ChunksInGrace != 1 {
		t.Fatalf("second run: %+v", second)
	}
	time.Sleep(1100 * time.Millisecond)
	third := gcRun(t, run, "--keep-last", "2", "--grace", "0")
	if third.ManifestsDeleted != 0 || third.ChunksDeleted != 1 {
		t.Fatalf("third run: %+v", third)
	}
	missing, unref := gctest.Missing(t, store)
	if len(missing) != 0 || len(unref) != 0 {
		t.Fatalf("missing %v, unreferenced %v", missing, unref)
	}
	if n := f.CheckRestores(t, store); n != 6 {
		t.Fatalf("%d versions restored, want 6", n)
	}
}

// TestTouchS3: a touch resets Last-Modified and keeps the bytes; a
// missing object is not found.
func TestTouchS3(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	cfg := s3Config(t.TempDir(), endpoint, bucket, "touch")
	store := openStore(t, cfg)
	ctx := context.Background()
	data := bytes.Repeat([]byte("t"), 3000)
	if err := store.Put(ctx, "chunks/x", data); err != nil {
		t.Fatal(err)
	}
	ls := store.(blob.Lifecycle)
	before, err := ls.Stat(ctx, "chunks/x")
	if err != nil {
		t.Fatal(err)
	}
	// Longer than the slack within which a copy's time counts as new
	// (versitygw keeps the old time: Touch then writes the bytes again).
	time.Sleep(2500 * time.Millisecond)
	if err := store.(blob.Toucher).Touch(ctx, "chunks/x"); err != nil {
		t.Fatal(err)
	}
	after, err := ls.Stat(ctx, "chunks/x")
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime.After(before.ModTime) || after.Size != int64(len(data)) {
		t.Fatalf("touch: %v → %v, size %d", before.ModTime, after.ModTime, after.Size)
	}
	if got, err := store.Get(ctx, "chunks/x"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("touched object reads %d bytes, %v", len(got), err)
	}
	if err := store.(blob.Toucher).Touch(ctx, "chunks/missing"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("touch of a missing object: %v", err)
	}
}
