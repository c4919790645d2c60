//go:build cgo

package s3

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob/s3test"
	"github.com/verneuil-go/verneuil/internal/config"
)

// closedPort returns a loopback port nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	return port
}

// TestBadTargets runs a writer against a missing bucket, wrong credentials
// and an unreachable endpoint: every write succeeds, and the reason is
// clear in the writer's log, in its flush error and in `verneuilctl
// status` (run as another process).
func TestBadTargets(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	for _, tc := range []struct {
		name      string
		mutate    func(*config.Config)
		env       []string
		want      string
		permanent bool
	}{
		{
			name:      "wrong bucket",
			mutate:    func(c *config.Config) { c.Targets[0].URL = "s3://no-such-bucket/prefix" },
			want:      `bucket "no-such-bucket" does not exist`,
			permanent: true,
		},
		{
			name:      "wrong secret key",
			env:       []string{"AWS_SECRET_ACCESS_KEY=not-the-secret"},
			want:      "rejected the request signature (wrong secret key?)",
			permanent: true,
		},
		{
			name:      "unknown access key",
			env:       []string{"AWS_ACCESS_KEY_ID=nobody"},
			want:      "does not know the access key",
			permanent: true,
		},
		{
			name:   "unreachable endpoint",
			mutate: func(c *config.Config) { c.Targets[0].Endpoint = "http://127.0.0.1:" + closedPort(t) },
			want:   "connection refused",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := s3Config(dir, endpoint, bucket, "bad")
			if tc.mutate != nil {
				tc.mutate(cfg)
			}
			path := filepath.Join(dir, "app.db")
			cmd := child(t, "writer", cfg, append(tc.env, "VERNEUIL_S3_DB="+path, "VERNEUIL_S3_N=50",
				"VERNEUIL_S3_LINGER=500ms")...)
			var out, logs strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &logs
			if err := cmd.Run(); err != nil {
				t.Fatalf("writer: %v (writes must not fail)\nstdout: %s\nlog: %s", err, out.String(), logs.String())
			}
			if !strings.Contains(out.String(), "flush error:") || !strings.Contains(out.String(), tc.want) {
				t.Errorf("flush result %q does not contain %q", out.String(), tc.want)
			}
			// The text log handler escapes quotes.
			logWant := strings.ReplaceAll(tc.want, `"`, `\"`)
			if !strings.Contains(logs.String(), "upload failed") || !strings.Contains(logs.String(), logWant) {
				t.Errorf("log does not explain the failure (%q):\n%s", tc.want, logs.String())
			}
			rows := status(t, cfg)
			if len(rows) != 1 || rows[0].Path != path || !rows[0].Pending || rows[0].LastError == nil {
				t.Fatalf("status = %+v", rows)
			}
			le := rows[0].LastError
			if !strings.Contains(le.Message, tc.want) || le.Permanent != tc.permanent || le.Failures < 1 {
				t.Errorf("status last_error = %+v, want %q (permanent %v)", le, tc.want, tc.permanent)
			}
			text, _, code := ctl(t, cfg, "status")
			if code != 0 || !strings.Contains(text, "FAILING") || !strings.Contains(text, tc.want) {
				t.Errorf("status text (exit %d):\n%s", code, text)
			}
			t.Logf("status: %s", strings.TrimSpace(text))
		})
	}
}
