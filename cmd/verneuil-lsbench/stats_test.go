package main

import (
	"testing"
	"time"
)

func TestSummarise(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted input
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := summarise(ds)
	want := dist{N: 100, P50: 50 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}
	if got != want {
		t.Errorf("summarise = %+v, want %+v", got, want)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("summarise sorted its input in place")
	}
	if got := summarise(nil); got != (dist{}) {
		t.Errorf("summarise(nil) = %+v", got)
	}
	if got := summarise([]time.Duration{7}); got.P50 != 7 || got.P99 != 7 || got.Max != 7 {
		t.Errorf("one value: %+v", got)
	}
}
