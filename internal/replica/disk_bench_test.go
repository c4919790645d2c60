package replica_test

import (
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/replica"
)

// BenchmarkColdSequentialRead reads 1,000 chunks (62.5 MiB) in order
// through a fresh manager (empty caches) from a local store, without and
// with the disk cache, whose cost on a cold scan is the difference:
//
//	go test ./internal/replica -run '^$' -bench ColdSequentialRead -benchtime 5x
func BenchmarkColdSequentialRead(b *testing.B) {
	s := newStore(b)
	d := randomData(41, 1000)
	publish(b, s, 100, d, true)
	for _, tc := range []struct {
		name string
		disk bool
	}{{"no-disk-cache", false}, {"disk-cache", true}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(d)))
			for b.Loop() {
				o := replica.Options{Store: s, Hostname: "h", RefreshInterval: 1 << 40}
				if tc.disk {
					o.CacheDir = filepath.Join(b.TempDir(), "cache")
				}
				m, err := replica.New(o)
				if err != nil {
					b.Fatal(err)
				}
				tg, err := m.Resolve(dbKey, "", "")
				if err != nil {
					b.Fatal(err)
				}
				src, err := m.Open(tg)
				if err != nil {
					b.Fatal(err)
				}
				mf := src.HoldCurrent(false, 0)
				for i := range mf.Chunks {
					if _, err := src.ReadChunk(mf.Seq, i); err != nil {
						b.Fatal(err)
					}
				}
				src.Release(mf.Seq)
				m.Close(src)
				m.Wait()
			}
		})
	}
}
