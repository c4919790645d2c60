package config

import (
	"path/filepath"
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
