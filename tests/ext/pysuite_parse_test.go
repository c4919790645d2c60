//go:build cgo

package ext

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// pyOutcome is what one run of `python3 -m test test_sqlite3 -v` reported,
// read from its output (regrtest's and unittest's text in Python 3.11).
type pyOutcome struct {
	ran      int      // "Ran N tests"
	skipped  int      // from the closing "OK (...)" / "FAILED (...)" line
	xfail    int      // expected failures
	failures []string // "FAIL: ..." / "ERROR: ..." / "UNEXPECTED SUCCESS: ...", sorted
	skips    []string // the -v lines of skipped tests, sorted (for reports)
	warnings []string // regrtest's "Warning -- ..." lines, digits masked, sorted
	result   string   // regrtest's "Tests result: X"
}

var (
	pyRanRE    = regexp.MustCompile(`(?m)^Ran (\d+) tests? in `)
	pyCloseRE  = regexp.MustCompile(`(?m)^(OK|FAILED)(?: \(([^)]*)\))?$`)
	pyBlockRE  = regexp.MustCompile(`(?m)^={70}\n(FAIL|ERROR): ([^\n]+)$`)
	pyUnexpRE  = regexp.MustCompile(`(?m)^UNEXPECTED SUCCESS: ([^\n]+)$`)
	pySkipRE   = regexp.MustCompile(`(?m)^(test\w*) \(([\w.]+)\).*?\.\.\. skipped `)
	pyWarnRE   = regexp.MustCompile(`(?m)^(?:\d+:\d+:\d+ )?Warning -- ([^\n]+)$`)
	pyResultRE = regexp.MustCompile(`(?m)^Tests result: ([A-Z ,]+)$`)
	pyDigitsRE = regexp.MustCompile(`\d+`)
)

// parsePyOutcome reads a run's output. It fails when the run did not
// finish (no "Ran N tests", no closing line, no "Tests result"), and when
// the failures and errors it finds do not add up to the closing line's
// counts: a reader that lost one (output interleaved with a test's own)
// must not make two different runs look alike.
func parsePyOutcome(out string) (pyOutcome, error) {
	var o pyOutcome
	m := pyRanRE.FindAllStringSubmatch(out, -1)
	if len(m) != 1 {
		return o, fmt.Errorf("%d \"Ran N tests\" lines, want 1: the run did not finish", len(m))
	}
	o.ran, _ = strconv.Atoi(m[0][1])
	closing := pyCloseRE.FindAllStringSubmatch(out, -1)
	if len(closing) != 1 {
		return o, fmt.Errorf("%d closing OK/FAILED lines, want 1", len(closing))
	}
	counts := map[string]int{}
	if closing[0][2] != "" {
		for _, kv := range strings.Split(closing[0][2], ", ") {
			k, v, ok := strings.Cut(kv, "=")
			n, err := strconv.Atoi(v)
			if !ok || err != nil {
				return o, fmt.Errorf("closing line %q: cannot read %q", closing[0][0], kv)
			}
			counts[k] = n
		}
	}
	o.skipped, o.xfail = counts["skipped"], counts["expected failures"]
	var nFail, nErr int
	for _, b := range pyBlockRE.FindAllStringSubmatch(out, -1) {
		o.failures = append(o.failures, b[1]+": "+b[2])
		if b[1] == "FAIL" {
			nFail++
		} else {
			nErr++
		}
	}
	for _, u := range pyUnexpRE.FindAllStringSubmatch(out, -1) {
		o.failures = append(o.failures, "UNEXPECTED SUCCESS: "+u[1])
	}
	if nFail != counts["failures"] || nErr != counts["errors"] ||
		len(o.failures)-nFail-nErr != counts["unexpected successes"] {
		return o, fmt.Errorf("found %d failures, %d errors, %d unexpected successes; the closing line %q says otherwise",
			nFail, nErr, len(o.failures)-nFail-nErr, closing[0][0])
	}
	if closing[0][1] == "OK" && nFail+nErr > 0 {
		return o, fmt.Errorf("closing line OK with %d failures and errors", nFail+nErr)
	}
	for _, s := range pySkipRE.FindAllStringSubmatch(out, -1) {
		o.skips = append(o.skips, s[2])
	}
	for _, w := range pyWarnRE.FindAllStringSubmatch(out, -1) {
		o.warnings = append(o.warnings, pyDigitsRE.ReplaceAllString(w[1], "N"))
	}
	r := pyResultRE.FindAllStringSubmatch(out, -1)
	if len(r) == 0 {
		return o, fmt.Errorf("no \"Tests result:\" line: regrtest did not finish")
	}
	o.result = r[len(r)-1][1]
	slices.Sort(o.failures)
	slices.Sort(o.skips)
	slices.Sort(o.warnings)
	return o, nil
}

// comparePyOutcomes lists the differences between the plain run and the
// verneuil run: tests failing in one only, and differing counts, regrtest
// results or environment warnings. Empty: the runs agree.
func comparePyOutcomes(plain, vn pyOutcome) []string {
	var d []string
	if plain.ran != vn.ran {
		d = append(d, fmt.Sprintf("tests run: plain %d, verneuil %d", plain.ran, vn.ran))
	}
	for _, f := range onlyIn(plain.failures, vn.failures) {
		d = append(d, "fails with plain only: "+f)
	}
	for _, f := range onlyIn(vn.failures, plain.failures) {
		d = append(d, "fails with verneuil only: "+f)
	}
	if plain.skipped != vn.skipped || plain.xfail != vn.xfail {
		d = append(d, fmt.Sprintf("skipped/expected failures: plain %d/%d, verneuil %d/%d (skipped with plain only: %v; with verneuil only: %v)",
			plain.skipped, plain.xfail, vn.skipped, vn.xfail, onlyIn(plain.skips, vn.skips), onlyIn(vn.skips, plain.skips)))
	}
	for _, w := range onlyIn(plain.warnings, vn.warnings) {
		d = append(d, "regrtest warning with plain only: "+w)
	}
	for _, w := range onlyIn(vn.warnings, plain.warnings) {
		d = append(d, "regrtest warning with verneuil only: "+w)
	}
	if plain.result != vn.result {
		d = append(d, fmt.Sprintf("regrtest result: plain %q, verneuil %q", plain.result, vn.result))
	}
	return d
}

// onlyIn returns the elements of the sorted list a that the sorted list b
// lacks (counting repeats).
func onlyIn(a, b []string) []string {
	var out []string
	i, j := 0, 0
	for i < len(a) {
		switch {
		case j == len(b) || a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			j++
		default:
			i++
			j++
		}
	}
	return out
}

// pyFailureBlock returns the traceback unittest printed for failure f
// ("FAIL: test_x (...)") in out, for reports; "" when there is none.
func pyFailureBlock(out, f string) string {
	sep := strings.Repeat("=", 70) + "\n"
	i := strings.Index(out, sep+f+"\n")
	if i < 0 {
		return ""
	}
	block := out[i+len(sep):]
	if j := strings.Index(block, sep); j >= 0 {
		block = block[:j]
	}
	if j := strings.Index(block, "\nRan "); j >= 0 {
		block = block[:j]
	}
	return strings.TrimRight(block, "-\n")
}
