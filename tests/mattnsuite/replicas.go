package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// storeCounts is what a target holds.
type storeCounts struct {
	// Databases is the number of databases (dbs/KEY/ prefixes).
	Databases int
	// Latest is the number of dbs/KEY/latest manifests.
	Latest int
	// History is the number of dbs/KEY/manifests/SEQ objects.
	History int
}

// storeDatabases lists the target's objects under dbs/ and returns each
// database key with the names of its objects (latest, manifests/SEQ).
func storeDatabases(ctx context.Context, s blob.Store) (map[string][]string, error) {
	keys, err := s.List(ctx, "dbs/")
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s, err)
	}
	dbs := map[string][]string{}
	for _, k := range keys {
		db, object, ok := strings.Cut(strings.TrimPrefix(k, "dbs/"), "/")
		if ok {
			dbs[db] = append(dbs[db], object)
		}
	}
	return dbs, nil
}

// countStore counts the replicas and manifests of a target.
func countStore(ctx context.Context, s blob.Store) (storeCounts, error) {
	var c storeCounts
	dbs, err := storeDatabases(ctx, s)
	if err != nil {
		return c, err
	}
	for _, objects := range dbs {
		c.Databases++
		for _, o := range objects {
			switch {
			case o == "latest":
				c.Latest++
			case strings.HasPrefix(o, "manifests/"):
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
	Store blob.Store // the target
	Host  string     // the configured hostname
	Tmp   string     // TMPDIR of the pass, symlinks resolved
	Keep  string     // where the harness hard-linked the files created under Tmp
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
	scratch, err := os.MkdirTemp("", "mattn-suite-restore-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	dbs, err := storeDatabases(ctx, l.Store)
	if err != nil {
		return nil, fmt.Errorf("replicas: %w", err)
	}
	var checks []replicaCheck
	for key := range dbs {
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
		c.Status, c.Detail = compareReplica(ctx, l.Store, key, c.Local, scratch)
		checks = append(checks, c)
	}
	sort.Slice(checks, func(i, j int) bool { return checks[i].Name < checks[j].Name })
	return checks, nil
}

// compareReplica restores the latest version of key into scratch and
// compares it with the file at local.
func compareReplica(ctx context.Context, store blob.Store, key, local, scratch string) (status, detail string) {
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
