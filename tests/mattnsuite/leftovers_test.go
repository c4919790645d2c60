package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLeftoverProblems(t *testing.T) {
	dir := t.TempDir()
	plain := &pass{mode: "plain", dir: filepath.Join(dir, "plain")}
	vern := &pass{mode: "verneuil", dir: filepath.Join(dir, "verneuil")}
	writeFiles(t, plain.dir, map[string]string{
		"tmp/go-sqlite3-test-123-wal": "", "tmp/go-sqlite3-test-123-shm": "", "tmp/probe-77/probe.db": "", "wd/.keep": "",
	})
	writeFiles(t, vern.dir, map[string]string{
		"tmp/go-sqlite3-test-9-wal": "", "tmp/go-sqlite3-test-9-shm": "", "tmp/probe-1/probe.db": "", "wd/.keep": "",
	})
	got, err := leftovers(filepath.Join(vern.dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"go-sqliteN-test-N-shm", "go-sqliteN-test-N-wal", "probe-N/", "probe-N/probe.db"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("leftovers = %q, want %q", got, want)
	}
	if problems := leftoverProblems(plain, vern); len(problems) != 0 {
		t.Fatalf("same files, other random names: %q", problems)
	}

	// A file the VFS leaves beside a database that unix does not.
	writeFiles(t, vern.dir, map[string]string{"tmp/go-sqlite3-test-9-sidecar": ""})
	if err := os.Remove(filepath.Join(vern.dir, "wd", ".keep")); err != nil {
		t.Fatal(err)
	}
	problems := leftoverProblems(plain, vern)
	if len(problems) != 2 || !strings.Contains(problems[0], "in tmp") || !strings.Contains(problems[0], "go-sqliteN-test-N-sidecar") ||
		!strings.Contains(problems[1], "in wd") {
		t.Fatalf("problems = %q", problems)
	}
}
