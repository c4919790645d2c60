package main

import (
	"context"
	"database/sql"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestRegression_SupersededReplicaSyncTakeOver: the store's latest for a
// database's name is another state numbered an hour ahead (a host whose
// clock was ahead wrote the name, and this host's database was recreated:
// its change counter is behind). Flush and sync fail and say why (never
// "ok" while the replica shows another state), status shows it failing,
// and `sync --take-over`, for an operator who checked that this host is
// the only writer, makes the database the replica's latest.
func TestRegression_SupersededReplicaSyncTakeOver(t *testing.T) {
	s := newTestSpool(t)
	path := filepath.Join(s.dir, "app.db")
	key := names.Key(names.Replica("ctltest", path))
	store, err := fileblob.OpenDir(s.store, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The other state: change counter 1000, numbered an hour ahead.
	c0 := make([]byte, 4096)
	copy(c0, "SQLite format 3\x00")
	binary.BigEndian.PutUint32(c0[24:28], 1000)
	ahead := uint64(time.Now().Add(time.Hour).UnixNano())
	other := &manifest.Manifest{Name: names.Replica("ctltest", path), Seq: ahead, CommitTime: time.Now().Add(time.Hour),
		ChunkSize: 65536, Length: 4096, Chunk0: c0, Chunks: []manifest.Hash{manifest.HashOf(c0)},
		HeaderHash: manifest.HashOf(c0[:100]), VersionID: []byte("elsewhere")}
	enc, err := other.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{names.ManifestKey(key, ahead), names.LatestKey(key)} {
		if err := store.Put(ctx, k, enc); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(s.config)
	if err != nil {
		t.Fatal(err)
	}
	r, err := replicator.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?vfs=verneuil&_journal_mode=DELETE")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE TABLE t(a)", "INSERT INTO t VALUES(1)"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	if err := r.Flush(ctx); err == nil || !strings.Contains(err.Error(), "latest") {
		t.Errorf("Flush of a database the replica's latest supersedes: %v", err)
	}
	r.Close(ctx) // fails the same way

	if _, errOut, code := s.ctl(t, "sync", path); code == 0 || !strings.Contains(errOut, "latest") {
		t.Errorf("sync of a database the replica's latest supersedes: exit %d: %s", code, errOut)
	}
	if r := s.status(t, path); r.LastError == nil || !strings.Contains(r.LastError.Message, "latest") {
		t.Errorf("status does not show the superseded upload: %+v", r)
	}
	if _, errOut, code := s.ctl(t, "sync", "--take-over", path); code != 0 {
		t.Fatalf("sync --take-over: exit %d: %s", code, errOut)
	}
	m, err := restore.Latest(ctx, store, key)
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq <= ahead {
		t.Fatalf("latest = version %d, want one above %d", m.Seq, ahead)
	}
	out := filepath.Join(s.dir, "restored.db")
	if err := restore.ToFile(ctx, store, m, out); err != nil {
		t.Fatal(err)
	}
	if testutil.FileSHA256(t, out) != testutil.FileSHA256(t, path) {
		t.Fatal("the replica's latest is not the database after sync --take-over")
	}
	if r := s.status(t, path); r.LastError != nil || r.Pending {
		t.Errorf("status after sync --take-over: %+v", r)
	}
}
