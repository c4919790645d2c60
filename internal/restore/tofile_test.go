package restore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/manifest"
)

// oneChunk is a manifest of a 4096-byte database of byte b: its only chunk
// is inline, so restoring it reads nothing from the store.
func oneChunk(b byte) (*manifest.Manifest, []byte) {
	data := bytes.Repeat([]byte{b}, 4096)
	return &manifest.Manifest{
		Name: "host:/x.db", Seq: 1, ChunkSize: 65536, Length: int64(len(data)),
		Chunk0: data, Chunks: []manifest.Hash{manifest.HashOf(data)},
	}, data
}

func emptyStore(t *testing.T) blob.Store {
	t.Helper()
	s, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustContent(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes starting %x, want %d bytes starting %x", path, len(got), got[:min(4, len(got))], len(want), want[:4])
	}
}

// noTemp fails if a restore left a temp file in dir.
func noTemp(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), "verneuil-restore") {
			t.Fatalf("temp file %s left in %s", e.Name(), dir)
		}
	}
}

func TestRegression_RestoreKeepsModeAndOwner(t *testing.T) {
	ctx := context.Background()
	m, data := oneChunk(7)
	path := filepath.Join(t.TempDir(), "app.db")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Geteuid(), os.Getegid()
	if uid == 0 {
		uid, gid = 65534, 65534
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := ToFile(ctx, emptyStore(t), m, path); err != nil {
		t.Fatal(err)
	}
	mustContent(t, path, data)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("restored file mode %v, want the old file's -rw-r-----", fi.Mode().Perm())
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid {
		t.Fatalf("restored file owner %d:%d, want the old file's %d:%d", st.Uid, st.Gid, uid, gid)
	}
}

func TestRegression_RestoreLongName(t *testing.T) {
	dir := t.TempDir()
	m, data := oneChunk(1)
	path := filepath.Join(dir, strings.Repeat("n", 250)+".db") // 253 bytes: valid
	if err := ToFile(context.Background(), emptyStore(t), m, path); err != nil {
		t.Fatal(err)
	}
	mustContent(t, path, data)
	noTemp(t, dir)
}

func TestRegression_RestoreFollowsSymlink(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m, data := oneChunk(2)
	real := filepath.Join(dir, "real.db")
	os.WriteFile(real, []byte("old"), 0o644)
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink("real.db", link); err != nil {
		t.Fatal(err)
	}
	if err := ToFile(ctx, emptyStore(t), m, link); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("restore replaced the symlink %s (%v, %v)", link, fi.Mode(), err)
	}
	mustContent(t, real, data)
	// A dangling link: its target is created.
	dangling := filepath.Join(dir, "dangling.db")
	os.Symlink("sub/new.db", dangling)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	if err := ToFile(ctx, emptyStore(t), m, dangling); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(dangling); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("restore replaced the symlink %s", dangling)
	}
	mustContent(t, filepath.Join(dir, "sub", "new.db"), data)
}

func TestRegression_RestoreRefusesNonRegular(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m, _ := oneChunk(3)
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	err := ToFile(ctx, emptyStore(t), m, fifo)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("restore over a named pipe: %v, want a refusal saying it is not a regular file", err)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("restore replaced the named pipe %s", fifo)
	}
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	err = ToFile(ctx, emptyStore(t), m, sub)
	if err == nil || !strings.Contains(err.Error(), sub+" is a directory") || strings.Contains(err.Error(), "verneuil-restore") {
		t.Fatalf("restore over a directory: %v, want \"%s is a directory\"", err, sub)
	}
	noTemp(t, dir)
}

// hold takes a lock on a file of its own, as another connection would (an
// open file description lock: it conflicts with restore's even within this
// process).
func hold(t *testing.T, path string, typ int16, start, n int64) *os.File {
	return holdWith(t, unix.F_OFD_SETLK, path, typ, start, n)
}

func holdWith(t *testing.T, cmd int, path string, typ int16, start, n int64) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: start, Len: n}
	if err := unix.FcntlFlock(f.Fd(), cmd, &lk); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRegression_RestoreLockedDatabase(t *testing.T) {
	ctx := context.Background()
	m, _ := oneChunk(4)
	for _, c := range []struct {
		name     string
		file     string
		typ      int16
		start, n int64
	}{
		{"reader holds SHARED", "", unix.F_RDLCK, 0x40000002, 510},
		{"writer holds RESERVED", "", unix.F_WRLCK, 0x40000001, 1},
		{"WAL connection open", "-shm", unix.F_RDLCK, 128, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.db")
			os.WriteFile(path, []byte("old"), 0o644)
			if c.file != "" {
				os.WriteFile(path+c.file, make([]byte, 32768), 0o644)
			}
			hold(t, path+c.file, c.typ, c.start, c.n)
			err := ToFile(ctx, emptyStore(t), m, path)
			if err == nil || !strings.Contains(err.Error(), "in use") {
				t.Fatalf("restore over a database in use: %v, want a refusal saying it is in use", err)
			}
			mustContent(t, path, []byte("old"))
		})
	}
	// A connection of this very process (SQLite's classic POSIX lock): it
	// must conflict, and restore must not drop it when it gives up.
	path := filepath.Join(t.TempDir(), "app.db")
	os.WriteFile(path, []byte("old"), 0o644)
	holdWith(t, unix.F_SETLK, path, unix.F_RDLCK, 0x40000002, 510)
	if err := ToFile(ctx, emptyStore(t), m, path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("restore over a database this process reads: %v, want a refusal saying it is in use", err)
	}
	probe, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Start: 0x40000002, Len: 510}
	if err := unix.FcntlFlock(probe.Fd(), unix.F_OFD_GETLK, &lk); err != nil || lk.Type == unix.F_UNLCK {
		t.Fatalf("the connection's lock was dropped by the refused restore (%v)", err)
	}
}

func TestRegression_RestoreOverHotJournal(t *testing.T) {
	ctx := context.Background()
	m, data := oneChunk(5)
	for _, side := range []string{"-journal", "-wal"} {
		t.Run(side, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.db")
			os.WriteFile(path, []byte("old"), 0o644)
			journal := append([]byte{0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7}, make([]byte, 504)...)
			os.WriteFile(path+side, journal, 0o644)
			err := ToFile(ctx, emptyStore(t), m, path)
			if err == nil || !strings.Contains(err.Error(), path+side) {
				t.Fatalf("restore over a database with %s: %v, want a refusal naming it", side, err)
			}
			mustContent(t, path, []byte("old"))
			mustContent(t, path+side, journal)
			// Allowed to move it aside: it is kept under another name.
			if err := ToFileWith(ctx, emptyStore(t), m, path, Options{Replace: true, MoveAside: true}); err != nil {
				t.Fatal(err)
			}
			mustContent(t, path, data)
			if _, err := os.Lstat(path + side); err == nil {
				t.Fatalf("%s is still beside the restored database", path+side)
			}
			moved, _ := filepath.Glob(path + side + ".verneuil-moved-*")
			if len(moved) != 1 {
				t.Fatalf("moved aside: %v, want one file", moved)
			}
			mustContent(t, moved[0], journal)
		})
	}
}

func TestRegression_RestoreRefusesExisting(t *testing.T) {
	ctx := context.Background()
	m, data := oneChunk(6)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	os.WriteFile(path, []byte("old"), 0o644)
	err := ToFileWith(ctx, emptyStore(t), m, path, Options{})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("restore over an existing file without Replace: %v, want ErrExists", err)
	}
	mustContent(t, path, []byte("old"))
	fresh := filepath.Join(dir, "new.db")
	if err := ToFileWith(ctx, emptyStore(t), m, fresh, Options{}); err != nil {
		t.Fatal(err)
	}
	mustContent(t, fresh, data)
	noTemp(t, dir)
}
