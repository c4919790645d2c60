package replica_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/replica"
)

// version= must be a whole decimal number: fmt.Sscan took the leading
// digits of "12abc" (version 12), "1e3" as 1 and "0x10" as 16, opening a
// version the user did not name.
func TestRegression_SnapshotVersionGarbageRejected(t *testing.T) {
	m := newManager(t, newStore(t))
	for _, v := range []string{"12abc", "1e3", "0x10", " 7", "7 ", "5 6", "+5", "-1", "99999999999999999999999"} {
		if _, err := m.Resolve(dbKey, v, ""); err == nil || !strings.Contains(err.Error(), "want a version number") {
			t.Errorf("version=%q: %v, want a rejection", v, err)
		}
	}
	if tg, err := m.Resolve(dbKey, "12", ""); err != nil || tg.Version != 12 {
		t.Errorf("version=12: %+v, %v", tg, err)
	}
}

// A FIFO (or any non-regular file) at a chunk's place in the disk cache
// hung the reader forever: the cache opened it for reading, which blocks
// until a writer appears. It must count as a miss, with the chunk fetched
// from the store.
func TestRegression_SnapshotDiskCacheFifoDoesNotHang(t *testing.T) {
	s := newStore(t)
	d := randomData(7, 4)
	publish(t, s, 100, d, true)
	cache := filepath.Join(t.TempDir(), "cache")
	withCache := func(o *replica.Options) { o.CacheDir = cache }
	h := manifest.HashOf(d[2*chunkSize : 3*chunkSize]).String()
	dir := filepath.Join(cache, "chunks", h[:2])
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, h), 0o600); err != nil {
		t.Fatal(err)
	}
	src := open(t, newManager(t, s, withCache), dbKey, "", "")
	done := make(chan []byte)
	go func() {
		m := src.HoldCurrent(false, 0)
		defer src.Release(m.Seq)
		c, err := src.ReadChunk(m.Seq, 2)
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	select {
	case got := <-done:
		if !bytes.Equal(got, d[2*chunkSize:3*chunkSize]) {
			t.Fatal("wrong data for the chunk behind the FIFO")
		}
	case <-time.After(20 * time.Second): // a hang guard, not a timing assertion
		// Unblock the reader so that the test can end.
		if f, err := os.OpenFile(filepath.Join(dir, h), os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("reading a chunk whose cache file is a FIFO hung")
	}
}

// Resolving a local path that is a FIFO hung: the check for a saved
// manifest opened it for reading. A FIFO is not a manifest file; the name
// then resolves to this host's replica of that path.
func TestRegression_SnapshotResolveFifoDoesNotHang(t *testing.T) {
	m := newManager(t, newStore(t))
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	type result struct {
		tg  replica.Target
		err error
	}
	done := make(chan result)
	go func() {
		tg, err := m.Resolve(p, "", "")
		done <- result{tg, err}
	}()
	select {
	case r := <-done:
		if r.err != nil || r.tg.ManifestFile != "" || r.tg.Key == "" {
			t.Fatalf("Resolve(FIFO) = %+v, %v; want this host's replica key", r.tg, r.err)
		}
	case <-time.After(20 * time.Second): // a hang guard, not a timing assertion
		if f, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("Resolve of a FIFO path hung")
	}
}

// at= as unix seconds took NaN, Inf and values past year 2262 (the range
// of a time in nanoseconds) as some arbitrary instant in 1677, opening
// "no replica as of 1677" instead of saying the time is bad.
func TestRegression_SnapshotAtGarbageRejected(t *testing.T) {
	m := newManager(t, newStore(t))
	for _, at := range []string{"NaN", "nan", "Inf", "-Inf", "+Inf", "1e300", "1e12", "-1e12"} {
		if tg, err := m.Resolve(dbKey, "", at); err == nil || !strings.Contains(err.Error(), "bad time") {
			t.Errorf("at=%q: %v (as of %v), want a rejection", at, err, tg.At)
		}
	}
	tg, err := m.Resolve(dbKey, "", "1764057600.5")
	if err != nil || !tg.At.Equal(time.Unix(1764057600, 5e8)) {
		t.Errorf("at=1764057600.5: %v, %v", tg.At, err)
	}
}
