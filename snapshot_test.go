package verneuil_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/sqlite3vfs"
)

// snapEnv is newEnv with the snapshot caches in the test's directory.
func snapEnv(t *testing.T, mutate ...func(*config.Config)) *env {
	t.Helper()
	return newEnv(t, append([]func(*config.Config){func(c *config.Config) {
		c.CacheDir = filepath.Join(filepath.Dir(c.SpoolDir), "cache")
	}}, mutate...)...)
}

// openSnap opens a read replica: name is a path, verneuil:// name, key or
// manifest file; params are extra URI parameters.
func openSnap(t testing.TB, name, params string) *sql.DB {
	t.Helper()
	dsn := "file:" + uriEscape(name) + "?vfs=verneuil_snapshot"
	if params != "" {
		dsn += "&" + params
	}
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// uriEscape escapes what SQLite's URI parser would decode or cut at.
func uriEscape(s string) string {
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return r.Replace(s)
}

func queryString(t testing.TB, db interface {
	QueryRow(string, ...any) *sql.Row
}, q string, args ...any) string {
	t.Helper()
	var s sql.NullString
	if err := db.QueryRow(q, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s.String
}

func sqliteCode(err error) sqlite3.ErrNo {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code
	}
	return -1
}

func TestSnapshotReadsReplica(t *testing.T) {
	e := snapEnv(t)
	path := filepath.Join(e.dir, "app.db")
	db := e.open(path, "_journal_mode=TRUNCATE")
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	mustExec(t, db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000) "+
		"INSERT INTO t(v) SELECT printf('%.*c', 50 + i % 100, 'x') FROM n")
	if err := e.r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := queryString(t, db, "SELECT sum(length(v)) || ':' || count(*) FROM t")
	for _, name := range []string{path, "verneuil:///" + strings.TrimPrefix(path, "/"), "verneuil://testhost" + path, e.key(path)} {
		t.Run(url.PathEscape(name), func(t *testing.T) {
			snap := openSnap(t, name, "")
			if got := queryString(t, snap, "SELECT sum(length(v)) || ':' || count(*) FROM t"); got != want {
				t.Fatalf("replica says %s, source %s", got, want)
			}
		})
	}
}

// rows returns every row of kv, as the digest both sides must agree on.
func rows(t testing.TB, q interface {
	Query(string, ...any) (*sql.Rows, error)
}) string {
	t.Helper()
	rs, err := q.Query("SELECT k, v FROM kv ORDER BY k")
	if err != nil {
		t.Fatalf("query kv: %v", err)
	}
	defer rs.Close()
	h := sha256.New()
	for rs.Next() {
		var k int64
		var v []byte
		if err := rs.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%d:%d:", k, len(v))
		h.Write(v)
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("query kv: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// snapVersion returns a snapshot connection's version and commit time.
func snapVersion(t testing.TB, db interface {
	QueryRow(string, ...any) *sql.Row
}) (uint64, string) {
	t.Helper()
	var seq uint64
	var at string
	if _, err := fmt.Sscan(queryString(t, db, "PRAGMA verneuil_snapshot_version"), &seq, &at); err != nil {
		t.Fatal(err)
	}
	return seq, at
}

func TestSnapshotRandomWorkload(t *testing.T) {
	e := snapEnv(t, func(c *config.Config) { c.SnapshotRefreshInterval = 1 }) // check at every read
	path := filepath.Join(e.dir, "work.db")
	src := e.open(path, "_journal_mode=TRUNCATE")
	mustExec(t, src, "CREATE TABLE kv(k INTEGER PRIMARY KEY, v BLOB)")
	if err := e.r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap := openSnap(t, path, "")
	snap.SetMaxOpenConns(1) // one connection: its page cache must follow
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	type state struct {
		seq    uint64
		at     string
		digest string
	}
	var seen []state
	var last uint64
	for commit := range 40 {
		tx, err := src.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for range 1 + rng.IntN(20) {
			k := rng.IntN(300)
			switch rng.IntN(4) {
			case 0, 1:
				size := rng.IntN(3000)
				if rng.IntN(10) == 0 {
					size = 20000 + rng.IntN(150000) // overflow pages, new chunks
				}
				v := make([]byte, size)
				for i := range v {
					v[i] = byte(rng.Uint32())
				}
				mustExec(t, tx, "INSERT OR REPLACE INTO kv VALUES(?, ?)", k, v)
			case 2:
				mustExec(t, tx, "UPDATE kv SET v = randomblob(length(v)) WHERE k = ?", k)
			case 3:
				mustExec(t, tx, "DELETE FROM kv WHERE k = ?", k)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := e.r.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := rows(t, src)
		if got := rows(t, snap); got != want {
			t.Fatalf("commit %d: the replica's rows differ from the source's", commit)
		}
		seq, at := snapVersion(t, snap)
		if seq < last {
			t.Fatalf("commit %d: version went back from %d to %d", commit, last, seq)
		}
		last = seq
		seen = append(seen, state{seq, at, want})
	}
	// version= and at= open exactly the state committed then.
	for _, i := range []int{0, 7, 19, 33, 39} {
		s := seen[i]
		if got := rows(t, openSnap(t, path, fmt.Sprintf("version=%d", s.seq))); got != s.digest {
			t.Errorf("version=%d: rows differ from commit %d", s.seq, i)
		}
		if got := rows(t, openSnap(t, path, "at="+url.QueryEscape(s.at))); got != s.digest {
			t.Errorf("at=%s: rows differ from commit %d", s.at, i)
		}
	}
}

func TestSnapshotReadTransactionKeepsVersion(t *testing.T) {
	e := snapEnv(t, func(c *config.Config) { c.SnapshotRefreshInterval = 1 })
	ctx := context.Background()
	path := filepath.Join(e.dir, "long.db")
	src := e.open(path, "")
	mustExec(t, src, "CREATE TABLE t(x)")
	mustExec(t, src, "INSERT INTO t VALUES(1)")
	if err := e.r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := openSnap(t, path, "").Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, tx, "SELECT count(*) FROM t"); got != "1" {
		t.Fatalf("count %s", got)
	}
	v1, _ := snapVersion(t, tx)
	for range 3 {
		mustExec(t, src, "INSERT INTO t VALUES(2)")
		if err := e.r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		// An explicit refresh inside the transaction does not move it.
		queryString(t, tx, "PRAGMA verneuil_snapshot_refresh")
		if got := queryString(t, tx, "SELECT count(*) FROM t"); got != "1" {
			t.Fatalf("inside the read transaction: count %s, want 1", got)
		}
		if v, _ := snapVersion(t, tx); v != v1 {
			t.Fatalf("inside the read transaction: version %d, want %d", v, v1)
		}
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, connQuery{conn}, "SELECT count(*) FROM t"); got != "4" {
		t.Fatalf("next transaction: count %s, want 4", got)
	}
	if v, _ := snapVersion(t, connQuery{conn}); v <= v1 {
		t.Fatalf("next transaction: version %d, want > %d", v, v1)
	}
}

// connQuery gives a *sql.Conn the QueryRow of *sql.DB.
type connQuery struct{ *sql.Conn }

func (c connQuery) QueryRow(q string, args ...any) *sql.Row {
	return c.QueryRowContext(context.Background(), q, args...)
}

func TestSnapshotPageCache(t *testing.T) {
	e := snapEnv(t) // refresh interval 1 s: explicit refreshes only, in practice
	ctx := context.Background()
	path := filepath.Join(e.dir, "pages.db")
	src := e.open(path, "")
	mustExec(t, src, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	for i := range 500 {
		mustExec(t, src, "INSERT INTO t VALUES(?, ?)", i, fmt.Sprintf("old-%04d", i))
	}
	if err := e.r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	snap := openSnap(t, path, "")
	snap.SetMaxOpenConns(1)
	const q = "SELECT v FROM t WHERE id = 250"
	if got := queryString(t, snap, q); got != "old-0250" {
		t.Fatalf("got %q", got)
	}
	// Unchanged version: SQLite's page cache serves the query again (the
	// VFS sees only the pager's check of the change counter).
	before := sqlite3vfs.ReadSnapshotStats().Reads
	queryString(t, snap, q)
	if n := sqlite3vfs.ReadSnapshotStats().Reads - before; n > 2 {
		t.Errorf("a repeated query read %d times from the VFS; the page cache should serve it", n)
	}
	// The same page changed in place (same length): after a refresh, the
	// cached page is stale and must not be served.
	mustExec(t, src, "UPDATE t SET v = 'new-0250' WHERE id = 250")
	if err := e.r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	queryString(t, snap, "PRAGMA verneuil_snapshot_refresh")
	if got := queryString(t, snap, q); got != "new-0250" {
		t.Fatalf("after a refresh: %q, want new-0250 (a stale page)", got)
	}
}

func TestSnapshotIsReadOnly(t *testing.T) {
	e := snapEnv(t)
	path := filepath.Join(e.dir, "ro.db")
	src := e.open(path, "")
	mustExec(t, src, "CREATE TABLE t(x)")
	mustExec(t, src, "INSERT INTO t VALUES(1)")
	if err := e.r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := dirNames(t, e.dir)
	snap := openSnap(t, path, "")
	for _, q := range []string{
		"INSERT INTO t VALUES(2)",
		"CREATE TABLE u(y)",
		"DELETE FROM t",
		"VACUUM",
		"PRAGMA journal_mode=WAL",
		"PRAGMA journal_mode=DELETE",
		"PRAGMA user_version=3",
	} {
		_, err := snap.Exec(q)
		if sqliteCode(err) != sqlite3.ErrReadonly {
			t.Errorf("%s: %v, want SQLITE_READONLY", q, err)
		}
	}
	if got := queryString(t, snap, "SELECT count(*) FROM t"); got != "1" {
		t.Errorf("count %s after refused writes", got)
	}
	if after := dirNames(t, e.dir); after != before {
		t.Errorf("files changed beside the database: %s -> %s", before, after)
	}
}

func dirNames(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return strings.Join(out, ",")
}

func TestSnapshotNoReplica(t *testing.T) {
	e := snapEnv(t)
	for _, name := range []string{filepath.Join(e.dir, "never.db"), "verneuil://elsewhere/x.db", "nothing"} {
		err := openSnap(t, name, "").Ping()
		if sqliteCode(err) != sqlite3.ErrCantOpen {
			t.Errorf("%s: %v, want SQLITE_CANTOPEN", name, err)
		}
	}
}

func TestSnapshotCorruptChunk(t *testing.T) {
	e := snapEnv(t)
	path := filepath.Join(e.dir, "bad.db")
	src := e.open(path, "")
	mustExec(t, src, "CREATE TABLE t(v BLOB)")
	for range 40 {
		mustExec(t, src, "INSERT INTO t VALUES(randomblob(10000))")
	}
	if err := e.r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Every chunk object but chunk 0 (inline) now holds other bytes, and
	// so does every pack (the first upload sends its chunks in packs).
	m := e.latest(path)
	for _, h := range m.Chunks[1:] {
		if l, ok := m.Locs[h]; ok {
			p := filepath.Join(e.store, "packs", l.Pack.String())
			if err := os.WriteFile(p, bytes.Repeat([]byte("x"), int(l.End())), 0o600); err != nil {
				t.Fatal(err)
			}
			continue
		}
		p := filepath.Join(e.store, "chunks", h.String())
		if err := os.WriteFile(p, append([]byte{0}, bytes.Repeat([]byte("x"), 1000)...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	err := openSnap(t, path, "").QueryRow("SELECT count(*) FROM t WHERE length(v) = 10000").Scan(&n)
	if code := sqliteCode(err); code != sqlite3.ErrIoErr && code != sqlite3.ErrCorrupt {
		t.Fatalf("scan over corrupt chunks: %d rows, %v; want SQLITE_IOERR or SQLITE_CORRUPT", n, err)
	}
}

// A version whose header has the previous version's change counter (the
// source in locking_mode=EXCLUSIVE publishes such versions) must still
// invalidate SQLite's page cache.
func TestSnapshotPageCacheSameChangeCounter(t *testing.T) {
	e := snapEnv(t)
	ctx := context.Background()
	path := filepath.Join(e.dir, "counter.db")
	src := e.open(path, "")
	mustExec(t, src, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	mustExec(t, src, "INSERT INTO t VALUES(1, 'old'), (2, 'two')")
	if err := e.r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	m1 := e.latest(path)
	snap := openSnap(t, path, "")
	snap.SetMaxOpenConns(1)
	if got := queryString(t, snap, "SELECT v FROM t WHERE id = 1"); got != "old" {
		t.Fatalf("got %q", got)
	}
	mustExec(t, src, "UPDATE t SET v = 'new' WHERE id = 1")
	if err := e.r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Publish the new state again, newer, with the old change counter.
	m3 := *e.latest(path)
	m3.Seq++
	m3.Chunk0 = bytes.Clone(m3.Chunk0)
	copy(m3.Chunk0[24:28], m1.Chunk0[24:28])
	copy(m3.Chunk0[92:96], m1.Chunk0[92:96])
	m3.Chunks = append([]manifest.Hash{manifest.HashOf(m3.Chunk0)}, m3.Chunks[1:]...)
	m3.HeaderHash = manifest.HashOf(m3.Chunk0[:100])
	enc, err := m3.Encode()
	if err != nil {
		t.Fatal(err)
	}
	st := e.r.Targets()[0]
	key := e.key(path)
	if err := st.Put(ctx, names.ManifestKey(key, m3.Seq), enc); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, names.LatestKey(key), enc); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, snap, "PRAGMA verneuil_snapshot_refresh"); got != fmt.Sprint(m3.Seq) {
		t.Fatalf("refresh: version %s, want %d", got, m3.Seq)
	}
	if got := queryString(t, snap, "SELECT v FROM t WHERE id = 1"); got != "new" {
		t.Fatalf("after a refresh to a version with the same change counter: %q, want new (a stale page)", got)
	}
}

// Idle replicas cost nothing: no goroutine per open database, no request
// while no connection reads.
func TestSnapshotIdle(t *testing.T) {
	e := snapEnv(t, func(c *config.Config) { c.SnapshotRefreshInterval = config.Duration(50 * time.Millisecond) })
	var paths []string
	for i := range 10 {
		p := filepath.Join(e.dir, fmt.Sprintf("idle%d.db", i))
		db := e.open(p, "")
		mustExec(t, db, "CREATE TABLE t(v)")
		mustExec(t, db, "INSERT INTO t VALUES(randomblob(100000))")
		paths = append(paths, p)
	}
	if err := e.r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	settle := func() int {
		// Background readahead and cache writers end when done.
		n := runtime.NumGoroutine()
		for range 50 {
			time.Sleep(20 * time.Millisecond)
			if m := runtime.NumGoroutine(); m >= n {
				return m
			} else {
				n = m
			}
		}
		return n
	}
	// One connection (database/sql runs a goroutine per sql.DB), the
	// replicas attached to it.
	snap := openSnap(t, paths[0], "")
	snap.SetMaxOpenConns(1)
	before := settle()
	for i, p := range paths {
		if i > 0 {
			mustExec(t, snap, fmt.Sprintf("ATTACH 'file:%s?vfs=verneuil_snapshot' AS d%d", uriEscape(p), i))
		}
		if got := queryString(t, snap, fmt.Sprintf("SELECT length(hex(v)) FROM %s.t", []string{"main", fmt.Sprintf("d%d", i)}[min(i, 1)])); got != "200000" {
			t.Fatalf("%s: %s", p, got)
		}
	}
	after := settle()
	if after > before+2 {
		t.Errorf("%d goroutines with 10 replicas open and idle, %d before", after, before)
	}
	st0, _ := e.r.SnapshotStats()
	time.Sleep(200 * time.Millisecond) // four refresh intervals, nobody reading
	st1, _ := e.r.SnapshotStats()
	if st1.TagChecks != st0.TagChecks || st1.ManifestLoads != st0.ManifestLoads || st1.ChunkFetches != st0.ChunkFetches {
		t.Errorf("idle replicas made requests: %+v then %+v", st0, st1)
	}
}
