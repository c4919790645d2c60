package tracker

import (
	"context"
	"path/filepath"
	"testing"
)

// TestRescanBufferFitsSmallFiles: the first capture of a new database (a
// rescan) reads through a buffer no larger than the file needs, in whole
// chunks, and at most a slice for large files (a process creating
// thousands of 8 KiB databases allocated 1 MiB for each).
func TestRescanBufferFitsSmallFiles(t *testing.T) {
	dir := t.TempDir()
	m := New(Options{SpoolDir: filepath.Join(dir, "spool"), Hostname: "h"})
	m.Start()
	defer m.Close(context.Background())
	p := filepath.Join(dir, "small.db")
	h := m.Open(p)
	defer m.Release(h)
	db := m.DB(p)
	if db == nil {
		t.Fatal("small.db not tracked")
	}
	cs := int64(db.chunkSize())
	for _, tc := range []struct {
		size, want int64
	}{
		{0, cs},
		{8192, cs},
		{cs, cs},
		{cs + 1, 2 * cs},
		{3 * sliceBytes, sliceBytes / cs * cs},
	} {
		pend, buf, err := db.newRescanSet(tc.size)
		if err != nil {
			t.Fatalf("size %d: %v", tc.size, err)
		}
		pend.close()
		if int64(len(buf)) != tc.want {
			t.Errorf("file of %d bytes: rescan buffer of %d bytes, want %d", tc.size, len(buf), tc.want)
		}
	}
}
