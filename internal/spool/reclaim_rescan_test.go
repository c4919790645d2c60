package spool_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/spool"
)

// TestReclaimAfterRescanIdle: a rescan asked for on the spool of a deleted
// database delays its reclaim like a write, for minIdle, and no longer:
// only a process that still has the file open could rescan it, and its
// next commit recreates the spool and asks again.
func TestReclaimAfterRescanIdle(t *testing.T) {
	for _, marker := range []string{spool.RescanFile, spool.RescanMarker} {
		t.Run(marker, func(t *testing.T) {
			root := t.TempDir()
			d := stagedSpool(t, root, "k", filepath.Join(t.TempDir(), "gone.db"), true)
			old := time.Now().Add(-2 * time.Hour)
			ents, err := os.ReadDir(d.Path)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if err := os.Chtimes(filepath.Join(d.Path, e.Name()), old, old); err != nil {
					t.Fatal(err)
				}
			}
			mark := filepath.Join(d.Path, marker)
			if err := os.WriteFile(mark, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if done, err := spool.Reclaim(root, "k", time.Hour, always); err != nil || done {
				t.Fatalf("Reclaim with a fresh rescan request = %v, %v; want kept", done, err)
			}
			if err := os.Chtimes(mark, old, old); err != nil {
				t.Fatal(err)
			}
			if done, err := spool.Reclaim(root, "k", time.Hour, always); err != nil || !done {
				t.Fatalf("Reclaim with a rescan request idle for 2h = %v, %v; want reclaimed", done, err)
			}
		})
	}
}
