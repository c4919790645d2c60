package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
)

// sqlitePages creates a real database with user_version uv and about n
// pages of incompressible rows, and returns its pages.
func sqlitePages(t *testing.T, uv int64, n int) [][]byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "src.db")
	db, err := sql.Open("sqlite3", "file:"+p+"?_journal_mode=DELETE")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	row := make([]byte, 3000)
	if _, err := db.Exec("PRAGMA page_size = 4096; CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	for k := range n {
		if err := commitOne(db, int64(k), 1, row); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec("PRAGMA user_version = " + itoa(uv)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var pages [][]byte
	for off := 0; off < len(data); off += 4096 {
		pages = append(pages, data[off:off+4096])
	}
	return pages
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// encodeLTX writes pages (numbered from first) as an LTX file.
func encodeLTX(t *testing.T, pages [][]byte, first uint32, commit uint32) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	hdr := ltx.Header{Version: ltx.Version, PageSize: 4096, Commit: commit, MinTXID: 1, MaxTXID: 1, Timestamp: time.Now().UnixMilli()}
	if first != 1 {
		hdr.MinTXID, hdr.MaxTXID, hdr.PreApplyChecksum = 5, 5, ltx.ChecksumFlag|1
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		t.Fatal(err)
	}
	for i, pg := range pages {
		if err := enc.EncodePage(ltx.PageHeader{Pgno: first + uint32(i)}, pg); err != nil {
			t.Fatal(err)
		}
	}
	enc.SetPostApplyChecksum(ltx.ChecksumFlag | 2)
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestLTXUserVersion(t *testing.T) {
	pages := sqlitePages(t, 4242, 40)
	full := encodeLTX(t, pages, 1, uint32(len(pages)))
	if len(full) <= ltxHead {
		t.Fatalf("test file of %d bytes is not longer than the %d bytes the probe reads", len(full), ltxHead)
	}
	// The probe reads only the head of the file.
	v, ok, err := ltxUserVersion(full[:ltxHead])
	if err != nil || !ok || v != 4242 {
		t.Errorf("snapshot: %d, %v, %v; want 4242", v, ok, err)
	}
	// A file whose transactions did not write page 1.
	v, ok, err = ltxUserVersion(encodeLTX(t, pages[2:5], 3, uint32(len(pages))))
	if err != nil || ok {
		t.Errorf("file without page 1: %d, %v, %v; want not ok", v, ok, err)
	}
	if _, _, err := ltxUserVersion([]byte("not an LTX file at all, clearly not")); err == nil {
		t.Error("garbage decoded")
	}
	if _, err := userVersion(make([]byte, 4096)); err == nil {
		t.Error("a zero page passed for a database header")
	}
}

// TestVerneuilProbe replicates a database through the VFS to a local
// directory and reads its sequence number back from the store.
func TestVerneuilProbe(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.SpoolDir = filepath.Join(dir, "spool")
	if err := os.Mkdir(filepath.Join(dir, "store"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg.Targets = []config.Target{{URL: config.FileURL(filepath.Join(dir, "store"))}}
	cfg.Hostname = "probe-test"
	ctx := context.Background()
	r, err := replicator.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	path := filepath.Join(dir, "a.db")
	_, key, err := replicator.ReplicaName(cfg, path, "")
	if err != nil {
		t.Fatal(err)
	}
	p := &verneuilProbe{store: r.Targets()[0], keys: []string{key}}
	if s, err := p.seq(ctx, 0); err != nil || s != -1 {
		t.Fatalf("before any write: %d, %v; want -1", s, err)
	}
	db, err := sql.Open("sqlite3", dsn(toolVerneuil, path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	for k := int64(1); k <= 3; k++ {
		if err := commitOne(db, k, 2, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := p.seq(ctx, 0); err != nil || s != 3 {
		t.Errorf("after 3 transactions: %d, %v; want 3", s, err)
	}
}

// scripted answers seq from a list, one answer per call, per database.
type scripted struct{ answers map[int][]int64 }

func (s *scripted) seq(_ context.Context, i int) (int64, error) {
	a := s.answers[i]
	if len(a) == 0 {
		return -1, nil
	}
	s.answers[i] = a[1:]
	return a[0], nil
}

func TestPollerLags(t *testing.T) {
	pr := &scripted{answers: map[int][]int64{0: {-1, 2, 2, 5}, 1: {0, 1}}}
	pl := newPoller(pr, []int{0, 1}, time.Millisecond)
	if pl.reached(nil) {
		t.Fatal("reached before any poll")
	}
	var at []time.Time
	for range 4 {
		pl.pollOnce(context.Background())
		at = append(at, time.Now())
		time.Sleep(2 * time.Millisecond)
	}
	if !pl.reached(map[int]int64{0: 5, 1: 1}) || pl.reached(map[int]int64{0: 6}) {
		t.Error("reached() disagrees with the observations")
	}
	commit := at[0].Add(-time.Millisecond)
	recs := []commitRecord{
		{DB: 0, Seq: 1, Commit: commit.UnixNano()}, // first seen (as 2) at poll 2
		{DB: 0, Seq: 3, Commit: commit.UnixNano()}, // first seen (as 5) at poll 4
		{DB: 0, Seq: 6, Commit: commit.UnixNano()}, // never seen
		{DB: 1, Seq: 1, Commit: commit.UnixNano()}, // seen at poll 2
		{DB: 2, Seq: 1, Commit: commit.UnixNano()}, // not polled: ignored
	}
	lags, unseen := pl.lags(recs)
	if unseen != 1 || len(lags) != 3 {
		t.Fatalf("%d lags, %d unseen; want 3 and 1", len(lags), unseen)
	}
	// Observation times fall between the poll's start and the recorded
	// time after it.
	for i, want := range []time.Duration{at[1].Sub(commit), at[3].Sub(commit), at[1].Sub(commit)} {
		if lags[i] > want || lags[i] <= want-3*time.Millisecond-time.Millisecond {
			t.Errorf("lag %d = %v, want just under %v", i, lags[i], want)
		}
	}
}
