package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// testSpool is a spool and a local target, as a configuration.
type testSpool struct {
	dir, spoolDir, store, config string
}

func newTestSpool(t *testing.T) *testSpool {
	t.Helper()
	dir := t.TempDir()
	s := &testSpool{dir: dir, spoolDir: filepath.Join(dir, "spool"), store: filepath.Join(dir, "store")}
	if err := os.MkdirAll(s.store, 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{
		"spool_dir": s.spoolDir,
		"targets":   []map[string]any{{"url": config.FileURL(s.store)}},
		"hostname":  "ctltest",
		"log_level": "info",
	})
	s.config = string(b)
	return s
}

// stage publishes a one-chunk manifest for the database at path, as a
// writer that exited would leave it, aged so that the scan takes it.
func (s *testSpool) stage(t *testing.T, path string, seq uint64) string {
	t.Helper()
	name := names.Replica("ctltest", path)
	key := names.Key(name)
	d := testutil.PublishManifest(t, s.spoolDir, key, spool.Info{Path: path, Name: name}, seq,
		bytes.Repeat([]byte{byte(seq)}, 4096), time.Now().Add(-time.Minute))
	past := time.Now().Add(-time.Minute)
	os.Chtimes(filepath.Join(d.Path, "manifest"), past, past)
	return key
}

// syncBuffer is a goroutine-safe writer.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestCopierCommand(t *testing.T) {
	s := newTestSpool(t)
	keyA := s.stage(t, "/data/a.db", 5)
	keyB := s.stage(t, "/data/b.db", 7)
	store, err := fileblob.OpenDir(s.store, false)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--config", s.config, "copier", "--metrics-addr", addr, "--scan-interval", "100ms"}, &stdout, &stderr)
	}()
	for _, key := range []string{keyA, keyB} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if ok, _ := store.Exists(ctx, names.LatestKey(key)); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not uploaded by the daemon; log:\n%s", key, stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var body string
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if strings.Contains(body, "verneuil_copier_manifests_total 2") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed 2 manifests: %v\n%s", err, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkExposition(t, body)
	for _, want := range []string{
		`verneuil_db_manifests_total{db="/data/a.db",key="` + keyA + `"} 1`,
		`verneuil_db_pending_versions{db="/data/b.db",key="` + keyB + `"} 0`,
		`verneuil_replication_lag_seconds_count 2`,
		`verneuil_spool_databases 2`,
		"\ngo_goroutines ",                 // the Go runtime's collector
		"\nprocess_resident_memory_bytes ", // the process collector
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("copier exited %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("copier did not stop after the signal")
	}
}

func TestCopierCommandUsage(t *testing.T) {
	s := newTestSpool(t)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--config", s.config, "copier", "--scan-interval", "0s"}, &stdout, &stderr); code != 2 {
		t.Errorf("exit %d, want 2 (usage): %s", code, stderr.String())
	}
	stderr.Reset()
	addr := freeAddr(t)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if code := run(context.Background(), []string{"--config", s.config, "copier", "--metrics-addr", addr}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "--metrics-addr") {
		t.Errorf("busy metrics port: exit %d: %s", code, stderr.String())
	}
}

func TestStatusShowsBacklogAndLastError(t *testing.T) {
	s := newTestSpool(t)
	key := s.stage(t, "/data/a.db", 5)
	d, err := spool.Existing(s.spoolDir, key)
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-90 * time.Second)
	if err := d.WriteLastError(spool.LastError{Message: `put chunks/x: bucket "nope" does not exist`, Time: time.Now(),
		Since: since, Failures: 4, Permanent: true, PID: 1}); err != nil {
		t.Fatal(err)
	}
	s.stage(t, "/data/b.db", 3)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--config", s.config, "status", "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr.String())
	}
	var rows []dbStatus
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	byPath := map[string]dbStatus{}
	for _, r := range rows {
		byPath[r.Path] = r
	}
	a := byPath["/data/a.db"]
	if !a.Pending || a.LastError == nil || a.LastError.Failures != 4 || a.LagSeconds < 89 || a.SpoolBytes == 0 {
		t.Errorf("a = %+v", a)
	}
	if b := byPath["/data/b.db"]; !b.Pending || b.LastError != nil || b.LagSeconds < 59 {
		t.Errorf("b = %+v", b)
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"--config", s.config, "status"}, &stdout, &stderr); code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"FAILING", `4 failures since`, "permanent", `bucket "nope" does not exist`, "pending", "2 databases, 2 pending, 1 failing"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (\S+)$`)
)

// checkExposition validates the text format: every sample belongs to a
// family announced by HELP and TYPE lines, and families are contiguous.
func checkExposition(t *testing.T, body string) {
	t.Helper()
	types := map[string]string{}
	var current string
	done := map[string]bool{}
	for i, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "# HELP "):
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if len(f) != 4 || !metricName.MatchString(f[2]) {
				t.Fatalf("line %d: bad TYPE %q", i+1, line)
			}
			if done[f[2]] {
				t.Fatalf("line %d: family %s announced twice", i+1, f[2])
			}
			if current != "" {
				done[current] = true
			}
			current = f[2]
			types[current] = f[3]
		default:
			m := sampleLine.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("line %d: bad sample %q", i+1, line)
			}
			name := m[1]
			base := name
			if types[current] == "histogram" || types[current] == "summary" {
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					base = strings.TrimSuffix(base, suf)
				}
			}
			if base != current {
				t.Fatalf("line %d: sample %s outside its family (current %s)", i+1, name, current)
			}
			var v float64
			if _, err := fmt.Sscan(m[len(m)-1], &v); err != nil && m[len(m)-1] != "+Inf" {
				t.Fatalf("line %d: bad value in %q", i+1, line)
			}
		}
	}
}
