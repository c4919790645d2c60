package verneuil

import (
	"reflect"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/copier"
)

// fillDistinct sets every field of the struct v points to a distinct
// non-zero value.
func fillDistinct(t *testing.T, v any) {
	t.Helper()
	s := reflect.ValueOf(v).Elem()
	for i := range s.NumField() {
		f := s.Field(i)
		n := i + 1
		switch f.Kind() {
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(n))
		case reflect.Uint64:
			f.SetUint(uint64(n))
		case reflect.Float64:
			f.SetFloat(float64(n) + 0.5)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.String:
			f.SetString(s.Type().Field(i).Name)
		case reflect.Slice:
			if f.Type().Elem().Kind() == reflect.String {
				f.Set(reflect.ValueOf([]string{s.Type().Field(i).Name}))
			}
		case reflect.Struct:
			if f.Type() == reflect.TypeOf(time.Time{}) {
				f.Set(reflect.ValueOf(time.Unix(int64(n), 0)))
			}
		}
	}
}

// checkCopied: every field of the public struct pub equals the field of
// the same name of the internal struct in, and the fields of in that pub
// lacks are the ones in left (so that a counter added to the copier is
// either exposed or left out on purpose).
func checkCopied(t *testing.T, in, pub any, left map[string]bool) {
	t.Helper()
	iv, pv := reflect.ValueOf(in), reflect.ValueOf(pub)
	for i := range pv.NumField() {
		name := pv.Type().Field(i).Name
		src := iv.FieldByName(name)
		if !src.IsValid() {
			t.Errorf("%s.%s has no source field", pv.Type(), name)
			continue
		}
		if !reflect.DeepEqual(src.Interface(), pv.Field(i).Interface()) {
			t.Errorf("%s.%s = %v, source %v", pv.Type(), name, pv.Field(i), src)
		}
	}
	for i := range iv.NumField() {
		name := iv.Type().Field(i).Name
		if _, ok := pv.Type().FieldByName(name); !ok && !left[name] {
			t.Errorf("%s.%s is neither in %s nor left out on purpose", iv.Type(), name, pv.Type())
		}
	}
}

// TestStatsCopyTheCopiersCounters: Stats and DBStats are the copier's
// counters, field by field.
func TestStatsCopyTheCopiersCounters(t *testing.T) {
	var s copier.Snapshot
	fillDistinct(t, &s)
	s.Lag = copier.Histogram{N: s.LagN, Sum: s.LagSum, Max: s.LagMax}
	// Scheduler details and the histogram's buckets are the metrics
	// endpoint's.
	checkCopied(t, s, statsOf(s), map[string]bool{"Lag": true, "LagCounts": true,
		"Ready": true, "Waiting": true, "Running": true, "KnownChunks": true})

	var d copier.DBSnapshot
	fillDistinct(t, &d)
	checkCopied(t, d, dbStatsOf(d), map[string]bool{"Lag": true, "LastSignal": true})

	// The public copy does not share the internal slice.
	pub := statsOf(s)
	pub.NoConditionalWrites[0] = "changed"
	if s.NoConditionalWrites[0] == "changed" {
		t.Error("Stats shares NoConditionalWrites with the copier")
	}
}
