package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		method, target string
		header         map[string]string
		want           string
	}{
		{"PUT", "/b/chunks/abc", nil, opPut},
		{"PUT", "/b/dbs/k/latest", nil, opPut},
		{"PUT", "/b/x/y.ltx?partNumber=1&uploadId=u", nil, opPut},
		{"PUT", "/b/dst", map[string]string{"X-Amz-Copy-Source": "/b/src"}, opCopy},
		{"PUT", "/b", nil, opBucket},
		{"PUT", "/b/", nil, opBucket},
		{"GET", "/b/dbs/k/latest", nil, opGet},
		{"GET", "/b?list-type=2&prefix=p%2F", nil, opList},
		{"GET", "/b/?list-type=2&prefix=p%2F&start-after=x", nil, opList},
		{"GET", "/b?prefix=p", nil, opList},
		{"GET", "/b", nil, opList},
		{"GET", "/b?location", nil, opBucket},
		{"HEAD", "/b/k", nil, opHead},
		{"HEAD", "/b", nil, opHead},
		{"DELETE", "/b/k", nil, opDelete},
		{"DELETE", "/b", nil, opBucket},
		{"POST", "/b?delete", nil, opMulti},
		{"POST", "/b/big.ltx?uploads", nil, opMultipart},
		{"POST", "/b/big.ltx?uploadId=u", nil, opMultipart},
		{"POST", "/b/k", nil, opOther},
		{"PATCH", "/b/k", nil, opOther},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.target)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		for k, v := range tt.header {
			h.Set(k, v)
		}
		if got := classify(tt.method, u, h); got != tt.want {
			t.Errorf("%s %s: %s, want %s", tt.method, tt.target, got, tt.want)
		}
	}
}

// TestCountingProxy sends requests through the proxy to a real HTTP server
// and checks what it counted: classes, body bytes both ways, errors.
func TestCountingProxy(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.Method {
		case http.MethodGet:
			if strings.HasSuffix(r.URL.Path, "/missing") {
				http.Error(w, "no such key", http.StatusNotFound)
				return
			}
			w.Write([]byte(strings.Repeat("g", 1000)))
		case http.MethodPut:
			if len(body) != 300 {
				http.Error(w, "short body", http.StatusBadRequest)
			}
		}
	}))
	defer backend.Close()
	target, _ := url.Parse(backend.URL)
	p := newCountingProxy(target)
	front := httptest.NewServer(p)
	defer front.Close()

	do := func(method, path, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, front.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	before := p.snapshot()
	for range 3 {
		if s := do("PUT", "/b/chunks/x", strings.Repeat("p", 300)); s != 200 {
			t.Fatalf("PUT through the proxy: status %d", s)
		}
	}
	do("GET", "/b/k", "")
	do("GET", "/b/missing", "")
	do("GET", "/b?list-type=2&prefix=a", "")
	got := p.snapshot().sub(before)

	want := counts{
		opPut:  {N: 3, BytesIn: 900},
		opGet:  {N: 2, BytesOut: 1000 + int64(len("no such key\n")), Errors: 1},
		opList: {N: 1, BytesOut: 1000},
	}
	for op, w := range want {
		if got[op] != w {
			t.Errorf("%s: counted %+v, want %+v", op, got[op], w)
		}
	}
	if got.total() != 6 {
		t.Errorf("total %d requests, want 6 (%v)", got.total(), got)
	}
	if in, out := got.bytes(); in != 900 || out != 2000+int64(len("no such key\n")) {
		t.Errorf("bytes in %d out %d", in, out)
	}
	if s := got.String(); !strings.HasPrefix(s, "3 PUT, 2 GET (1 4xx/5xx), 1 LIST") {
		t.Errorf("String() = %q", s)
	}
}
