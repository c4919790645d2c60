// Package testutil holds helpers shared by the module's test packages.
package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// FileSHA256 returns the hex SHA-256 of a whole file (the byte-identity
// check between a database and its restored replica).
func FileSHA256(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// PublishManifest publishes in the spool at root, under the spool lock, a
// manifest of version seq whose only chunk (inline) holds data, as a writer
// would leave it, and returns the spool directory.
func PublishManifest(t testing.TB, root, key string, info spool.Info, seq uint64, data []byte, commit time.Time) *spool.Dir {
	t.Helper()
	d, err := spool.Open(root, key, info)
	if err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{Name: info.Name, Seq: seq, CommitTime: commit, ChunkSize: 1 << 16,
		Length: int64(len(data)), Chunk0: data, Chunks: []manifest.Hash{manifest.HashOf(data)},
		VersionID: []byte{1}, HeaderHash: manifest.HashOf(data[:min(100, len(data))])}
	Publish(t, d, m)
	return d
}

// Publish encodes m and publishes it in the spool d under the spool lock.
func Publish(t testing.TB, d *spool.Dir, m *manifest.Manifest) {
	t.Helper()
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := d.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := d.Publish(m, enc); err != nil {
		t.Fatal(err)
	}
}

// BuildVerneuilctl builds the CLI into dir and returns its path (tools
// that keep the binary; tests use Verneuilctl, built once per process).
func BuildVerneuilctl(dir string) (string, error) {
	p := filepath.Join(dir, "verneuilctl")
	return p, buildTo("github.com/verneuil-go/verneuil/cmd/verneuilctl", p)
}

// buildTo builds the main package pkg into the file out.
func buildTo(pkg, out string) error {
	if msg, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", pkg, err, msg)
	}
	return nil
}
