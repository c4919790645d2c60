package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/verneuil-go/verneuil/internal/testutil"
)

// onTerminal runs verneuilctl with stdout or stderr (which) on a pty and
// the other stream on a pipe; it returns what the pty showed, the other
// stream and the exit code.
func onTerminal(t *testing.T, which string, args ...string) (term, other string, code int) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	cmd := exec.Command(testutil.Verneuilctl(t), args...)
	var buf bytes.Buffer
	if which == "stdout" {
		cmd.Stdout, cmd.Stderr = tty, &buf
	} else {
		cmd.Stdout, cmd.Stderr = &buf, tty
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var shown bytes.Buffer
	done := make(chan struct{})
	go func() {
		io.Copy(&shown, ptmx) // ends with EIO once the process exits
		close(done)
	}()
	cmd.Wait() // the exit code is returned
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("pty output did not end")
	}
	return shown.String(), buf.String(), cmd.ProcessState.ExitCode()
}

// TestProgressOnTerminalOnly: restore draws a progress line (bytes, rate)
// on a terminal and ends with a one-line summary; on a pipe there is only
// the summary. --out - refuses to write a database to a terminal unless
// forced.
func TestProgressOnTerminalOnly(t *testing.T) {
	s := newTestSpool(t)
	db := filepath.Join(s.dir, "app.db")
	s.stage(t, db, bigSeq)
	s.mustCtl(t, "flush")
	cfg := s.withLogLevel(t, "warn")

	term, _, code := onTerminal(t, "stderr", "--config", cfg, "restore", db, "--out", filepath.Join(s.dir, "a.db"))
	if code != 0 || !strings.Contains(term, "\r\x1b[Krestore ctltest:"+db) || !strings.Contains(term, "100%") ||
		!strings.Contains(term, "restored ctltest:"+db+" version 1764057600123456789 (4096 bytes)") {
		t.Errorf("restore with stderr on a terminal: exit %d, showed %q", code, term)
	}
	out, errOut, code := ctlArgs("--config", cfg, "restore", db, "--out", filepath.Join(s.dir, "b.db"))
	if code != 0 || out != "" || strings.Contains(errOut, "\r") || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "restored ") {
		t.Errorf("restore with stderr on a pipe: exit %d, stderr %q", code, errOut)
	}

	term, errOut, code = onTerminal(t, "stdout", "--config", cfg, "restore", db, "--out", "-")
	if code == 0 || strings.Contains(term, "SQLite format") || !strings.Contains(errOut, "terminal") {
		t.Errorf("restore --out - to a terminal: exit %d, stderr %q", code, errOut)
	}
	term, _, code = onTerminal(t, "stdout", "--config", cfg, "restore", db, "--out", "-", "--force")
	if code != 0 || len(term) < 4096 {
		t.Errorf("restore --out - --force to a terminal: exit %d, %d bytes shown", code, len(term))
	}
}

// withLogLevel returns the test configuration with another log level.
func (s *testSpool) withLogLevel(t *testing.T, level string) string {
	t.Helper()
	return strings.Replace(s.config, `"log_level":"info"`, `"log_level":"`+level+`"`, 1)
}

// TestProgressLine: the progress line's bytes, percentage, rate and ETA.
func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{1 << 20, 4 << 20, time.Second, "x 1.0 MiB / 4.0 MiB  25%  1.0 MiB/s  ETA 3s"},
		{1 << 20, 0, 2 * time.Second, "x 1.0 MiB  512.0 KiB/s"},
		{0, 100, 0, "x 0 B / 100 B   0%  0 B/s"},
		{200, 100, time.Second, "x 100 B / 100 B 100%  200 B/s  ETA 0s"},
	} {
		if got := progressLine("x", tc.done, tc.total, tc.elapsed); got != tc.want {
			t.Errorf("progressLine(%d, %d, %v) = %q, want %q", tc.done, tc.total, tc.elapsed, got, tc.want)
		}
	}
}

// TestJSONLogs: with --json, the logs on stderr are JSON lines too.
func TestJSONLogs(t *testing.T) {
	s := newTestSpool(t)
	db := filepath.Join(s.dir, "app.db")
	s.stage(t, db, bigSeq)
	s.mustCtl(t, "flush")
	cmd := exec.Command(testutil.Verneuilctl(t), "--config", s.config, "--json", "restore", db, "--out", filepath.Join(s.dir, "out.db"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("restore --json: %v\n%s", err, stderr.String())
	}
	var res map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res["restored"] != true {
		t.Errorf("stdout: %v %q", err, stdout.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["msg"] == nil {
			t.Errorf("stderr line is not a JSON log record: %q", line)
		}
	}
	if len(lines) == 0 || !strings.Contains(stderr.String(), `"msg":"restored"`) {
		t.Errorf("no restored record in the logs: %q", stderr.String())
	}
}
