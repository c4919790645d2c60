package main

import (
	"fmt"
	"io"

	"github.com/verneuil-go/verneuil/internal/config"
)

// prices is a per-request and per-GB price table, in US dollars. The
// defaults are Amazon S3 Standard's published list prices in us-east-1:
// PUT, COPY, POST and LIST requests $0.005 per 1,000; GET, HEAD and every
// other request $0.0004 per 1,000; DELETE free; storage $0.023 per
// GB-month (first 50 TB).
type prices struct {
	PerKWrite   float64 // per 1,000 PUT, COPY, POST, LIST
	PerKRead    float64 // per 1,000 GET, HEAD and others
	PerGBMonth  float64
	FreeDeletes bool
}

var s3Standard = prices{PerKWrite: 0.005, PerKRead: 0.0004, PerGBMonth: 0.023, FreeDeletes: true}

// writeClass says whether an operation is billed as a PUT-class request.
func writeClass(op string) bool {
	switch op {
	case opPut, opCopy, opList, opMultipart, opMulti, opBucket:
		return true
	}
	return false
}

// requestCost prices the requests in c.
func (p prices) requestCost(c map[string]float64) float64 {
	var usd float64
	for op, n := range c {
		switch {
		case op == opDelete && p.FreeDeletes:
		case writeClass(op):
			usd += n / 1000 * p.PerKWrite
		default:
			usd += n / 1000 * p.PerKRead
		}
	}
	return usd
}

// rateModel is one tool's request rates per database, calibrated on this
// run: Idle per second of an idle database (from (d)), Active per second
// of a database written at least once a second (from (a): both tools
// publish at most once a second, so a database written at 5 or 100
// transactions a second costs about the same), and UpActive the bytes
// uploaded per active second.
type rateModel struct {
	Idle, Active map[string]float64
	UpActive     float64
	// Cap is a limit on the requests a second of one process (verneuil's
	// rate_limit; 0: none): a process with more to upload coalesces
	// versions instead.
	Cap float64
}

// calibrate derives a tool's model from its (a) and (d) results.
func calibrate(a, d *phaseResult) rateModel {
	m := rateModel{Idle: map[string]float64{}, Active: map[string]float64{}}
	idleSecs := d.Window.Seconds() * float64(d.DBs)
	for op, v := range d.Requests {
		m.Idle[op] = float64(v.N) / idleSecs
	}
	load := a.Load.Seconds()
	tail := a.Window.Seconds() - load
	for op, v := range a.Requests {
		m.Active[op] = max(0, float64(v.N)-m.Idle[op]*tail) / load
	}
	in, _ := a.Requests.bytes()
	m.UpActive = float64(in) / load
	return m
}

// predict returns the requests, by class, of n databases spread over
// procs processes, written for active seconds each, at the same time as
// the other databases of their process, and idle for idle seconds each.
func (m rateModel) predict(n, procs int, active, idle float64) map[string]float64 {
	out := map[string]float64{}
	f := 1.0
	if m.Cap > 0 {
		if limit, want := m.Cap*float64(procs)*active, float64(n)*sum(m.Active)*active; want > limit {
			f = limit / want
		}
	}
	for op, r := range m.Active {
		out[op] += float64(n) * r * active * f
	}
	for op, r := range m.Idle {
		out[op] += float64(n) * r * idle
	}
	return out
}

func sum(c map[string]float64) float64 {
	var t float64
	for _, v := range c {
		t += v
	}
	return t
}

// fleet describes the databases the cost model prices.
type fleet struct {
	DBs         int
	SizeGiB     float64
	ActiveHours float64 // hours a day each database is written (≥ 1 tx/s)
	Hosts       int     // processes the databases are spread over
}

// printCostCheck calibrates each tool's model on (a) and (d), checks it
// against (b), and prices a fleet. verneuil's model is capped at its
// default rate_limit per process: (b) asks for more than that.
func (r *report) printCostCheck(w io.Writer, o options) {
	type modelled struct {
		tool  string
		model rateModel
	}
	var ms []modelled
	for _, tool := range []string{toolLitestream, toolVerneuil, toolVerneuilWAL} {
		a, d := r.find("a", tool), r.find("d", tool)
		if a == nil || d == nil || a.Load <= 0 {
			continue
		}
		m := calibrate(a, d)
		if isVerneuil(tool) {
			m.Cap = config.Default().RateLimit
		}
		ms = append(ms, modelled{tool, m})
	}
	if len(ms) == 0 {
		return
	}
	fmt.Fprintln(w, "\nCost model (calibrated on (a) and (d), checked against (b)):")
	for _, m := range ms {
		b := r.find("b", m.tool)
		line := fmt.Sprintf("    %-12s idle %.4f requests/s per database, active %.3f requests/s per database, %.1f KiB/s uploaded while active",
			m.tool, sum(m.model.Idle), sum(m.model.Active), m.model.UpActive/1024)
		if b != nil && b.Load > 0 {
			pred := m.model.predict(b.DBs, 1, b.Load.Seconds(), b.Window.Seconds()-b.Load.Seconds())
			meas := float64(b.Requests.total())
			line += fmt.Sprintf("; (b) predicted %.0f requests, measured %.0f (%+.0f%%)", sum(pred), meas, (sum(pred)/max(meas, 1)-1)*100)
		}
		fmt.Fprintln(w, line)
	}
	f := fleet{DBs: o.fleetDBs, SizeGiB: o.fleetSizeGiB, ActiveHours: o.fleetActiveHours, Hosts: max(1, o.fleetHosts)}
	fmt.Fprintf(w, "\nFleet: %d databases of %.2f GiB on %d hosts, each written %.1f h a day (S3 Standard list prices):\n",
		f.DBs, f.SizeGiB, f.Hosts, f.ActiveHours)
	fmt.Fprintln(w, "| tool | requests/day | PUT-class/day | requests $/day | uploaded GiB/day | stored GiB after 30 days (≤) | storage $/month | total $/month |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, m := range ms {
		c := m.model.predict(f.DBs, f.Hosts, f.ActiveHours*3600, (24-f.ActiveHours)*3600)
		var writes float64
		for op, n := range c {
			if writeClass(op) {
				writes += n
			}
		}
		up := m.model.UpActive * f.ActiveHours * 3600 * float64(f.DBs) / (1 << 30)
		stored := storedGiB(m.tool, f, up, 30)
		reqDay := s3Standard.requestCost(c)
		storMonth := stored * (1 << 30) / 1e9 * s3Standard.PerGBMonth
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.2f | %.1f | %.0f | %.2f | %.2f |\n",
			m.tool, sum(c), writes, reqDay, up, stored, storMonth, reqDay*30+storMonth)
	}
}

// storedGiB bounds what the store holds after days of the fleet's load,
// uploading up GiB a day: Litestream (defaults: a snapshot every 24 h,
// kept 24 h, LTX files kept 24 h) holds at most two snapshots plus one
// day of LTX files; verneuil has no gc yet, so it holds one copy plus
// every upload since the start.
func storedGiB(tool string, f fleet, up float64, days int) float64 {
	copies := f.SizeGiB * float64(f.DBs)
	if tool == toolLitestream {
		return 2*copies + up
	}
	return copies + up*float64(days)
}
