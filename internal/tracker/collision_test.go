package tracker

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/names"
)

// TestRegression_ReplicaNameCollisionAcrossProcesses: names maps x.db to
// the default replica name of y.db, which another process (here: an
// earlier Manager on the same spool) replicated. Each process sees only its
// own database, so the replica alternates between the two files without a
// word. The spool records the path it was created for: opening x.db under
// that name while y.db, another file, still exists must be logged as a
// warning naming both.
func TestRegression_ReplicaNameCollisionAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	x, y := filepath.Join(dir, "x.db"), filepath.Join(dir, "y.db")
	for _, p := range []string{x, y} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m1 := New(Options{SpoolDir: spoolDir, Hostname: "h"})
	m1.Start()
	h := m1.Open(y)
	if h == 0 {
		t.Fatal("open y.db: handle 0")
	}
	m1.Release(h)
	if err := m1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	m2 := New(Options{SpoolDir: spoolDir, Hostname: "h", Names: map[string]string{x: names.Replica("h", y)},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	m2.Start()
	defer m2.Close(context.Background())
	if h := m2.Open(x); h != 0 {
		defer m2.Release(h)
	}
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, x) || !strings.Contains(out, y) {
		t.Fatalf("opening %s under %s's replica name logged:\n%s\nwant a warning naming both", x, y, out)
	}
}
