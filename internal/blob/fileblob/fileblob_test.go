package fileblob_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/blobtest"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
)

func newStore(t *testing.T) blob.Store {
	s, err := blob.Open(t.Context(), "file://"+t.TempDir(), blob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	blobtest.Run(t, newStore)
}

func TestMissingRoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	_, err := blob.Open(t.Context(), "file://"+dir, blob.Options{})
	if err == nil {
		t.Fatal("Open of a missing directory succeeded")
	}
	if want := "target directory " + dir + " does not exist"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open created the directory (stat: %v)", err)
	}

	s, err := fileblob.OpenDir(filepath.Join(dir, "sub"), true)
	if err != nil {
		t.Fatalf("OpenDir(create): %v", err)
	}
	if err := s.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := fileblob.OpenDir(filepath.Join(dir, "sub", "k"), false); err == nil {
		t.Fatal("OpenDir of a regular file succeeded")
	}
}

func TestBadURLs(t *testing.T) {
	dir := t.TempDir()
	for _, u := range []string{
		"file:relative/dir",
		"file://host" + dir,
		"file://",
		"file://" + dir + "?x=1",
	} {
		if _, err := blob.Open(t.Context(), u, blob.Options{}); err == nil {
			t.Errorf("Open(%q) succeeded", u)
		}
	}
	if _, err := fileblob.OpenDir("relative", true); err == nil {
		t.Error("OpenDir(relative) succeeded")
	}
	s, err := blob.Open(t.Context(), "file://localhost"+dir, blob.Options{})
	if err != nil {
		t.Fatalf("Open(file://localhost/...): %v", err)
	}
	if got, want := s.String(), "file://"+dir; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestKeysStayInRoot(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	s, err := fileblob.OpenDir(root, true)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, k := range []string{"../escape", "a/../../escape", "/etc/escape", ".verneuil-locks/x", "a/.verneuil-tmp-1"} {
		if err := s.Put(ctx, k, []byte("x")); err == nil {
			t.Errorf("Put(%q) succeeded", k)
		}
	}
	if keys, err := s.List(ctx, "../"); err != nil || len(keys) != 0 {
		t.Errorf("List(../) = %q, %v", keys, err)
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("files appeared next to the root: %v", entries)
	}
}

func TestLayoutAndHiddenFiles(t *testing.T) {
	root := t.TempDir()
	s, err := fileblob.OpenDir(root, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.PutIf(ctx, "a/b/c", []byte("data"), ""); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "a", "b", "c"))
	if err != nil || string(got) != "data" {
		t.Fatalf("object file = %q, %v", got, err)
	}
	// Stray temporary files (from a crash) and the lock directory are not
	// objects.
	if err := os.WriteFile(filepath.Join(root, "a", ".verneuil-tmp-deadbeef"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	keys, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "a/b/c" {
		t.Fatalf("List = %q, want [a/b/c]", keys)
	}
	if _, err := os.Stat(filepath.Join(root, ".verneuil-locks")); err != nil {
		t.Fatalf("lock directory: %v", err)
	}
	// Deleting the last object removes the emptied directories.
	if err := s.Delete(ctx, "a/b/c"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "a", "b")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a/b still exists after deleting its only object (stat: %v)", err)
	}
}

// TestCrossProcessPutIf runs read-compare-write increments of one counter
// from several processes (this test binary re-executed) at once.
func TestCrossProcessPutIf(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	const procs, increments = 4, 25
	root := t.TempDir()
	s, err := fileblob.OpenDir(root, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "counter", []byte("0")); err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	for range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCounter$")
		cmd.Env = append(os.Environ(), "FILEBLOB_HELPER_ROOT="+root, "FILEBLOB_HELPER_N="+strconv.Itoa(increments))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper process: %v", err)
		}
	}
	got, err := s.Get(t.Context(), "counter")
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(procs * increments); string(got) != want {
		t.Fatalf("counter = %s, want %s (lost updates)", got, want)
	}
}

// TestHelperCounter is the child process of TestCrossProcessPutIf.
func TestHelperCounter(t *testing.T) {
	root := os.Getenv("FILEBLOB_HELPER_ROOT")
	if root == "" {
		t.Skip("helper process for TestCrossProcessPutIf")
	}
	n, _ := strconv.Atoi(os.Getenv("FILEBLOB_HELPER_N"))
	s, err := fileblob.OpenDir(root, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range n {
		for {
			data, v, err := s.GetVersioned(ctx, "counter")
			if err != nil {
				t.Fatal(err)
			}
			c, err := strconv.Atoi(string(data))
			if err != nil {
				t.Fatal(err)
			}
			err = s.PutIf(ctx, "counter", fmt.Appendf(nil, "%d", c+1), v)
			if err == nil {
				break
			}
			if !errors.Is(err, blob.ErrPrecondition) {
				t.Fatal(err)
			}
		}
	}
}
