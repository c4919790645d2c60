//go:build cgo

package s3

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob/s3test"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// lockedBuffer collects a child's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCopierDaemon: writers that cannot reach the store exit and leave
// their spools; `verneuilctl copier` drains them into the store, exports
// Prometheus metrics, and stops gracefully on SIGTERM.
func TestCopierDaemon(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	dir := t.TempDir()
	// Everything reaches the store through a proxy that is down while the
	// writers run, so what they commit stays in the (shared) spool. The
	// writers and the daemon name the same target, as on a real host.
	proxy := startProxy(t, endpoint)
	good := s3Config(dir, proxy.URL(), bucket, "daemon")
	quiet := *good
	quiet.LogLevel = "error"
	write := func(path string, n int) {
		t.Helper()
		proxy.down()
		defer proxy.up()
		cmd := child(t, "writer", &quiet, "VERNEUIL_S3_DB="+path, fmt.Sprintf("VERNEUIL_S3_N=%d", n), "VERNEUIL_S3_LINGER=0s")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("writer: %v\n%s", err, out)
		}
	}
	paths := []string{filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db"), filepath.Join(dir, "c.db")}
	for i, p := range paths {
		write(p, 20+10*i)
	}
	for _, r := range status(t, good) {
		if !r.Pending || r.LastError == nil {
			t.Fatalf("before the daemon: %+v", r)
		}
	}

	metricsAddr := "127.0.0.1:" + closedPort(t)
	cmd := testutil.CtlCommand(t, testutil.ConfigJSON(t, good), "--log-level", "info", "copier", "--metrics-addr", metricsAddr, "--scan-interval", "200ms")
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill() // by the pid of the process we started
			<-exited
		}
		if t.Failed() {
			t.Logf("daemon output:\n%s", logs.String())
		}
	}()

	var last []statusRow
	defer func() {
		if t.Failed() {
			t.Logf("last status: %+v", last)
		}
	}()
	drained := func() bool {
		last = status(t, good)
		for _, r := range last {
			if r.Pending || r.LastError != nil {
				return false
			}
		}
		return true
	}
	waitUntil(t, 20*time.Second, "the daemon drains the spools", drained)
	store := openStore(t, good)
	for _, p := range paths {
		restoreCompare(t, good, store, p)
	}

	// A writer that exits while the daemon runs: picked up by the scan.
	write(paths[1], 15)
	waitUntil(t, 20*time.Second, "the daemon uploads the new spool", drained)
	restoreCompare(t, good, store, paths[1])

	body := scrape(t, "http://"+metricsAddr+"/metrics")
	for _, want := range []string{
		"# TYPE verneuil_copier_manifests_total counter",
		"# TYPE verneuil_replication_lag_seconds histogram",
		`verneuil_replication_lag_seconds_bucket{le="+Inf"} `,
		"verneuil_spool_databases 3",
		"verneuil_spool_pending_versions 0",
		"verneuil_copier_paused 0",
		fmt.Sprintf(`verneuil_db_pending_versions{db=%q,`, paths[0]),
		fmt.Sprintf(`verneuil_db_replication_lag_seconds_count{db=%q,`, paths[2]),
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if v := metricValue(t, body, "verneuil_copier_manifests_total"); v < 4 {
		t.Errorf("verneuil_copier_manifests_total = %v, want ≥ 4", v)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("daemon exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("daemon did not stop within 15s of SIGTERM")
	}
	for _, want := range []string{"copier daemon started", "shutting down", "copier daemon stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("daemon log lacks %q", want)
		}
	}
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape %s: %d %v", url, resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	return string(b)
}

// metricValue returns the value of an unlabelled sample.
func metricValue(t *testing.T, body, name string) float64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		var v float64
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return v
		}
	}
	t.Fatalf("no sample %s", name)
	return 0
}
