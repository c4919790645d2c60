//go:build cgo

package ext

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob/s3test"
)

// slowStore is a proxy to the S3 server that holds chunk GETs (when delay
// is set) and counts the ones whose client went away first. The n-th held
// GET since the last reset waits delay + n×step: the chunks a query needs
// are asked for first and come back first, while the readahead asked for
// after them is still in flight (with one delay for all, a readahead batch
// that includes the query's last chunk would end with it).
type slowStore struct {
	rp        *httputil.ReverseProxy
	delay     atomic.Int64 // nanoseconds
	step      atomic.Int64 // nanoseconds
	held      atomic.Int64 // GETs held since the last reset
	abandoned atomic.Int64
}

// hold sets the delays and restarts the count of held GETs.
func (p *slowStore) hold(delay, step time.Duration) {
	p.held.Store(0)
	p.step.Store(int64(step))
	p.delay.Store(int64(delay))
}

func (p *slowStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d := time.Duration(p.delay.Load()); d > 0 && r.Method == http.MethodGet && (strings.Contains(r.URL.Path, "/chunks/") || strings.Contains(r.URL.Path, "/packs/")) {
		d += time.Duration(p.held.Add(1)-1) * time.Duration(p.step.Load())
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			p.abandoned.Add(1)
			return
		}
	}
	p.rp.ServeHTTP(w, r)
}

func startSlowStore(t *testing.T) (*slowStore, string, string) {
	t.Helper()
	endpoint, bucket := s3test.Start(t)
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &slowStore{rp: httputil.NewSingleHostReverseProxy(u)}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv.URL, bucket
}

// s3ReaderConfig switches e to a read-only host of the S3 target.
func s3ReaderConfig(t *testing.T, e *env, target map[string]any) {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"spool_dir": filepath.Join(e.dir, "reader-spool"),
		"targets":   []map[string]any{target},
		"hostname":  testHost,
		"cache_dir": filepath.Join(e.dir, "cache"),
		"replicate": false,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.config = "@" + writeFile(t, e.dir, "s3reader.json", string(b))
}

// TestSnapshotExitWithReadaheadInFlight: the sqlite3 shell and Python read
// the first rows of a replica in order (readahead starts fetching the
// next chunks) from a store that holds every chunk GET for 2 s and one
// more second for each GET before it, and exit
// right after the query. They exit with code 0, without crash output, and
// without waiting for the fetches still in flight (the store sees their
// clients go away before answering).
func TestSnapshotExitWithReadaheadInFlight(t *testing.T) {
	store, endpoint, bucket := startSlowStore(t)
	target := map[string]any{"url": "s3://" + bucket + "/exit", "endpoint": endpoint, "region": s3test.Region, "path_style": true}
	e := newEnv(t, map[string]any{"targets": []map[string]any{target}})
	uri, _, _ := snapSource(t, e, "exit.db")
	s3ReaderConfig(t, e, target)
	const query = "SELECT count(*), sum(length(hex(v))) FROM t WHERE rowid <= 8"
	const want = "8|320000"
	py := python(t)
	script := writeFile(t, e.dir, "exit.py", `import sqlite3, sys
boot = sqlite3.connect(":memory:")
boot.enable_load_extension(True)
boot.load_extension(sys.argv[1])
con = sqlite3.connect(sys.argv[2], uri=True)
print("|".join(str(x) for x in con.execute(sys.argv[3]).fetchone()), flush=True)
`)
	hosts := []struct {
		name string
		run  func() result
	}{
		{"sqlite3", func() result { return e.runHost(shellScript(uri, query+";"), sqlite3Shell(t), "-bail") }},
		{"python", func() result { return e.runHost("", py, script, soPath, uri, query) }},
	}
	for _, h := range hosts {
		t.Run(h.name, func(t *testing.T) {
			// Each host starts with an empty disk cache.
			if err := os.RemoveAll(filepath.Join(e.dir, "cache")); err != nil {
				t.Fatal(err)
			}
			store.hold(2*time.Second, time.Second)
			before := store.abandoned.Load()
			r := h.run()
			store.hold(0, 0)
			if r.exitCode() != 0 || strings.TrimSpace(r.stdout) != want {
				t.Fatalf("exit %d, stdout %q (want %q)\n%s", r.exitCode(), r.stdout, want, r)
			}
			for _, bad := range []string{"panic", "fatal error", "SIGSEGV", "goroutine ", "Segmentation"} {
				if strings.Contains(r.stderr, bad) {
					t.Fatalf("crash output (%q) at exit:\n%s", bad, r)
				}
			}
			// The server notices the closed connections shortly after.
			deadline := time.Now().Add(10 * time.Second)
			for store.abandoned.Load() == before && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if store.abandoned.Load() == before {
				t.Fatalf("no chunk fetch was in flight when %s exited: the test did not exercise readahead at exit\n%s", h.name, r)
			}
		})
	}
}
