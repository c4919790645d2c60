package verneuil_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/gc"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/retention"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestMaxDeltaChainChangedBetweenRuns: max_delta_chain changed between runs
// of the replicating process (1: format 1 only; 1024; then 2, a new base
// every other version) over one database: every version uploaded restores
// byte-identical to the file it was committed as, and still does after a
// collection that keeps only the newest few (keeping the bases of the
// deltas it keeps).
func TestMaxDeltaChainChangedBetweenRuns(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := testutil.LocalConfig(t, dir, "testhost")
	cfg.ScanInterval = config.Duration(time.Hour)
	storeDir := cfg.Targets[0].Dir()
	path := filepath.Join(dir, "chain.db")
	key := testutil.ReplicaKey(t, cfg.Hostname, path)
	want := map[uint64][]byte{} // version → file bytes
	var order []uint64
	for run, chain := range []int{1, 1024, 2} {
		c := *cfg
		c.MaxDeltaChain = chain
		r, err := replicator.Start(ctx, &c)
		if err != nil {
			t.Fatalf("run %d: Start: %v", run, err)
		}
		e := &env{t: t, dir: dir, cfg: &c, r: r, store: storeDir}
		db := e.open(path, "")
		db.SetMaxOpenConns(1)
		if run == 0 {
			mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
			mustExec(t, db, "INSERT INTO t(v) SELECT randomblob(2000) FROM (WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < 300) SELECT i FROM s)")
		}
		for i := range 5 {
			mustExec(t, db, "UPDATE t SET v = randomblob(2000) WHERE id = ?", 1+(run*37+i*61)%300)
			mustExec(t, db, "INSERT INTO t(v) VALUES(randomblob(500))")
			if err := r.Flush(ctx); err != nil {
				t.Fatalf("run %d: flush: %v", run, err)
			}
			m, err := restore.Latest(ctx, r.Targets()[0], key)
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, dup := want[m.Seq]; !dup {
				order = append(order, m.Seq)
			}
			want[m.Seq] = data
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		err = r.Close(cctx)
		cancel()
		if err != nil {
			t.Fatalf("run %d: Close: %v", run, err)
		}
	}
	s := testutil.OpenFileStore(t, storeDir)
	check := func(when string, seqs []uint64) {
		t.Helper()
		for _, seq := range seqs {
			m, err := restore.Version(ctx, s, key, seq)
			if err != nil {
				t.Fatalf("%s: version %d: %v", when, seq, err)
			}
			out := filepath.Join(t.TempDir(), "v.db")
			if err := restore.ToFile(ctx, s, m, out); err != nil {
				t.Fatalf("%s: restore version %d: %v", when, seq, err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want[seq]) {
				t.Fatalf("%s: version %d restores %d bytes differing from the %d committed", when, seq, len(got), len(want[seq]))
			}
		}
	}
	check("before gc", order)
	fulls, deltas := 0, 0
	for _, seq := range order {
		obj, err := s.Get(ctx, names.ManifestKey(key, seq))
		if err != nil {
			t.Fatal(err)
		}
		if _, full := objectInfo(t, obj); full {
			fulls++
		} else {
			deltas++
		}
	}
	if fulls < 6 || deltas < 4 {
		t.Fatalf("%d full manifests and %d deltas in %d versions: the runs did not change the encoding", fulls, deltas, len(order))
	}
	lc, ok := s.(blob.Lifecycle)
	if !ok {
		t.Fatalf("%T is not a blob.Lifecycle", s)
	}
	sum, err := gc.Run(ctx, lc, gc.Options{Policy: retention.Policy{KeepLast: 3}, Grace: 0, TempDir: t.TempDir()})
	if err != nil {
		t.Fatalf("gc: %v", err)
	}
	if sum.MissingChunks != 0 || sum.ManifestsDeleted == 0 {
		t.Fatalf("gc: %+v", sum)
	}
	kept, err := restore.Versions(ctx, s, key)
	if err != nil {
		t.Fatal(err)
	}
	var retained []uint64
	for _, seq := range kept {
		if _, ours := want[seq]; ours {
			retained = append(retained, seq)
		}
	}
	if len(retained) < 3 || retained[len(retained)-1] != order[len(order)-1] {
		t.Fatalf("after gc: versions %v of %v", kept, order)
	}
	check("after gc", retained)
	if _, err := restore.Latest(ctx, s, key); err != nil {
		t.Fatalf("latest after gc: %v", err)
	}
}
