package tracker

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A rollback-journal commit reported on a file whose header says WAL (a WAL
// the VFS could not follow) is not captured:
// logged as an error when it starts, not at every commit; a successful
// capture in between makes the next occurrence an error again.
func TestErrWALLoggedOncePerRun(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	m := New(Options{SpoolDir: filepath.Join(dir, "spool"), Hostname: "h", IdleRelease: time.Minute,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	m.Start()
	defer m.Close(t.Context())
	dbPath := filepath.Join(dir, "x.db")
	if err := os.WriteFile(dbPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h := m.Open(dbPath)
	f := &memFile{data: make([]byte, 4096)}
	seq := uint64(1000)
	commit := func(wal bool) {
		v := byte(1)
		if wal {
			v = 2
		}
		f.data[18], f.data[19] = v, v
		pre := make([]byte, HeaderLen)
		f.ReadAt(pre, 0)
		preX := f.xattr
		seq++
		f.xattr = binary.BigEndian.AppendUint64(nil, seq)
		binary.BigEndian.PutUint32(f.data[24:], uint32(seq))
		m.Capture(h, f, Event{Kind: Commit, Dirty: []uint32{0}, PreXattr: preX, PreHeader: pre, PostXattr: f.xattr, Seq: seq})
	}
	errorLines := func() int { return strings.Count(logs.String(), "level=ERROR") }
	m.Capture(h, f, Event{Kind: Check})
	for range 5 {
		commit(true)
	}
	if n := errorLines(); n != 1 {
		t.Fatalf("5 uncaptured WAL commits logged %d errors, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "commit not replicated") {
		t.Fatalf("the error does not say the commit is not replicated:\n%s", logs.String())
	}
	m.Capture(h, f, Event{Kind: Check}) // out of WAL mode: a rescan captures it
	commit(false)
	commit(true)
	if n := errorLines(); n != 2 {
		t.Fatalf("after a captured commit, the next uncaptured one logged %d errors in all, want 2:\n%s", n, logs.String())
	}
}
