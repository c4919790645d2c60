//go:build cgo

package ext

import (
	"slices"
	"strings"
	"testing"
)

// pyLog builds a run's output as Python 3.11's regrtest and unittest print
// it: the verbose lines, then one block per failure, the closing lines and
// regrtest's summary.
func pyLog(verbose []string, blocks []string, ran, closing, result string) string {
	var b strings.Builder
	b.WriteString("== CPython 3.11.2\n0:00:00 load avg: 1.00 [1/1] test_sqlite3\n")
	for _, v := range verbose {
		b.WriteString(v + "\n")
	}
	b.WriteString("\n")
	for _, f := range blocks {
		b.WriteString(strings.Repeat("=", 70) + "\n" + f + "\n" + strings.Repeat("-", 70) +
			"\nTraceback (most recent call last):\n  File \"x.py\", line 1, in t\nAssertionError: 1 != 0\n\n")
	}
	b.WriteString(strings.Repeat("-", 70) + "\nRan " + ran + " tests in 1.234s\n\n" + closing + "\n")
	b.WriteString("\n== Tests result: " + result + " ==\n\nTotal duration: 1.5 sec\nTests result: " + result + "\n")
	return b.String()
}

const (
	pyFailA = "FAIL: test_a (test.test_sqlite3.test_dbapi.A.test_a)"
	pyErrB  = "ERROR: test_b (test.test_sqlite3.test_dbapi.B.test_b)"
)

func TestParsePyOutcome(t *testing.T) {
	skipLine := "test_big (test.test_sqlite3.test_types.T.test_big) ... skipped 'not enough memory: 6.0G minimum needed'"
	for _, c := range []struct {
		name     string
		out      string
		want     pyOutcome
		wantErr  string
		failures []string
	}{
		{
			name: "success",
			out:  pyLog([]string{"test_x (test.test_sqlite3.m.C.test_x) ... ok", skipLine}, nil, "3", "OK (skipped=1)", "SUCCESS"),
			want: pyOutcome{ran: 3, skipped: 1, skips: []string{"test.test_sqlite3.test_types.T.test_big"}, result: "SUCCESS"},
		},
		{
			name: "failures and errors, sorted",
			out:  pyLog(nil, []string{pyFailA, pyErrB}, "10", "FAILED (failures=1, errors=1)", "FAILURE"),
			want: pyOutcome{ran: 10, failures: []string{pyErrB, pyFailA}, result: "FAILURE"},
		},
		{
			name: "a description on two lines: the first names the test",
			out:  pyLog(nil, []string{pyFailA + "\nThe docstring's first line."}, "1", "FAILED (failures=1)", "FAILURE"),
			want: pyOutcome{ran: 1, failures: []string{pyFailA}, result: "FAILURE"},
		},
		{
			name: "unexpected success and expected failure",
			out: pyLog(nil, nil, "4", "FAILED (expected failures=1, unexpected successes=1)", "FAILURE") +
				strings.Repeat("=", 70) + "\nUNEXPECTED SUCCESS: test_u (test.test_sqlite3.m.U.test_u)\n",
			want: pyOutcome{ran: 4, xfail: 1, failures: []string{"UNEXPECTED SUCCESS: test_u (test.test_sqlite3.m.U.test_u)"}, result: "FAILURE"},
		},
		{
			name: "a test printing FAIL: is not a failure",
			out:  pyLog([]string{"test_p (m.P.test_p) ... FAIL: not a block", "ok"}, nil, "1", "OK", "SUCCESS"),
			want: pyOutcome{ran: 1, result: "SUCCESS"},
		},
		{
			name: "regrtest warnings, digits masked",
			out: strings.Replace(pyLog(nil, nil, "1", "OK", "ENV CHANGED"), "Ran 1",
				"Warning -- files was modified by test_sqlite3\nWarning -- Dangling threads: 2\nRan 1", 1),
			want: pyOutcome{ran: 1, warnings: []string{"Dangling threads: N", "files was modified by test_sqliteN"}, result: "ENV CHANGED"},
		},
		{
			name:    "died before the end",
			out:     "== CPython 3.11.2\ntest_x (m.C.test_x) ... ok\nFatal Python error: Segmentation fault\n",
			wantErr: "did not finish",
		},
		{
			name:    "a failure block lost",
			out:     pyLog(nil, []string{pyFailA}, "10", "FAILED (failures=2)", "FAILURE"),
			wantErr: "says otherwise",
		},
		{
			name:    "OK with a failure block",
			out:     pyLog(nil, []string{pyFailA}, "10", "OK", "SUCCESS"),
			wantErr: "says otherwise",
		},
		{
			name:    "no regrtest summary",
			out:     strings.Split(pyLog(nil, nil, "1", "OK", "SUCCESS"), "\n== Tests result")[0],
			wantErr: "Tests result",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parsePyOutcome(c.out)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ran != c.want.ran || got.skipped != c.want.skipped || got.xfail != c.want.xfail ||
				got.result != c.want.result || !slices.Equal(got.failures, c.want.failures) ||
				!slices.Equal(got.skips, c.want.skips) || !slices.Equal(got.warnings, c.want.warnings) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestComparePyOutcomes(t *testing.T) {
	base := pyOutcome{ran: 433, skipped: 6, failures: []string{pyFailA}, result: "FAILURE"}
	with := func(f func(o *pyOutcome)) pyOutcome {
		o := base
		o.failures = slices.Clone(base.failures)
		f(&o)
		slices.Sort(o.failures)
		return o
	}
	for _, c := range []struct {
		name string
		vn   pyOutcome
		want []string
	}{
		{"same", base, nil},
		{"verneuil fails one more", with(func(o *pyOutcome) { o.failures = append(o.failures, pyErrB) }),
			[]string{"fails with verneuil only: " + pyErrB}},
		{"verneuil fails one fewer", with(func(o *pyOutcome) { o.failures = nil; o.result = "SUCCESS" }),
			[]string{"fails with plain only: " + pyFailA, `regrtest result: plain "FAILURE", verneuil "SUCCESS"`}},
		{"the same count, other tests", with(func(o *pyOutcome) { o.failures = []string{pyErrB} }),
			[]string{"fails with plain only: " + pyFailA, "fails with verneuil only: " + pyErrB}},
		{"fewer tests run", with(func(o *pyOutcome) { o.ran = 400 }), []string{"tests run: plain 433, verneuil 400"}},
		{"one more skipped", with(func(o *pyOutcome) { o.skipped = 7; o.skips = []string{"m.C.test_s"} }),
			[]string{"skipped/expected failures: plain 6/0, verneuil 7/0 (skipped with plain only: []; with verneuil only: [m.C.test_s])"}},
		{"an environment warning", with(func(o *pyOutcome) { o.warnings = []string{"files was modified by test_sqlite3"} }),
			[]string{"regrtest warning with verneuil only: files was modified by test_sqlite3"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := comparePyOutcomes(base, c.vn); !slices.Equal(got, c.want) {
				t.Fatalf("got %q\nwant %q", got, c.want)
			}
		})
	}
}

func TestOnlyIn(t *testing.T) {
	for _, c := range []struct{ a, b, want []string }{
		{nil, nil, nil},
		{[]string{"a", "b"}, nil, []string{"a", "b"}},
		{nil, []string{"a"}, nil},
		{[]string{"a", "a", "b"}, []string{"a", "c"}, []string{"a", "b"}},
		{[]string{"b", "d"}, []string{"a", "b", "c", "d", "e"}, nil},
	} {
		if got := onlyIn(c.a, c.b); !slices.Equal(got, c.want) {
			t.Errorf("onlyIn(%q, %q) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
}

func TestPyFailureBlock(t *testing.T) {
	out := pyLog(nil, []string{pyErrB, pyFailA}, "2", "FAILED (failures=1, errors=1)", "FAILURE")
	got := pyFailureBlock(out, pyFailA)
	if !strings.HasPrefix(got, pyFailA+"\n") || !strings.Contains(got, "AssertionError: 1 != 0") ||
		strings.Contains(got, "Ran 2") || strings.Contains(got, pyErrB) {
		t.Fatalf("block of %q:\n%s", pyFailA, got)
	}
	if got := pyFailureBlock(out, "FAIL: test_none (m.C.test_none)"); got != "" {
		t.Fatalf("block of a test that did not fail: %q", got)
	}
}
