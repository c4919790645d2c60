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
	"strconv"
	"time"

	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/restore"
)

func init() {
	register(&command{
		name:     "demo",
		usage:    "[--dir DIR] [--rows N]",
		summary:  "write a database through the VFS, replicate it, restore it and compare byte for byte",
		examples: []string{"verneuilctl demo", "verneuilctl demo --dir /tmp/demo --rows 100000"},
		json: `{"target": "file:///...", "spool": "...", "database": "/tmp/demo/demo.db", "rows": 5000,
 "name": "web-1:/tmp/demo/demo.db", "key": "...", "version": "1764057600123456789", "length": 466944,
 "chunks": 8, "restored": "/tmp/demo/restored.db", "source_sha256": "...", "restored_sha256": "...",
 "identical": true}`,
		run: runDemo,
	})
}

func runDemo(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory for the demo database (default: a new temp dir)")
	rows := fs.Int("rows", 5000, "number `N` of rows to insert")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("demo takes no arguments")
	}
	if *rows < 0 {
		return usagef("--rows must not be negative")
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
	text := a.stdout
	if a.jsonOut {
		text = io.Discard
	}
	fmt.Fprintf(text, "target:   %s\nspool:    %s\ndatabase: %s\n", cfg.Targets[0].URL, cfg.SpoolDir, dbPath)

	r, err := replicator.Start(ctx, cfg)
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
	fmt.Fprintf(text, "wrote %d rows in %d transactions through the verneuil VFS (%s), PRAGMA verneuil_flush: %s\n",
		*rows, (*rows+99)/100+2, time.Since(start).Round(time.Millisecond), flushed)

	name, key, err := replicator.ReplicaName(cfg, dbPath, "")
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
	fmt.Fprintf(text, "replica:  %s version %d (%d bytes, %d chunks)\nrestored: %s\n", name, m.Seq, m.Length, len(m.Chunks), out)
	fmt.Fprintf(text, "sha256 source   %x\nsha256 restored %x\n", want, got)
	if a.jsonOut {
		if err := a.printJSON(map[string]any{"target": cfg.Targets[0].URL, "spool": cfg.SpoolDir, "database": dbPath,
			"rows": *rows, "name": name, "key": key, "version": strconv.FormatUint(m.Seq, 10), "length": m.Length,
			"chunks": len(m.Chunks), "restored": out, "source_sha256": fmt.Sprintf("%x", want),
			"restored_sha256": fmt.Sprintf("%x", got), "identical": want == got}); err != nil {
			return err
		}
	}
	if want != got {
		return fmt.Errorf("restored file differs from the source")
	}
	fmt.Fprintln(text, "identical: yes")
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
