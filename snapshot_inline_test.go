package verneuil_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestInlineChunksThroughReaders: one-row commits published as latest
// only carry their changed chunks inside the latest object (no chunk
// object). A snapshot read transaction pinned to such a version keeps
// reading it byte for byte while later commits move latest on (its
// inline chunks are gone from the store by then), and a restore of
// latest is the database byte for byte.
func TestInlineChunksThroughReaders(t *testing.T) {
	hour := config.Duration(time.Hour)
	e := snapEnv(t, func(c *config.Config) {
		c.SnapshotRefreshInterval = 1
		c.UploadInterval = config.Duration(20 * time.Millisecond)
		c.HistoryInterval = &hour
	})
	path := filepath.Join(e.dir, "inline.db")
	src := e.open(path, "_journal_mode=TRUNCATE")
	mustExec(t, src, "CREATE TABLE kv(k INTEGER PRIMARY KEY, v BLOB)")
	for i := range 300 { // about 6 chunks: the next rows change the tail
		mustExec(t, src, "INSERT INTO kv VALUES(?, randomblob(1000))", i)
	}
	if err := e.r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	store := testutil.OpenFileStore(t, e.store)
	key := testutil.ReplicaKey(t, "testhost", path)
	ctx := context.Background()
	snap := openSnap(t, path, "")
	snap.SetMaxOpenConns(2)
	// commit inserts a row and waits until the replica reads it; it
	// returns the rows and the latest manifest.
	next := 300
	commit := func() string {
		t.Helper()
		mustExec(t, src, "INSERT INTO kv VALUES(?, randomblob(1000))", next)
		next++
		want := rows(t, src)
		deadline := time.Now().Add(20 * time.Second)
		for rows(t, snap) != want {
			if time.Now().After(deadline) {
				t.Fatalf("row %d never reached the replica", next-1)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return want
	}
	want := commit()
	m, err := restore.Latest(ctx, store, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Inline) == 0 {
		t.Fatalf("version %d (latest only: %v) carries no inline chunk", m.Seq, !exists(filepath.Join(e.store, names.ManifestKey(key, m.Seq))))
	}
	var gone []string
	for h := range m.Inline {
		p := filepath.Join(e.store, names.ChunkKey(h.String()))
		if exists(p) {
			t.Fatalf("inline chunk %s is also a chunk object", h)
		}
		gone = append(gone, p)
	}
	// A read transaction pins this version (its first read), then latest
	// moves on several times.
	conn, err := snap.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Rollback()
	var n int
	if err := conn.QueryRow("SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		t.Fatal(err)
	}
	pinned, _ := snapVersion(t, conn)
	for range 5 {
		commit()
	}
	if latest, _ := restore.Latest(ctx, store, key); latest == nil || latest.Seq == pinned {
		t.Fatal("latest did not move on")
	}
	if got := rows(t, conn); got != want {
		t.Fatalf("the read transaction pinned to version %d reads other rows once latest moved on", pinned)
	}
	if err := conn.Commit(); err != nil {
		t.Fatal(err)
	}
	absent := 0
	for _, p := range gone {
		if !exists(p) {
			absent++ // read from the pinned version's inline bytes only
		}
	}
	if absent == 0 {
		t.Fatal("every inline chunk of the pinned version was stored meanwhile: the test read nothing inline only")
	}
	// The newest version (the replica reads the last commit, nothing
	// else is pending): restore is the database byte for byte.
	last := testutil.RestoreCompare(t, store, key, path)
	if len(last.Inline) == 0 {
		t.Fatalf("the last version %d carries no inline chunk", last.Seq)
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
