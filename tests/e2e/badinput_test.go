//go:build cgo

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// replicated returns a setup with one replicated database and the paths of
// its latest manifest and of every stored chunk. Older versions' chunks stay
// in the store, so a test that damages chunks damages all of them: one picked
// at random may be one the latest manifest no longer references.
func replicated(t *testing.T) (s *setup, db, latest string, chunks []string) {
	s = newSetup(t)
	db = filepath.Join(s.dir, "bad.db")
	if err := s.writer("count", db, "VERNEUIL_E2E_N=200").Run(); err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(s.mustCtl("manifest-name", db))
	latest = filepath.Join(s.store, "dbs", key, "latest")
	chunks, _ = filepath.Glob(filepath.Join(s.store, "chunks", "*"))
	packs, _ := filepath.Glob(filepath.Join(s.store, "packs", "*"))
	chunks = append(chunks, packs...) // objects that hold chunks
	if len(chunks) == 0 {
		t.Fatal("no chunk objects or packs stored")
	}
	return s, db, latest, chunks
}

// expectFailure runs verneuilctl and checks for a non-zero exit with a
// one-line reason that contains want, and no panic.
func expectFailure(t *testing.T, s *setup, want string, args ...string) {
	t.Helper()
	_, errOut, code := s.ctl(args...)
	if code == 0 {
		t.Fatalf("verneuilctl %v succeeded, want failure", args)
	}
	if strings.Contains(errOut, "panic") || strings.Contains(errOut, "goroutine ") {
		t.Fatalf("verneuilctl %v panicked: %s", args, errOut)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if !strings.Contains(lines[0], want) {
		t.Fatalf("verneuilctl %v: error %q does not contain %q", args, lines[0], want)
	}
}

func TestBadInput(t *testing.T) {
	t.Run("CorruptManifest", func(t *testing.T) {
		s, db, latest, _ := replicated(t)
		data, err := os.ReadFile(latest)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0xff
		os.WriteFile(latest, data, 0o644)
		expectFailure(t, s, "corrupt manifest", "restore", db, "--out", filepath.Join(s.dir, "out.db"))
		if _, err := os.Stat(filepath.Join(s.dir, "out.db")); err == nil {
			t.Fatal("a failed restore left an output file")
		}
	})
	t.Run("TruncatedManifest", func(t *testing.T) {
		s, db, latest, _ := replicated(t)
		data, _ := os.ReadFile(latest)
		os.WriteFile(latest, data[:len(data)/3], 0o644)
		expectFailure(t, s, "corrupt manifest", "restore", db, "--out", filepath.Join(s.dir, "out.db"))
	})
	t.Run("TruncatedChunk", func(t *testing.T) {
		s, db, _, chunks := replicated(t)
		for _, chunk := range chunks {
			data, _ := os.ReadFile(chunk)
			os.WriteFile(chunk, data[:len(data)/2], 0o644)
		}
		expectFailure(t, s, "corrupt", "restore", db, "--out", filepath.Join(s.dir, "out.db"))
	})
	t.Run("ChunkHashMismatch", func(t *testing.T) {
		s, db, _, chunks := replicated(t)
		// Well-formed raw chunk objects whose bytes are not their hash's.
		for _, chunk := range chunks {
			os.WriteFile(chunk, append([]byte{0}, make([]byte, 65536)...), 0o644)
		}
		expectFailure(t, s, "content hash", "restore", db, "--out", filepath.Join(s.dir, "out.db"))
	})
	t.Run("MissingTargetDirectory", func(t *testing.T) {
		s := newSetup(t)
		s.config = strings.Replace(s.config, s.store, filepath.Join(s.dir, "nope"), 1)
		db := filepath.Join(s.dir, "x.db")
		os.WriteFile(db, nil, 0o644)
		expectFailure(t, s, "does not exist", "restore", db, "--out", filepath.Join(s.dir, "out.db"))
		expectFailure(t, s, "does not exist", "sync", db)
	})
	t.Run("UnusableSpool", func(t *testing.T) {
		s := newSetup(t)
		spoolFile := filepath.Join(s.dir, "spool-is-a-file")
		os.WriteFile(spoolFile, []byte("x"), 0o644)
		s.config = strings.Replace(s.config, filepath.Join(s.dir, "spool"), spoolFile, 1)
		db := filepath.Join(s.dir, "x.db")
		os.WriteFile(db, nil, 0o644)
		expectFailure(t, s, "spool", "sync", db)
	})
	t.Run("BadConfig", func(t *testing.T) {
		s := newSetup(t)
		s.config = `{"spool_dirr": "/tmp/x"}`
		expectFailure(t, s, `unknown key "spool_dirr"`, "status")
	})
	t.Run("NoReplica", func(t *testing.T) {
		s := newSetup(t)
		expectFailure(t, s, "no replica", "restore", filepath.Join(s.dir, "never.db"), "--out", filepath.Join(s.dir, "o.db"))
	})
}
