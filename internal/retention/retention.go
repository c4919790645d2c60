// Package retention decides which stored versions of a database a
// garbage collection keeps: every version for a recent window, then the
// newest version of each hour and of each day up to a maximum age, always
// the version "latest" names, and every version superseded less than a
// reader horizon ago. The decision depends only on the listing (sequence
// numbers and the store's upload times), so concurrent collections agree
// and a version kept as an hour's representative stays kept until it ages
// out.
package retention

import (
	"fmt"
	"time"
)

// Defaults of the policy (docs/CONFIG.md, "retention").
const (
	DefaultKeepAll = time.Hour
	DefaultHourly  = 7 * 24 * time.Hour
	DefaultDaily   = 30 * 24 * time.Hour
)

// Policy says which versions to keep.
type Policy struct {
	// KeepAll keeps every version until it has been superseded for this
	// long (measured on its successor's upload time). It is also how long
	// a reader may keep using a version after it stopped being the latest.
	KeepAll time.Duration
	// Hourly keeps the newest version of each hour (UTC, by upload time)
	// for versions uploaded less than Hourly ago.
	Hourly time.Duration
	// Daily keeps the newest version of each day (UTC) for versions
	// uploaded less than Daily ago: the maximum age of a version other
	// than the latest.
	Daily time.Duration
	// KeepLast, when positive, replaces the windows above: only the
	// newest KeepLast versions are kept (plus the latest and versions
	// superseded less than KeepAll ago).
	KeepLast int
}

// Default returns the documented default policy.
func Default() Policy {
	return Policy{KeepAll: DefaultKeepAll, Hourly: DefaultHourly, Daily: DefaultDaily}
}

// Validate checks that durations are not negative.
func (p Policy) Validate() error {
	if p.KeepAll < 0 || p.Hourly < 0 || p.Daily < 0 || p.KeepLast < 0 {
		return fmt.Errorf("retention: negative value in %+v", p)
	}
	return nil
}

// Version is one stored version as a listing shows it.
type Version struct {
	Seq      uint64
	Uploaded time.Time // the store's modification time of its manifest object
}

// Why a version is kept; "" means it is not.
const (
	Latest     = "latest"     // named by the database's latest object
	Recent     = "recent"     // superseded less than KeepAll ago
	Hourly     = "hourly"     // the newest of its hour
	Daily      = "daily"      // the newest of its day
	Newest     = "newest"     // among the KeepLast newest
	Unverified = "unverified" // newer than latest (a version another writer left unpublished) and recent
)

// Select returns, for each version of vs (sorted by ascending Seq), why it
// is kept, or "" when it may be deleted. latest is the seq the
// database's latest object names (0 when unknown: the newest is kept);
// now is the store's time.
func Select(p Policy, vs []Version, latest uint64, now time.Time) []string {
	out := make([]string, len(vs))
	if len(vs) == 0 {
		return out
	}
	if latest == 0 {
		latest = vs[len(vs)-1].Seq
	}
	hours := map[int64]bool{}
	days := map[int64]bool{}
	for i := len(vs) - 1; i >= 0; i-- {
		v := vs[i]
		// When the version stopped being the newest: its successor's
		// upload (or its own, for the newest when it is not latest).
		superseded := v.Uploaded
		switch {
		case i+1 < len(vs):
			superseded = vs[i+1].Uploaded
		case v.Seq < latest:
			// latest names a version published after the listing:
			// this one was the latest until just now.
			superseded = now
		}
		age := now.Sub(v.Uploaded)
		switch {
		case v.Seq == latest:
			out[i] = Latest
		case v.Seq > latest && now.Sub(v.Uploaded) < p.KeepAll:
			out[i] = Unverified
		case now.Sub(superseded) < p.KeepAll:
			out[i] = Recent
		case p.KeepLast > 0:
			if len(vs)-i <= p.KeepLast {
				out[i] = Newest
			}
		default:
			h := v.Uploaded.UTC().Truncate(time.Hour).Unix()
			d := v.Uploaded.UTC().Truncate(24 * time.Hour).Unix()
			if age < p.Hourly && !hours[h] {
				out[i] = Hourly
			} else if age < p.Daily && !days[d] {
				out[i] = Daily
			}
		}
		// The newest version of an hour or day represents it, whatever
		// else keeps it.
		hours[v.Uploaded.UTC().Truncate(time.Hour).Unix()] = true
		days[v.Uploaded.UTC().Truncate(24*time.Hour).Unix()] = true
	}
	return out
}
