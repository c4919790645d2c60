package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/replicator"
)

// targetFlag defines --target on a command that reads a target.
func targetFlag(fs *flag.FlagSet) *string {
	return fs.String("target", "", "read from this `TARGET`: its position in the configuration (1, 2...) or its URL (default: the first)")
}

// store opens the target a command reads: choice is --target ("" for the
// first). Only that target is opened: another one missing does not block.
// A target that cannot be opened is an exitUnreachable error.
func (a *app) store(ctx context.Context, choice string) (blob.Store, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	t, err := pickTarget(cfg.Targets, choice)
	if err != nil {
		return nil, err
	}
	one := *cfg
	one.Targets = []config.Target{t}
	stores, err := replicator.OpenTargets(ctx, &one)
	if err != nil {
		return nil, exitError{exitUnreachable, err}
	}
	return stores[0], nil
}

// pickTarget returns the target --target names: a position from 1, or a
// URL (compared without trailing slashes).
func pickTarget(targets []config.Target, choice string) (config.Target, error) {
	if choice == "" {
		return targets[0], nil
	}
	if n, err := strconv.Atoi(choice); err == nil {
		if n < 1 || n > len(targets) {
			return config.Target{}, usagef("--target %d: the configuration has %d target(s)", n, len(targets))
		}
		return targets[n-1], nil
	}
	urls := make([]string, len(targets))
	for i, t := range targets {
		if strings.TrimRight(t.URL, "/") == strings.TrimRight(choice, "/") {
			return t, nil
		}
		urls[i] = t.URL
	}
	return config.Target{}, usagef("--target %q is not a configured target (%s)", choice, strings.Join(urls, ", "))
}

// openTargets opens every configured target; closeAll releases them.
func openTargets(ctx context.Context, cfg *config.Config) (stores []blob.Store, closeAll func(), err error) {
	stores, err = replicator.OpenTargets(ctx, cfg)
	if err != nil {
		return nil, nil, exitError{exitUnreachable, err}
	}
	return stores, func() {
		for _, s := range stores {
			s.Close()
		}
	}, nil
}

// dbRef is a database as the target names it.
type dbRef struct {
	Name string `json:"name"` // the replica name, as list prints it
	Key  string `json:"key"`  // its key in the target
}

// dbKey resolves the replica name and key of a database path (optionally
// of another host).
func (a *app) dbKey(path, hostname string) (dbRef, error) {
	cfg, err := a.config()
	if err != nil {
		return dbRef{}, err
	}
	name, key, err := replicator.ReplicaName(cfg, path, hostname)
	return dbRef{name, key}, err
}

// parseDB resolves a database named as a replica key, as a replica name of
// the form HOST:/PATH (what list prints), or as a local path. byName is
// the other reading of a path argument (a configured replica name), for
// the caller to try when the path has no replica.
func (a *app) parseDB(arg, hostname string) (ref dbRef, byName *dbRef, err error) {
	if arg == "" {
		return dbRef{}, nil, usagef("empty database name")
	}
	if isKeyOrName(arg) {
		if hostname != "" {
			return dbRef{}, nil, usagef("--hostname applies to a database path, not to the replica name or key %s", arg)
		}
		if name, err := names.NameFromKey(arg); err == nil {
			return dbRef{name, arg}, nil, nil
		}
		if isShortenedKey(arg) {
			return dbRef{arg, arg}, nil, nil
		}
		return dbRef{arg, names.Key(arg)}, nil, nil
	}
	ref, err = a.dbKey(arg, hostname)
	if err != nil {
		return dbRef{}, nil, err
	}
	if hostname == "" && !strings.Contains(arg, "/") {
		byName = &dbRef{arg, names.Key(arg)}
	}
	return ref, byName, nil
}

// isKeyOrName says arg is a replica key or a HOST:/PATH replica name.
func isKeyOrName(arg string) bool {
	if _, err := names.NameFromKey(arg); err == nil || isShortenedKey(arg) {
		return true
	}
	host, path, ok := strings.Cut(arg, ":")
	return ok && host != "" && !strings.Contains(host, "/") && strings.HasPrefix(path, "/")
}

// isTerminal says f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// isShortenedKey says key has the form of a shortened replica key
// (names.Key), whose name is not recoverable.
func isShortenedKey(key string) bool {
	return len(key) > 5 && key[4] == '-' && strings.Contains(key, "%~")
}

// resolveDB is parseDB for commands that read the target: a path without
// a replica whose argument is a configured replica name with one is that
// name. A database without a replica is an exitNoReplica error naming it.
func (a *app) resolveDB(ctx context.Context, s blob.Store, arg, hostname string) (dbRef, error) {
	ref, byName, err := a.parseDB(arg, hostname)
	if err != nil {
		return dbRef{}, err
	}
	ok, err := s.Exists(ctx, names.LatestKey(ref.Key))
	if err != nil {
		return dbRef{}, exitError{exitUnreachable, fmt.Errorf("look up %s in %s: %w", ref.Name, s, err)}
	}
	if ok {
		return ref, nil
	}
	if byName != nil {
		if ok, err := s.Exists(ctx, names.LatestKey(byName.Key)); err == nil && ok {
			return *byName, nil
		}
	}
	hint := " (verneuilctl list shows the databases it holds)"
	if byName != nil || strings.Contains(arg, "/") && !strings.Contains(arg, ":") && hostname == "" {
		hint = " (was it replicated from this host? try --hostname, or the HOST:/path name verneuilctl list prints)"
	}
	msg := fmt.Sprintf("no replica of %s in %s%s", ref.Name, s, hint)
	return dbRef{}, exitError{exitNoReplica, renamedError{msg, blob.ErrNotFound}}
}

// storeError gives an error of reading the target its exit status: not
// found is exitNoReplica; corrupt data is a plain failure; anything else
// (network, credentials, missing bucket) is exitUnreachable. A not-found
// message names the database instead of its key (corruption reports keep
// the keys, which locate the objects).
func storeError(err error, ref dbRef) error {
	if err == nil {
		return nil
	}
	var ee exitError
	var ue usageError
	if errors.As(err, &ee) || errors.As(err, &ue) || errors.Is(err, context.Canceled) {
		return err
	}
	switch {
	case errors.Is(err, blob.ErrNotFound):
		if ref.Key != "" && ref.Name != ref.Key {
			err = renamedError{strings.ReplaceAll(err.Error(), ref.Key, ref.Name), err}
		}
		return exitError{exitNoReplica, err}
	case errors.Is(err, manifest.ErrCorrupt), errors.Is(err, manifest.ErrCorruptChunk):
		return err
	}
	return exitError{exitUnreachable, err}
}

// renamedError is an error with a more readable message.
type renamedError struct {
	msg string
	err error
}

func (e renamedError) Error() string { return e.msg }
func (e renamedError) Unwrap() error { return e.err }

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// timeFormat is how times are printed: RFC 3339 in UTC, to the
// nanosecond, so that a commit time pasted into --at selects that version.
const timeFormat = time.RFC3339Nano

// manifestInfo is the JSON form of a manifest summary. Versions are JSON
// strings: they exceed 2^53, which tools reading numbers as doubles round.
type manifestInfo struct {
	Name       string    `json:"name"`
	Key        string    `json:"key"`
	Version    uint64    `json:"version,string"`
	CommitTime time.Time `json:"commit_time"`
	Length     int64     `json:"length"`
	PageSize   uint32    `json:"page_size"`
	ChunkSize  uint32    `json:"chunk_size"`
	Chunks     int       `json:"chunks"`
	// Retained, in list --versions only, says why the retention policy
	// keeps the version (latest, recent, hourly, daily) or "expired".
	Retained string `json:"retained,omitempty"`
}

func infoOf(m *manifest.Manifest) manifestInfo {
	return manifestInfo{Name: m.Name, Key: names.Key(m.Name), Version: m.Seq, CommitTime: m.CommitTime.UTC(), Length: m.Length,
		PageSize: m.PageSize, ChunkSize: m.ChunkSize, Chunks: len(m.Chunks)}
}

func fileExists(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("database %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("database %s: not a regular file", path)
	}
	return nil
}
