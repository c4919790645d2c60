package fileblob_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
)

// TestPutBesideDeleteOfEmptyParents: a Delete that removes directories
// left empty (two levels) never fails a concurrent Put into them.
func TestPutBesideDeleteOfEmptyParents(t *testing.T) {
	s, err := fileblob.OpenDir(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				key := fmt.Sprintf("a/b/%d-%d", w, i)
				if err := s.Put(ctx, key, []byte("x")); err != nil {
					errs <- err
					return
				}
				if err := s.Delete(ctx, key); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
