package restore

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// envReadOnlyDir hands the directory to the re-executed test (as nobody).
const envReadOnlyDir = "VERNEUIL_TEST_READONLY_DIR"

// TestRegression_RestoreReadOnlyDatabase: a database its owner made
// read-only (0444) is replaced by restore --force, as the owner could
// rename over it, and keeps its mode. The lock that keeps connections out
// must not need the file open for writing, which its (non-root) owner
// cannot do. Run as root, the test re-executes itself as nobody.
func TestRegression_RestoreReadOnlyDatabase(t *testing.T) {
	dir := os.Getenv(envReadOnlyDir)
	if dir == "" && os.Geteuid() == 0 {
		asNobody(t)
		return
	}
	if dir == "" {
		dir = t.TempDir()
	}
	ctx := context.Background()
	m, data := oneChunk(8)
	path := filepath.Join(dir, "ro.db")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := ToFile(ctx, emptyStore(t), m, path); err != nil {
		t.Fatalf("restore over a read-only database of ours: %v", err)
	}
	mustContent(t, path, data)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o444 {
		t.Fatalf("restored file mode %v (%v), want the old file's -r--r--r--", fi.Mode(), err)
	}
	// A reader in the file still keeps restore out.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := lockRange(f, unix.F_RDLCK, sharedFirst, sharedSize); err != nil {
		t.Fatal(err)
	}
	if err := ToFileWith(ctx, emptyStore(t), m, path, Options{Replace: true, BusyTimeout: 1}); !errors.Is(err, ErrInUse) {
		t.Fatalf("restore over a read-only database with a reader: %v, want a refusal saying it is in use", err)
	}
}

// lockRange takes an open file description lock, as another connection
// would.
func lockRange(f *os.File, typ int16, start, n int64) error {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: start, Len: n}
	return unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
}

// asNobody runs the calling test again in a copy of the test binary as
// uid/gid 65534, in a directory it owns.
func asNobody(t *testing.T) {
	t.Helper()
	dir, err := os.MkdirTemp("", "verneuil-restore-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	bin := filepath.Join(dir, "restore.test")
	out, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, self); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(work, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), envReadOnlyDir+"="+work, "TMPDIR="+work, "HOME="+work)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as nobody: %v\n%s", err, b)
	}
}
