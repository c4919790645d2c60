package replica_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// A cache directory the cache cannot use (its packs directory a file,
// the cache directory itself a file, a pack's place taken by a symlink or
// a directory) costs the cache, never the reads: right data, each chunk
// fetched, no hang.
func TestPackCacheUnusableDirectory(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, cache string)
	}{
		{"packs is a file", func(t *testing.T, cache string) {
			mustWrite(t, filepath.Join(cache, "packs"), []byte("not a directory"))
		}},
		{"cache_dir is a file", func(t *testing.T, cache string) {
			if err := os.RemoveAll(cache); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, cache, []byte("not a directory"))
		}},
		{"a pack is a symlink to /dev/zero", func(t *testing.T, cache string) {
			mustMkdir(t, filepath.Join(cache, "packs"))
			if err := os.Symlink("/dev/zero", filepath.Join(cache, "packs", "1-0.pack")); err != nil {
				t.Fatal(err)
			}
		}},
		{"a pack is a directory", func(t *testing.T, cache string) {
			mustMkdir(t, filepath.Join(cache, "packs", "1-0.pack"))
		}},
		{"a pack holds other bytes", func(t *testing.T, cache string) {
			mustMkdir(t, filepath.Join(cache, "packs"))
			mustWrite(t, filepath.Join(cache, "packs", "1-0.pack"), bytes.Repeat([]byte("VNC1"), 50000))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			d := randomData(31, 8)
			publish(t, s, 100, d, true)
			cache := filepath.Join(t.TempDir(), "cache")
			mustMkdir(t, cache)
			tc.prepare(t, cache)
			if n := readCounting(t, &counting{Store: s}, cache, d); n != 7 {
				t.Fatalf("reader fetched %d chunks, want 7", n)
			}
			if _, err := os.Stat("/dev/zero"); err != nil {
				t.Fatalf("/dev/zero: %v", err)
			}
		})
	}
}

func mustWrite(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
}
