package replica_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/verneuil-go/verneuil/internal/replica"
)

// Three managers sharing a small bounded cache read a replica over and
// over (appending, evicting, indexing each other's packs) while a vandal
// deletes packs, truncates them and flips bytes in them: every read
// returns the right data, without an error.
func TestPackCacheUnderVandal(t *testing.T) {
	s := newStore(t)
	const chunks = 40
	d := randomData(51, chunks)
	publish(t, s, 100, d, true)
	cache := filepath.Join(t.TempDir(), "cache")
	bounded := func(o *replica.Options) { o.CacheDir, o.DiskCache = cache, 8*chunkSize }
	var stop atomic.Bool
	var vandal sync.WaitGroup
	vandal.Go(func() {
		r := rand.New(rand.NewPCG(7, 7))
		for !stop.Load() {
			packs, _ := filepath.Glob(filepath.Join(cache, "packs", "*.pack"))
			if len(packs) == 0 {
				continue
			}
			p := packs[r.IntN(len(packs))]
			fi, err := os.Stat(p)
			if err != nil || fi.Size() == 0 {
				continue
			}
			switch r.IntN(3) {
			case 0:
				os.Remove(p)
			case 1:
				os.Truncate(p, r.Int64N(fi.Size()))
			case 2:
				if f, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
					f.WriteAt([]byte{byte(r.Uint32()) | 1}, r.Int64N(fi.Size()))
					f.Close()
				}
			}
		}
	})
	var readers sync.WaitGroup
	var hits atomic.Int64
	for k := range 3 {
		readers.Go(func() {
			m := newManager(t, s, bounded)
			src := open(t, m, dbKey, "", "")
			mf := src.HoldCurrent(false, 0)
			defer src.Release(mf.Seq)
			for round := range 4 {
				for j := range mf.Chunks {
					i := (j + k*7) % chunks // readers at different places
					c, err := src.ReadChunk(mf.Seq, i)
					if err != nil || !bytes.Equal(c, d[i*chunkSize:(i+1)*chunkSize]) {
						t.Errorf("reader %d, round %d, chunk %d: %v (or wrong data)", k, round, i, err)
						return
					}
				}
				src.Wait()
			}
			hits.Add(m.Stats().DiskHits)
		})
	}
	readers.Wait()
	stop.Store(true)
	vandal.Wait()
	if hits.Load() == 0 {
		t.Fatal("no chunk was read from the disk cache: the vandal had nothing to damage")
	}
}
