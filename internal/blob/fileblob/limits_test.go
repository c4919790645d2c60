package fileblob_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob"
)

// TestRegression_FileGetBounded: an object larger than any object of the
// format is refused without being read.
func TestRegression_FileGetBounded(t *testing.T) {
	dir := t.TempDir()
	s, err := blob.Open(t.Context(), "file://"+dir, blob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(blob.MaxObjectSize + 1); err != nil { // sparse
		t.Fatal(err)
	}
	f.Close()
	if _, err := s.Get(t.Context(), "big"); !errors.Is(err, blob.ErrTooLarge) {
		t.Errorf("Get: %v, want an error wrapping blob.ErrTooLarge", err)
	}
	if _, _, err := s.GetVersioned(t.Context(), "big"); !errors.Is(err, blob.ErrTooLarge) {
		t.Errorf("GetVersioned: %v, want an error wrapping blob.ErrTooLarge", err)
	}
	if got, err := s.GetRange(t.Context(), "big", 10, 5); err != nil || len(got) != 5 {
		t.Errorf("GetRange: %d bytes, %v", len(got), err)
	}
}
