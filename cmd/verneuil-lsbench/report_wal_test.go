package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// walTablePhase is a result of workload (a) for tool with the given lag p99 and
// requests.
func walTablePhase(tool string, lagP99 time.Duration, puts int64) *phaseResult {
	return &phaseResult{Workload: "a", Title: "1 database", Tool: tool, DBs: 1, Commits: 100, Load: 10 * time.Second,
		Lag: dist{P50: lagP99 / 2, P99: lagP99, Max: lagP99}, Window: 15 * time.Second,
		Requests: counts{"PUT": {N: puts}}}
}

func TestPrintTableVerneuilWALColumns(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tools   []string
		header  string
		cells   int    // cells of a metric line
		lagP99  string // the lag p99 line
		missing string // a column that must not appear
	}{
		{"two tools", []string{toolLitestream, toolVerneuil}, "| workload | metric | Litestream | verneuil | verneuil / Litestream |", 5,
			"| | lag p99 | 1.000 s | 0.500 s | 0.50× |", "verneuil-wal"},
		{"three tools", []string{toolLitestream, toolVerneuil, toolVerneuilWAL},
			"| workload | metric | Litestream | verneuil | verneuil / Litestream | verneuil-wal | verneuil-wal / Litestream |", 7,
			"| | lag p99 | 1.000 s | 0.500 s | 0.50× | 0.750 s | 0.75× |", ""},
		{"WAL only", []string{toolLitestream, toolVerneuilWAL},
			"| workload | metric | Litestream | verneuil-wal | verneuil-wal / Litestream |", 5,
			"| | lag p99 | 1.000 s | 0.750 s | 0.75× |", "| verneuil |"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lag := map[string]time.Duration{toolLitestream: time.Second, toolVerneuil: time.Second / 2, toolVerneuilWAL: 3 * time.Second / 4}
			r := &report{Command: "verneuil-lsbench -only a"}
			for _, tool := range tc.tools {
				r.Results = append(r.Results, walTablePhase(tool, lag[tool], 50))
			}
			var out bytes.Buffer
			r.printTable(&out)
			text := out.String()
			if !strings.Contains(text, tc.header+"\n") {
				t.Fatalf("header %q missing:\n%s", tc.header, text)
			}
			if !strings.Contains(text, strings.Replace(tc.lagP99, "| |", "|  |", 1)+"\n") {
				t.Errorf("line %q missing:\n%s", tc.lagP99, text)
			}
			if tc.missing != "" && strings.Contains(text, tc.missing) {
				t.Errorf("%q in the table:\n%s", tc.missing, text)
			}
			for _, line := range strings.Split(text, "\n") {
				if strings.Contains(line, "| requests per commit |") {
					if n := strings.Count(line, "|") - 1; n != tc.cells {
						t.Errorf("%d cells in %q, want %d", n, line, tc.cells)
					}
				}
			}
		})
	}
}

func TestDSNJournalModes(t *testing.T) {
	for tool, want := range map[string]string{
		toolLitestream:  "_journal_mode=WAL",
		toolVerneuil:    "vfs=verneuil&_journal_mode=TRUNCATE",
		toolVerneuilWAL: "vfs=verneuil&_journal_mode=WAL",
	} {
		if got := dsn(tool, "/x.db"); !strings.Contains(got, want) {
			t.Errorf("dsn(%s) = %q, want %q in it", tool, got, want)
		}
		if isVerneuil(tool) != (tool != toolLitestream) {
			t.Errorf("isVerneuil(%s) wrong", tool)
		}
	}
}
