package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/gc/gctest"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
)

// TestPeriodicGCInCopier: with gc_interval set, the copier daemon
// collects its target: old versions beyond the policy and an old
// unreferenced chunk go, every kept version still restores.
func TestPeriodicGCInCopier(t *testing.T) {
	s := newTestSpool(t)
	var cfg map[string]any
	if err := json.Unmarshal([]byte(s.config), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["gc_interval"] = "200ms"
	cfg["gc_grace"] = "1h"
	b, _ := json.Marshal(cfg)
	store, err := fileblob.OpenDir(s.store, false)
	if err != nil {
		t.Fatal(err)
	}
	f := gctest.Build(t, store, 3, 4, 4, 9)
	garbage := []byte("garbage")
	orphan := names.ChunkKey(manifest.HashOf(garbage).String())
	if err := store.Put(context.Background(), orphan, manifest.EncodeChunk(garbage)); err != nil {
		t.Fatal(err)
	}
	// Everything was uploaded two hours ago, within one hour: the
	// default policy keeps the newest version of each database.
	old := time.Now().Add(-2 * time.Hour).Truncate(time.Hour).Add(time.Minute)
	err = filepath.WalkDir(s.store, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"--config", string(b), "copier"}, &stdout, &stderr) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := gctest.List(t, store)
		ok, _ := store.Exists(ctx, orphan)
		n := 0
		for _, v := range st.Versions {
			n += len(v)
		}
		// A run deletes the orphan, then the other unreferenced chunks:
		// wait for the whole collection, not its first delete.
		if _, unref := gctest.Missing(t, store); !ok && n == 3 && len(unref) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not collected (orphan present %v, %d versions); log:\n%s", ok, n, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("copier exited %d: %s", code, stderr.String())
	}
	if missing, unref := gctest.Missing(t, store); len(missing) != 0 || len(unref) != 0 {
		t.Fatalf("missing %v, unreferenced %v", missing, unref)
	}
	if n := f.CheckRestores(t, store); n != 3 {
		t.Fatalf("%d versions restore, want 3", n)
	}
}
