package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// report is one run: the machine, the command, and every phase's result.
type report struct {
	Command    string
	Machine    string
	CPUs       int
	Litestream string
	Started    time.Time
	Results    []*phaseResult
}

func (r *phaseResult) print(w io.Writer) {
	fmt.Fprintf(w, "    %d commits in %v; commit p50 %v p99 %v; lag p50 %.3fs p99 %.3fs max %.3fs (%d dbs polled, %d commits unseen); last commit → restorable %.3fs\n",
		r.Commits, r.Load.Round(time.Millisecond), r.CommitLatency.P50.Round(time.Microsecond), r.CommitLatency.P99.Round(time.Microsecond),
		r.Lag.P50.Seconds(), r.Lag.P99.Seconds(), r.Lag.Max.Seconds(), r.LagDBs, r.Unseen, r.LastRestorable.Seconds())
	in, out := r.Requests.bytes()
	fmt.Fprintf(w, "    %d requests in %v (%s); %s up, %s down; CPU writer %.2fs replicator %.2fs; RSS writer %s replicator %s\n",
		r.Requests.total(), r.Window.Round(time.Millisecond), r.Requests.String(), mib(in), mib(out),
		r.CPUWriter.Seconds(), r.CPURepl.Seconds(), mib(r.RSSWriter), mib(r.RSSRepl))
	if r.Restore != nil {
		fmt.Fprintf(w, "    restore: %.3fs (%.3fs straight from the server), %d requests (%s), %s; %s\n", r.Restore.Time.Seconds(), r.Restore.DirectTime.Seconds(), r.Restore.Requests.total(),
			r.Restore.Requests.String(), mib(r.Restore.Bytes), r.Restore.Check)
	}
	if r.Restore != nil && r.Restore.RawObjects > 0 {
		fmt.Fprintf(w, "    raw GET of the %d objects under the prefix, 8 at a time: %.3fs, %s\n",
			r.Restore.RawObjects, r.Restore.RawTime.Seconds(), mib(r.Restore.RawBytes))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "    note: %s\n", n)
	}
}

// String lists the request classes, most frequent first.
func (c counts) String() string {
	ops := make([]string, 0, len(c))
	for op, v := range c {
		if v.N > 0 {
			ops = append(ops, op)
		}
	}
	slices.SortFunc(ops, func(a, b string) int {
		if c[a].N != c[b].N {
			return int(c[b].N - c[a].N)
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(ops))
	for i, op := range ops {
		parts[i] = fmt.Sprintf("%d %s", c[op].N, op)
		if e := c[op].Errors; e > 0 {
			parts[i] += fmt.Sprintf(" (%d 4xx/5xx)", e)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func mib(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	default:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
}

// row is one line of the comparison table: a metric, its value for each
// tool (as numbers, for the ratio, and as text).
type row struct {
	metric string
	ls, vn float64
	lsText string
	vnText string
	noRat  bool
}

func (r *report) find(workload, tool string) *phaseResult {
	for _, res := range r.Results {
		if res.Workload == workload && res.Tool == tool {
			return res
		}
	}
	return nil
}

// rows returns the table's lines for one workload, Litestream against tool.
func (r *report) rows(workload, tool string) []row {
	ls, vn := r.find(workload, toolLitestream), r.find(workload, tool)
	if ls == nil || vn == nil {
		return nil
	}
	var rows []row
	add := func(metric string, f func(*phaseResult) float64, format func(float64) string) {
		a, b := f(ls), f(vn)
		rows = append(rows, row{metric: metric, ls: a, vn: b, lsText: format(a), vnText: format(b)})
	}
	addText := func(metric string, f func(*phaseResult) string) {
		rows = append(rows, row{metric: metric, lsText: f(ls), vnText: f(vn), noRat: true})
	}
	secs := func(v float64) string { return fmt.Sprintf("%.3f s", v) }
	ms := func(v float64) string { return fmt.Sprintf("%.2f ms", v) }
	num := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	dec := func(v float64) string { return fmt.Sprintf("%.3f", v) }
	kib := func(v float64) string { return fmt.Sprintf("%.1f KiB", v/1024) }
	idle := ls.Commits == 0
	if !idle {
		add("commits", func(p *phaseResult) float64 { return float64(p.Commits) }, num)
		add("throughput (tx/s)", func(p *phaseResult) float64 { return float64(p.Commits) / max(p.Load.Seconds(), 1e-9) }, func(v float64) string { return fmt.Sprintf("%.1f", v) })
		add("commit latency p50", func(p *phaseResult) float64 { return p.CommitLatency.P50.Seconds() * 1e3 }, ms)
		add("commit latency p99", func(p *phaseResult) float64 { return p.CommitLatency.P99.Seconds() * 1e3 }, ms)
		add("lag p50", func(p *phaseResult) float64 { return p.Lag.P50.Seconds() }, secs)
		add("lag p99", func(p *phaseResult) float64 { return p.Lag.P99.Seconds() }, secs)
		add("lag max", func(p *phaseResult) float64 { return p.Lag.Max.Seconds() }, secs)
		add("last commit → restorable", func(p *phaseResult) float64 { return p.LastRestorable.Seconds() }, secs)
	}
	add("S3 requests", func(p *phaseResult) float64 { return float64(p.Requests.total()) }, num)
	addText("by type", func(p *phaseResult) string { return p.Requests.String() })
	if !idle {
		add("requests per commit", func(p *phaseResult) float64 { return float64(p.Requests.total()) / float64(max(p.Commits, 1)) }, dec)
		add("bytes up per commit", func(p *phaseResult) float64 {
			in, _ := p.Requests.bytes()
			return float64(in) / float64(max(p.Commits, 1))
		}, kib)
	} else {
		add("requests per database-hour", func(p *phaseResult) float64 {
			return float64(p.Requests.total()) / float64(p.DBs) / p.Window.Hours()
		}, func(v float64) string { return fmt.Sprintf("%.1f", v) })
	}
	add("stored after the phase (objects)", func(p *phaseResult) float64 { return float64(p.StoredObjects) }, num)
	add("stored after the phase (bytes)", func(p *phaseResult) float64 { return float64(p.StoredBytes) }, func(v float64) string { return mib(int64(v)) })
	add("CPU s, writer + replicator", func(p *phaseResult) float64 { return (p.CPUWriter + p.CPURepl).Seconds() }, func(v float64) string { return fmt.Sprintf("%.2f", v) })
	addText("of which `litestream replicate`", func(p *phaseResult) string {
		if p.Tool != toolLitestream {
			return "—"
		}
		return fmt.Sprintf("%.2f", p.CPURepl.Seconds())
	})
	add("RSS per database, writer + replicator", func(p *phaseResult) float64 { return float64(p.RSSWriter+p.RSSRepl) / float64(p.DBs) }, kib)
	if ls.Restore != nil && vn.Restore != nil {
		add("restore time (through the proxy)", func(p *phaseResult) float64 { return p.Restore.Time.Seconds() }, secs)
		add("restore time (straight from the server)", func(p *phaseResult) float64 { return p.Restore.DirectTime.Seconds() }, secs)
		addText("raw parallel GET of the replica's objects (8 at a time)", func(p *phaseResult) string {
			if p.Restore.RawObjects == 0 {
				return "—"
			}
			return fmt.Sprintf("%.3f s, %d objects, %s", p.Restore.RawTime.Seconds(), p.Restore.RawObjects, mib(p.Restore.RawBytes))
		})
		add("restore requests", func(p *phaseResult) float64 { return float64(p.Restore.Requests.total()) }, num)
		addText("restored database", func(p *phaseResult) string { return p.Restore.Check })
	}
	return rows
}

// printTable prints the comparison as a Markdown table, ratio = verneuil /
// Litestream; a run with -tools ...,verneuil-wal adds its two columns.
func (r *report) printTable(w io.Writer) {
	fmt.Fprintf(w, "\n%s\n%s; litestream %s; %s\n\n", r.Command, r.Machine, r.Litestream, r.Started.Format(time.RFC3339))
	var tools []string
	for _, tool := range []string{toolVerneuil, toolVerneuilWAL} {
		for _, res := range r.Results {
			if res.Tool == tool {
				tools = append(tools, tool)
				break
			}
		}
	}
	head, rule := "| workload | metric | Litestream |", "|---|---|---|"
	for _, tool := range tools {
		head += fmt.Sprintf(" %s | %s / Litestream |", tool, tool)
		rule += "---|---|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, rule)
	for _, wl := range []string{"a", "b", "c", "d"} {
		ls := r.find(wl, toolLitestream)
		cols := make([][]row, len(tools))
		var lines []row // the metrics, from the first tool that ran wl
		for i, tool := range tools {
			cols[i] = r.rows(wl, tool)
			if lines == nil {
				lines = cols[i]
			}
		}
		for i, rw := range lines {
			name := ""
			if i == 0 {
				name = "(" + wl + ") " + ls.Title
			}
			line := fmt.Sprintf("| %s | %s | %s |", name, rw.metric, rw.lsText)
			for _, col := range cols {
				vn, ok := findRow(col, rw.metric)
				if !ok {
					line += " — | — |"
					continue
				}
				ratio := "—"
				if !vn.noRat && vn.ls != 0 {
					ratio = fmt.Sprintf("%.2f×", vn.vn/vn.ls)
				} else if !vn.noRat && vn.vn == 0 {
					ratio = "="
				}
				line += fmt.Sprintf(" %s | %s |", vn.vnText, ratio)
			}
			fmt.Fprintln(w, line)
		}
	}
}

// findRow returns the row of rows for metric.
func findRow(rows []row, metric string) (row, bool) {
	for _, rw := range rows {
		if rw.metric == metric {
			return rw, true
		}
	}
	return row{}, false
}

// printReport prints the table and cost model of a run saved with -json.
func printReport(path string, o options) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var r report
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	r.printTable(os.Stdout)
	r.printCostCheck(os.Stdout, o)
	return nil
}
