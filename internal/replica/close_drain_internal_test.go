package replica

import (
	"bytes"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// Closing a source's last connection waits for the chunks fetched so far
// to reach the shared disk cache: a process that exits right after (the
// sqlite3 shell after its query) would otherwise lose the last ones, and
// the next process fetch them again (TestShellSnapshot saw one such fetch
// in a clean CI run). Here the disk writer starts late, as a busy one
// would finish late.
func TestCloseWaitsForTheDiskWriter(t *testing.T) {
	mg, _ := newCachedManager(t)
	var hashes []manifest.Hash
	mg.flightMu.Lock()
	for i := range 20 {
		c := bytes.Repeat([]byte{byte(i + 1)}, 64<<10)
		h := manifest.HashOf(c)
		hashes = append(hashes, h)
		mg.pending[h] = c
		mg.pendBytes += len(c)
	}
	mg.flightMu.Unlock()
	go func() {
		time.Sleep(200 * time.Millisecond)
		mg.flightMu.Lock()
		mg.writers++
		mg.bg.Add(1)
		go mg.diskWriter()
		mg.flightMu.Unlock()
	}()
	src := &Source{mgr: mg, refs: 1}
	mg.Close(src)
	for i, h := range hashes {
		if !mg.disk.has(h) {
			t.Fatalf("chunk %d of 20 is not in the disk cache when the last connection's close returns", i)
		}
	}
	mg.Shutdown()
}
