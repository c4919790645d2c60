package fileblob_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
)

// TestWalkDirectoryRemovedMidway: a directory removed while Walk reads it
// (a concurrent collection deleted its last objects, and Delete removed it
// empty) ends that directory's walk, as an entry deleted meanwhile is
// skipped; it is not an error. Two gc runs at once failed on it:
// "readdirent .../gc/clock: no such file or directory" (TestGCRace).
func TestWalkDirectoryRemovedMidway(t *testing.T) {
	root := t.TempDir()
	s, err := fileblob.OpenDir(root, true)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n = 3000 // more than a page, and more than one read of the directory
	for i := range n {
		if err := s.Put(ctx, fmt.Sprintf("gc/clock/%05d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	pages, seen := 0, 0
	err = s.Walk(ctx, "gc/clock/", func(infos []blob.ObjectInfo) error {
		pages++
		seen += len(infos)
		if pages == 1 {
			return os.RemoveAll(filepath.Join(root, "gc", "clock"))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Walk with its directory removed midway: %v", err)
	}
	if seen == 0 || seen > n {
		t.Fatalf("walked %d objects of %d", seen, n)
	}
}
