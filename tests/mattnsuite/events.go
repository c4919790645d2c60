package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Outcomes of a test in a pass. "incomplete" is a test that started and
// never ended: the binary crashed or was killed while it ran.
const (
	outcomePass       = "pass"
	outcomeFail       = "fail"
	outcomeSkip       = "skip"
	outcomeIncomplete = "incomplete"
)

// passResult is what one pass of the suite did, read from its go test
// -json (test2json) events.
type passResult struct {
	// Tests maps every test and subtest that started to its outcome.
	Tests map[string]string
	// Package is the outcome of the test binary as a whole: pass, fail,
	// or "" when the stream ended without one.
	Package string
	// Output holds each test's output lines, for failures and differences.
	Output map[string][]string
}

// testEvent is one line of go test -json output (cmd/test2json).
type testEvent struct {
	Action string
	Test   string
	Output string
}

// parseEvents reads a test2json stream.
func parseEvents(r io.Reader) (*passResult, error) {
	res := &passResult{Tests: map[string]string{}, Output: map[string][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		raw := sc.Bytes()
		if len(strings.TrimSpace(string(raw))) == 0 {
			continue
		}
		var ev testEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, fmt.Errorf("test events line %d: %w", line, err)
		}
		if ev.Test == "" {
			switch ev.Action {
			case outcomePass, outcomeFail:
				res.Package = ev.Action
			case "output":
				res.Output[""] = append(res.Output[""], ev.Output)
			}
			continue
		}
		switch ev.Action {
		case "run":
			if _, ok := res.Tests[ev.Test]; !ok {
				res.Tests[ev.Test] = outcomeIncomplete
			}
		case outcomePass, outcomeFail, outcomeSkip:
			res.Tests[ev.Test] = ev.Action
		case "output":
			res.Output[ev.Test] = append(res.Output[ev.Test], ev.Output)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("test events: %w", err)
	}
	return res, nil
}

// with returns the sorted names of the tests whose outcome is o.
func (p *passResult) with(o string) []string {
	var names []string
	for name, got := range p.Tests {
		if got == o {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// counts summarises the outcomes: "N tests: P pass, F fail, S skip".
func (p *passResult) counts() string {
	s := fmt.Sprintf("%d tests (subtests included): %d pass, %d fail, %d skip",
		len(p.Tests), len(p.with(outcomePass)), len(p.with(outcomeFail)), len(p.with(outcomeSkip)))
	if n := len(p.with(outcomeIncomplete)); n > 0 {
		s += fmt.Sprintf(", %d incomplete", n)
	}
	return s
}

// difference is a test whose outcome differs between two passes ("" when
// it did not run in that pass).
type difference struct {
	Test, Plain, Verneuil string
}

func (d difference) String() string {
	show := func(o string) string {
		if o == "" {
			return "not run"
		}
		return o
	}
	return fmt.Sprintf("%s: plain %s, verneuil %s", d.Test, show(d.Plain), show(d.Verneuil))
}

// compareOutcomes lists every test whose outcome differs between the
// plain and the verneuil pass, by name: the failing sets, the skipped sets
// and the sets of tests that ran must all be equal.
func compareOutcomes(plain, vern *passResult) []difference {
	names := map[string]bool{}
	for name := range plain.Tests {
		names[name] = true
	}
	for name := range vern.Tests {
		names[name] = true
	}
	var diffs []difference
	for name := range names {
		if p, v := plain.Tests[name], vern.Tests[name]; p != v {
			diffs = append(diffs, difference{Test: name, Plain: p, Verneuil: v})
		}
	}
	sort.Slice(diffs, func(i, j int) bool { return diffs[i].Test < diffs[j].Test })
	return diffs
}
