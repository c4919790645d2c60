//go:build cgo && verneuil_extern

package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/tracker"
)

// srcOf makes a memDB a tracker.Source.
type srcOf struct{ memDB }

func (s srcOf) Size() (int64, error)   { return int64(len(s.memDB)), nil }
func (s srcOf) Xattr() ([]byte, error) { return nil, nil }

// indexHeader is the wal-index header SQLite would leave at pos.
func indexHeader(pos walPosition, nPage uint32, pageSize int) []byte {
	h := make([]byte, refWALIndexLen)
	nativeOrder.PutUint32(h[0:], refWALVersion)
	h[12] = 1
	nativeOrder.PutUint16(h[14:], uint16(pageSize))
	nativeOrder.PutUint32(h[16:], pos.mx)
	nativeOrder.PutUint32(h[20:], nPage)
	nativeOrder.PutUint32(h[24:], pos.ck[0])
	nativeOrder.PutUint32(h[28:], pos.ck[1])
	copy(h[32:40], pos.salt[:])
	s := cksum(nativeOrder, h[:40], [2]uint32{})
	nativeOrder.PutUint32(h[40:], s[0])
	nativeOrder.PutUint32(h[44:], s[1])
	return h
}

// TestWALCommitsThatCannotBeComposed covers the commits the check decides
// about before it looks at the replica: a wal-index announcing frames the
// -wal does not hold is a mismatch (the capture said it succeeded); a hold
// that left no commit is counted, not checked.
func TestWALCommitsThatCannotBeComposed(t *testing.T) {
	const ps = 512
	dir := t.TempDir()
	walPath := filepath.Join(dir, "db-wal")
	w := newTestWAL(ps, false, [8]byte{3})
	c1 := w.frame(1, 'x', 1)
	if err := os.WriteFile(walPath, w.buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ahead := c1
	ahead.mx, ahead.ck = 3, [2]uint32{1, 2} // frames the -wal does not hold
	otherSalt := c1
	otherSalt.salt[0]++
	emptyWAL := filepath.Join(dir, "empty-wal")
	if err := os.WriteFile(emptyWAL, newTestWAL(ps, false, [8]byte{3}).buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	invalid := indexHeader(c1, 1, ps)
	invalid[16]++ // mxFrame changed, checksum not
	cases := []struct {
		name                string
		ev                  tracker.Event
		failures, unchecked int64
		wantErr             string
	}{
		{"wal-index ahead of the -wal", tracker.Event{Kind: tracker.WALCommit, WALNow: indexHeader(ahead, 1, ps), WALPath: walPath}, 1, 0, "announces"},
		{"wal-index of another generation", tracker.Event{Kind: tracker.WALCommit, WALNow: indexHeader(otherSalt, 1, ps), WALPath: walPath}, 1, 0, "announces"},
		{"wal-index with another page count", tracker.Event{Kind: tracker.WALCommit, WALNow: indexHeader(c1, 2, ps), WALPath: walPath}, 1, 0, "announces"},
		{"-wal missing", tracker.Event{Kind: tracker.WALCommit, WALNow: indexHeader(c1, 1, ps), WALPath: filepath.Join(dir, "none")}, 1, 0, "open the -wal"},
		{"heap-memory -wal missing", tracker.Event{Kind: tracker.WALHeapCommit, WALPath: filepath.Join(dir, "none")}, 1, 0, "open the -wal"},
		{"restart without a commit", tracker.Event{Kind: tracker.WALCommit, WALNow: indexHeader(walPosition{salt: c1.salt}, 0, ps), WALPath: walPath}, 0, 1, ""},
		{"untrusted wal-index header", tracker.Event{Kind: tracker.WALCommit, WALNow: invalid, WALPath: walPath}, 0, 1, ""},
		{"heap-memory -wal without a commit", tracker.Event{Kind: tracker.WALHeapCommit, WALPath: emptyWAL}, 0, 1, ""},
	}
	for _, tc := range cases {
		state := t.TempDir()
		c := &checker{log: slog.New(slog.NewTextHandler(io.Discard, nil)), stateDir: state, max: 1 << 30}
		c.afterWALCommit(filepath.Join(dir, "db"), srcOf{pages(ps, 'a')}, tc.ev)
		if c.stats.failures != tc.failures || c.stats.walUnchecked != tc.unchecked {
			t.Errorf("%s: failures %d, wal_unchecked %d; want %d, %d", tc.name, c.stats.failures, c.stats.walUnchecked, tc.failures, tc.unchecked)
		}
		if tc.wantErr == "" {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(state, "failures."+strconv.Itoa(os.Getpid())))
		if !strings.Contains(string(b), tc.wantErr) {
			t.Errorf("%s: failure line %q does not say %q", tc.name, b, tc.wantErr)
		}
		if c.failF != nil {
			c.failF.Close()
		}
	}
}
