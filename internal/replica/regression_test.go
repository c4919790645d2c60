package replica_test

import (
	"strings"
	"testing"
)

// version= must be a whole decimal number: fmt.Sscan took the leading
// digits of "12abc" (version 12), "1e3" as 1 and "0x10" as 16, opening a
// version the user did not name.
func TestRegression_SnapshotVersionGarbageRejected(t *testing.T) {
	m := newManager(t, newStore(t))
	for _, v := range []string{"12abc", "1e3", "0x10", " 7", "7 ", "5 6", "+5", "-1", "99999999999999999999999"} {
		if _, err := m.Resolve(dbKey, v, ""); err == nil || !strings.Contains(err.Error(), "want a version number") {
			t.Errorf("version=%q: %v, want a rejection", v, err)
		}
	}
	if tg, err := m.Resolve(dbKey, "12", ""); err != nil || tg.Version != 12 {
		t.Errorf("version=12: %+v, %v", tg, err)
	}
}
