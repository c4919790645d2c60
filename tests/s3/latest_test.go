//go:build cgo

package s3

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/blob/s3test"
	"github.com/verneuil-go/verneuil/internal/copier"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/spool"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// stageVersion publishes a one-chunk manifest of version seq in the spool
// at root. Its SQLite change counter (header offset 24) is seq, so a higher
// version is a later state of the database, as with a real writer.
func stageVersion(t *testing.T, root, key string, seq uint64) {
	t.Helper()
	data := bytes.Repeat([]byte(fmt.Sprint(seq)), 300)
	binary.BigEndian.PutUint32(data[24:28], uint32(seq))
	testutil.PublishManifest(t, root, key, spool.Info{Path: "/race/" + key, Name: key}, seq, data, time.Now())
}

// latestOf reads and resolves the latest manifest of key (test keys are
// not derived from the replica name, which restore.Latest checks).
func latestOf(ctx context.Context, s blob.Store, key string) (*manifest.Manifest, error) {
	b, err := s.Get(ctx, names.LatestKey(key))
	if err != nil {
		return nil, err
	}
	m, _, err := manifest.Resolve(b, restore.BaseFetcher(ctx, s, key))
	return m, err
}

// TestLatestNeverRegressesS3 races two copiers (two hosts' spools with the
// same replica name) against the real server while a reader checks that
// "latest" only moves forward; then checks that a steady-state upload
// costs two requests (the conditional write needs no read when this
// copier wrote "latest" last).
func TestLatestNeverRegressesS3(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	dir := t.TempDir()
	cfg := s3Config(dir, endpoint, bucket, "race")
	store := openStore(t, cfg)
	const key = "0000-race"
	var cps []*copier.Copier
	var roots []string
	for i := range 2 {
		root := fmt.Sprintf("%s/spool%d", dir, i)
		roots = append(roots, root)
		cps = append(cps, copier.New(copier.Options{SpoolDir: root, Targets: []blob.Store{store}, RateLimit: 10000}))
	}
	ctx := context.Background()
	stop := make(chan struct{})
	var regressions []string
	var reads int
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		var last uint64
		for {
			select {
			case <-stop:
				return
			default:
			}
			m, err := latestOf(ctx, store, key)
			if errors.Is(err, blob.ErrNotFound) {
				continue
			}
			if err != nil {
				regressions = append(regressions, "undecodable latest: "+err.Error())
				continue
			}
			reads++
			if m.Seq < last {
				regressions = append(regressions, fmt.Sprintf("%d after %d", m.Seq, last))
			}
			last = m.Seq
		}
	}()
	var wg sync.WaitGroup
	for i, cp := range cps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := range 30 {
				seq := uint64(v*2 + i + 1)
				stageVersion(t, roots[i], key, seq)
				// The other copier may have made a higher version latest
				// first: this one is then superseded (and says so).
				if err := cp.Upload(ctx, key); err != nil && !errors.Is(err, copier.ErrSuperseded) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-readerDone
	if len(regressions) > 0 {
		t.Fatalf("latest moved backwards (%d reads): %v", reads, regressions)
	}
	if m, err := latestOf(ctx, store, key); err != nil || m.Seq != 60 {
		t.Fatalf("final latest = %v, %v; want version 60", m, err)
	}
	t.Logf("reader saw latest %d times, never backwards", reads)

	// Steady state on S3: manifest PUT + conditional latest PUT.
	for v := uint64(100); v < 103; v++ {
		stageVersion(t, roots[0], key, v)
		before := cps[0].Stats().Requests
		if err := cps[0].Upload(ctx, key); err != nil {
			t.Fatal(err)
		}
		if got := cps[0].Stats().Requests - before; v > 100 && got != 2 {
			t.Errorf("version %d took %d requests, want 2", v, got)
		}
	}
}
