package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/verneuil-go/verneuil"
	"github.com/verneuil-go/verneuil/internal/restore"
)

func init() {
	register(&command{
		name:    "demo",
		usage:   "[--dir DIR] [--rows N]",
		summary: "write a database through the VFS, replicate it, restore it and compare byte for byte",
		run:     runDemo,
	})
}

func runDemo(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory for the demo database (default: a new temp dir)")
	rows := fs.Int("rows", 5000, "rows to insert")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("demo takes no arguments")
	}
	cfg, err := a.config()
	if err != nil {
		return err
	}
	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "verneuil-demo-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	dbPath := filepath.Join(*dir, "demo.db")
	for _, suffix := range []string{"", "-journal"} {
		os.Remove(dbPath + suffix)
	}
	fmt.Fprintf(a.stdout, "target:   %s\nspool:    %s\ndatabase: %s\n", cfg.Targets[0].URL, cfg.SpoolDir, dbPath)

	r, err := verneuil.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer r.Close(context.WithoutCancel(ctx))
	db, err := sql.Open("sqlite3", "file:"+dbPath+"?vfs=verneuil&_journal_mode=DELETE")
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	if _, err := db.ExecContext(ctx, "CREATE TABLE events(id INTEGER PRIMARY KEY, at TEXT, payload BLOB)"); err != nil {
		return err
	}
	for i := 0; i < *rows; i += 100 {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for j := i; j < min(i+100, *rows); j++ {
			if _, err := tx.ExecContext(ctx, "INSERT INTO events(at, payload) VALUES(datetime('now'), randomblob(?))", 64+j%512); err != nil {
				tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	if _, err := db.ExecContext(ctx, "DELETE FROM events WHERE id % 3 = 0"); err != nil {
		return err
	}
	var flushed string
	if err := db.QueryRowContext(ctx, "PRAGMA verneuil_flush").Scan(&flushed); err != nil {
		return fmt.Errorf("PRAGMA verneuil_flush: %w", err)
	}
	fmt.Fprintf(a.stdout, "wrote %d rows in %d transactions through the verneuil VFS (%s), PRAGMA verneuil_flush: %s\n",
		*rows, (*rows+99)/100+2, time.Since(start).Round(time.Millisecond), flushed)

	_, key, err := verneuil.ReplicaName(cfg, dbPath, "")
	if err != nil {
		return err
	}
	m, err := restore.Latest(ctx, r.Targets()[0], key)
	if err != nil {
		return err
	}
	out := filepath.Join(*dir, "restored.db")
	if err := restore.ToFile(ctx, r.Targets()[0], m, out); err != nil {
		return err
	}
	want, err := sha256File(dbPath)
	if err != nil {
		return err
	}
	got, err := sha256File(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "replica:  %s version %d (%d bytes, %d chunks)\nrestored: %s\n", key, m.Seq, m.Length, len(m.Chunks), out)
	fmt.Fprintf(a.stdout, "sha256 source   %x\nsha256 restored %x\n", want, got)
	if want != got {
		return fmt.Errorf("restored file differs from the source")
	}
	fmt.Fprintln(a.stdout, "identical: yes")
	return nil
}

func sha256File(path string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
