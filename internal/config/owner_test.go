package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fallbackEnv clears every variable that names a data directory, so that
// DataDir falls back to TMPDIR/verneuil-UID, with TMPDIR a fresh directory.
func fallbackEnv(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	for _, k := range []string{EnvHome, "XDG_DATA_HOME", "XDG_CACHE_HOME", "HOME", EnvConfig} {
		t.Setenv(k, "")
	}
	t.Setenv("TMPDIR", tmp)
	want := filepath.Join(tmp, fmt.Sprintf("verneuil-%d", os.Getuid()))
	if got := DataDir(); got != want {
		t.Fatalf("DataDir() = %q, want the fallback %q", got, want)
	}
	return want
}

// TestRegression_SharedTempDataDir: without HOME the data directory is
// TMPDIR/verneuil-UID, a predictable name in a shared directory. It is
// created private (0700); one that another user could have planted (a
// symlink, a directory writable by others, owned by someone else) is refused
// rather than used.
func TestRegression_SharedTempDataDir(t *testing.T) {
	t.Run("created private", func(t *testing.T) {
		home := fallbackEnv(t)
		if _, err := Parse([]byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		st, err := os.Lstat(home)
		if err != nil {
			t.Fatalf("the data directory was not created: %v", err)
		}
		if !st.IsDir() || st.Mode().Perm() != 0o700 {
			t.Fatalf("data directory %s has mode %v, want drwx------", home, st.Mode())
		}
	})
	refused := map[string]func(t *testing.T, home string){
		"symlink": func(t *testing.T, home string) {
			if err := os.Symlink(t.TempDir(), home); err != nil {
				t.Fatal(err)
			}
		},
		"world-writable": func(t *testing.T, home string) {
			if err := os.Mkdir(home, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(home, 0o777); err != nil {
				t.Fatal(err)
			}
		},
		"owned by another user": func(t *testing.T, home string) {
			if err := os.Mkdir(home, 0o700); err != nil {
				t.Fatal(err)
			}
			giveAway(t, home)
		},
	}
	for name, plant := range refused {
		t.Run(name, func(t *testing.T) {
			home := fallbackEnv(t)
			plant(t, home)
			_, err := Parse([]byte(`{}`))
			if err == nil || !strings.Contains(err.Error(), home) {
				t.Fatalf("Parse with a planted data directory: err = %v, want an error naming %s", err, home)
			}
			if Default().Validate() == nil {
				t.Fatal("Default().Validate() accepted the planted data directory")
			}
		})
	}
}

// giveAway makes dir owned by another user than the current one: as root by
// chown to nobody; otherwise by making the package believe that it runs as
// another (non-root) user.
func giveAway(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		return
	}
	other := os.Geteuid() + 1
	euid = func() int { return other }
	t.Cleanup(func() { euid = os.Geteuid })
}

// TestCheckOwnedDir: the owner check that spool and store roots go through.
func TestCheckOwnedDir(t *testing.T) {
	dir := t.TempDir()
	if err := CheckOwnedDir(dir); err != nil {
		t.Fatalf("own directory refused: %v", err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if err := CheckOwnedDir(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("symlink: err = %v", err)
	}
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckOwnedDir(file); err == nil {
		t.Fatal("a file was accepted as a directory")
	}
	giveAway(t, dir)
	if err := CheckOwnedDir(dir); err == nil || !strings.Contains(err.Error(), "owned by uid") {
		t.Fatalf("foreign directory: err = %v", err)
	}
}

// TestRegression_ForeignDirSaysHowToProceed: root running verneuilctl on a
// store or spool another user owns (restoring a service user's replica) is
// refused; the refusal must say how to proceed, not only "refusing it".
func TestRegression_ForeignDirSaysHowToProceed(t *testing.T) {
	dir := t.TempDir()
	giveAway(t, dir)
	err := CheckOwnedDir(dir)
	if err == nil || !strings.Contains(err.Error(), "sudo -u") {
		t.Fatalf("foreign directory: err = %v, want it to say how to proceed (run as its owner: sudo -u ...)", err)
	}
}
