package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestFaultProxy: with rate 1 every request gets one of the four faults,
// the server sees only the "reset after" ones, and with rate 0 the proxy
// passes everything through with the Host header the client signed.
func TestFaultProxy(t *testing.T) {
	var served atomic.Int64
	var lastHost atomic.Value
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		lastHost.Store(r.Host)
		io.WriteString(w, "from the server")
	}))
	defer backend.Close()
	p, err := startFaultProxy(backend.URL, 1, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

	const n = 200
	var answered5xx, failed int64
	for range n {
		resp, err := client.Get(p.URL + "/bucket/key")
		if err != nil {
			failed++
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			answered5xx++
		}
	}
	got := p.injected()
	if got["503"]+got["500"] != answered5xx || got["reset before"]+got["reset after"] != failed || answered5xx+failed != n {
		t.Fatalf("injected %v; client saw %d 5xx and %d failures of %d", got, answered5xx, failed, n)
	}
	for kind, count := range got {
		if count == 0 {
			t.Errorf("no %q fault in %d requests", kind, n)
		}
	}
	if served.Load() != got["reset after"] {
		t.Errorf("the server handled %d requests, want the %d reset after it answered", served.Load(), got["reset after"])
	}

	p.setRate(0)
	req, err := http.NewRequest(http.MethodGet, p.URL+"/bucket/key", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "signed.example:9000"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "from the server" || lastHost.Load() != "signed.example:9000" {
		t.Fatalf("without faults: %d %q, host %v", resp.StatusCode, body, lastHost.Load())
	}
	if p.requests.Load() != n+1 {
		t.Errorf("proxy counted %d requests, want %d", p.requests.Load(), n+1)
	}
}
