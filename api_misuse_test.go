package verneuil_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil"
)

// TestPublicAPIAfterClose: a Replicator used after Close (a program that
// keeps calling Flush during shutdown) answers at once with ErrClosed (a
// nil would vouch for writes that are no longer replicated), without a
// panic; and a zero Config stands for the default.
func TestPublicAPIAfterClose(t *testing.T) {
	dir := t.TempDir()
	cfg, err := verneuil.LoadConfig(publicConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	r, err := verneuil.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := openPublic(t, filepath.Join(dir, "a.db"))
	mustExec(t, db, "CREATE TABLE t(x)")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Writes still succeed, unreplicated.
	mustExec(t, db, "INSERT INTO t VALUES (1)")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Flush(ctx); !errors.Is(err, verneuil.ErrClosed) {
			t.Errorf("Flush after Close: %v, want ErrClosed (the last write is not replicated)", err)
		}
		if err := r.FlushDB(ctx, filepath.Join(dir, "a.db")); !errors.Is(err, verneuil.ErrClosed) {
			t.Errorf("FlushDB after Close: %v, want ErrClosed", err)
		}
		_ = r.Stats()
		_ = r.DBStats()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("Flush after Close did not return")
	}

	var zero verneuil.Config
	if got, want := zero.String(), verneuil.DefaultConfig().String(); got != want {
		t.Errorf("zero Config is\n%s\nwant the default\n%s", got, want)
	}
	var nilCfg *verneuil.Config
	if nilCfg.String() != verneuil.DefaultConfig().String() {
		t.Error("nil Config is not the default")
	}
}

// openPublic opens path through the replicating VFS, by its public name.
func openPublic(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?vfs="+verneuil.VFSName+"&_journal_mode=TRUNCATE")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
