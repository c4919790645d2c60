//go:build cgo

package s3

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob/s3test"
	"github.com/verneuil-go/verneuil/internal/config"
)

// A refresh that fails against the real S3 server (every request answered
// 503 by the proxy) is visible: PRAGMA verneuil_snapshot_refresh fails
// with the cause, verneuil_snapshot_stats has last_error, failing_since
// and the count, Replicator.SnapshotStats counts it; reads go on at the
// loaded version while verneuil_snapshot_lag grows from its commit time;
// once the store answers, the next read jumps to the newest version
// (several commits later).
func TestSnapshotRefreshFailureS3(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	proxy := startProxy(t, endpoint)
	dir := t.TempDir()
	cfg := s3Config(dir, proxy.URL(), bucket, "snapfail")
	cfg.LogLevel = "error"
	cfg.CacheDir = filepath.Join(dir, "cache")
	cfg.SnapshotRefreshInterval = 1 // check at every read transaction
	cfg.SnapshotTimeout = config.Duration(2 * time.Second)
	r := startReplicator(t, cfg)
	ctx := context.Background()
	path := filepath.Join(dir, "src.db")
	src := openDB(t, path)
	exec1(t, src, "CREATE TABLE t(v BLOB)")
	exec1(t, src, "INSERT INTO t VALUES(randomblob(1000))")
	if err := r.FlushDB(ctx, path); err != nil {
		t.Fatal(err)
	}
	snap := openSnapshot(t, path)
	if n, err := count(snap); err != nil || n != 1 {
		t.Fatalf("replica: %d rows, %v", n, err)
	}
	version := func() uint64 {
		t.Helper()
		var v string
		if err := snap.QueryRow("PRAGMA verneuil_snapshot_version").Scan(&v); err != nil {
			t.Fatal(err)
		}
		seq, err := strconv.ParseUint(strings.Fields(v)[0], 10, 64)
		if err != nil {
			t.Fatalf("verneuil_snapshot_version %q: %v", v, err)
		}
		return seq
	}
	lag := func() float64 {
		t.Helper()
		var v float64
		if err := snap.QueryRow("PRAGMA verneuil_snapshot_lag").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	v1 := version()
	before, _ := r.SnapshotStats()

	proxy.set("5xx", 1, 0)
	var got string
	err := snap.QueryRow("PRAGMA verneuil_snapshot_refresh").Scan(&got)
	if err == nil || !strings.Contains(err.Error(), "refresh of") || !strings.Contains(err.Error(), "checks failed since") {
		t.Fatalf("refresh pragma with the store answering 503: %q, %v; want the refresh error", got, err)
	}
	lag1 := lag()
	if n, err := count(snap); err != nil || n != 1 {
		t.Fatalf("reading the loaded version while refreshes fail: %d rows, %v", n, err)
	}
	var stats struct {
		Process struct {
			RefreshErrors int64 `json:"refresh_errors"`
		} `json:"process"`
		LastError    string    `json:"last_error"`
		FailingSince time.Time `json:"failing_since"`
		Failures     int       `json:"failures"`
	}
	var js string
	if err := snap.QueryRow("PRAGMA verneuil_snapshot_stats").Scan(&js); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(js), &stats); err != nil {
		t.Fatalf("stats %s: %v", js, err)
	}
	if stats.LastError == "" || stats.FailingSince.IsZero() || stats.Failures < 2 || stats.Process.RefreshErrors < 2 {
		t.Errorf("verneuil_snapshot_stats while refreshes fail: %s", js)
	}
	if after, _ := r.SnapshotStats(); after.RefreshErrors-before.RefreshErrors < 2 {
		t.Errorf("Replicator.SnapshotStats: %d refresh errors, want ≥ 2", after.RefreshErrors-before.RefreshErrors)
	}
	time.Sleep(1100 * time.Millisecond)
	if lag2 := lag(); lag2 < lag1+1 {
		t.Errorf("lag while refreshes fail: %.3f s then %.3f s 1.1 s later; want it growing", lag1, lag2)
	}
	if v := version(); v != v1 {
		t.Errorf("version %d while refreshes fail, want %d", v, v1)
	}

	// Commits meanwhile (uploaded once the store is back).
	for range 3 {
		exec1(t, src, "INSERT INTO t VALUES(randomblob(1000))")
	}
	proxy.set("", 0, 0)
	if err := r.FlushDB(ctx, path); err != nil {
		t.Fatal(err)
	}
	if n, err := count(snap); err != nil || n != 4 {
		t.Fatalf("after the store came back: %d rows, %v; want 4", n, err)
	}
	if v := version(); v <= v1 {
		t.Errorf("version %d after recovery, want > %d", v, v1)
	}
	if l := lag(); l >= lag1+1 {
		t.Errorf("lag %.3f s after recovery (was %.3f s): not the new version's", l, lag1)
	}
	if err := snap.QueryRow("PRAGMA verneuil_snapshot_stats").Scan(&js); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(js, "last_error") {
		t.Errorf("stats still report an error after recovery: %s", js)
	}
}
