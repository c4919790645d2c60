//go:build cgo

package s3

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"
)

// faultProxy is an HTTP proxy in front of the S3 server that injects
// faults: 5xx answers, slow answers, connection resets (before or after the
// request reaches the server) and an outage (the port refuses connections).
// It keeps the Host header, so SigV4 signatures stay valid.
type faultProxy struct {
	t    testing.TB
	addr string
	rp   *httputil.ReverseProxy

	mu       sync.Mutex
	mode     string // "", "5xx", "slow", "reset", "ignore-conditions", "huge-length"
	rate     float64
	delay    time.Duration
	srv      *http.Server
	requests int
	injected int
}

func startProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // signed by the client
		},
		ErrorLog: nil,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *faultProxy) URL() string { return "http://" + p.addr }

func (p *faultProxy) serve(ln net.Listener) {
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.t.Logf("proxy: %v", err)
		}
	}()
}

// set selects the fault injected into a fraction rate of requests.
func (p *faultProxy) set(mode string, rate float64, delay time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode, p.rate, p.delay = mode, rate, delay
}

// down closes the port and every connection: clients get "connection
// refused" until up.
func (p *faultProxy) down() {
	p.mu.Lock()
	srv := p.srv
	p.srv = nil
	p.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// up listens again on the same port.
func (p *faultProxy) up() {
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

func (p *faultProxy) counts() (requests, injected int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests, p.injected
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.requests++
	mode, delay := p.mode, p.delay
	hit := mode != "" && rand.Float64() < p.rate
	if hit {
		p.injected++
	}
	p.mu.Unlock()
	if !hit {
		p.rp.ServeHTTP(w, r)
		return
	}
	switch mode {
	case "5xx":
		code := []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}[rand.IntN(3)]
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(code)
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>injected fault</Message></Error>`))
	case "slow":
		time.Sleep(delay)
		p.rp.ServeHTTP(w, r)
	case "ignore-conditions":
		// A store (or a proxy) that does not enforce If-None-Match and
		// If-Match: a conditional PUT that lost says it succeeded.
		rec := httptest.NewRecorder()
		p.rp.ServeHTTP(rec, r)
		conditional := r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Match") != ""
		if r.Method == http.MethodPut && conditional && rec.Code == http.StatusPreconditionFailed {
			w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
			w.WriteHeader(http.StatusOK)
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	case "huge-length":
		// GETs announce an absurd Content-Length.
		if r.Method != http.MethodGet {
			p.rp.ServeHTTP(w, r)
			return
		}
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic("proxy: cannot hijack")
		}
		conn, buf, err := hj.Hijack()
		if err != nil {
			return
		}
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 4611686018427387904\r\nETag: \"x\"\r\nConnection: close\r\n\r\nabc")
		buf.Flush()
		conn.Close()
	case "reset":
		if rand.IntN(2) == 0 {
			// The request reaches the server; the answer is lost.
			p.rp.ServeHTTP(httptest.NewRecorder(), r)
		}
		reset(w)
	}
}

// reset aborts the connection with a TCP RST.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("proxy: cannot hijack")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}
