package verneuil_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestSnapshotPinsLatestOnly: with history_interval long, the versions
// after the first are published as latest only (no manifests/SEQ);
// snapshot pins version= and at= still open the newest, and closing the
// replicator (a flush) writes it to history.
func TestSnapshotPinsLatestOnly(t *testing.T) {
	hour := config.Duration(time.Hour)
	e := snapEnv(t, func(c *config.Config) {
		c.SnapshotRefreshInterval = 1
		c.UploadInterval = config.Duration(20 * time.Millisecond)
		c.HistoryInterval = &hour
	})
	path := filepath.Join(e.dir, "pins.db")
	src := e.open(path, "_journal_mode=TRUNCATE")
	mustExec(t, src, "CREATE TABLE kv(k INTEGER PRIMARY KEY, v BLOB)")
	if err := e.r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap := openSnap(t, path, "")
	snap.SetMaxOpenConns(1)
	var seq uint64
	var at, want, hist string
	key := testutil.ReplicaKey(t, "testhost", path)
	// Versions whose latest would be full get a history object (a new
	// delta base); the others within the hour are latest only.
	for i := 0; ; i++ {
		if i == 10 {
			t.Fatal("10 versions, each with a history object, within history_interval")
		}
		mustExec(t, src, "INSERT INTO kv VALUES(?, randomblob(300))", i)
		want = rows(t, src)
		deadline := time.Now().Add(20 * time.Second)
		for rows(t, snap) != want {
			if time.Now().After(deadline) {
				t.Fatalf("insert %d never reached the replica", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
		seq, at = snapVersion(t, snap)
		hist = filepath.Join(e.store, names.ManifestKey(key, seq))
		if _, err := os.Stat(hist); err != nil {
			break // latest only
		}
	}
	if got := rows(t, openSnap(t, path, fmt.Sprintf("version=%d", seq))); got != want {
		t.Errorf("version=%d: rows differ", seq)
	}
	if got := rows(t, openSnap(t, path, "at="+url.QueryEscape(at))); got != want {
		t.Errorf("at=%s: rows differ", at)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(hist); err != nil {
		t.Fatalf("after close, version %d is not in history: %v", seq, err)
	}
}
