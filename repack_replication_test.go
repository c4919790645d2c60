package verneuil_test

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/names"
)

// TestRepackThroughTheVFS: a database written through the VFS, bulk
// loaded (several packs) and then updated at random, with the
// configuration's repack_threshold: at the default the copier repacks and
// the packs the latest version references stay within twice the database
// plus a pack; with 0 it never repacks. After every version the replica
// restores byte for byte (docs/FORMAT.md, "Repacking").
func TestRepackThroughTheVFS(t *testing.T) {
	for _, tc := range []struct {
		name      string
		threshold *int
	}{{"default", nil}, {"off", new(int)}} {
		t.Run(tc.name, func(t *testing.T) {
			const packBytes = 1 << 20
			e := newEnv(t, func(c *config.Config) {
				pb := packBytes
				c.PackBytes = &pb
				c.RepackThreshold = tc.threshold
			})
			path := filepath.Join(e.dir, "churn.db")
			db := e.open(path, "_journal_mode=TRUNCATE")
			mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			const rows = 4000 // about 4 MiB of 1,000-byte random rows
			for i := range rows {
				mustExec(t, tx, "INSERT INTO t VALUES(?, ?)", i, randomRow(1000))
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			e.checkReplica(path)
			rng := mrand.New(mrand.NewPCG(7, 8))
			var worst, dbBytes int64
			for v := range 40 {
				tx, err := db.Begin()
				if err != nil {
					t.Fatal(err)
				}
				for range 4 + v%8 {
					mustExec(t, tx, "UPDATE t SET v = ? WHERE id = ?", randomRow(1000), rng.IntN(rows))
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				e.checkReplica(path)
				m := e.latest(path)
				dbBytes = m.Length
				var n int64
				for _, p := range m.PackNames() {
					b, err := e.r.Targets()[0].Get(context.Background(), names.PackKey(p.String()))
					if err != nil {
						t.Fatalf("version %d: pack %s: %v", m.Seq, p, err)
					}
					n += int64(len(b))
				}
				worst = max(worst, n)
			}
			st := e.r.Stats()
			t.Logf("repack_threshold %s: %d repacks (%d packs, %d bytes), %d errors; referenced packs at worst %d bytes for a %d-byte database",
				tc.name, st.Repacks, st.RepackedPacks, st.RepackedBytes, st.RepackErrors, worst, dbBytes)
			switch {
			case tc.name == "off" && st.Repacks != 0:
				t.Errorf("%d repacks with repack_threshold 0", st.Repacks)
			case tc.name == "default" && st.Repacks == 0:
				t.Error("no repack at the default repack_threshold")
			case tc.name == "default" && worst > 2*dbBytes+packBytes:
				t.Errorf("the latest version referenced %d bytes of packs, over twice the database (%d) plus a pack", worst, dbBytes)
			}
			if st.RepackErrors != 0 {
				t.Errorf("%d repack errors", st.RepackErrors)
			}
		})
	}
}

// randomRow returns n random bytes (a row value).
func randomRow(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprint("crypto/rand: ", err))
	}
	return b
}
