package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
)

// TestHistoryInterval: history_interval defaults to 10 s, 0 means every
// version (and is kept, not replaced by the default), values beyond 1 h
// are refused, and the effective interval is capped at gc_grace/8
// (docs/FORMAT.md: readers of versions without a history object rely on
// the grace period), also for a configuration that spells out the
// default and shortens gc_grace (the e2e gc race test's).
func TestHistoryInterval(t *testing.T) {
	isolate(t)
	for _, tc := range []struct {
		json string
		want time.Duration
		err  string
	}{
		{`{}`, 10 * time.Second, ""},
		{`{"history_interval": 0}`, 0, ""},
		{`{"history_interval": "0s"}`, 0, ""},
		{`{"history_interval": "1m"}`, time.Minute, ""},
		{`{"history_interval": "1h"}`, time.Hour, ""},
		{`{"history_interval": "61m"}`, 0, "history_interval"},
		{`{"history_interval": "-1s"}`, 0, "history_interval"},
		{`{"history_interval": "20m", "gc_grace": "2h"}`, 15 * time.Minute, ""}, // capped at gc_grace/8
		{`{"history_interval": "15m", "gc_grace": "2h"}`, 15 * time.Minute, ""},
		{`{"gc_grace": "40s"}`, 5 * time.Second, ""}, // the default shrinks with gc_grace
	} {
		c, err := config.Parse([]byte(tc.json))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want one naming %s", tc.json, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.json, err)
			continue
		}
		if got := c.HistoryEvery(); got != tc.want {
			t.Errorf("%s: history interval %v, want %v", tc.json, got, tc.want)
		}
	}
}
