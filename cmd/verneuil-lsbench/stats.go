package main

import (
	"slices"
	"time"
)

// quantile returns the q-quantile (0 ≤ q ≤ 1) of sorted by the nearest-rank
// method, or 0 for no values.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999999) - 1
	return sorted[max(0, min(len(sorted)-1, i))]
}

// dist summarises durations.
type dist struct {
	N             int
	P50, P99, Max time.Duration
}

func summarise(ds []time.Duration) dist {
	s := slices.Clone(ds)
	slices.Sort(s)
	return dist{N: len(s), P50: quantile(s, 0.5), P99: quantile(s, 0.99), Max: quantile(s, 1)}
}
