package copier

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/gc"
	"github.com/verneuil-go/verneuil/internal/retention"
)

// BenchmarkRepackStoredBytes is TestRepack_GCAndStoredBytes at the
// default pack_bytes (4 MiB packs of 64 chunks): a 32 MiB database
// bulk-loaded, then 200 versions rewriting 6 random chunks on average,
// then a collection keeping the latest version only; with repacking at
// the default threshold and off. It prints the bytes stored after the
// collection and what the latest version's packs hold, as ratios to the
// database (docs/BENCHMARKS.md, "Repacking"):
//
//	go test -run '^$' -bench BenchmarkRepackStoredBytes -benchtime 1x ./internal/copier/
func BenchmarkRepackStoredBytes(b *testing.B) {
	const chunks, versions = 512, 200
	db := float64(chunks * testChunk)
	for range b.N {
		stored := map[int]int64{}
		for _, threshold := range []int{0, -1} {
			s, err := fileblob.OpenDir(b.TempDir(), true)
			if err != nil {
				b.Fatal(err)
			}
			root := b.TempDir()
			c := New(Options{SpoolDir: root, Targets: []blob.Store{s}, RateLimit: 10000, RepackThreshold: threshold})
			w := loadChurn(b, c, root, s, fmt.Sprint("bench:repack", threshold), chunks)
			for v := range versions {
				w.step(v)
			}
			latest := referencedPackBytes(b, s, w.latest())
			before, _ := storedBytes(b, s)
			// No writer runs any more: a grace of 0 collects at once.
			sum, err := gc.Run(context.Background(), s, gc.Options{Policy: retention.Policy{KeepLast: 1}, TempDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			all, packs := storedBytes(b, s)
			stored[threshold] = all
			st := c.Stats()
			name := map[int]string{0: "repacking", -1: "off"}[threshold]
			fmt.Printf("%s: database %.0f bytes; latest references %.2fx in packs; stored %.2fx before gc, %.2fx after (%.2fx in packs, %d packs deleted); new chunk bytes %.2fx, re-sent %.2fx in %d repacks, manifests %d bytes\n",
				name, db, float64(latest)/db, float64(before)/db, float64(all)/db, float64(packs)/db, sum.PacksDeleted,
				float64(st.BytesUploaded)/db, float64(st.RepackedBytes)/db, st.Repacks, st.ManifestBytes)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_ = c.Close(ctx)
			cancel()
		}
		fmt.Printf("stored after gc: %.2fx less with repacking\n", float64(stored[-1])/float64(stored[0]))
	}
}
