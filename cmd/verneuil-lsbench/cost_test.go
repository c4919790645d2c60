package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b)) }

func TestRequestCost(t *testing.T) {
	c := map[string]float64{opPut: 2000, opList: 1000, opGet: 10000, opHead: 5000, opDelete: 1e6}
	// 3,000 PUT-class at $0.005/1000 + 15,000 GET-class at $0.0004/1000;
	// deletes free.
	if got, want := s3Standard.requestCost(c), 3*0.005+15*0.0004; !near(got, want) {
		t.Errorf("cost %v, want %v", got, want)
	}
}

func phase(tool, wl string, dbs int, load, window time.Duration, c counts) *phaseResult {
	return &phaseResult{Tool: tool, Workload: wl, DBs: dbs, Load: load, Window: window, Requests: c, Commits: 1}
}

// TestCostModel calibrates on (a) and (d) and checks the prediction for
// (b) and the fleet table.
func TestCostModel(t *testing.T) {
	// (d): 10 databases idle for 100 s made 50 LISTs: 0.05/s per database.
	d := phase(toolLitestream, "d", 10, 0, 100*time.Second, counts{opList: {N: 50}})
	// (a): 60 s of load plus a 10 s tail: 120 PUTs and 3.5 LISTs' worth of
	// LISTs (0.5 of them during the tail, at the idle rate).
	a := phase(toolLitestream, "a", 1, 60*time.Second, 70*time.Second, counts{opPut: {N: 120, BytesIn: 6000}, opList: {N: 4}})
	m := calibrate(a, d)
	if !near(m.Idle[opList], 0.05) || !near(m.Active[opPut], 2) || !near(m.Active[opList], 3.5/60) || !near(m.UpActive, 100) {
		t.Fatalf("model %+v", m)
	}
	// (b): 20 databases, 60 s of load, 10 s tail.
	got := m.predict(20, 1, 60, 10)
	if want := 20*(2*60+3.5) + 20*0.05*10; !near(sum(got), want) {
		t.Errorf("predicted %v, want %v", sum(got), want)
	}
	// A cap of 10 requests a second for the one process: 600 in the 60
	// active seconds, plus the idle requests of the tail.
	capped := m
	capped.Cap = 10
	if got, want := sum(capped.predict(20, 1, 60, 10)), 600+20*0.05*10; !near(got, want) {
		t.Errorf("capped prediction %v, want %v", got, want)
	}
	if got := sum(capped.predict(20, 1000, 60, 10)); !near(got, sum(m.predict(20, 1, 60, 10))) {
		t.Errorf("a cap far above the demand changed the prediction to %v", got)
	}
	b := phase(toolLitestream, "b", 20, 60*time.Second, 70*time.Second, counts{opPut: {N: 2400}, opList: {N: 80}})
	rep := &report{Results: []*phaseResult{a, d, b}}
	var out bytes.Buffer
	rep.printCostCheck(&out, options{fleetDBs: 1000, fleetSizeGiB: 1, fleetActiveHours: 1, fleetHosts: 1})
	text := out.String()
	// Litestream: two snapshots of 1000 × 1 GiB plus one day's uploads.
	if got, want := storedGiB(toolLitestream, fleet{DBs: 1000, SizeGiB: 1}, 5, 30), 2005.0; !near(got, want) {
		t.Errorf("litestream stored %v GiB, want %v", got, want)
	}
	// verneuil, without gc: one copy plus 30 days of uploads.
	if got, want := storedGiB(toolVerneuil, fleet{DBs: 1000, SizeGiB: 1}, 5, 30), 1150.0; !near(got, want) {
		t.Errorf("verneuil stored %v GiB, want %v", got, want)
	}
	for _, want := range []string{
		"(b) predicted 2480 requests, measured 2480 (+0%)",
		// 1000 × (3600 × (2 + 3.5/60) + 23 × 3600 × 0.05) = 11,550,000
		// PUT-class requests a day, at $0.005 per 1,000.
		"| litestream | 11550000 | 11550000 | 57.75 |",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}
