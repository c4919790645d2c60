//go:build cgo && verneuil_extern

package main

import "testing"

// TestSampleChecksEveryCommitThenFewer: the first 2,000 commits of a
// database are all checked, then one in 10 up to 20,000, then one in 100;
// each database counts its own, from its opening (forget).
func TestSampleChecksEveryCommitThenFewer(t *testing.T) {
	c := &checker{}
	checked := map[string]int{}
	for range 30000 {
		if c.sample("a") {
			checked["a"]++
		}
	}
	for range 100 {
		if c.sample("b") {
			checked["b"]++
		}
	}
	if want := 2000 + 18000/10 + 10000/100; checked["a"] != want {
		t.Errorf("checked %d of a's 30,000 commits, want %d", checked["a"], want)
	}
	if checked["b"] != 100 {
		t.Errorf("checked %d of b's first 100 commits, want all", checked["b"])
	}
	c.forget("a") // closed everywhere: the next opening's commits all count
	for i := range 100 {
		if !c.sample("a") {
			t.Fatalf("commit %d of a reopened database not checked", i+1)
		}
	}
}
