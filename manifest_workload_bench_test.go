package verneuil_test

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// BenchmarkManifestBytesRealWorkload measures the manifest bytes and store
// requests each uploaded version costs for a real database through the
// replicating VFS: a database of VERNEUIL_MANIFEST_DB_MB megabytes
// (default 1024; an indexed table bulk-loaded through the unix VFS, then
// captured and uploaded whole), then VERNEUIL_MANIFEST_TXNS (default 3000)
// one-row transactions, alternating an INSERT with a random key into the
// indexed table and an UPDATE of a random row.
//
// With VERNEUIL_MANIFEST_FLUSH unset or 1, every transaction is flushed:
// one version per transaction, and the bytes counted are the two objects
// that version put, manifests/SEQ and latest, read back from the store.
// With VERNEUIL_MANIFEST_FLUSH=0 the transactions run back to back and the
// copier coalesces them at its upload interval; the bytes counted are the
// copier's own (the manifests/ objects; latest is the same bytes, or a
// delta at a new base).
//
//	go test -run '^$' -bench ManifestBytesRealWorkload -benchtime 1x -timeout 60m .
func BenchmarkManifestBytesRealWorkload(b *testing.B) {
	mb := envInt("VERNEUIL_MANIFEST_DB_MB", 1024)
	txns := envInt("VERNEUIL_MANIFEST_TXNS", 3000)
	flushEach := envInt("VERNEUIL_MANIFEST_FLUSH", 1) != 0
	r := startLongReplicator(b, b.TempDir())
	for range b.N {
		path := filepath.Join(b.TempDir(), "big.db")
		rows := bulkLoad(b, path, mb)
		st, _ := os.Stat(path)

		db, err := sql.Open("sqlite3", "file:"+path+"?vfs=verneuil&_busy_timeout=10000")
		if err != nil {
			b.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		ctx := context.Background()
		t0 := time.Now()
		// The first write captures the whole file; the flush uploads it.
		mustExec(b, db, "INSERT INTO t(k, v) VALUES(random(), randomblob(200))")
		if err := r.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		b.Logf("%d MiB database (%d rows), first capture and upload took %v", st.Size()>>20, rows, time.Since(t0).Round(time.Millisecond))

		store := r.Targets()[0]
		key := testutil.ReplicaKey(b, r.Config().Hostname, path)
		before := r.Stats()
		rng := rand.New(rand.NewPCG(uint64(mb), uint64(txns)))
		var perVersion []int // bytes of manifests/SEQ plus latest, flushEach
		var fulls int
		t0 = time.Now()
		for i := range txns {
			if i%2 == 0 {
				mustExec(b, db, "INSERT INTO t(k, v) VALUES(?, randomblob(200))", rng.Int64())
			} else {
				mustExec(b, db, "UPDATE t SET v = randomblob(200) WHERE id = ?", 1+rng.Int64N(rows))
			}
			if !flushEach {
				continue
			}
			if err := r.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			latest, err := store.Get(ctx, names.LatestKey(key))
			if err != nil {
				b.Fatal(err)
			}
			seq, _ := objectInfo(b, latest)
			wire, err := store.Get(ctx, names.ManifestKey(key, seq))
			if err != nil {
				b.Fatal(err)
			}
			if _, wireFull := objectInfo(b, wire); wireFull {
				fulls++
			}
			perVersion = append(perVersion, len(wire)+len(latest))
		}
		if err := r.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(t0)
		after := r.Stats()
		db.Close()

		versions := after.Manifests - before.Manifests
		reqs := float64(after.Requests-before.Requests) / float64(versions)
		b.ReportMetric(float64(versions), "versions")
		b.ReportMetric(reqs, "requests/version")
		if !flushEach {
			perKiB := float64(after.ManifestBytes-before.ManifestBytes) / float64(versions) / 1024
			b.ReportMetric(perKiB, "manifests/-KiB/version")
			b.Logf("%d transactions in %v, coalesced into %d versions: %.1f KiB of manifests/ objects and %.2f requests per version",
				txns, elapsed.Round(time.Millisecond), versions, perKiB, reqs)
			continue
		}
		total := 0
		for _, n := range perVersion {
			total += n
		}
		mean := float64(total) / float64(len(perVersion)) / 1024
		slices.Sort(perVersion)
		p50 := float64(perVersion[len(perVersion)/2]) / 1024
		worst := float64(perVersion[len(perVersion)-1]) / 1024
		b.ReportMetric(mean, "manifest-KiB/version")
		b.ReportMetric(p50, "p50-KiB")
		b.ReportMetric(worst, "max-KiB")
		b.Logf("%d transactions in %v, one version each: manifests/SEQ + latest = %.1f KiB per version (median %.1f KiB, largest %.1f KiB, %d full manifests); %.2f requests per version",
			txns, elapsed.Round(time.Millisecond), mean, p50, worst, fulls, reqs)
	}
}

// objectInfo returns the version a manifest object describes and whether
// it is a full manifest (not a delta).
func objectInfo(b testing.TB, obj []byte) (uint64, bool) {
	m, d, err := manifest.DecodeObject(obj)
	switch {
	case err != nil:
		b.Fatalf("decode manifest object: %v", err)
	case d != nil:
		return d.Seq, false
	}
	return m.Seq, true
}

// bulkLoad fills path through the unix VFS with an indexed table t(id, k,
// v) of about mb megabytes and returns its row count.
func bulkLoad(b testing.TB, path string, mb int) int64 {
	w, err := sql.Open("sqlite3", "file:"+path+"?vfs=unix&_journal_mode=OFF&_synchronous=OFF")
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	w.SetMaxOpenConns(1)
	mustExec(b, w, "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB)")
	// The index takes about a tenth of the file: load rows to 90%.
	for {
		st, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		if st.Size() >= int64(mb)<<20*9/10 {
			break
		}
		mustExec(b, w, "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < 100000) INSERT INTO t(k, v) SELECT random(), randomblob(200) FROM s")
	}
	mustExec(b, w, "CREATE INDEX t_k ON t(k)")
	var rows int64
	if err := w.QueryRow("SELECT max(id) FROM t").Scan(&rows); err != nil {
		b.Fatal(err)
	}
	return rows
}

// envInt reads a positive integer from the environment, def when unset.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}
