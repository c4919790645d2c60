package metrics

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestExposition(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Counter("x_requests_total", "Requests.\nSecond line with \\.", 3)
	w.Gauge("x_bytes", "Bytes per db.", 10, Label{"db", `/a "b"` + "\n" + `c\d`})
	w.Gauge("x_bytes", "Bytes per db.", 2.5, Label{"db", "/e"})
	w.Histogram("x_lag_seconds", "Lag.", []float64{0.5, 1}, []int64{1, 2, 3}, 7.25, Label{"db", "/e"})
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := `# HELP x_requests_total Requests.\nSecond line with \\.
# TYPE x_requests_total counter
x_requests_total 3
# HELP x_bytes Bytes per db.
# TYPE x_bytes gauge
x_bytes{db="/a \"b\"\nc\\d"} 10
x_bytes{db="/e"} 2.5
# HELP x_lag_seconds Lag.
# TYPE x_lag_seconds histogram
x_lag_seconds_bucket{db="/e",le="0.5"} 1
x_lag_seconds_bucket{db="/e",le="1"} 3
x_lag_seconds_bucket{db="/e",le="+Inf"} 6
x_lag_seconds_sum{db="/e"} 7.25
x_lag_seconds_count{db="/e"} 6
`
	if got := buf.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestNonContiguousFamily(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Gauge("a", "A.", 1)
	w.Gauge("b", "B.", 1)
	w.Gauge("a", "A.", 2)
	if err := w.Flush(); err == nil || !strings.Contains(err.Error(), "not contiguous") {
		t.Fatalf("Flush = %v, want a contiguity error", err)
	}
}

func TestHandler(t *testing.T) {
	h := Handler(func(w *Writer) { w.Gauge("up", "Up.", 1) })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != ContentType || !strings.Contains(rec.Body.String(), "up 1\n") {
		t.Fatalf("GET: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/metrics", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
}
