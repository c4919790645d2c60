package main

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
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
