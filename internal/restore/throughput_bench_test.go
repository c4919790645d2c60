package restore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// bulkReplica stores a database of size bytes whose chunks compress about
// 2:1 (like rows of a bulk load), packed 256 records a pack (16 MiB), in
// a local-directory store, and returns its manifest and the pack keys.
func bulkReplica(b testing.TB, s blob.Store, size int) (*manifest.Manifest, []string) {
	b.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(uint64(size), 3))
	const name = "h:/bulk.db"
	m := &manifest.Manifest{Name: name, Seq: 1, CommitTime: time.Now(), PageSize: 4096, ChunkSize: packChunk,
		Length: int64(size), VersionID: []byte("v"), Locs: map[manifest.Hash]manifest.Location{}}
	var pb manifest.PackBuilder
	var keys []string
	flush := func() {
		obj, pn, locs := pb.Finish()
		for h, l := range locs {
			m.Locs[h] = l
		}
		k := names.PackKey(pn.String())
		if err := s.Put(ctx, k, obj); err != nil {
			b.Fatal(err)
		}
		keys = append(keys, k)
		pb = manifest.PackBuilder{}
	}
	c := make([]byte, packChunk)
	for i := 0; i*packChunk < size; i++ {
		for j := 0; j < len(c); j += 16 {
			// Half random, half a row counter: compressible, never zero.
			for k := range 8 {
				c[j+k] = byte(r.Uint32())
			}
			copy(c[j+8:j+16], fmt.Sprintf("%08x", (i*len(c)+j)/64))
		}
		h := manifest.HashOf(c)
		m.Chunks = append(m.Chunks, h)
		if i == 0 {
			m.Chunk0 = append([]byte(nil), c...)
			m.HeaderHash = manifest.HashOf(c[:100])
			continue
		}
		pb.Add(h, manifest.EncodeChunk(c))
		if pb.Len() >= 16<<20 {
			flush()
		}
	}
	if pb.Len() > 0 {
		flush()
	}
	return m, keys
}

// BenchmarkRestoreThroughput restores a packed replica (VERNEUIL_RESTORE_MB,
// default 256 MiB) from a local-directory store with ToFile, and reads the
// same pack objects with 8 parallel GETs that discard the bytes, in the
// same run; it reports both throughputs and their ratio.
func BenchmarkRestoreThroughput(b *testing.B) {
	mb := 256
	if v, err := strconv.Atoi(os.Getenv("VERNEUIL_RESTORE_MB")); err == nil && v > 0 {
		mb = v
	}
	ctx := context.Background()
	dir := b.TempDir()
	s, err := fileblob.OpenDir(filepath.Join(dir, "store"), true)
	if err != nil {
		b.Fatal(err)
	}
	m, keys := bulkReplica(b, s, mb<<20)
	out := filepath.Join(dir, "out.db")
	var restoreTime, rawTime, restoreCPU time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := rawParallelGet(ctx, s, keys, 8); err != nil {
			b.Fatal(err)
		}
		rawTime += time.Since(t0)
		t0, cpu0 := time.Now(), cpuTime(b)
		if err := restore.ToFile(ctx, s, m, out); err != nil {
			b.Fatal(err)
		}
		restoreTime += time.Since(t0)
		restoreCPU += cpuTime(b) - cpu0
	}
	b.StopTimer()
	bytes := float64(int64(mb<<20) * int64(b.N))
	b.ReportMetric(bytes/(1<<20)/restoreTime.Seconds(), "restore-MiB/s")
	b.ReportMetric(bytes/(1<<20)/rawTime.Seconds(), "rawget-MiB/s")
	b.ReportMetric(rawTime.Seconds()/restoreTime.Seconds(), "restore/raw")
	// CPU time, unlike wall time, barely moves with the load of other
	// processes on a shared machine.
	b.ReportMetric(restoreCPU.Seconds()/(bytes/(1<<30)), "restore-cpu-s/GiB")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rawParallelGet fetches every key, parallel at a time, discarding bytes.
func rawParallelGet(ctx context.Context, s blob.Store, keys []string, parallel int) error {
	ch := make(chan string)
	errs := make(chan error, parallel)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var first error
			for k := range ch {
				if _, err := s.Get(ctx, k); err != nil && first == nil {
					first = err
				}
			}
			errs <- first
		}()
	}
	for _, k := range keys {
		ch <- k
	}
	close(ch)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
