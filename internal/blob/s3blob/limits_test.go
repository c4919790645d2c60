package s3blob_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob"
)

// hostileServer answers every request with the response that respond
// writes on the raw connection.
func hostileServer(t *testing.T, respond func(w io.Writer, r *http.Request)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, r.Body)
				bw := bufio.NewWriter(conn)
				respond(bw, r)
				_ = bw.Flush()
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// TestRegression_S3HugeContentLength: a server announcing an absurd
// Content-Length, or sending more than any object of the format, gets an
// error, not a panic or an unbounded read.
func TestRegression_S3HugeContentLength(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	cases := map[string]func(w io.Writer, r *http.Request){
		"huge Content-Length": func(w io.Writer, r *http.Request) {
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nETag: \"x\"\r\nConnection: close\r\n\r\nabc", int64(1)<<62)
		},
		"chunked body beyond the limit": func(w io.Writer, r *http.Request) {
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nETag: \"x\"\r\nConnection: close\r\n\r\n")
			block := strings.Repeat("z", 1<<20)
			for sent := 0; sent <= blob.MaxObjectSize; sent += len(block) {
				if _, err := fmt.Fprintf(w, "%x\r\n%s\r\n", len(block), block); err != nil {
					return
				}
			}
			fmt.Fprintf(w, "0\r\n\r\n")
		},
	}
	for name, respond := range cases {
		t.Run(name, func(t *testing.T) {
			endpoint := hostileServer(t, respond)
			s := open(t, "s3://bucket/p", endpoint)
			get := func(what string, fn func() error) {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("%s panicked: %v", what, p)
					}
				}()
				if err := fn(); !errors.Is(err, blob.ErrTooLarge) {
					t.Errorf("%s: %v, want an error wrapping blob.ErrTooLarge", what, err)
				}
			}
			get("Get", func() error { _, err := s.Get(t.Context(), "k"); return err })
			get("GetVersioned", func() error { _, _, err := s.GetVersioned(t.Context(), "k"); return err })
		})
	}
}
