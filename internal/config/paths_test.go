package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRegression_RelativeTMPDIR: without HOME, the data directory falls
// back to TMPDIR/verneuil-UID. A relative TMPDIR must not make the spool and
// the store relative to each process's working directory (the application
// and verneuilctl would use different spools): like a relative
// XDG_DATA_HOME, it is ignored for /tmp.
func TestRegression_RelativeTMPDIR(t *testing.T) {
	for _, k := range []string{EnvHome, "XDG_DATA_HOME", "XDG_CACHE_HOME", "HOME", EnvConfig} {
		t.Setenv(k, "")
	}
	t.Chdir(t.TempDir())
	t.Setenv("TMPDIR", "reltmp")
	for what, dir := range map[string]string{
		"DataDir":            DataDir(),
		"CacheDir":           CacheDir(),
		"Default().SpoolDir": Default().SpoolDir,
	} {
		if !filepath.IsAbs(dir) {
			t.Errorf("%s with TMPDIR=reltmp and no HOME = %q, want an absolute path", what, dir)
		}
	}
}

// TestRegression_WorldWritableRootRefused: a spool or store root of ours
// that every user can write (mkdir -m 1777) lets another user create the
// subdirectories first (dbs/, chunks/) and read every replica written into
// them: refused like a root another user owns.
func TestRegression_WorldWritableRootRefused(t *testing.T) {
	for _, mode := range []os.FileMode{0o777, os.ModeSticky | 0o777, 0o703} {
		dir := t.TempDir()
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		err := CheckOwnedDir(dir)
		if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "writable by others") {
			t.Errorf("CheckOwnedDir of our directory with mode %v: %v, want a refusal saying it is writable by others", mode, err)
		}
	}
	// Group-writable stays allowed (a deliberate choice of a group).
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	if err := CheckOwnedDir(dir); err != nil {
		t.Errorf("group-writable directory of ours refused: %v", err)
	}
}
