package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// A later state numbered below the last upload (the clock went back, or
// the database moved to a host whose clock is behind) is still pending:
// status must not say "up to date".
func TestRegression_StatusPendingWhenNumberedBelowUpload(t *testing.T) {
	root := t.TempDir()
	d, err := spool.Open(root, "k", spool.Info{Path: "/x.db", Name: "h:/x.db"})
	if err != nil {
		t.Fatal(err)
	}
	version := func(seq uint64, counter uint32) (*manifest.Manifest, []byte) {
		c0 := make([]byte, 100)
		binary.BigEndian.PutUint32(c0[24:28], counter)
		m := &manifest.Manifest{Name: "h:/x.db", Seq: seq, CommitTime: time.Unix(int64(seq), 0), ChunkSize: 65536,
			Length: 100, Chunk0: c0, Chunks: []manifest.Hash{manifest.HashOf(c0)}, VersionID: []byte(fmt.Sprint(counter))}
		enc, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return m, enc
	}
	_, up := version(1000, 5)
	if err := d.MarkUploaded(up); err != nil {
		t.Fatal(err)
	}
	m, enc := version(500, 6)
	unlock, err := d.Lock()
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Publish(m, enc)
	unlock()
	if err != nil {
		t.Fatal(err)
	}
	if st := statusOf(root, "k", time.Now()); !st.Pending {
		t.Errorf("status: staged version %d (a later state than uploaded version %d) not pending", st.StagedVersion, st.UploadedVersion)
	}
}

// TestRegression_StatusDatabaseDeleted: a spooled database whose file was
// deleted is not "up to date" (there is nothing left to be up to date
// with), and one whose spool holds a forked child's rescan marker says
// that those writes were never replicated.
func TestRegression_StatusDatabaseDeleted(t *testing.T) {
	s := newTestSpool(t)
	path := filepath.Join(s.dir, "gone.db")
	s.writeThroughVFS(t, path, "_journal_mode=DELETE", "CREATE TABLE t(a)", "INSERT INTO t VALUES(1)")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if r := s.status(t, path); !r.Missing || !strings.Contains(r.Reason, "no longer exists") {
		t.Errorf("status --json of a deleted database: %+v", r)
	}
	out, _, _ := s.ctl(t, "status")
	if strings.Contains(out, "up to date") || !strings.Contains(out, "missing") {
		t.Errorf("status of a deleted database:\n%s", out)
	}
	key := names.Key(names.Replica("ctltest", path))
	marker := filepath.Join(spool.DBsDir(s.spoolDir), key, spool.RescanMarker)
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := s.status(t, path); !r.Missing || !strings.Contains(r.Reason, "never replicated") {
		t.Errorf("status --json of a deleted database with a rescan marker: %+v", r)
	}
}
