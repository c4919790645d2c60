package replica_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/verneuil-go/verneuil/internal/replica"
)

// latest going back (a restored or hostile store, a copier with a wrong
// clock) keeps the source where it is, as it must, but not silently: a
// replica that stops following the store says so, at most once a minute
// however often the older latest changes.
func TestLatestOlderThanCurrentIsLogged(t *testing.T) {
	var logs syncBuffer
	s := newStore(t)
	publish(t, s, 200, randomData(1, 3), true)
	m := newManager(t, s, func(o *replica.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	src := open(t, m, dbKey, "", "")
	publish(t, s, 150, randomData(2, 3), true)
	for range 3 {
		if mf, err := src.Current(true); err != nil || mf.Seq != 200 {
			t.Fatalf("after latest went back: version %d, %v; want 200", mf.Seq, err)
		}
	}
	publish(t, s, 160, randomData(4, 3), true)
	if mf, err := src.Current(true); err != nil || mf.Seq != 200 {
		t.Fatalf("after another older latest: version %d, %v; want 200", mf.Seq, err)
	}
	if n := strings.Count(logs.String(), "older than the version read"); n != 1 {
		t.Fatalf("%d warnings of latest going back (want 1); logs:\n%s", n, logs.String())
	}
	publish(t, s, 300, randomData(3, 3), true)
	if mf, err := src.Current(true); err != nil || mf.Seq != 300 {
		t.Fatalf("after a newer latest: version %d, %v; want 300", mf.Seq, err)
	}
}
