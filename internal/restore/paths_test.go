package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRegression_RestoreOutDotDotAfterSymlink: for --out DIR/link/../r.db
// SQLite (and the kernel) open r.db beside the link's target, element by
// element. When that r.db is itself a relative symlink, restore must
// replace the file the link designates there, and write its temp file in
// that directory, not resolve "link/.." textually to DIR.
func TestRegression_RestoreOutDotDotAfterSymlink(t *testing.T) {
	ctx := context.Background()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sub, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(dir, "a", "real.db")
	if err := os.WriteFile(real, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.db", filepath.Join(dir, "a", "r.db")); err != nil {
		t.Fatal(err)
	}
	m, data := oneChunk(9)
	out := dir + "/link/../r.db"
	if err := ToFile(ctx, emptyStore(t), m, out); err != nil {
		t.Fatalf("restore to %s: %v", out, err)
	}
	mustContent(t, real, data)
	if _, err := os.Lstat(filepath.Join(dir, "real.db")); err == nil {
		t.Fatalf("restore to %s created %s (link/.. resolved textually)", out, filepath.Join(dir, "real.db"))
	}
	if fi, err := os.Lstat(filepath.Join(dir, "a", "r.db")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("restore replaced the symlink a/r.db (%v)", err)
	}
	noTemp(t, dir)
	noTemp(t, filepath.Join(dir, "a"))
}

// TestRegression_RestoreJournalIsDirectory: a directory where SQLite
// expects the -journal makes the database unopenable; restore refuses it
// with a message that names it once and says what it is.
func TestRegression_RestoreJournalIsDirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path+"-journal", 0o700); err != nil {
		t.Fatal(err)
	}
	m, _ := oneChunk(3)
	err := ToFileWith(context.Background(), emptyStore(t), m, path, Options{Replace: true, MoveAside: true})
	if err == nil || strings.Count(err.Error(), path+"-journal") != 1 || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("restore beside a -journal directory: %v, want one refusal naming %s-journal once and saying it is a directory", err, path)
	}
	mustContent(t, path, []byte("old"))
}

// TestRegression_RestoreJournalIsFIFO: a named pipe where SQLite expects the
// -journal must be refused, not opened: opening a pipe for reading waits
// for a writer, and restore would hang.
func TestRegression_RestoreJournalIsFIFO(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(path+"-journal", 0o600); err != nil {
		t.Fatal(err)
	}
	m, _ := oneChunk(3)
	// On failure this hangs until the test binary's timeout.
	err := ToFileWith(context.Background(), emptyStore(t), m, path, Options{Replace: true, MoveAside: true})
	if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), path+"-journal") {
		t.Fatalf("restore beside a -journal pipe: %v, want a refusal naming it", err)
	}
	mustContent(t, path, []byte("old"))
}
