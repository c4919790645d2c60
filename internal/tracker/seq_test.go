package tracker

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/spool"
)

// After the copier renumbered a version after the store's latest (its
// clock-derived number was not above it), the tracker numbers later
// versions after the renumbered one: at once through ContinueAfter, and
// in a new process from the upload record.
func TestRegression_TrackerContinuesAfterRenumberedVersion(t *testing.T) {
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	dbPath := filepath.Join(dir, "x.db")
	if err := os.WriteFile(dbPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f := &memFile{data: make([]byte, 70000), xattr: binary.BigEndian.AppendUint64(nil, 1000)}
	header := func() []byte { b := make([]byte, HeaderLen); f.ReadAt(b, 0); return b }
	commit := func(m *Manager, h uint64, seq uint64) {
		t.Helper()
		preX, preH := append([]byte(nil), f.xattr...), header()
		f.xattr = binary.BigEndian.AppendUint64(nil, seq)
		binary.BigEndian.PutUint32(f.data[24:], binary.BigEndian.Uint32(f.data[24:])+1)
		m.Capture(h, f, Event{Kind: Commit, Dirty: []uint32{0}, PreXattr: preX, PreHeader: preH, PostXattr: f.xattr, Seq: seq})
		if err := m.DB(dbPath).build(); err != nil {
			t.Fatal(err)
		}
	}
	var d *spool.Dir
	staged := func() uint64 {
		t.Helper()
		man, _, err := d.Manifest()
		if err != nil || man == nil {
			t.Fatalf("staged manifest: %v", err)
		}
		return man.Seq
	}

	m1 := New(Options{SpoolDir: spoolDir, Hostname: "h"})
	h1 := m1.Open(dbPath)
	m1.Capture(h1, f, Event{Kind: Check}) // rescan
	commit(m1, h1, 1001)
	// The copier found the store's latest ahead and published this state
	// renumbered; the upload record holds it.
	d = m1.DB(dbPath).spool
	man, _, err := d.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	ahead := man.Seq + 1<<40
	r := *man
	r.Seq = ahead
	enc, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.MarkUploaded(enc); err != nil {
		t.Fatal(err)
	}
	m1.ContinueAfter(m1.DB(dbPath).Key(), ahead)
	commit(m1, h1, 1002)
	if got := staged(); got <= ahead {
		t.Errorf("after ContinueAfter: staged version %d, want > %d", got, ahead)
	}
	m1.Release(h1)

	// A new process: the upload record says how far numbering went.
	ahead2 := staged() + 1<<40
	man, _, err = d.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	r = *man
	r.Seq = ahead2
	if enc, err = r.Encode(); err != nil {
		t.Fatal(err)
	}
	if err := d.MarkUploaded(enc); err != nil {
		t.Fatal(err)
	}
	m2 := New(Options{SpoolDir: spoolDir, Hostname: "h"})
	h2 := m2.Open(dbPath)
	commit(m2, h2, 1003)
	if got := staged(); got <= ahead2 {
		t.Errorf("new process: staged version %d, want > %d", got, ahead2)
	}
	m2.Release(h2)
}
