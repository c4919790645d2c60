package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/spool"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// ctl runs verneuilctl in this process.
func (s *testSpool) ctl(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), append([]string{"--config", s.config}, args...), &o, &e)
	return o.String(), e.String(), code
}

// status returns the status row of the database at path.
func (s *testSpool) status(t *testing.T, path string) dbStatus {
	t.Helper()
	out, errOut, code := s.ctl(t, "status", "--json")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	var rows []dbStatus
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, r := range rows {
		if r.Path == path {
			return r
		}
	}
	t.Fatalf("status has no row for %s:\n%s", path, out)
	return dbStatus{}
}

// writeThroughVFS runs statements on path through the replicating VFS in
// this process, then flushes and stops replication.
func (s *testSpool) writeThroughVFS(t *testing.T, path, params string, stmts ...string) {
	t.Helper()
	cfg, err := config.Load(s.config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := replicator.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?vfs=verneuil&"+params)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	r.Flush(ctx) // a WAL database makes it fail: the tests check that
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// writePlain runs statements on path without the VFS (a bypassing writer).
func writePlain(t *testing.T, path, params string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?"+params)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestRegression_WALDatabaseStatus: a database in WAL mode, written
// through verneuil, is replicated: status shows it in WAL mode and not
// failing, flush succeeds and the replica is the file; sync and verify
// read it (walsync_test.go has more); the daemon finds it in sync.
func TestRegression_WALDatabaseStatus(t *testing.T) {
	s := newTestSpool(t)
	path := filepath.Join(s.dir, "wal.db")
	writePlain(t, path, "_journal_mode=WAL", "CREATE TABLE t(a)")
	s.writeThroughVFS(t, path, "", "INSERT INTO t VALUES(1)", "INSERT INTO t VALUES(2)")

	if r := s.status(t, path); !r.WAL || !strings.Contains(r.Reason, "WAL read lock") || r.ChangedOutsideCapture {
		t.Errorf("status --json: %+v", r)
	}
	out, _, _ := s.ctl(t, "status")
	if strings.Contains(out, "FAILING") || strings.Contains(out, "1 failing") {
		t.Errorf("status shows the WAL database failing:\n%s", out)
	}
	if _, errOut, code := s.ctl(t, "flush"); code != 0 {
		t.Errorf("flush of a WAL database: exit %d: %s", code, errOut)
	}
	restored := filepath.Join(t.TempDir(), "restored.db")
	if _, errOut, code := s.ctl(t, "restore", path, "--out", restored); code != 0 {
		t.Fatalf("restore: exit %d: %s", code, errOut)
	}
	testutil.SameFile(t, restored, path)
	for _, cmd := range [][]string{{"sync", path}, {"verify", path}} {
		if _, errOut, code := s.ctl(t, cmd...); code != 0 {
			t.Errorf("%s of a WAL database: exit %d: %s", cmd[0], code, errOut)
		}
	}
	// The copier daemon's check (its metrics): WAL, in sync.
	cfg, err := config.Load(s.config)
	if err != nil {
		t.Fatal(err)
	}
	h := newHealer(cfg, slog.New(slog.DiscardHandler), time.Second)
	h.pass(context.Background())
	key := names.Key(names.Replica("ctltest", path))
	if st := h.snapshot()[key]; !st.WAL || st.Outside || h.syncs.Load() != 0 {
		t.Errorf("daemon check of the WAL database: %+v, %d syncs", st, h.syncs.Load())
	}
}

// bypassWrite captures a small database through the VFS, then writes 100
// rows without it (a bypassing writer; a forked child behaves the same).
func (s *testSpool) bypassWrite(t *testing.T, path string) {
	t.Helper()
	s.writeThroughVFS(t, path, "_journal_mode=DELETE", "CREATE TABLE t(a)", "INSERT INTO t VALUES(1)")
	if r := s.status(t, path); r.ChangedOutsideCapture || r.Pending {
		t.Fatalf("status after a captured write: %+v", r)
	}
	var stmts []string
	for range 100 {
		stmts = append(stmts, "INSERT INTO t VALUES(randomblob(500))")
	}
	writePlain(t, path, "_journal_mode=DELETE", stmts...)
}

// TestRegression_ChangedOutsideCaptureShown: rows written without the VFS
// after the last capture show in status as "changed outside capture", and
// so does a database whose spool holds a forked child's rescan marker.
func TestRegression_ChangedOutsideCaptureShown(t *testing.T) {
	s := newTestSpool(t)
	path := filepath.Join(s.dir, "app.db")
	s.bypassWrite(t, path)
	r := s.status(t, path)
	if !r.ChangedOutsideCapture || r.Reason == "" {
		t.Fatalf("status after a bypassing write: %+v", r)
	}
	out, _, _ := s.ctl(t, "status")
	if !strings.Contains(out, "changed outside capture") || !strings.Contains(out, "1 changed outside capture") {
		t.Errorf("status output:\n%s", out)
	}
	s.ctl(t, "sync", path)
	if r := s.status(t, path); r.ChangedOutsideCapture {
		t.Fatalf("status after sync: %+v", r)
	}
	key := names.Key(names.Replica("ctltest", path))
	marker := filepath.Join(spool.DBsDir(s.spoolDir), key, spool.RescanMarker)
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := s.status(t, path); !r.ChangedOutsideCapture {
		t.Fatalf("status with a rescan marker: %+v", r)
	}
	if _, errOut, code := s.ctl(t, "sync", path); code != 0 {
		t.Fatalf("sync: %s", errOut)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("sync left the rescan marker: %v", err)
	}
}

// TestRegression_CopierDaemonHealsChangedOutsideCapture: the copier daemon
// syncs a database changed outside capture within a scan interval, removes
// the forked child's rescan marker and reports it in its metrics.
func TestRegression_CopierDaemonHealsChangedOutsideCapture(t *testing.T) {
	s := newTestSpool(t)
	path := filepath.Join(s.dir, "app.db")
	s.bypassWrite(t, path)
	key := names.Key(names.Replica("ctltest", path))
	marker := filepath.Join(spool.DBsDir(s.spoolDir), key, spool.RescanMarker)
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--config", s.config, "copier", "--metrics-addr", addr, "--scan-interval", "100ms"}, &stdout, &stderr)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("copier exited %d: %s", code, stderr.String())
		}
	}()
	store, err := fileblob.OpenDir(s.store, false)
	if err != nil {
		t.Fatal(err)
	}
	want := testutil.FileSHA256(t, path)
	restored := filepath.Join(s.dir, "restored.db")
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := restore.Latest(ctx, store, key)
		if err == nil && restore.ToFile(ctx, store, m, restored) == nil && testutil.FileSHA256(t, restored) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not sync the database changed outside capture; log:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		_, err := os.Stat(marker)
		body := scrape(t, addr)
		if os.IsNotExist(err) && strings.Contains(body, "verneuil_copier_outside_syncs_total 1") {
			checkExposition(t, body)
			for _, want := range []string{
				`verneuil_db_changed_outside_capture{db="` + path + `",key="` + key + `"} 0`,
				`verneuil_db_wal{db="` + path + `",key="` + key + `"} 0`,
				"verneuil_spool_changed_outside_capture_databases 0",
			} {
				if !strings.Contains(body, want) {
					t.Errorf("metrics lack %q", want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("marker %v, metrics:\n%s", err, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := s.status(t, path); r.ChangedOutsideCapture {
		t.Errorf("status after the daemon synced: %+v", r)
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
