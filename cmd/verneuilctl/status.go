package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/verneuil-go/verneuil/internal/spool"
)

func init() {
	register(&command{
		name:    "status",
		usage:   "",
		summary: "show the spool backlog and replication lag of every database on this host",
		run:     runStatus,
	})
}

// dbStatus is one row of status.
type dbStatus struct {
	Path            string    `json:"path"`
	Key             string    `json:"key"`
	StagedVersion   uint64    `json:"staged_version"`
	StagedCommit    time.Time `json:"staged_commit_time"`
	UploadedVersion uint64    `json:"uploaded_version"`
	UploadedCommit  time.Time `json:"uploaded_commit_time"`
	Pending         bool      `json:"pending"`
	LagSeconds      float64   `json:"lag_seconds"`
	SpoolBytes      int64     `json:"spool_bytes"`
	Error           string    `json:"error,omitempty"`
}

func runStatus(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("status takes no arguments")
	}
	cfg, err := a.config()
	if err != nil {
		return err
	}
	keys, err := spool.List(cfg.SpoolDir)
	if err != nil {
		return err
	}
	rows := []dbStatus{}
	for _, key := range keys {
		rows = append(rows, statusOf(cfg.SpoolDir, key))
	}
	if a.jsonOut {
		return a.printJSON(rows)
	}
	if len(rows) == 0 {
		fmt.Fprintf(a.stdout, "no databases in spool %s\n", cfg.SpoolDir)
	}
	for _, r := range rows {
		state := "up to date"
		if r.Pending {
			state = fmt.Sprintf("PENDING (lag %.1fs)", r.LagSeconds)
		}
		if r.Error != "" {
			state = "ERROR: " + r.Error
		}
		fmt.Fprintf(a.stdout, "%s\tstaged %d\tuploaded %d\t%d spool bytes\t%s\n", r.Path, r.StagedVersion, r.UploadedVersion, r.SpoolBytes, state)
	}
	return nil
}

func statusOf(root, key string) dbStatus {
	st := dbStatus{Key: key}
	d, err := spool.Existing(root, key)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	if info, err := d.Info(); err == nil {
		st.Path = info.Path
	}
	st.SpoolBytes, _ = d.Usage()
	m, _, err := d.Manifest()
	if err != nil {
		st.Error = err.Error()
		return st
	}
	up, _, err := d.Uploaded()
	if err != nil {
		st.Error = err.Error()
	}
	if m != nil {
		st.StagedVersion, st.StagedCommit = m.Seq, m.CommitTime.UTC()
	}
	if up != nil {
		st.UploadedVersion, st.UploadedCommit = up.Seq, up.CommitTime.UTC()
	}
	st.Pending = m != nil && (up == nil || up.Seq < m.Seq)
	if st.Pending {
		st.LagSeconds = time.Since(m.CommitTime).Seconds()
	}
	return st
}
