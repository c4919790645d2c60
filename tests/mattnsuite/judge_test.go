package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHarnessProblems(t *testing.T) {
	tests := []struct {
		name   string
		mode   string
		outage bool
		faults bool
		report harnessReport
		want   []string // substrings of the problems, in order
	}{
		{name: "plain pass as expected", mode: "plain", report: harnessReport{Mode: "plain", Probe: ""}},
		{name: "verneuil pass as expected", mode: "verneuil", report: harnessReport{Mode: "verneuil", Probe: "ok"}},
		{
			name:   "verneuil leaked into the plain pass",
			mode:   "plain",
			report: harnessReport{Mode: "plain", Probe: "ok"},
			want:   []string{`answered "ok", want ""`},
		},
		{
			name:   "verneuil pass without verneuil as the default VFS",
			mode:   "verneuil",
			report: harnessReport{Mode: "verneuil", Probe: ""},
			want:   []string{`answered "", want "ok"`},
		},
		{
			name:   "the binary died before its report",
			mode:   "verneuil",
			report: harnessReport{Mode: "verneuil", StartError: "no harness report: open report.json: no such file"},
			want:   []string{"no harness report"},
		},
		{
			name:   "a report from the other mode",
			mode:   "verneuil",
			report: harnessReport{Mode: "plain", Probe: "ok"},
			want:   []string{`ran in mode "plain"`},
		},
		{
			name: "flush, close and watcher problems all reported",
			mode: "verneuil",
			report: harnessReport{Mode: "verneuil", Probe: "ok", WatchError: []string{"inotify queue overflow"},
				FlushError: "target unavailable", CloseError: "deadline exceeded"},
			want: []string{"inotify queue overflow", "flush: target unavailable", "close: deadline exceeded"},
		},
		{
			name:   "outage: the probe's flush and the final flush fail",
			mode:   "verneuil",
			outage: true,
			report: harnessReport{Mode: "verneuil", ProbeError: "PRAGMA verneuil_flush: verneuil_flush: upload x: target unavailable: gone",
				FlushError: "flush x: target unavailable", CloseError: "target unavailable"},
		},
		{
			name:   "outage: a flush that succeeds is wrong",
			mode:   "verneuil",
			outage: true,
			report: harnessReport{Mode: "verneuil", ProbeError: "PRAGMA verneuil_flush: verneuil_flush: target unavailable"},
			want:   []string{"flush succeeded while the target was unavailable"},
		},
		{
			name:   "outage: the probe must still reach verneuil",
			mode:   "verneuil",
			outage: true,
			report: harnessReport{Mode: "verneuil", ProbeError: "CREATE TABLE: disk I/O error", FlushError: "target unavailable"},
			want:   []string{"default-VFS probe: CREATE TABLE: disk I/O error"},
		},
		{
			name:   "injected faults: a flush that gave up is not a problem by itself",
			mode:   "verneuil",
			faults: true,
			report: harnessReport{Mode: "verneuil", Probe: "ok", FlushError: "gave up after 6 attempts", CloseError: "gave up"},
		},
		{
			name:   "injected faults: the probe's flush may give up too",
			mode:   "verneuil",
			faults: true,
			report: harnessReport{Mode: "verneuil", ProbeError: "PRAGMA verneuil_flush: verneuil_flush: upload x: gave up after 6 attempts"},
		},
		{
			name:   "injected faults: the probe must still reach verneuil",
			mode:   "verneuil",
			faults: true,
			report: harnessReport{Mode: "verneuil", ProbeError: "CREATE TABLE probe: disk I/O error"},
			want:   []string{"default-VFS probe: CREATE TABLE probe: disk I/O error"},
		},
		{
			name:   "probe error",
			mode:   "verneuil",
			report: harnessReport{Mode: "verneuil", ProbeError: "PRAGMA verneuil_flush: disk I/O error"},
			want:   []string{"default-VFS probe: PRAGMA verneuil_flush: disk I/O error"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := harnessProblems(&pass{mode: tc.mode, report: tc.report, outage: tc.outage, faults: tc.faults})
			if len(got) != len(tc.want) {
				t.Fatalf("problems = %q, want %d matching %q", got, len(tc.want), tc.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) || !strings.HasPrefix(got[i], tc.mode+" pass: ") {
					t.Errorf("problem %d = %q, want %q in it", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestJudgeNothingReplicated: identical outcomes are not enough; a
// verneuil pass that left no manifest fails.
func TestJudgeNothingReplicated(t *testing.T) {
	dir := t.TempDir()
	vdir := filepath.Join(dir, "verneuil")
	for _, d := range []string{"store", "tmp", "keep"} {
		if err := os.MkdirAll(filepath.Join(vdir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	same := map[string]string{"TestA": "pass"}
	plain := &pass{mode: "plain", dir: filepath.Join(dir, "plain"),
		result: &passResult{Tests: same, Package: "pass"}, report: harnessReport{Mode: "plain"}}
	vern := &pass{mode: "verneuil", dir: vdir,
		result: &passResult{Tests: same, Package: "pass"}, report: harnessReport{Mode: "verneuil", Probe: "ok"}}
	if code := judge(context.Background(), plain, vern, true); code != 1 {
		t.Fatalf("judge = %d, want 1", code)
	}
	problems := replicationProblems(context.Background(), vern, true)
	if len(problems) != 1 || !strings.Contains(problems[0], "nothing was replicated") {
		t.Fatalf("problems = %q", problems)
	}
}

// TestJudgeSuiteDatabasesCompared replicates the probe and one database
// the harness kept: the verneuil pass is proven; with only the probe, a
// full run is not (the watcher kept nothing).
func TestJudgeSuiteDatabasesCompared(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	vdir := filepath.Join(dir, "verneuil")
	tmp, keep, store := filepath.Join(vdir, "tmp"), filepath.Join(vdir, "keep"), filepath.Join(vdir, "store")
	for _, d := range []string{store, filepath.Join(tmp, "probe"), keep} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	probe, suiteDB := filepath.Join(tmp, "probe", "probe.db"), filepath.Join(tmp, "go-sqlite3-test-1")
	replicateAs(t, replicaHost, store, filepath.Join(vdir, "spool"), probe, suiteDB)
	vern := &pass{mode: "verneuil", dir: vdir, report: harnessReport{Mode: "verneuil", Probe: "ok", ProbePath: probe}}

	if problems := replicationProblems(context.Background(), vern, true); len(problems) != 1 ||
		!strings.Contains(problems[0], "none of the suite's own databases") {
		t.Fatalf("without a kept database: problems = %q", problems)
	}
	if problems := replicationProblems(context.Background(), vern, false); len(problems) != 0 {
		t.Fatalf("with -run: problems = %q", problems)
	}
	// The probe kept by the watcher does not count as one of the suite's.
	if err := os.MkdirAll(filepath.Join(keep, "probe"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(probe, filepath.Join(keep, "probe", "probe.db")); err != nil {
		t.Fatal(err)
	}
	if problems := replicationProblems(context.Background(), vern, true); len(problems) != 1 ||
		!strings.Contains(problems[0], "none of the suite's own databases") {
		t.Fatalf("with only the probe kept: problems = %q", problems)
	}
	if err := os.Link(suiteDB, filepath.Join(keep, filepath.Base(suiteDB))); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(suiteDB); err != nil {
		t.Fatal(err)
	}
	if problems := replicationProblems(context.Background(), vern, true); len(problems) != 0 {
		t.Fatalf("with a kept database: problems = %q", problems)
	}
	for _, p := range []string{probe, filepath.Join(keep, "probe", "probe.db")} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if problems := replicationProblems(context.Background(), vern, true); len(problems) != 1 ||
		!strings.Contains(problems[0], "the probe database") {
		t.Fatalf("without the probe: problems = %q", problems)
	}
}
