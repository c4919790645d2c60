package config

import (
	"fmt"
	"os"
	"path/filepath"
)

// DataDir returns verneuil's data directory, under which the default spool
// ("spool") and the default local target ("store") live:
//
//   - $VERNEUIL_HOME if set (made absolute);
//   - else $XDG_DATA_HOME/verneuil if XDG_DATA_HOME is an absolute path;
//   - else ~/.local/share/verneuil;
//   - else, when HOME is unset, os.TempDir()/verneuil-<uid>.
func DataDir() string {
	if h := os.Getenv(EnvHome); h != "" {
		return absPath(h)
	}
	if x := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "verneuil")
	}
	if home, err := os.UserHomeDir(); err == nil && filepath.IsAbs(home) {
		return filepath.Join(home, ".local", "share", "verneuil")
	}
	return tempHome()
}

// CacheDir returns the default chunk-cache directory:
//
//   - $VERNEUIL_HOME/cache if VERNEUIL_HOME is set (so that one variable
//     isolates all of verneuil's local state);
//   - else $XDG_CACHE_HOME/verneuil if XDG_CACHE_HOME is an absolute path;
//   - else ~/.cache/verneuil;
//   - else, when HOME is unset, os.TempDir()/verneuil-<uid>/cache.
func CacheDir() string {
	if h := os.Getenv(EnvHome); h != "" {
		return filepath.Join(absPath(h), "cache")
	}
	if x := os.Getenv("XDG_CACHE_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "verneuil")
	}
	if home, err := os.UserHomeDir(); err == nil && filepath.IsAbs(home) {
		return filepath.Join(home, ".cache", "verneuil")
	}
	return filepath.Join(tempHome(), "cache")
}

func tempHome() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("verneuil-%d", os.Getuid()))
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}
