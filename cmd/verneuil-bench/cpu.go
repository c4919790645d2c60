package main

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"syscall"
	"time"
)

// cpuPerTxn runs txns transactions of sc through vfs alone, after a
// warm-up, and prints the process's CPU time (user + system, replication
// included) per transaction: run once per VFS, in separate processes, it
// compares CPU cost without the paired rounds' wall-clock noise.
func cpuPerTxn(sc scenario, dir, vfs string, txns int) error {
	p := filepath.Join(dir, "cpu-"+vfs+".db")
	db, err := sql.Open("sqlite3", fmt.Sprintf("file:%s?vfs=%s&_journal_mode=%s&_sync=%s", p, vfs, sc.journal, sc.sync))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)"); err != nil {
		return err
	}
	if _, err := round(db, sc, max(1, txns/10)); err != nil {
		return err
	}
	before, err := cpuTime()
	if err != nil {
		return err
	}
	us, err := round(db, sc, txns)
	if err != nil {
		return err
	}
	after, err := cpuTime()
	if err != nil {
		return err
	}
	fmt.Printf("%-40s %-8s %d txns: %.1f µs CPU/txn, %.1f µs wall/txn\n", sc.name, vfs, txns,
		float64((after-before).Microseconds())/float64(txns), us)
	return nil
}

// cpuTime returns the process's user + system CPU time.
func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
