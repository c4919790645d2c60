// Command verneuil-gcbench measures `verneuilctl gc` on a synthetic local
// target: by default 10,000 databases and 1,000,000 chunk objects, each
// database with a few versions, a share of the chunks referenced only by
// versions the run drops and some garbage no version references. It runs
// `verneuilctl gc --json --keep-last 2 --grace 0` in a child process and
// prints the run's time, peak resident memory (the child's maxrss) and
// requests, then checks that the target holds exactly what the kept
// versions reference.
//
// Usage:
//
//	go run ./cmd/verneuil-gcbench [-dbs 10000] [-chunks 1000000] [-versions 4] [-dir DIR]
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/gc"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

func main() {
	dbs := flag.Int("dbs", 10000, "databases")
	chunks := flag.Int("chunks", 1000000, "chunk objects in the target (about)")
	versions := flag.Int("versions", 4, "versions per database")
	dir := flag.String("dir", "", "work directory (default a temp dir, removed)")
	flag.Parse()
	if err := run(*dbs, *chunks, *versions, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "verneuil-gcbench:", err)
		os.Exit(1)
	}
}

func run(dbs, chunks, versions int, dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "verneuil-gcbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	store := filepath.Join(dir, "store")
	if err := os.MkdirAll(filepath.Join(store, names.ChunkKey("")), 0o755); err != nil {
		return err
	}
	// Per database: base chunks, then each version changes `changed`
	// chunks; 5% of the objects are garbage.
	perDB := chunks * 95 / 100 / dbs
	changed := max(1, perDB/10)
	base := max(2, perDB-changed*(versions-1))
	began := time.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	obj := []byte{0, 'x'} // raw chunk encoding of one byte: gc never reads chunks
	put := func(h manifest.Hash) error {
		return os.WriteFile(filepath.Join(store, names.ChunkKey(h.String())), obj, 0o644)
	}
	var objects int
	for d := range dbs {
		name := fmt.Sprintf("bench:/db/%d.db", d)
		key := names.Key(name)
		if err := os.MkdirAll(filepath.Join(store, names.ManifestsPrefix(key)), 0o755); err != nil {
			return err
		}
		hs := make([]manifest.Hash, base+1)
		for i := 1; i <= base; i++ {
			hs[i] = randHash(rng)
			if err := put(hs[i]); err != nil {
				return err
			}
			objects++
		}
		for v := range versions {
			if v > 0 {
				for range changed {
					i := 1 + rng.IntN(base)
					hs[i] = randHash(rng)
					if err := put(hs[i]); err != nil {
						return err
					}
					objects++
				}
			}
			// Chunk 0 (inline, full), the base chunks, and a short last
			// chunk that each version rewrites.
			chunk0 := make([]byte, 1<<16)
			binary.BigEndian.PutUint64(chunk0[24:], uint64(v))
			hs[0] = manifest.HashOf(chunk0)
			last := randHash(rng)
			if err := put(last); err != nil {
				return err
			}
			objects++
			m := &manifest.Manifest{Name: name, Seq: uint64(1 + v), CommitTime: time.Now(), ChunkSize: 1 << 16,
				Length: int64(base+1)<<16 + 100, VersionID: []byte{byte(v)}, HeaderHash: manifest.HashOf(chunk0[:100]),
				Chunk0: chunk0, Chunks: append(append([]manifest.Hash(nil), hs...), last)}
			enc, err := m.Encode()
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(store, filepath.FromSlash(names.ManifestKey(key, m.Seq))), enc, 0o644); err != nil {
				return err
			}
			if v == versions-1 {
				if err := os.WriteFile(filepath.Join(store, filepath.FromSlash(names.LatestKey(key))), enc, 0o644); err != nil {
					return err
				}
			}
		}
	}
	for objects < chunks {
		if err := put(randHash(rng)); err != nil {
			return err
		}
		objects++
	}
	fmt.Printf("target: %d databases × %d versions, %d chunk objects, built in %s\n", dbs, versions, objects, time.Since(began).Round(time.Second))
	time.Sleep(1100 * time.Millisecond) // every object older than the run's start

	bin, err := testutil.BuildVerneuilctl(dir)
	if err != nil {
		return err
	}
	cfg := config.Config{SpoolDir: filepath.Join(dir, "spool"), Targets: []config.Target{{URL: config.FileURL(store)}}}
	cfgJSON, _ := json.Marshal(cfg)
	for i, args := range [][]string{
		{"gc", "--json", "--dry-run", "--keep-last", "2", "--grace", "0", "--tmp-dir", dir},
		{"gc", "--json", "--keep-last", "2", "--grace", "0", "--tmp-dir", dir},
		{"gc", "--json", "--dry-run", "--keep-last", "2", "--grace", "0", "--tmp-dir", dir}, // nothing left to do
	} {
		cmd := exec.CommandContext(context.Background(), bin, args...)
		cmd.Env = append(os.Environ(), "VERNEUIL_CONFIG="+string(cfgJSON))
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%v: %v: %s", args, err, errOut.String())
		}
		wall := time.Since(start)
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		var sums []gc.Summary
		if err := json.Unmarshal(out.Bytes(), &sums); err != nil || len(sums) != 1 {
			return fmt.Errorf("gc output %q: %v", out.String(), err)
		}
		s := sums[0]
		r := s.Requests
		fmt.Printf("%v\n  wall %s, cpu %s user + %s sys, peak RSS %d MiB\n", args[2:],
			wall.Round(time.Millisecond), time.Duration(ru.Utime.Nano()).Round(time.Millisecond),
			time.Duration(ru.Stime.Nano()).Round(time.Millisecond), ru.Maxrss/1024)
		fmt.Printf("  manifests kept %d, deleted %d; chunks kept %d, deleted %d, missing %d\n",
			s.ManifestsKept, s.ManifestsDeleted, s.ChunksKept, s.ChunksDeleted, s.MissingChunks)
		fmt.Printf("  requests: %d list pages, %d gets, %d puts, %d stats, %d deletes\n", r.ListPages, r.Gets, r.Puts, r.Stats, r.Deletes)
		if s.MissingChunks != 0 {
			return fmt.Errorf("missing chunks: %v", s.MissingSample)
		}
		if i == 2 && (s.ManifestsDeleted != 0 || s.ChunksDeleted != 0) {
			return fmt.Errorf("after the collection, %d manifests and %d chunks are still to delete", s.ManifestsDeleted, s.ChunksDeleted)
		}
	}
	return nil
}

func randHash(rng *rand.Rand) manifest.Hash {
	var h manifest.Hash
	for i := 0; i < len(h); i += 8 {
		binary.LittleEndian.PutUint64(h[i:], rng.Uint64())
	}
	return h
}
