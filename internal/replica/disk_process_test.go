package replica_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
)

// The child process of the tests below reads the whole replica in
// VERNEUIL_PACKCACHE_STORE through the disk cache VERNEUIL_PACKCACHE_DIR,
// each chunk GET slowed down by VERNEUIL_PACKCACHE_DELAY.
const (
	envStore = "VERNEUIL_PACKCACHE_STORE"
	envCache = "VERNEUIL_PACKCACHE_DIR"
	envDelay = "VERNEUIL_PACKCACHE_DELAY"
)

// childReader runs the child's read when the environment asks for it; it
// reports whether it did.
func childReader(t *testing.T) bool {
	dir := os.Getenv(envStore)
	if dir == "" {
		return false
	}
	s, err := fileblob.OpenDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	delay, _ := time.ParseDuration(os.Getenv(envDelay))
	slow := &counting{Store: s, gate: func(ctx context.Context) error {
		time.Sleep(delay)
		return nil
	}}
	readAll(t, open(t, newManager(t, slow, withCacheAt(os.Getenv(envCache))), dbKey, "", ""))
	return true
}

// startChild starts this test in a child process that reads the replica.
func startChild(t *testing.T, test, store, cache string, delay time.Duration) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), envStore+"="+store, envCache+"="+cache, envDelay+"="+delay.String())
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// Two processes: the second fetches no chunk that the first cached.
func TestPackCacheSharedByTwoProcesses(t *testing.T) {
	if childReader(t) {
		return
	}
	storeDir, cache := t.TempDir(), filepath.Join(t.TempDir(), "cache")
	s, err := fileblob.OpenDir(storeDir, false)
	if err != nil {
		t.Fatal(err)
	}
	d := randomData(21, 30)
	publish(t, s, 100, d, true)
	if err := startChild(t, "TestPackCacheSharedByTwoProcesses", storeDir, cache, 0).Wait(); err != nil {
		t.Fatalf("child reader: %v", err)
	}
	if n := readCounting(t, &counting{Store: s}, cache, d); n != 0 {
		t.Fatalf("the second process fetched %d chunks, want 0", n)
	}
}

// A process killed (SIGKILL) while it appends chunks to its pack: the
// next process reads right data, takes what the dead one appended whole
// and fetches the rest; the one after fetches nothing.
func TestPackCacheKilledWriterProcess(t *testing.T) {
	if childReader(t) {
		return
	}
	storeDir, cache := t.TempDir(), filepath.Join(t.TempDir(), "cache")
	s, err := fileblob.OpenDir(storeDir, false)
	if err != nil {
		t.Fatal(err)
	}
	const chunks = 200
	d := randomData(22, chunks)
	publish(t, s, 100, d, true)
	child := startChild(t, "TestPackCacheKilledWriterProcess", storeDir, cache, 20*time.Millisecond)
	// Kill it once it has appended a few chunks (a bound, not a timing
	// assertion: the child takes far longer to read them all).
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		var size int64
		for _, p := range packFiles(t, cache) {
			if fi, err := os.Stat(p); err == nil {
				size += fi.Size()
			}
		}
		if size >= 10*chunkSize || time.Now().After(deadline) {
			break
		}
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); err == nil {
		t.Fatal("the child finished before it was killed")
	}
	n := readCounting(t, &counting{Store: s}, cache, d)
	if n < 1 || n > chunks-1-10 {
		t.Fatalf("after the killed writer, a reader fetched %d chunks, want 1 to %d", n, chunks-1-10)
	}
	if got := readAll(t, open(t, newManager(t, s, withCacheAt(cache)), dbKey, "", "")); !bytes.Equal(got, d) {
		t.Fatal("wrong data")
	}
	if n := readCounting(t, &counting{Store: s}, cache, d); n != 0 {
		t.Fatalf("the next reader fetched %d chunks, want 0", n)
	}
}
