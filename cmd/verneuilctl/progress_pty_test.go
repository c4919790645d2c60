package main

import (
	"bytes"
	"crypto/rand"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestProgressOfEveryLongCommand: sync, flush, verify, restore and gc draw
// a progress line (bytes and rate; ETA where the total is known) on a
// terminal, through a pty, and end with a one-line summary; with stderr
// on a pipe there is no progress (no carriage return, no escape sequence)
// and the same one-line summary.
func TestProgressOfEveryLongCommand(t *testing.T) {
	s := newTestSpool(t)
	cfg := s.withLogLevel(t, "error")
	db := filepath.Join(s.dir, "app.db")
	writePlain(t, db, "_journal_mode=DELETE", "CREATE TABLE t(v)", "INSERT INTO t VALUES(randomblob(300000))")
	staged := filepath.Join(s.dir, "gone.db")
	name := "ctltest:" + db
	for _, tc := range []struct {
		cmd       string
		args      []string
		before    func()
		label     string // what the progress line starts with
		eta       bool   // the total is known: a percentage and an ETA
		summary   *regexp.Regexp
		onStderr  bool // the summary goes to stderr (stdout may be data)
		wantLines int
	}{
		{cmd: "sync", args: []string{db}, label: "sync ", eta: true,
			summary: regexp.MustCompile(`^synced ` + regexp.QuoteMeta(db) + ` as ` + regexp.QuoteMeta(name) + ` version \d+ \(\d+(\.\d)? [KM]?i?B\) in \S+\n$`)},
		{cmd: "flush", before: func() { s.stageChunks(t, staged) }, label: "flush ", eta: true,
			summary: regexp.MustCompile(`^flushed \d+ databases: \d+ manifests, \d+ chunks \(.*\) in \S+\n$`)},
		{cmd: "verify", args: []string{db}, label: "verify " + name + " ", eta: true,
			summary: regexp.MustCompile(`^ok: replica version \d+ of ` + regexp.QuoteMeta(db) + ` is identical \(sha256 [0-9a-f]{64}\)\n$`)},
		{cmd: "restore", args: []string{db, "--out", filepath.Join(s.dir, "out.db"), "--force"}, label: "restore " + name + " ", eta: true,
			summary: regexp.MustCompile(`^restored ` + regexp.QuoteMeta(name) + ` version \d+ \(\d+ bytes\) to \S+ in \S+\n$`), onStderr: true},
		{cmd: "gc", args: []string{"--grace", "1h"}, label: "gc file://",
			summary: regexp.MustCompile(`^file://\S+: \d+ databases; manifests: .* requests in \S+\n$`)},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			args := append([]string{"--config", cfg, tc.cmd}, tc.args...)
			if tc.before != nil {
				tc.before()
			}
			term, out, code := onTerminal(t, "stderr", args...)
			if code != 0 {
				t.Fatalf("%s on a terminal: exit %d\nterminal: %q\nstdout: %q", tc.cmd, code, term, out)
			}
			if !strings.Contains(term, "\r\x1b[K"+tc.label) || !regexp.MustCompile(`\d+(\.\d)? [KMG]?i?B/s`).MatchString(term) {
				t.Errorf("%s on a terminal: no progress line %q... with a rate: %q", tc.cmd, tc.label, term)
			}
			if tc.eta && (!strings.Contains(term, "100%") || !strings.Contains(term, "ETA ")) {
				t.Errorf("%s on a terminal: no percentage or ETA: %q", tc.cmd, term)
			}
			shown := out
			if tc.onStderr {
				// The pty turns "\n" into "\r\n"; the progress line was
				// erased before the summary.
				shown = term[strings.LastIndex(term, "\x1b[K")+3:]
				shown = strings.ReplaceAll(shown, "\r\n", "\n")
			}
			if !tc.summary.MatchString(shown) {
				t.Errorf("%s on a terminal: summary %q, want %v", tc.cmd, shown, tc.summary)
			}

			if tc.before != nil {
				tc.before()
			}
			// A real process, its standard streams on pipes.
			cmd := exec.Command(testutil.Verneuilctl(t), args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			_ = cmd.Run() // the exit code is checked
			out, errOut, code := stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
			if code != 0 {
				t.Fatalf("%s on a pipe: exit %d: %s", tc.cmd, code, errOut)
			}
			if strings.ContainsAny(errOut, "\r\x1b") {
				t.Errorf("%s on a pipe: progress drawn on stderr: %q", tc.cmd, errOut)
			}
			shown = out
			if tc.onStderr {
				shown = errOut
			}
			if !tc.summary.MatchString(shown) {
				t.Errorf("%s on a pipe: summary %q, want %v", tc.cmd, shown, tc.summary)
			}
		})
	}
}

// stageChunks publishes in the spool a new version of the database at
// path of five 64 KiB chunks, staging the chunks, as a writer that exited
// before uploading leaves it.
func (s *testSpool) stageChunks(t *testing.T, path string) {
	t.Helper()
	name := names.Replica("ctltest", path)
	d, err := spool.Open(s.spoolDir, names.Key(name), spool.Info{Path: path, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	const cs = 1 << 16
	data := make([]byte, 5*cs)
	rand.Read(data)
	m := &manifest.Manifest{Name: name, Seq: uint64(time.Now().UnixNano()), CommitTime: time.Now(), ChunkSize: cs,
		Length: int64(len(data)), Chunk0: data[:cs], VersionID: []byte{1}, HeaderHash: manifest.HashOf(data[:100])}
	for i := 0; i < len(data); i += cs {
		h := manifest.HashOf(data[i : i+cs])
		m.Chunks = append(m.Chunks, h)
		if i > 0 {
			if err := d.StageChunk(h, data[i:i+cs]); err != nil {
				t.Fatal(err)
			}
		}
	}
	testutil.Publish(t, d, m)
}
