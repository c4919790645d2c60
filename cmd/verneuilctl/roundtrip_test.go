package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEveryPrintedTimeAndVersionRoundTrips: the times and versions that
// sync and status print (text and JSON, read by a parser that reads
// numbers as doubles) are RFC 3339 UTC times and version strings that
// --at and --version accept back, selecting the version they were printed
// for after newer ones were uploaded.
func TestEveryPrintedTimeAndVersionRoundTrips(t *testing.T) {
	s := newTestSpool(t)
	db := filepath.Join(s.dir, "app.db")
	writePlain(t, db, "_journal_mode=DELETE", "CREATE TABLE t(v)", "INSERT INTO t VALUES(1)")

	var synced []map[string]any
	if err := json.Unmarshal([]byte(s.mustCtl(t, "sync", db, "--json")), &synced); err != nil || len(synced) != 1 {
		t.Fatalf("sync --json: %v %v", synced, err)
	}
	version, ok := synced[0]["version"].(string)
	if !ok {
		t.Fatalf("sync --json version: %#v, want a string", synced[0]["version"])
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(s.mustCtl(t, "status", "--json")), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("status --json: %v %v", rows, err)
	}
	for _, k := range []string{"staged_version", "uploaded_version"} {
		if rows[0][k] != version {
			t.Errorf("status --json %s: %#v, want the string %q", k, rows[0][k], version)
		}
	}
	utc := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	var times []string
	for _, v := range []any{synced[0]["commit_time"], rows[0]["staged_commit_time"], rows[0]["uploaded_commit_time"]} {
		ts, _ := v.(string)
		if !utc.MatchString(ts) || utc.FindString(ts) != ts {
			t.Errorf("JSON time %#v is not RFC 3339 UTC", v)
		}
		times = append(times, ts)
	}
	statusText := s.mustCtl(t, "status")
	var shown string
	for _, line := range strings.Split(statusText, "\n") {
		if strings.HasPrefix(line, db+" ") {
			shown = utc.FindString(line)
		}
	}
	if shown == "" {
		t.Fatalf("status shows no RFC 3339 UTC time for %s:\n%s", db, statusText)
	}
	times = append(times, shown)

	first, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	// Newer versions: the printed ones must select the old one, not latest.
	for i := range 2 {
		writePlain(t, db, "_journal_mode=DELETE", "INSERT INTO t VALUES("+string(rune('2'+i))+")")
		s.mustCtl(t, "sync", db)
	}
	if strings.Contains(s.mustCtl(t, "manifest", db), "version "+version+"\n") {
		t.Fatal("the test needs newer versions than the one printed")
	}
	for _, ts := range times {
		if out := s.mustCtl(t, "manifest", db, "--at", ts); !strings.Contains(out, "version "+version+"\n") {
			t.Errorf("--at %s (printed for version %s) selected\n%s", ts, version, out)
		}
	}
	if out := s.mustCtl(t, "manifest", db, "--version", version); !strings.Contains(out, "version "+version+"\n") {
		t.Errorf("--version %s selected\n%s", version, out)
	}
	restored := filepath.Join(s.dir, "v1.db")
	s.mustCtl(t, "restore", db, "--version", version, "--out", restored)
	if got, err := os.ReadFile(restored); err != nil || !bytes.Equal(got, first) {
		t.Errorf("restore --version %s: not the file as synced then (%v)", version, err)
	}
	if out := s.mustCtl(t, "verify", db, "--json"); !strings.Contains(out, `"version": "`) {
		t.Errorf("verify --json: the version is not a string:\n%s", out)
	}
}
