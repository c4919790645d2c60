package copier

import (
	"bytes"
	"testing"
	"time"
)

// TestHistoryWaitDoesNotDelayVersions: a database whose newest version is
// latest only waits in the scheduler for its history object; a new
// version must not wait with it. With an interval of an hour, the next
// version arriving at all (within the test's timeout) shows it is
// scheduled as any new version (the lag benchmark found versions held up
// to history_interval).
func TestHistoryWaitDoesNotDelayVersions(t *testing.T) {
	s := newMemStore()
	c, root := newTestCopier(t, s, func(o *Options) { o.HistoryInterval = time.Hour })
	_, v2, _ := publishLatestOnly(t, c, root, s, "w")
	key := K("w")
	waitFor(t, 10*time.Second, "the history wait scheduled", func() bool {
		snap, ok := c.DBStat(key)
		return ok && !snap.NextAttempt.IsZero()
	})
	for seq := uint64(3); seq <= 5; seq++ {
		v := bytes.Clone(v2)
		v[27], v[testChunk+int(seq)] = byte(seq), byte(seq)
		stageNamed(t, root, key, "test:w", seq, v)
		c.Notify(key)
		waitFor(t, 10*time.Second, "the next version uploaded", func() bool { return latestSeq(t, s, key) == seq })
		restoreEquals(t, s, mustVersion(t, s, key, seq), v)
	}
	if hasHistory(s, key, 4) {
		t.Fatal("version 4 in history within the interval")
	}
}
