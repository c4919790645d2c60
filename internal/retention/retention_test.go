package retention_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/retention"
)

func TestSelect(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 30, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	vs := func(times ...time.Time) []retention.Version {
		out := make([]retention.Version, len(times))
		for i, tm := range times {
			out[i] = retention.Version{Seq: uint64(i + 1), Uploaded: tm}
		}
		return out
	}
	def := retention.Policy{KeepAll: time.Hour, Hourly: 24 * time.Hour, Daily: 10 * 24 * time.Hour}
	for _, tc := range []struct {
		name   string
		p      retention.Policy
		vs     []retention.Version
		latest uint64
		want   []string
	}{
		{"empty", def, nil, 0, []string{}},
		{"only latest", def, vs(ago(1000 * time.Hour)), 1, []string{"latest"}},
		{"latest unknown keeps the newest", def, vs(ago(3*time.Hour), ago(2*time.Hour)), 0, []string{"hourly", "latest"}},
		{
			"recent window measured on the successor",
			def,
			// 1 is superseded by 2 only 30 min ago: kept though old.
			vs(ago(50*time.Hour), ago(30*time.Minute), ago(10*time.Minute)),
			3,
			[]string{"recent", "recent", "latest"},
		},
		{
			"hourly then daily then gone",
			def,
			vs(
				ago(15*24*time.Hour),               // older than Daily
				ago(3*24*time.Hour+10*time.Minute), // newest of its day? no: next is same day
				ago(3*24*time.Hour),                // newest of that day
				ago(5*time.Hour+20*time.Minute),    // same hour as next: dropped
				ago(5*time.Hour+10*time.Minute),    // newest of hour 07:00
				ago(2*time.Hour),                   // newest of hour 10:00
				ago(90*time.Minute),                // superseded 90 min ago by... the next: kept hourly? same hour 11:00 as the next
				ago(80*time.Minute),                // superseded by latest 1 min ago
				ago(time.Minute),
			),
			9,
			[]string{"", "", "daily", "", "hourly", "hourly", "", "recent", "latest"},
		},
		{
			"keep last",
			retention.Policy{KeepLast: 2},
			vs(ago(4*time.Hour), ago(3*time.Hour), ago(2*time.Hour), ago(time.Hour)),
			4,
			[]string{"", "", "newest", "latest"},
		},
		{
			"keep last with a horizon",
			retention.Policy{KeepLast: 1, KeepAll: 90 * time.Minute},
			vs(ago(4*time.Hour), ago(3*time.Hour), ago(2*time.Hour), ago(time.Hour)),
			4,
			[]string{"", "", "recent", "latest"},
		},
		{
			"latest published after the listing",
			retention.Policy{KeepLast: 1, KeepAll: time.Hour},
			vs(ago(4*time.Hour), ago(3*time.Hour)),
			7,
			[]string{"", "recent"},
		},
		{
			"unpublished newer than latest",
			retention.Policy{KeepLast: 1, KeepAll: time.Hour},
			vs(ago(4*time.Hour), ago(3*time.Hour), ago(time.Minute)),
			2,
			[]string{"", "latest", "unverified"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := retention.Select(tc.p, tc.vs, tc.latest, now)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSelectStable: a version kept as its hour's newest stays kept as
// versions are added and time passes (until it ages out).
func TestSelectStable(t *testing.T) {
	p := retention.Policy{KeepAll: time.Minute, Hourly: 6 * time.Hour, Daily: 48 * time.Hour}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var vs []retention.Version
	keptUntil := map[uint64]time.Time{} // kept as an hour's or a day's newest, until then
	for i := range 600 {
		now := start.Add(time.Duration(i) * 7 * time.Minute)
		vs = append(vs, retention.Version{Seq: uint64(i + 1), Uploaded: now})
		why := retention.Select(p, vs, uint64(i+1), now)
		var next []retention.Version
		for j, v := range vs {
			if why[j] == "" {
				if now.Before(keptUntil[v.Seq]) {
					t.Fatalf("version %d (uploaded %s) dropped at %s after being kept", v.Seq, v.Uploaded, now)
				}
				continue
			}
			switch why[j] {
			case retention.Hourly:
				keptUntil[v.Seq] = v.Uploaded.Add(p.Hourly)
			case retention.Daily:
				keptUntil[v.Seq] = v.Uploaded.Add(p.Daily)
			}
			next = append(next, v)
		}
		vs = next
	}
	if len(vs) > 6+2+3+2 {
		t.Fatalf("%d versions retained after 70 hours, want about 6 hourly + 2 daily + recent", len(vs))
	}
}
