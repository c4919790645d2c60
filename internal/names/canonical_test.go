package names

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRegression_DotDotAfterSymlink: SQLite resolves a database path element
// by element, following each symlink before applying the next "..", and
// starts a relative path from the physical working directory. Canonical must
// name the file SQLite opens, not the one a textual clean of the path names.
func TestRegression_DotDotAfterSymlink(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a/b", filepath.Join(dir, "rel")); err != nil {
		t.Fatal(err)
	}
	// Both DIR/x.db (the textual answer) and DIR/a/x.db (SQLite's) exist.
	for _, p := range []string{filepath.Join(dir, "x.db"), filepath.Join(dir, "a", "x.db")} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want := filepath.Join(dir, "a", "x.db")
	for _, p := range []string{
		dir + "/link/../x.db",
		dir + "/rel/../x.db",
		dir + "/link/./../x.db",
		dir + "//link/../../a/x.db/",
		dir + "/link/../new/../x.db",
	} {
		got, err := Canonical(p)
		if err != nil || got != want {
			t.Errorf("Canonical(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
	// A file that does not exist yet: its path is still resolved.
	if got, err := Canonical(dir + "/link/../y.db"); err != nil || got != filepath.Join(dir, "a", "y.db") {
		t.Errorf("Canonical(link/../y.db) = %q, %v; want %q", got, err, filepath.Join(dir, "a", "y.db"))
	}

	// A working directory entered through the symlink: $PWD says DIR/link,
	// the physical directory is DIR/a/b.
	t.Chdir(filepath.Join(dir, "link"))
	t.Setenv("PWD", filepath.Join(dir, "link"))
	for _, p := range []string{"../x.db", "./../x.db"} {
		got, err := Canonical(p)
		if err != nil || got != want {
			t.Errorf("in %s/link: Canonical(%q) = %q, %v; want %q", dir, p, got, err, want)
		}
	}
	if got, err := Canonical("z.db"); err != nil || got != filepath.Join(target, "z.db") {
		t.Errorf("in %s/link: Canonical(z.db) = %q, %v; want %q", dir, got, err, filepath.Join(target, "z.db"))
	}
}

// TestCanonicalSymlinkLoop: a symlink loop is an error, as in SQLite.
func TestCanonicalSymlinkLoop(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("loop", filepath.Join(dir, "loop")); err != nil {
		t.Fatal(err)
	}
	if got, err := Canonical(filepath.Join(dir, "loop", "x.db")); err == nil {
		t.Fatalf("Canonical through a symlink loop = %q, want an error", got)
	}
}
