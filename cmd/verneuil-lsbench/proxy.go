package main

import (
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

// Request classes, named after the S3 operations they are billed as.
const (
	opPut       = "PUT"       // PutObject (and UploadPart)
	opCopy      = "COPY"      // CopyObject (PUT with x-amz-copy-source)
	opGet       = "GET"       // GetObject
	opHead      = "HEAD"      // HeadObject / HeadBucket
	opList      = "LIST"      // ListObjects(V2), ListObjectVersions, ListMultipartUploads
	opDelete    = "DELETE"    // DeleteObject
	opMulti     = "MULTIDEL"  // DeleteObjects (POST ?delete)
	opMultipart = "MULTIPART" // Create/CompleteMultipartUpload (POST ?uploads / ?uploadId)
	opBucket    = "BUCKET"    // anything else on the bucket (CreateBucket, GetBucketLocation...)
	opOther     = "OTHER"
)

// classify names the S3 operation of a path-style request (/BUCKET/KEY).
func classify(method string, u *url.URL, h http.Header) string {
	_, key, _ := strings.Cut(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
	hasKey := key != ""
	q := u.Query()
	switch method {
	case http.MethodPut:
		if !hasKey {
			return opBucket
		}
		if h.Get("X-Amz-Copy-Source") != "" {
			return opCopy
		}
		return opPut
	case http.MethodGet:
		if !hasKey {
			if q.Has("list-type") || q.Has("prefix") || q.Has("versions") || q.Has("uploads") || q.Has("delimiter") || len(q) == 0 {
				return opList
			}
			return opBucket
		}
		return opGet
	case http.MethodHead:
		return opHead
	case http.MethodDelete:
		if !hasKey {
			return opBucket
		}
		return opDelete
	case http.MethodPost:
		if q.Has("delete") {
			return opMulti
		}
		if q.Has("uploads") || q.Has("uploadId") {
			return opMultipart
		}
	}
	return opOther
}

// opCount is what the proxy counted for one class of requests.
type opCount struct {
	N        int64 // requests
	BytesIn  int64 // request bodies (uploaded)
	BytesOut int64 // response bodies (downloaded)
	Errors   int64 // responses with status ≥ 400 (a 404 probe included)
}

// counts is a snapshot of the proxy's counters.
type counts map[string]opCount

// sub returns c minus an earlier snapshot.
func (c counts) sub(before counts) counts {
	d := counts{}
	for op, v := range c {
		b := before[op]
		d[op] = opCount{v.N - b.N, v.BytesIn - b.BytesIn, v.BytesOut - b.BytesOut, v.Errors - b.Errors}
	}
	return d
}

// total returns the number of requests of every class.
func (c counts) total() int64 {
	var n int64
	for _, v := range c {
		n += v.N
	}
	return n
}

// bytes returns the bytes uploaded and downloaded.
func (c counts) bytes() (in, out int64) {
	for _, v := range c {
		in += v.BytesIn
		out += v.BytesOut
	}
	return in, out
}

// countingProxy is a reverse proxy in front of the S3 server that counts
// every request by class and the bytes of its bodies, so that both
// replicators are counted the same way, at the wire.
type countingProxy struct {
	rp *httputil.ReverseProxy
	mu sync.Mutex
	c  counts
}

func newCountingProxy(target *url.URL) *countingProxy {
	p := &countingProxy{c: counts{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // keep the signed Host header
		},
		// A client that gives up on a request (a hedged or cancelled
		// upload) is not the benchmark's error: the request is counted
		// with the status the proxy answered.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	return p
}

// snapshot returns a copy of the counters.
func (p *countingProxy) snapshot() counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := make(counts, len(p.c))
	for k, v := range p.c {
		c[k] = v
	}
	return c
}

type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countingWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (p *countingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := classify(r.Method, r.URL, r.Header)
	var body *countingReader
	if r.Body != nil && r.Body != http.NoBody {
		body = &countingReader{r: r.Body}
		r.Body = body
	}
	cw := &countingWriter{ResponseWriter: w}
	p.rp.ServeHTTP(cw, r)
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.c[op]
	c.N++
	if body != nil {
		c.BytesIn += body.n
	}
	c.BytesOut += cw.n
	if cw.status >= 400 {
		c.Errors++
	}
	p.c[op] = c
}
