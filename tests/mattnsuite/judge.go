package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// judge compares the two passes and checks the verneuil pass's replicas;
// it prints what it finds and returns the exit code: 0 when the passes
// agree and every replica that can be compared is byte-identical.
// requireKept says that every test ran (no -run) with the harness keeping
// files: then at least one of the suite's own databases must have been
// kept and its replica compared. earlier are problems found before
// (-outage).
func judge(ctx context.Context, plain, vern *pass, requireKept bool, earlier ...string) int {
	problems := append(harnessProblems(plain), harnessProblems(vern)...)
	problems = append(problems, earlier...)
	problems = append(problems, leftoverProblems(plain, vern)...)

	diffs := compareOutcomes(plain.result, vern.result)
	for _, d := range diffs {
		problems = append(problems, "outcome differs: "+d.String())
		for _, line := range vern.result.Output[d.Test] {
			logf("  verneuil| %s", strings.TrimRight(line, "\n"))
		}
	}
	if plain.result.Package != vern.result.Package {
		problems = append(problems, fmt.Sprintf("package outcome differs: plain %s, verneuil %s",
			orNone(plain.result.Package), orNone(vern.result.Package)))
	}
	if len(vern.result.Tests) == 0 {
		problems = append(problems, "no test ran (check -run)")
	}
	if len(diffs) == 0 {
		logf("outcomes identical: %d tests, same %d failing, same %d skipped",
			len(vern.result.Tests), len(vern.result.with(outcomeFail)), len(vern.result.with(outcomeSkip)))
	}

	problems = append(problems, replicationProblems(ctx, vern, requireKept)...)
	for _, p := range problems {
		logf("FAIL: %s", p)
	}
	if len(problems) > 0 {
		return 1
	}
	logf("PASS")
	return 0
}

// harnessProblems checks what the harness reported about its pass: the
// default VFS it found, its watcher, and verneuil's flush and close.
func harnessProblems(p *pass) []string {
	r := p.report
	var out []string
	add := func(format string, args ...any) {
		out = append(out, p.mode+" pass: "+fmt.Sprintf(format, args...))
	}
	if r.StartError != "" {
		add("%s", r.StartError)
		return out
	}
	if r.Mode != p.mode {
		add("the harness ran in mode %q", r.Mode)
	}
	want := map[string]string{"plain": "", "verneuil": "ok"}[p.mode]
	switch {
	case p.outage && p.mode == "verneuil" && strings.Contains(r.ProbeError, "verneuil_flush: ") &&
		strings.Contains(r.ProbeError, "target unavailable"):
		// The pragma was verneuil's, and failed as the outage requires.
	case p.faults && p.mode == "verneuil" && strings.Contains(r.ProbeError, "PRAGMA verneuil_flush: verneuil_flush: "):
		// The pragma was verneuil's; its flush gave up under the faults.
	case r.ProbeError != "":
		add("default-VFS probe: %s", r.ProbeError)
	case r.Probe != want:
		add("default-VFS probe: PRAGMA verneuil_flush answered %q, want %q (is verneuil the default VFS in this pass?)", r.Probe, want)
	}
	for _, w := range r.WatchError {
		add("%s", w)
	}
	switch {
	case p.outage && r.FlushError == "":
		add("flush succeeded while the target was unavailable")
	case !p.outage && !p.faults && r.FlushError != "":
		add("flush: %s", r.FlushError)
	}
	if r.CloseError != "" && !p.outage && !p.faults {
		add("close: %s", r.CloseError)
	}
	return out
}

// replicationProblems proves that the verneuil pass replicated: the
// target holds manifests, and every replica whose database can still be
// read is byte-identical to it.
func replicationProblems(ctx context.Context, vern *pass, requireKept bool) []string {
	store, err := vern.openTarget(ctx)
	if err != nil {
		return []string{"open the target: " + err.Error()}
	}
	defer store.Close()
	counts, err := countStore(ctx, store)
	if err != nil {
		return []string{"count manifests: " + err.Error()}
	}
	logf("target %s: %d databases, %d latest manifests, %d history manifests; harness kept %d files from %d directories",
		store, counts.Databases, counts.Latest, counts.History, vern.report.Kept, vern.report.WatchDirs)
	if counts.Latest == 0 {
		return []string{fmt.Sprintf("nothing was replicated: no manifest in %s", store)}
	}
	tmp, err := filepath.EvalSymlinks(filepath.Join(vern.dir, passTmpDir))
	if err != nil {
		return []string{err.Error()}
	}
	checks, err := checkReplicas(ctx, replicaLayout{Store: store, Host: replicaHost, Tmp: tmp, Keep: filepath.Join(vern.dir, "keep")})
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	n := map[string]int{}
	probe := vern.report.ProbePath
	if resolved, err := filepath.EvalSymlinks(probe); err == nil {
		probe = resolved
	}
	probeChecked := false
	keptEqual := 0
	keep := filepath.Join(vern.dir, "keep") + string(filepath.Separator)
	for _, c := range checks {
		n[c.Status]++
		if c.Status == replicaEqual && strings.HasPrefix(c.Local, keep) && c.Name != replicaHost+":"+probe {
			keptEqual++
		}
		switch c.Status {
		case replicaDiffers, replicaError:
			problems = append(problems, fmt.Sprintf("replica %s (%s) %s: %s", c.Name, c.Local, c.Status, c.Detail))
		}
		if c.Status == replicaEqual && c.Name == replicaHost+":"+probe {
			probeChecked = true
		}
	}
	logf("replicas restored and compared byte for byte: %d identical, %d differ, %d errors, %d not comparable (file gone and not kept)",
		n[replicaEqual], n[replicaDiffers], n[replicaError], n[replicaGone])
	if n[replicaEqual] == 0 {
		problems = append(problems, "no replica could be compared with its database")
	}
	if requireKept && keptEqual == 0 {
		problems = append(problems, "none of the suite's own databases was kept and compared (is the harness's watcher working?)")
	}
	if !probeChecked && vern.report.ProbePath != "" {
		problems = append(problems, "the probe database "+probe+" was not replicated identically")
	}
	return problems
}
