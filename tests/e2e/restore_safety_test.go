//go:build cgo

package e2e

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/verneuil-go/verneuil/internal/testutil"
)

// lastVersion is the newest version of db listed by verneuilctl.
func (s *setup) lastVersion(db string) string {
	s.t.Helper()
	var versions []struct {
		Version uint64 `json:"version,string"`
	}
	if err := json.Unmarshal([]byte(s.mustCtl("--json", "list", "--versions", db)), &versions); err != nil || len(versions) == 0 {
		s.t.Fatalf("list --versions %s: %d versions, %v", db, len(versions), err)
	}
	return strconv.FormatUint(versions[len(versions)-1].Version, 10)
}

// hangingWriter starts a writer that commits, flushes and then stays in the
// middle of a big transaction (its changes spilled into the database file,
// a hot journal beside it), and waits until it is there.
func (s *setup) hangingWriter(db string) *os.Process {
	s.t.Helper()
	w := s.writer("hang", db)
	stdout, err := w.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { w.Process.Kill(); w.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		s.t.Fatalf("hanging writer: %q %v", line, err)
	}
	return w.Process
}

// TestRegression_RestoreOverHotJournal: restoring over a database whose
// writer crashed mid-transaction must not let SQLite roll the stale journal
// back into the restored file.
func TestRegression_RestoreOverHotJournal(t *testing.T) {
	s := newSetup(t)
	db := filepath.Join(s.dir, "app.db")
	if err := s.writer("count", db, "VERNEUIL_E2E_N=50").Run(); err != nil {
		t.Fatal(err)
	}
	version := s.lastVersion(db) // older than what the crashed writer's journal holds
	p := s.hangingWriter(db)
	ref := filepath.Join(s.dir, "ref.db")
	s.mustCtl("restore", db, "--version", version, "--out", ref)
	p.Signal(syscall.SIGKILL)
	p.Wait()
	if fi, err := os.Stat(db + "-journal"); err != nil || fi.Size() == 0 {
		t.Fatalf("the killed writer left no hot journal: %v", err)
	}
	if _, errOut, code := s.ctl("restore", db, "--version", version, "--out", db); code == 0 {
		touch(t, db)
		same := testutil.FileSHA256(t, db) == testutil.FileSHA256(t, ref)
		t.Fatalf("restore over a hot journal without --force succeeded (%q); once SQLite opened it, it is identical to version %s: %v", errOut, version, same)
	} else if !strings.Contains(errOut, "hot journal") || !strings.Contains(errOut, "--force") {
		t.Fatalf("restore over a hot journal: %q, want it named and --force suggested", errOut)
	}
	s.mustCtl("restore", db, "--version", version, "--out", db, "--force")
	if _, err := os.Stat(db + "-journal"); err == nil {
		t.Fatal("the hot journal is still beside the restored database")
	}
	if moved, _ := filepath.Glob(db + "-journal.verneuil-moved-*"); len(moved) != 1 {
		t.Fatalf("moved journals: %v, want one", moved)
	}
	touch(t, db)
	if testutil.FileSHA256(t, db) != testutil.FileSHA256(t, ref) {
		t.Fatalf("after SQLite opened the restored database, it differs from version %s", version)
	}
	testutil.IntegrityCheck(t, db)
}

// touch opens path read-write through SQLite and reads it, which rolls back
// any hot journal.
func touch(t *testing.T, path string) {
	t.Helper()
	d, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var n int
	if err := d.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
}

// TestRegression_RestoreOverLiveWriter: a connection holding a lock (here a
// writer in the middle of a transaction) makes restore refuse, --force or not.
func TestRegression_RestoreOverLiveWriter(t *testing.T) {
	s := newSetup(t)
	db := filepath.Join(s.dir, "app.db")
	s.hangingWriter(db)
	before := testutil.FileSHA256(t, db)
	expectFailure(t, s, "in use", "restore", db, "--out", db, "--force")
	if testutil.FileSHA256(t, db) != before {
		t.Fatal("a refused restore changed the live database")
	}
}

// TestRegression_RestoreNeedsForce: restore does not replace an existing
// file, least of all the source database, without --force, and names a
// directory as one.
func TestRegression_RestoreNeedsForce(t *testing.T) {
	s, db, _, _ := replicated(t)
	out := filepath.Join(s.dir, "out.db")
	os.WriteFile(out, []byte("precious"), 0o644)
	expectFailure(t, s, "--force", "restore", db, "--out", out)
	if b, _ := os.ReadFile(out); string(b) != "precious" {
		t.Fatal("restore replaced an existing file without --force")
	}
	before := testutil.FileSHA256(t, db)
	expectFailure(t, s, "source database", "restore", db, "--out", db)
	if testutil.FileSHA256(t, db) != before {
		t.Fatal("restore replaced the source database without --force")
	}
	expectFailure(t, s, s.dir+" is a directory", "restore", db, "--out", s.dir, "--force")
	s.mustCtl("restore", db, "--out", out, "--force")
	if testutil.FileSHA256(t, out) != before {
		t.Fatal("restore --force: output differs from the database")
	}
}

// TestRegression_RestoreManifestNameMismatch: a manifest stored under
// another database's key is an error naming both.
func TestRegression_RestoreManifestNameMismatch(t *testing.T) {
	s := newSetup(t)
	a, b := filepath.Join(s.dir, "a.db"), filepath.Join(s.dir, "b.db")
	for _, db := range []string{a, b} {
		if err := s.writer("count", db, "VERNEUIL_E2E_N=5").Run(); err != nil {
			t.Fatal(err)
		}
	}
	keyA := strings.TrimSpace(s.mustCtl("manifest-name", a))
	keyB := strings.TrimSpace(s.mustCtl("manifest-name", b))
	version := s.lastVersion(a)
	manifestA, err := os.ReadFile(filepath.Join(s.store, "dbs", keyA, "latest"))
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := filepath.Glob(filepath.Join(s.store, "dbs", keyA, "manifests", "*"))
	if len(stored) == 0 {
		t.Fatal("no manifests stored")
	}
	seqHex := filepath.Base(stored[len(stored)-1])
	os.WriteFile(filepath.Join(s.store, "dbs", keyB, "latest"), manifestA, 0o644)
	os.WriteFile(filepath.Join(s.store, "dbs", keyB, "manifests", seqHex), manifestA, 0o644)
	for _, args := range [][]string{
		{"restore", b, "--out", filepath.Join(s.dir, "o1.db")},
		{"restore", b, "--version", version, "--out", filepath.Join(s.dir, "o2.db")},
		{"restore", "--manifest", keyB, "--out", filepath.Join(s.dir, "o3.db")},
	} {
		_, errOut, code := s.ctl(args...)
		if code == 0 || !strings.Contains(errOut, keyA) || !strings.Contains(errOut, keyB) {
			t.Fatalf("verneuilctl %v with a manifest of another database: exit %d %q, want an error naming %s and %s", args, code, errOut, keyA, keyB)
		}
	}
}
