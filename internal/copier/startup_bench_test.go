package copier

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
)

// BenchmarkStartupScan measures what a process starting over a spool
// directory of VERNEUIL_BENCH_SPOOLS (default 10000) uploaded spools pays
// for its first scan: time (ns/op) and heap kept afterwards by the copier
// (retained-B). Command (docs/BENCHMARKS.md):
//
//	go test -run '^$' -bench StartupScan -benchtime 5x ./internal/copier
func BenchmarkStartupScan(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("VERNEUIL_BENCH_SPOOLS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	s := newMemStore()
	root := b.TempDir()
	for i := range n {
		stage(b, root, fmt.Sprintf("db%06d", i), uint64(i+1), randomBytes(testChunk/4, uint64(i)))
	}
	up := New(Options{SpoolDir: root, Targets: []blob.Store{s}, ScanInterval: -1, RateLimit: 1e9})
	if err := up.UploadAll(ctx); err != nil {
		b.Fatal(err)
	}
	up.Close(ctx)
	var retained, known float64
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c := New(Options{SpoolDir: root, Targets: []blob.Store{s}, ScanInterval: -1, RateLimit: 1e9})
		b.StartTimer()
		c.Scan(ctx)
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		retained = float64(after.HeapAlloc) - float64(before.HeapAlloc)
		known = float64(c.Stats().Databases)
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		c.Close(cctx)
		cancel()
		b.StartTimer()
	}
	b.ReportMetric(retained, "retained-B")
	b.ReportMetric(known, "databases-seen")
}
