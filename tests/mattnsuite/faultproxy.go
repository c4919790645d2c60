package main

import (
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// faultProxy stands between the verneuil pass and the S3 server
// (-s3-faults): a fraction of the requests get a hostile answer instead
// of the server's. It keeps the Host header, so that signatures hold.
type faultProxy struct {
	URL      string
	rp       *httputil.ReverseProxy
	srv      *http.Server
	done     chan struct{}
	rate     atomic.Uint64 // math.Float64bits of the fraction of requests faulted
	mu       sync.Mutex
	rng      *rand.Rand
	requests atomic.Int64
	faults   [faultKinds]atomic.Int64
}

// The faults injected, in turn.
const (
	faultUnavailable = iota // 503 SlowDown, the server not asked
	faultInternal           // 500 InternalError, the server not asked
	faultResetBefore        // connection reset before the server sees the request
	faultResetAfter         // the server handled it; the answer is lost to a reset
	faultKinds
)

var faultNames = [faultKinds]string{"503", "500", "reset before", "reset after"}

// startFaultProxy listens on a loopback port and forwards to target,
// injecting faults into a fraction rate of the requests (seeded: the same
// sequence of choices for the same requests).
func startFaultProxy(target string, rate float64, seed uint64) (*faultProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &faultProxy{URL: "http://" + ln.Addr().String(), done: make(chan struct{}), rng: rand.New(rand.NewPCG(seed, seed))}
	p.setRate(rate)
	p.rp = &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.Out.Host = pr.In.Host
	}}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(p.done)
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logf("fault proxy: %v", err)
		}
	}()
	return p, nil
}

func (p *faultProxy) setRate(rate float64) { p.rate.Store(math.Float64bits(rate)) }

// stop closes the proxy.
func (p *faultProxy) stop() {
	p.srv.Close()
	<-p.done
}

// injected returns how many requests got each fault.
func (p *faultProxy) injected() map[string]int64 {
	m := map[string]int64{}
	for i := range p.faults {
		m[faultNames[i]] = p.faults[i].Load()
	}
	return m
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	p.mu.Lock()
	hit := p.rng.Float64() < math.Float64frombits(p.rate.Load())
	kind := p.rng.IntN(faultKinds)
	p.mu.Unlock()
	if !hit {
		p.rp.ServeHTTP(w, r)
		return
	}
	p.faults[kind].Add(1)
	switch kind {
	case faultUnavailable, faultInternal:
		code, name := http.StatusServiceUnavailable, "SlowDown"
		if kind == faultInternal {
			code, name = http.StatusInternalServerError, "InternalError"
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(code)
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>` + name + `</Code><Message>injected by mattn-suite</Message></Error>`))
	case faultResetAfter:
		p.rp.ServeHTTP(httptest.NewRecorder(), r)
		fallthrough
	case faultResetBefore:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, not FIN
		}
		conn.Close()
	}
}
