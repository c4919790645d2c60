//go:build cgo

package s3

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob/s3test"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// TestReplicateThroughVFS writes through the VFS, flushes, and restores a
// byte-identical copy from S3, at several points of the database's life
// (growth over many chunks, updates, deletes and a VACUUM that shrinks it).
func TestReplicateThroughVFS(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	dir := t.TempDir()
	cfg := s3Config(dir, endpoint, bucket, "vfs")
	r := startReplicator(t, cfg)
	store := openStore(t, cfg)
	path := filepath.Join(dir, "app.db")
	db := openDB(t, path)
	exec1(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB)")
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))

	for round := range 4 {
		for range 25 {
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			for range 20 {
				if _, err := tx.Exec("INSERT INTO t(k, v) VALUES(?, randomblob(?))", rng.IntN(1000), rng.IntN(4000)); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		switch round {
		case 1:
			exec1(t, db, "UPDATE t SET v = randomblob(300) WHERE k % 3 = 0")
		case 2:
			exec1(t, db, "DELETE FROM t WHERE k % 2 = 0")
			exec1(t, db, "VACUUM")
		}
		if err := r.FlushDB(ctx, path); err != nil {
			t.Fatalf("flush: %v", err)
		}
		restoreCompare(t, cfg, store, path)
	}
	st := r.Stats()
	if st.Manifests < 4 || st.ChunksUploaded == 0 || st.Errors != 0 {
		t.Errorf("stats = %+v", st)
	}
	// Every published version is kept for point-in-time restore.
	_, key, err := replicator.ReplicaName(cfg, path, "")
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := restore.Versions(ctx, store, key)
	if err != nil || len(seqs) < 4 {
		t.Fatalf("versions = %v, %v", seqs, err)
	}
}

// TestManyDatabases writes 200 databases concurrently from one process,
// flushes, and restores every one byte-identical.
func TestManyDatabases(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	dir := t.TempDir()
	cfg := s3Config(dir, endpoint, bucket, "many")
	cfg.RateLimit = 2000
	cfg.RateBurst = 200
	r := startReplicator(t, cfg)
	store := openStore(t, cfg)
	const n = 200
	paths := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for i := range n {
		paths[i] = filepath.Join(dir, fmt.Sprintf("db%03d.db", i))
		db := openDB(t, paths[i])
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			if _, err := db.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
				errs <- err
				return
			}
			for j := range 20 {
				// Some databases grow past one chunk.
				size := rng.IntN(2000)
				if i%10 == 0 {
					size = 20000
				}
				if _, err := db.Exec("INSERT INTO t(v) VALUES(randomblob(?))", size); err != nil {
					errs <- fmt.Errorf("db %d write %d: %w", i, j, err)
					return
				}
				time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	written := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	t.Logf("200 databases written in %v, flushed in %v; %+v", written, time.Since(start)-written, r.Stats())
	for _, p := range paths {
		restoreCompare(t, cfg, store, p)
	}
}
