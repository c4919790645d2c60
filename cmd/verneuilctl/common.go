package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/verneuil-go/verneuil"
	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// store opens the first configured target (the one restores read from).
func (a *app) store(ctx context.Context) (blob.Store, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	stores, err := verneuil.OpenTargets(ctx, cfg)
	if err != nil {
		return nil, err
	}
	for _, s := range stores[1:] {
		s.Close()
	}
	return stores[0], nil
}

// openTargets opens every configured target; closeAll releases them.
func openTargets(ctx context.Context, cfg *config.Config) (stores []blob.Store, closeAll func(), err error) {
	stores, err = verneuil.OpenTargets(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return stores, func() {
		for _, s := range stores {
			s.Close()
		}
	}, nil
}

// dbKey resolves the replica key of a database path (optionally of
// another host).
func (a *app) dbKey(path, hostname string) (name, key string, err error) {
	cfg, err := a.config()
	if err != nil {
		return "", "", err
	}
	return verneuil.ReplicaName(cfg, path, hostname)
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseTime accepts RFC 3339 (with or without fractional seconds), a unix
// timestamp in seconds, or a negative duration relative to now ("-10m").
func parseTime(s string) (time.Time, error) { return restore.ParseTime(s) }

// manifestInfo is the JSON form of a manifest summary.
type manifestInfo struct {
	Name       string    `json:"name"`
	Version    uint64    `json:"version"`
	CommitTime time.Time `json:"commit_time"`
	Length     int64     `json:"length"`
	PageSize   uint32    `json:"page_size"`
	ChunkSize  uint32    `json:"chunk_size"`
	Chunks     int       `json:"chunks"`
}

func infoOf(m *manifest.Manifest) manifestInfo {
	return manifestInfo{Name: m.Name, Version: m.Seq, CommitTime: m.CommitTime.UTC(), Length: m.Length,
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
