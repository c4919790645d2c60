// Package metrics writes the Prometheus text exposition format (version
// 0.0.4) by hand: counters, gauges and histograms with labels, each family
// announced once with its HELP and TYPE lines. It holds no global state and
// registers nothing: a caller collects values when scraped (see Handler).
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// ContentType is the media type of the text exposition format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Label is one name="value" pair.
type Label struct{ Name, Value string }

// Writer writes one exposition. Families must be written contiguously: all
// samples of a family right after its header. The first error is kept and
// returned by Flush.
type Writer struct {
	w       *bufio.Writer
	err     error
	written map[string]bool
	current string
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriter(w), written: map[string]bool{}}
}

// Flush writes buffered output and returns the first error.
func (w *Writer) Flush() error {
	if err := w.w.Flush(); w.err == nil {
		w.err = err
	}
	return w.err
}

func (w *Writer) printf(format string, args ...any) {
	if w.err != nil {
		return
	}
	_, w.err = fmt.Fprintf(w.w, format, args...)
}

// header announces a family once; a second call for the same name right
// after is a no-op, so that callers may emit samples of one family in a
// loop. Returning to a family after another one is an error (the format
// requires each family's samples to be contiguous).
func (w *Writer) header(name, typ, help string) {
	if w.current == name {
		return
	}
	if w.written[name] && w.err == nil {
		w.err = fmt.Errorf("metrics: samples of %s are not contiguous", name)
	}
	w.written[name] = true
	w.current = name
	w.printf("# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

// Counter writes a counter sample (name should end in _total).
func (w *Writer) Counter(name, help string, v float64, labels ...Label) {
	w.header(name, "counter", help)
	w.sample(name, labels, v)
}

// Gauge writes a gauge sample.
func (w *Writer) Gauge(name, help string, v float64, labels ...Label) {
	w.header(name, "gauge", help)
	w.sample(name, labels, v)
}

// Histogram writes a histogram: bounds are the bucket upper bounds
// (ascending, without +Inf), counts the non-cumulative count per bucket
// with one extra entry for observations above the last bound.
func (w *Writer) Histogram(name, help string, bounds []float64, counts []int64, sum float64, labels ...Label) {
	w.header(name, "histogram", help)
	var cum int64
	for i, b := range bounds {
		if i < len(counts) {
			cum += counts[i]
		}
		w.sample(name+"_bucket", append(labels[:len(labels):len(labels)], Label{"le", formatFloat(b)}), float64(cum))
	}
	if len(counts) > len(bounds) {
		cum += counts[len(bounds)]
	}
	w.sample(name+"_bucket", append(labels[:len(labels):len(labels)], Label{"le", "+Inf"}), float64(cum))
	w.sample(name+"_sum", labels, sum)
	w.sample(name+"_count", labels, float64(cum))
}

func (w *Writer) sample(name string, labels []Label, v float64) {
	if w.err != nil {
		return
	}
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(l.Name)
			b.WriteString(`="`)
			b.WriteString(escapeLabel(l.Value))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
	_, w.err = w.w.WriteString(b.String())
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }

// Handler serves the exposition that collect writes, on GET and HEAD.
func Handler(collect func(w *Writer)) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			rw.Header().Set("Allow", "GET, HEAD")
			http.Error(rw, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		rw.Header().Set("Content-Type", ContentType)
		w := NewWriter(rw)
		collect(w)
		_ = w.Flush() // the client went away; nothing to do
	})
}
