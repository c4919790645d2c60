package verneuil_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
)

// TestSnapshotMemoryCacheSlotsReused reads replicas whose chunks fall in
// different buffer classes of the memory cache (64 KiB slots, 1 MiB slots,
// malloc past 2 MiB, and short last chunks in smaller classes) through a
// cache of 1 MiB, so that every scan evicts and the next chunks reuse the
// freed slots of their class: a slot handed out twice, or a buffer freed
// into the wrong class, shows as a replica that disagrees with its source.
func TestSnapshotMemoryCacheSlotsReused(t *testing.T) {
	const q = "SELECT count(*) || ':' || sum(length(v)) || ':' || sum(id * unicode(substr(v, 1 + id % 50, 1))) FROM t"
	type db struct {
		path, want string
	}
	var dbs []db
	store := t.TempDir() // one store: the last environment's manager reads them all
	for _, c := range []struct {
		name      string
		chunkSize int
		rows      int
	}{
		{"64k", 64 << 10, 3000},   // 64 KiB slots; last chunk short
		{"1m", 1 << 20, 2500},     // 1 MiB slots
		{"4m", 4 << 20, 6000},     // malloc'd buffers
		{"64k-b", 64 << 10, 1111}, // the 64 KiB class again, another database
	} {
		// One replicator per process: each database is written by its
		// own, closed at the end of its subtest.
		t.Run(c.name, func(t *testing.T) {
			e := snapEnv(t, func(cfg *config.Config) {
				cfg.ChunkSize = c.chunkSize
				cfg.SnapshotMemoryCache = 1 << 20
				cfg.Targets = []config.Target{{URL: config.FileURL(store)}}
			})
			path := filepath.Join(e.dir, c.name+".db")
			src := e.open(path, "_journal_mode=TRUNCATE")
			mustExec(t, src, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
			mustExec(t, src, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < ?) "+
				"INSERT INTO t(v) SELECT printf('%.*c', 300 + i % 700, char(65 + i % 26)) || hex(randomblob(20)) FROM n", c.rows)
			if err := e.r.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			dbs = append(dbs, db{path, queryString(t, src, q)})
		})
	}
	if t.Failed() {
		return
	}
	// The reader: a cache of 1 MiB, the same store.
	snapEnv(t, func(cfg *config.Config) {
		cfg.SnapshotMemoryCache = 1 << 20
		cfg.Targets = []config.Target{{URL: config.FileURL(store)}}
	})
	before := sqlite3vfs.ReadSnapshotStats()
	for round := range 3 {
		for _, d := range dbs {
			snap := openSnap(t, d.path, "")
			if got := queryString(t, snap, q); got != d.want {
				t.Fatalf("round %d, %s: replica says %s, source %s", round, filepath.Base(d.path), got, d.want)
			}
			snap.Close()
		}
	}
	// Concurrent readers of all the databases: slots are taken and freed
	// by several threads at once.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for k := range 2 * len(dbs) {
				d := dbs[(g+k)%len(dbs)]
				snap, err := sql.Open("sqlite3", "file:"+uriEscape(d.path)+"?vfs=verneuil_snapshot")
				var got string
				if err == nil {
					err = snap.QueryRow(q).Scan(&got)
					snap.Close()
				}
				if err != nil || got != d.want {
					t.Errorf("reader %d, %s: %q, %v; source %s", g, filepath.Base(d.path), got, err, d.want)
				}
			}
		})
	}
	wg.Wait()
	after := sqlite3vfs.ReadSnapshotStats()
	if after.Evictions == before.Evictions {
		t.Fatalf("no chunk evicted (%+v): the test did not reuse slots", after)
	}
	if after.CacheBytes > 1<<20+4<<20 {
		t.Fatalf("memory cache holds %d bytes, bound 1 MiB plus one chunk", after.CacheBytes)
	}
}
