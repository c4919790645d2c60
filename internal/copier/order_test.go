package copier

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// dbBytes returns n random bytes whose SQLite file change counter (header
// offset 24) is counter.
func dbBytes(n int, seed uint64, counter uint32) []byte {
	b := randomBytes(n, seed)
	binary.BigEndian.PutUint32(b[24:28], counter)
	return b
}

func latestManifest(t *testing.T, s *memStore, key string) *manifest.Manifest {
	t.Helper()
	b, ok := s.get(names.LatestKey(key))
	if !ok {
		t.Fatal("no latest")
	}
	m, _, err := manifest.Resolve(b, restore.BaseFetcher(context.Background(), s, key))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A database moved (same replica name) to a host whose clock is behind
// publishes versions numbered below the stored latest: they must still
// become latest, renumbered after it, with the skew counted.
func TestRegression_ClockBehindStillAdvancesLatest(t *testing.T) {
	s := newMemStore()
	old, rootOld := newTestCopier(t, s)
	moved, rootNew := newTestCopier(t, s)
	ctx := context.Background()

	stage(t, rootOld, "db", 1000, dbBytes(200, 1, 5))
	if err := old.Upload(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	// The new host's clock is behind: its first version is numbered 500.
	m1 := stage(t, rootNew, "db", 500, dbBytes(200, 2, 6))
	if err := moved.Upload(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	got := latestManifest(t, s, "db")
	if got.Seq != 1001 || !bytes.Equal(got.VersionID, m1.VersionID) {
		t.Fatalf("latest = version %d (%q), want the moved database's version renumbered 1001", got.Seq, got.VersionID)
	}
	if _, ok := s.get(names.ManifestKey("db", 1001)); !ok {
		t.Error("manifests/1001 missing")
	}
	if _, ok := s.get(names.ManifestKey("db", 500)); ok {
		t.Error("manifests/500 left behind, numbered before versions it follows")
	}
	// The next version, still numbered from the slow clock, follows.
	m2 := stage(t, rootNew, "db", 501, dbBytes(200, 3, 7))
	if err := moved.Upload(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	got = latestManifest(t, s, "db")
	if got.Seq != 1002 || !bytes.Equal(got.VersionID, m2.VersionID) {
		t.Fatalf("latest = version %d (%q), want %q renumbered 1002", got.Seq, got.VersionID, m2.VersionID)
	}
	if n := moved.Stats().Resequenced; n != 2 {
		t.Errorf("Resequenced = %d, want 2", n)
	}
	// Uploaded, the spool is clean: nothing more to do.
	d, err := spool.Existing(rootNew, "db")
	if err != nil {
		t.Fatal(err)
	}
	puts := s.count("put")
	if err := moved.Upload(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	if s.count("put") != puts {
		t.Error("a clean spool was uploaded again")
	}
	if up, _, err := d.Uploaded(); err != nil || up == nil || up.Seq != 1002 {
		t.Errorf("upload record = %v, %v; want version 1002", up, err)
	}
	// A version the store's latest descends from (its change counter is
	// behind) is older: it does not replace latest, is counted, and its
	// upload fails saying so.
	stage(t, rootOld, "db", 1001, dbBytes(200, 4, 6))
	if err := old.Upload(ctx, "db"); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("Upload of an older state: %v, want ErrSuperseded", err)
	}
	if got := latestManifest(t, s, "db"); got.Seq != 1002 {
		t.Errorf("latest = %d after an older state was uploaded, want 1002", got.Seq)
	}
	// At least 1: the failed Upload scheduled a background retry (50 ms
	// on), which is superseded again and counted too.
	if n := old.Stats().Superseded; n < 1 {
		t.Errorf("Superseded = %d, want at least 1", n)
	}
}

// Where the spool falls back to rename(2) on a file system with coarse
// times, a new manifest can get the inode, size and mtime of the one
// uploaded before: the stamp repeats. UploadAll (Replicator.Flush) and the
// scan must not take the new manifest for the uploaded one.
func TestRegression_CoarseStampsDoNotHideNewManifest(t *testing.T) {
	s := newMemStore()
	c, root := newTestCopier(t, s)
	ctx := context.Background()
	m1 := stage(t, root, "db", 1, dbBytes(200, 1, 1))
	d, err := spool.Existing(root, "db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(d.Path, "manifest")
	coarse := time.Unix(1_700_000_000, 0)
	if err := os.Chtimes(path, coarse, coarse); err != nil {
		t.Fatal(err)
	}
	if err := c.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := latestSeq(t, s, "db"); got != 1 {
		t.Fatalf("latest = %d, want 1", got)
	}
	enc1, err := m1.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// Publishes version seq, encoded to the same size as version 1, in
	// the same inode with the same mtime: the stamp repeats.
	repeatStamp := func(seq uint64) {
		t.Helper()
		var enc []byte
		for seed := seq * 1000; enc == nil || len(enc) != len(enc1); seed++ {
			if seed > seq*1000+1000 {
				t.Fatal("no same-size manifest found")
			}
			data := dbBytes(200, seed, uint32(seq))
			m := *m1
			m.Seq, m.VersionID = seq, []byte(fmt.Sprint(seq))
			m.Chunk0 = data
			m.Chunks = []manifest.Hash{manifest.HashOf(data)}
			m.HeaderHash = manifest.HashOf(data[:100])
			if enc, err = m.Encode(); err != nil {
				t.Fatal(err)
			}
		}
		before, err := d.ManifestStamp()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, enc, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, coarse, coarse); err != nil {
			t.Fatal(err)
		}
		if after, err := d.ManifestStamp(); err != nil || after != before {
			t.Fatalf("could not repeat the stamp: %+v then %+v (%v)", before, after, err)
		}
	}
	repeatStamp(2)
	if err := c.UploadAll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := latestSeq(t, s, "db"); got != 2 {
		t.Fatalf("latest = %d after UploadAll, want 2", got)
	}
	// The background scan must notice a new version behind a repeated
	// stamp too, and have it uploaded.
	repeatStamp(3)
	c.Scan(ctx)
	waitFor(t, 10*time.Second, "the scan to have version 3 uploaded", func() bool { return latestSeq(t, s, "db") == 3 })
}

// stageState publishes in the spool at root a version seq of a 200-byte
// database whose header has change counter counter and whose version id
// carries a version xattr (transaction xseq, process proc, its n-th
// transaction), as the tracker records it.
func stageState(t *testing.T, root string, seq uint64, counter uint32, xseq, proc, n uint64, seed uint64) *manifest.Manifest {
	t.Helper()
	d, err := spool.Open(root, "db", spool.Info{Path: "/data/db.db", Name: "test:db"})
	if err != nil {
		t.Fatal(err)
	}
	data := dbBytes(200, seed, counter)
	xattr := binary.BigEndian.AppendUint64(nil, xseq)
	xattr = binary.BigEndian.AppendUint64(xattr, proc)
	xattr = binary.BigEndian.AppendUint64(xattr, n)
	id := binary.BigEndian.AppendUint64(nil, 42)
	id = append(append(append(id, byte(len(xattr))), xattr...), data[:100]...)
	m := &manifest.Manifest{Name: "test:db", Seq: seq, CommitTime: time.Unix(0, int64(xseq)), ChunkSize: testChunk,
		Length: int64(len(data)), Chunk0: data, Chunks: []manifest.Hash{manifest.HashOf(data)},
		HeaderHash: manifest.HashOf(data[:100]), VersionID: id}
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := d.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := d.Publish(m, enc); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRegression_ExclusiveModeBehindClockAdvancesLatest: a database in
// locking_mode=EXCLUSIVE (one change counter for the whole lock session)
// moved to a host whose clock is behind. Its first version is renumbered
// after the store's latest; its second, numbered by the slow clock before
// the tracker heard of the renumbering (or by a process that never hears
// of it), has the same change counter. It is a later state (its version
// xattr continues the first's) and must become latest, not be dropped as
// "superseded" while status says up to date.
func TestRegression_ExclusiveModeBehindClockAdvancesLatest(t *testing.T) {
	s := newMemStore()
	old, rootOld := newTestCopier(t, s)
	moved, rootNew := newTestCopier(t, s)
	ctx := context.Background()
	stageState(t, rootOld, 1000, 5, 1000, 1, 9, 1)
	if err := old.Upload(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	stageState(t, rootNew, 500, 6, 500, 2, 1, 2)
	if err := moved.Upload(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	if got := latestManifest(t, s, "db"); got.Seq != 1001 {
		t.Fatalf("latest = %d, want the moved database's first version renumbered 1001", got.Seq)
	}
	m2 := stageState(t, rootNew, 501, 6, 501, 2, 2, 3)
	if err := moved.Upload(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	got := latestManifest(t, s, "db")
	if got.Seq != 1002 || !bytes.Equal(got.VersionID, m2.VersionID) {
		t.Fatalf("latest = version %d, want the second state renumbered 1002", got.Seq)
	}
}

// TestRegression_SupersededVersionFailsVisibly: a database whose versions
// cannot be made latest (the store's latest is numbered above them and is
// not an earlier state of it: a host whose clock is behind writing a
// database recreated or restored from an older copy, or two hosts writing
// one replica name) must not look replicated: the upload (so flush) fails
// naming the cause, and the spool's last_error (status) says it, until a
// version does become latest.
func TestRegression_SupersededVersionFailsVisibly(t *testing.T) {
	s := newMemStore()
	a, rootA := newTestCopier(t, s)
	b, rootB := newTestCopier(t, s)
	ctx := context.Background()
	stageState(t, rootA, 1000, 100, 1000, 1, 1, 1)
	if err := a.Upload(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	// B: a fresh database (change counter 6) numbered by a clock behind.
	stageState(t, rootB, 500, 6, 500, 2, 1, 2)
	err := b.Upload(ctx, "db")
	if err == nil || !errors.Is(err, ErrSuperseded) {
		t.Fatalf("Upload of a version the store's latest supersedes: %v, want ErrSuperseded", err)
	}
	d, derr := spool.Existing(rootB, "db")
	if derr != nil {
		t.Fatal(derr)
	}
	le, lerr := d.ReadLastError()
	if lerr != nil || le == nil || !strings.Contains(le.Message, "latest") {
		t.Fatalf("last_error = %+v, %v; want the supersession recorded for status", le, lerr)
	}
	if got := latestManifest(t, s, "db"); got.Seq != 1000 {
		t.Fatalf("latest = %d, want A's 1000 kept", got.Seq)
	}
	// A second flush must not report success either (nothing was
	// recorded as uploaded).
	before := s.count("all")
	if err := b.Upload(ctx, "db"); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("second Upload: %v, want ErrSuperseded", err)
	}
	// A retry costs the manifest PUT and the read of latest, no more.
	if n := s.count("all") - before; n > 2 {
		t.Errorf("a retry of a superseded version took %d requests, want at most 2", n)
	}
	// Once B's clock passes A's numbers, its next version is latest and
	// the record is cleared.
	stageState(t, rootB, 2000, 7, 2000, 2, 2, 3)
	if err := b.Upload(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	if le, err := d.ReadLastError(); err != nil || le != nil {
		t.Fatalf("last_error = %+v, %v after a successful upload", le, err)
	}
}
