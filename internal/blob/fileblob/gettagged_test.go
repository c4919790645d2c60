package fileblob_test

import (
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob/blobtest"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
)

func TestGetTagged(t *testing.T) {
	s, err := fileblob.OpenDir(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	blobtest.RunGetTagged(t, s)
}
