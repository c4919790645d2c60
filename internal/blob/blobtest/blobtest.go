// Package blobtest is a conformance suite for blob.Store implementations.
// Every backend's tests call Run, so that all targets behave alike.
//
// Key sets used here never make one key a directory of another ("a" and
// "a/b"), which a file-system target cannot store.
package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
)

// Run runs the conformance suite. newStore must return an empty store that
// is independent of the stores returned for other subtests; it should
// register the store's Close with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s blob.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Overwrite", testOverwrite},
		{"EmptyObject", testEmptyObject},
		{"SpecialKeys", testSpecialKeys},
		{"InvalidKeys", testInvalidKeys},
		{"GetRange", testGetRange},
		{"NotFound", testNotFound},
		{"Exists", testExists},
		{"PutIfCreate", testPutIfCreate},
		{"PutIfVersion", testPutIfVersion},
		{"ListOrder", testListOrder},
		{"ListPagination", testListPagination},
		{"Delete", testDelete},
		{"ConcurrentPuts", testConcurrentPuts},
		{"LargeObject", testLargeObject},
		{"PutIfCreateRace", testPutIfCreateRace},
		{"PutIfVersionRace", testPutIfVersionRace},
		{"PutIfCounter", testPutIfCounter},
		{"CanceledContext", testCanceledContext},
		{"Lifecycle", testLifecycle},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			if s == nil {
				t.Fatal("newStore returned nil")
			}
			tt.fn(t, s)
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustPut(t *testing.T, s blob.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(ctxFor(t), key, data); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func mustGet(t *testing.T, s blob.Store, key string) []byte {
	t.Helper()
	data, err := s.Get(ctxFor(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return data
}

func mustList(t *testing.T, s blob.Store, prefix string) []string {
	t.Helper()
	keys, err := s.List(ctxFor(t), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

func checkGet(t *testing.T, s blob.Store, key string, want []byte) {
	t.Helper()
	if got := mustGet(t, s, key); !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %s, want %s", key, show(got), show(want))
	}
}

func checkList(t *testing.T, s blob.Store, prefix string, want []string) {
	t.Helper()
	got := mustList(t, s, prefix)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Fatalf("List(%q) = %q, want %q", prefix, got, want)
	}
}

func checkNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want not found", what)
	}
	if !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("%s: error %v does not wrap blob.ErrNotFound", what, err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s: error %v does not wrap fs.ErrNotExist", what, err)
	}
}

func checkPrecondition(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want a precondition failure", what)
	}
	if !errors.Is(err, blob.ErrPrecondition) {
		t.Fatalf("%s: error %v does not wrap blob.ErrPrecondition", what, err)
	}
}

// show abbreviates data for failure messages.
func show(data []byte) string {
	if len(data) <= 64 {
		return fmt.Sprintf("%q", data)
	}
	return fmt.Sprintf("%q... (%d bytes)", data[:64], len(data))
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func testRoundTrip(t *testing.T, s blob.Store) {
	if s.String() == "" {
		t.Error("String() is empty")
	}
	mustPut(t, s, "k", []byte("hello"))
	checkGet(t, s, "k", []byte("hello"))
	mustPut(t, s, "deep/er/key", []byte("nested"))
	checkGet(t, s, "deep/er/key", []byte("nested"))
	bin := randomBytes(t, 4096)
	mustPut(t, s, "bin", bin)
	checkGet(t, s, "bin", bin)
}

func testOverwrite(t *testing.T, s blob.Store) {
	mustPut(t, s, "k", []byte("first version, longer"))
	mustPut(t, s, "k", []byte("second"))
	checkGet(t, s, "k", []byte("second"))
	checkList(t, s, "", []string{"k"})
}

func testEmptyObject(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	mustPut(t, s, "empty", nil)
	checkGet(t, s, "empty", nil)
	ok, err := s.Exists(ctx, "empty")
	if err != nil || !ok {
		t.Fatalf("Exists(empty) = %v, %v; want true", ok, err)
	}
	got, err := s.GetRange(ctx, "empty", 0, 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("GetRange(empty, 0, 10) = %s, %v; want empty", show(got), err)
	}
	data, v, err := s.GetVersioned(ctx, "empty")
	if err != nil || len(data) != 0 || v == "" {
		t.Fatalf("GetVersioned(empty) = %s, %q, %v", show(data), v, err)
	}
	if err := s.PutIf(ctx, "empty", []byte("x"), v); err != nil {
		t.Fatalf("PutIf(empty, its version): %v", err)
	}
	checkGet(t, s, "empty", []byte("x"))
	checkList(t, s, "", []string{"empty"})
}

func testSpecialKeys(t *testing.T, s blob.Store) {
	keys := []string{
		"sp ace/x",
		"uni/ç-日本",
		"punct/+=&?,;:@$!'()*~%20",
		"dot.start/.hidden",
		"..x/y..",
	}
	for i, k := range keys {
		mustPut(t, s, k, []byte{byte(i)})
	}
	for i, k := range keys {
		checkGet(t, s, k, []byte{byte(i)})
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	checkList(t, s, "", want)
}

func testInvalidKeys(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	for _, k := range []string{"", "/abs", "a//b", "a/", "./a", "a/./b", "../a", "a/../b", "a/..", "nul\x00"} {
		if err := s.Put(ctx, k, []byte("x")); err == nil {
			t.Errorf("Put(%q) succeeded, want an error", k)
		}
		if err := s.PutIf(ctx, k, []byte("x"), ""); err == nil {
			t.Errorf("PutIf(%q) succeeded, want an error", k)
		}
		if _, err := s.Get(ctx, k); err == nil || errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Get(%q) error = %v, want an invalid-key error", k, err)
		}
		if _, err := s.Exists(ctx, k); err == nil {
			t.Errorf("Exists(%q) succeeded, want an error", k)
		}
		if err := s.Delete(ctx, k); err == nil {
			t.Errorf("Delete(%q) succeeded, want an error", k)
		}
	}
	checkList(t, s, "", nil)
}

func testGetRange(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	mustPut(t, s, "r", data)
	for _, c := range []struct {
		off, n int64
		want   []byte
	}{
		{0, 1000, data},
		{0, 1 << 40, data},
		{100, 100, data[100:200]},
		{999, 1, data[999:]},
		{900, 200, data[900:]},
		{0, 0, nil},
		{500, 0, nil},
		{1000, 10, nil},
		{5000, 10, nil},
	} {
		got, err := s.GetRange(ctx, "r", c.off, c.n)
		if err != nil {
			t.Fatalf("GetRange(%d, %d): %v", c.off, c.n, err)
		}
		if !bytes.Equal(got, c.want) {
			t.Fatalf("GetRange(%d, %d) = %s, want %s", c.off, c.n, show(got), show(c.want))
		}
	}
	if _, err := s.GetRange(ctx, "r", -1, 10); err == nil {
		t.Error("GetRange with a negative offset succeeded")
	}
	if _, err := s.GetRange(ctx, "r", 0, -1); err == nil {
		t.Error("GetRange with a negative length succeeded")
	}
}

func testNotFound(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	mustPut(t, s, "nf/file", []byte("x"))
	// "nf/file/child" has an object where a file system has a directory.
	for _, k := range []string{"missing", "nf/missing", "nf/file/child", "nf"} {
		_, err := s.Get(ctx, k)
		checkNotFound(t, fmt.Sprintf("Get(%q)", k), err)
		_, err = s.GetRange(ctx, k, 0, 10)
		checkNotFound(t, fmt.Sprintf("GetRange(%q, 0, 10)", k), err)
		_, err = s.GetRange(ctx, k, 0, 0)
		checkNotFound(t, fmt.Sprintf("GetRange(%q, 0, 0)", k), err)
		_, _, err = s.GetVersioned(ctx, k)
		checkNotFound(t, fmt.Sprintf("GetVersioned(%q)", k), err)
		ok, err := s.Exists(ctx, k)
		if err != nil || ok {
			t.Fatalf("Exists(%q) = %v, %v; want false, nil", k, ok, err)
		}
		if err := s.Delete(ctx, k); err != nil {
			t.Fatalf("Delete(%q) of a missing object: %v", k, err)
		}
	}
	checkGet(t, s, "nf/file", []byte("x"))
}

func testExists(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	check := func(key string, want bool) {
		t.Helper()
		ok, err := s.Exists(ctx, key)
		if err != nil || ok != want {
			t.Fatalf("Exists(%q) = %v, %v; want %v", key, ok, err, want)
		}
	}
	check("e/x", false)
	mustPut(t, s, "e/x", []byte("1"))
	check("e/x", true)
	check("e", false) // a prefix is not an object
	check("e/x/y", false)
	if err := s.Delete(ctx, "e/x"); err != nil {
		t.Fatal(err)
	}
	check("e/x", false)
}

func testPutIfCreate(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	if err := s.PutIf(ctx, "c/latest", []byte("one"), ""); err != nil {
		t.Fatalf("PutIf create on an absent key: %v", err)
	}
	err := s.PutIf(ctx, "c/latest", []byte("two"), "")
	checkPrecondition(t, "second PutIf create", err)
	checkGet(t, s, "c/latest", []byte("one"))
	// A plainly Put object also blocks create-if-absent.
	mustPut(t, s, "c/plain", []byte("p"))
	checkPrecondition(t, "PutIf create over Put", s.PutIf(ctx, "c/plain", []byte("q"), ""))
	checkGet(t, s, "c/plain", []byte("p"))
	// After a delete, create works again.
	if err := s.Delete(ctx, "c/latest"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutIf(ctx, "c/latest", []byte("three"), ""); err != nil {
		t.Fatalf("PutIf create after Delete: %v", err)
	}
	checkGet(t, s, "c/latest", []byte("three"))
}

func testPutIfVersion(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	mustPut(t, s, "v", []byte("v1"))
	data, v1, err := s.GetVersioned(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "v1" || v1 == "" {
		t.Fatalf("GetVersioned = %q, %q", data, v1)
	}
	checkPrecondition(t, "PutIf with a bogus version", s.PutIf(ctx, "v", []byte("x"), "bogus"))
	checkGet(t, s, "v", []byte("v1"))

	if err := s.PutIf(ctx, "v", []byte("v2"), v1); err != nil {
		t.Fatalf("PutIf with the current version: %v", err)
	}
	checkGet(t, s, "v", []byte("v2"))
	_, v2, err := s.GetVersioned(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	if v2 == v1 {
		t.Fatalf("version did not change after a write: %q", v2)
	}
	checkPrecondition(t, "PutIf with a stale version", s.PutIf(ctx, "v", []byte("v3"), v1))
	checkGet(t, s, "v", []byte("v2"))

	// A plain Put changes the version too.
	mustPut(t, s, "v", []byte("v4"))
	checkPrecondition(t, "PutIf after a plain Put", s.PutIf(ctx, "v", []byte("v5"), v2))

	// An expected version on a missing object fails.
	checkPrecondition(t, "PutIf with a version on a missing key", s.PutIf(ctx, "absent", []byte("x"), v2))
	if ok, err := s.Exists(ctx, "absent"); err != nil || ok {
		t.Fatalf("Exists(absent) = %v, %v after a failed PutIf", ok, err)
	}
}

func testListOrder(t *testing.T, s blob.Store) {
	// Byte order: '-' (0x2d) < '.' (0x2e) < '/' (0x2f) < '0' (0x30), so a
	// naive directory walk ("dir" before "dir-a") gets it wrong.
	keys := []string{"dira", "dir/b/c", "dir0", "dir.a", "dir/a", "dir-a", "dir/b-x", "other/z", "A", "dir/b0"}
	for _, k := range keys {
		mustPut(t, s, k, []byte(k))
	}
	all := slices.Clone(keys)
	slices.Sort(all)
	checkList(t, s, "", all)
	checkList(t, s, "dir", []string{"dir-a", "dir.a", "dir/a", "dir/b-x", "dir/b/c", "dir/b0", "dir0", "dira"})
	checkList(t, s, "dir/", []string{"dir/a", "dir/b-x", "dir/b/c", "dir/b0"})
	checkList(t, s, "dir/b", []string{"dir/b-x", "dir/b/c", "dir/b0"})
	checkList(t, s, "dir/b/", []string{"dir/b/c"})
	checkList(t, s, "dir/b/c", []string{"dir/b/c"})
	checkList(t, s, "dir-", []string{"dir-a"})
	checkList(t, s, "o", []string{"other/z"})
	checkList(t, s, "zzz", nil)
	checkList(t, s, "dir/nope/", nil)
	checkList(t, s, "dir/a/", nil)
	checkList(t, s, "../", nil)
}

func testListPagination(t *testing.T, s blob.Store) {
	const n = 1100 // more than one S3 page of 1000
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("many/%05d", i))
	}
	parallel(t, 16, want, func(ctx context.Context, k string) error {
		return s.Put(ctx, k, []byte(k))
	})
	mustPut(t, s, "manz", []byte("outside"))
	checkList(t, s, "many/", want)
	all := append(slices.Clone(want), "manz")
	checkList(t, s, "", all)

	// Delete more than one S3 batch of 1000 at once.
	if err := s.Delete(ctxFor(t), want...); err != nil {
		t.Fatalf("Delete(%d keys): %v", n, err)
	}
	checkList(t, s, "", []string{"manz"})
}

func testDelete(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	for _, k := range []string{"d/a", "d/b", "d/c/d", "keep"} {
		mustPut(t, s, k, []byte(k))
	}
	if err := s.Delete(ctx, "d/a"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(ctx, "d/a")
	checkNotFound(t, "Get after Delete", err)
	if err := s.Delete(ctx, "d/a"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	if err := s.Delete(ctx); err != nil {
		t.Fatalf("Delete of no keys: %v", err)
	}
	if err := s.Delete(ctx, "d/b", "d/missing", "d/c/d"); err != nil {
		t.Fatalf("Delete of several keys: %v", err)
	}
	checkList(t, s, "", []string{"keep"})
	// The emptied "directories" can hold objects again, including an
	// object named like a former directory.
	mustPut(t, s, "d", []byte("file now"))
	checkGet(t, s, "d", []byte("file now"))
	checkList(t, s, "", []string{"d", "keep"})
}

func testConcurrentPuts(t *testing.T, s blob.Store) {
	const workers, perWorker = 16, 10
	values := make([][]byte, workers)
	for w := range values {
		values[w] = bytes.Repeat([]byte{byte('a' + w)}, 64<<10)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			ctx := ctxFor(t)
			for i := range perWorker {
				k := fmt.Sprintf("cp/%02d/%02d", w, i)
				if err := s.Put(ctx, k, []byte(k)); err != nil {
					errs <- err
					return
				}
				if err := s.Put(ctx, "cp-shared", values[w]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := range workers {
		for i := range perWorker {
			k := fmt.Sprintf("cp/%02d/%02d", w, i)
			checkGet(t, s, k, []byte(k))
		}
	}
	got := mustGet(t, s, "cp-shared")
	if !slices.ContainsFunc(values, func(v []byte) bool { return bytes.Equal(v, got) }) {
		t.Fatalf("shared key holds a mix of writes: %s", show(got))
	}
	if n := len(mustList(t, s, "cp/")); n != workers*perWorker {
		t.Fatalf("List(cp/) has %d keys, want %d", n, workers*perWorker)
	}
}

func testLargeObject(t *testing.T, s blob.Store) {
	ctx := ctxFor(t)
	data := randomBytes(t, 20<<20)
	mustPut(t, s, "large", data)
	checkGet(t, s, "large", data)
	off := int64(len(data)/2 - 12345)
	got, err := s.GetRange(ctx, "large", off, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[off:off+1<<20]) {
		t.Fatalf("GetRange in a large object returned wrong bytes")
	}
	_, v, err := s.GetVersioned(ctx, "large")
	if err != nil {
		t.Fatal(err)
	}
	data2 := randomBytes(t, 20<<20)
	if err := s.PutIf(ctx, "large", data2, v); err != nil {
		t.Fatalf("PutIf of a large object: %v", err)
	}
	checkGet(t, s, "large", data2)
}

// race runs fn concurrently from n goroutines released at once, and returns
// each goroutine's error.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner checks that exactly one error is nil and the others are
// precondition failures, and returns the winner's index.
func oneWinner(t *testing.T, errs []error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("both %d and %d won the race", winner, i)
			}
			winner = i
		case !errors.Is(err, blob.ErrPrecondition):
			t.Fatalf("racer %d: %v (want nil or a precondition failure)", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("nobody won the race")
	}
	return winner
}

func testPutIfCreateRace(t *testing.T, s blob.Store) {
	const racers, rounds = 16, 5
	for r := range rounds {
		key := fmt.Sprintf("race/create-%d", r)
		errs := race(racers, func(i int) error {
			return s.PutIf(ctxFor(t), key, fmt.Appendf(nil, "racer %d", i), "")
		})
		w := oneWinner(t, errs)
		checkGet(t, s, key, fmt.Appendf(nil, "racer %d", w))
	}
}

func testPutIfVersionRace(t *testing.T, s blob.Store) {
	const racers, rounds = 16, 5
	ctx := ctxFor(t)
	mustPut(t, s, "race/cas", []byte("initial"))
	for range rounds {
		_, v, err := s.GetVersioned(ctx, "race/cas")
		if err != nil {
			t.Fatal(err)
		}
		tag := randomBytes(t, 8)
		errs := race(racers, func(i int) error {
			return s.PutIf(ctxFor(t), "race/cas", fmt.Appendf(nil, "%x racer %d", tag, i), v)
		})
		w := oneWinner(t, errs)
		checkGet(t, s, "race/cas", fmt.Appendf(nil, "%x racer %d", tag, w))
	}
}

// testPutIfCounter increments a counter with read-compare-write loops from
// many goroutines: no increment may be lost.
func testPutIfCounter(t *testing.T, s blob.Store) {
	const workers, increments = 8, 8
	mustPut(t, s, "counter", []byte("0"))
	errs := race(workers, func(int) error {
		ctx := ctxFor(t)
		for range increments {
			for {
				data, v, err := s.GetVersioned(ctx, "counter")
				if err != nil {
					return err
				}
				var n int
				if _, err := fmt.Sscan(string(data), &n); err != nil {
					return fmt.Errorf("counter holds %q: %w", data, err)
				}
				err = s.PutIf(ctx, "counter", []byte(fmt.Sprint(n+1)), v)
				if err == nil {
					break
				}
				if !errors.Is(err, blob.ErrPrecondition) {
					return err
				}
			}
		}
		return nil
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkGet(t, s, "counter", []byte(fmt.Sprint(workers*increments)))
}

func testCanceledContext(t *testing.T, s blob.Store) {
	mustPut(t, s, "cc", []byte("x"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: error %v does not wrap context.Canceled", what, err)
		}
	}
	check("Put", s.Put(ctx, "cc2", []byte("y")))
	check("PutIf", s.PutIf(ctx, "cc3", []byte("y"), ""))
	_, err := s.Get(ctx, "cc")
	check("Get", err)
	_, err = s.List(ctx, "")
	check("List", err)
	check("Delete", s.Delete(ctx, "cc"))
	checkGet(t, s, "cc", []byte("x"))
}

// parallel calls fn for every key from n goroutines and fails the test on
// the first error.
func parallel(t *testing.T, n int, keys []string, fn func(ctx context.Context, key string) error) {
	t.Helper()
	ctx := ctxFor(t)
	ch := make(chan string)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for k := range ch {
				if err := fn(ctx, k); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, k := range keys {
		ch <- k
	}
	close(ch)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}
