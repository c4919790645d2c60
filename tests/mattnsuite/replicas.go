package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// storeCounts is what a local target holds.
type storeCounts struct {
	// Databases is the number of dbs/KEY directories.
	Databases int
	// Latest is the number of dbs/KEY/latest manifests.
	Latest int
	// History is the number of dbs/KEY/manifests/SEQ objects.
	History int
}

// countStore counts the replicas and manifests of the local target at dir.
func countStore(dir string) (storeCounts, error) {
	var c storeCounts
	dbs, err := os.ReadDir(filepath.Join(dir, "dbs"))
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	for _, db := range dbs {
		if !db.IsDir() {
			continue
		}
		c.Databases++
		if fi, err := os.Stat(filepath.Join(dir, "dbs", db.Name(), "latest")); err == nil && fi.Mode().IsRegular() {
			c.Latest++
		}
		hist, err := os.ReadDir(filepath.Join(dir, "dbs", db.Name(), "manifests"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return c, err
		}
		for _, h := range hist {
			if h.Type().IsRegular() {
				c.History++
			}
		}
	}
	return c, nil
}

// Statuses of a replica check.
const (
	replicaEqual   = "equal"   // the restored replica is byte-identical to the file
	replicaDiffers = "differs" // it is not
	replicaGone    = "gone"    // neither the file nor a kept link to it exists
	replicaError   = "error"   // the replica could not be restored
)

// replicaCheck is the comparison of one replica with its database file.
type replicaCheck struct {
	Name   string // replica name, HOST:PATH
	Local  string // the file compared with ("" when gone)
	Status string
	Detail string
}

// replicaLayout says where a pass's databases were and where their last
// contents were kept.
type replicaLayout struct {
	Store string // root of the local target
	Host  string // the configured hostname
	Tmp   string // TMPDIR of the pass, symlinks resolved
	Keep  string // where the harness hard-linked the files created under Tmp
}

// localFor returns the file holding the last content of the database at
// path: its kept link when it was created under Tmp, else path itself;
// "" when neither exists.
func (l replicaLayout) localFor(path string) string {
	if rel, err := filepath.Rel(l.Tmp, path); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
		if kept := filepath.Join(l.Keep, rel); isRegular(kept) {
			return kept
		}
	}
	if isRegular(path) {
		return path
	}
	return ""
}

func isRegular(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular()
}

// checkReplicas restores the latest version of every replica in the
// store and compares it byte for byte with the database's last content.
func checkReplicas(ctx context.Context, l replicaLayout) ([]replicaCheck, error) {
	store, err := fileblob.OpenDir(l.Store, false)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	scratch, err := os.MkdirTemp("", "mattn-suite-restore-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	dbs, err := os.ReadDir(filepath.Join(l.Store, "dbs"))
	if err != nil {
		return nil, fmt.Errorf("replicas: %w", err)
	}
	var checks []replicaCheck
	for _, db := range dbs {
		if !db.IsDir() {
			continue
		}
		key := db.Name()
		c := replicaCheck{Name: key}
		name, err := names.NameFromKey(key)
		if err != nil {
			c.Status, c.Detail = replicaError, err.Error()
			checks = append(checks, c)
			continue
		}
		c.Name = name
		path, ok := strings.CutPrefix(name, l.Host+":")
		if !ok {
			c.Status, c.Detail = replicaError, fmt.Sprintf("not a replica of host %q", l.Host)
			checks = append(checks, c)
			continue
		}
		c.Local = l.localFor(path)
		if c.Local == "" {
			c.Status = replicaGone
			checks = append(checks, c)
			continue
		}
		c.Status, c.Detail = compareReplica(ctx, store, key, c.Local, scratch)
		checks = append(checks, c)
	}
	sort.Slice(checks, func(i, j int) bool { return checks[i].Name < checks[j].Name })
	return checks, nil
}

// compareReplica restores the latest version of key into scratch and
// compares it with the file at local.
func compareReplica(ctx context.Context, store *fileblob.Store, key, local, scratch string) (status, detail string) {
	m, err := restore.Latest(ctx, store, key)
	if err != nil {
		return replicaError, err.Error()
	}
	restored := filepath.Join(scratch, "restored.db")
	defer os.Remove(restored)
	if err := restore.ToFile(ctx, store, m, restored); err != nil {
		return replicaError, err.Error()
	}
	got, errGot := os.ReadFile(restored)
	want, errWant := os.ReadFile(local)
	if err := errors.Join(errGot, errWant); err != nil {
		return replicaError, err.Error()
	}
	if bytes.Equal(got, want) {
		return replicaEqual, fmt.Sprintf("%d bytes, version %d", len(want), m.Seq)
	}
	return replicaDiffers, "replica vs file: " + testutil.DescribeDiff(restored, local)
}
