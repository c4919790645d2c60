package main

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
)

// coarseInfo is a file's stat(2) as a file system with whole-second
// timestamps reports it, every change falling in the second at.
type coarseInfo struct {
	fs.FileInfo
	at time.Time
}

func (c coarseInfo) ModTime() time.Time { return c.at }
func (c coarseInfo) Sys() any {
	st := *c.FileInfo.Sys().(*syscall.Stat_t)
	st.Mtim = syscall.Timespec{Sec: c.at.Unix()}
	st.Ctim = syscall.Timespec{Sec: c.at.Unix()}
	return &st
}

// TestRegression_HealerCoarseStampsMissBypassWrite: where file times have
// whole-second granularity (ext4 with 128-byte inodes), a bypassing write
// in the second of the daemon's last check leaves the file's inode, size,
// mtime and ctime as they were. The daemon must not take that stamp for
// "unchanged since found in sync": the change would stay unreplicated
// until the next one.
func TestRegression_HealerCoarseStampsMissBypassWrite(t *testing.T) {
	s := newTestSpool(t)
	path := filepath.Join(s.dir, "app.db")
	s.writeThroughVFS(t, path, "_journal_mode=DELETE", "CREATE TABLE t(a)", "INSERT INTO t VALUES(1)")
	second := time.Now().Truncate(time.Second)
	statFile = func(p string) (fs.FileInfo, error) {
		fi, err := os.Stat(p)
		if err != nil || p != path {
			return fi, err
		}
		return coarseInfo{fi, second}, nil
	}
	defer func() { statFile = os.Stat }()
	cfg, err := config.Load(s.config)
	if err != nil {
		t.Fatal(err)
	}
	h := newHealer(cfg, slog.New(slog.DiscardHandler), time.Second)
	defer h.close(context.Background())
	h.clock = func() time.Time { return second.Add(300 * time.Millisecond) }
	h.pass(context.Background())
	if h.syncs.Load() != 0 {
		t.Fatalf("synced a database in sync")
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	writePlain(t, path, "_journal_mode=DELETE", "UPDATE t SET a = 2") // same size
	if after, err := os.Stat(path); err != nil || after.Size() != before.Size() {
		t.Fatalf("the bypassing write changed the size: %v", err)
	}
	h.clock = func() time.Time { return second.Add(700 * time.Millisecond) }
	h.pass(context.Background())
	if n := h.syncs.Load(); n != 1 {
		t.Fatalf("the daemon synced %d times after a bypassing write behind a repeated coarse stamp, want 1", n)
	}
	// Once the file's second is well past, its stamp is trusted again:
	// an unchanged file costs stat(2) calls only.
	h.clock = func() time.Time { return second.Add(5 * time.Second) }
	h.pass(context.Background())
	h.pass(context.Background())
	if _, ok := h.clean[h.keyOf(t, path)]; !ok {
		t.Error("an unchanged file with an old coarse stamp is not cached as clean")
	}
}

// keyOf returns the spool key of the database at path.
func (h *healer) keyOf(t *testing.T, path string) string {
	t.Helper()
	_, key, err := replicator.ReplicaName(h.cfg, path, "")
	if err != nil {
		t.Fatal(err)
	}
	return key
}
