package fileblob_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
)

// TestRegression_StoreFilesPrivate: replicas hold the databases' data, so a
// local-directory store creates its files 0600 and its directories 0700
// (whatever the umask), not 0644/0755 that every local user can read.
func TestRegression_StoreFilesPrivate(t *testing.T) {
	root := filepath.Join(t.TempDir(), "new", "store")
	s, err := fileblob.OpenDir(root, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if err := s.Put(ctx, "chunks/abcd", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "dbs/k/manifests/0000000000000001", []byte("m")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutIf(ctx, "dbs/k/latest", []byte("m"), ""); err != nil {
		t.Fatal(err)
	}
	n := 0
	err = filepath.WalkDir(filepath.Dir(root), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("walked only %d entries", n)
	}
}

// TestRegression_SymlinkedStoreRoot: a store root that is a symbolic link
// is refused (it may have been planted to redirect the replicas).
func TestRegression_SymlinkedStoreRoot(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	s, err := blob.Open(t.Context(), "file://"+link, blob.Options{})
	if err == nil {
		s.Close()
		t.Fatal("a symlinked store root was accepted")
	}
	if !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("error %q does not name the symlink %s", err, link)
	}
}
