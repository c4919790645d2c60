package fileblob_test

import (
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob/blobtest"
	"github.com/verneuil-go/verneuil/internal/blob/fileblob"
)

func TestTag(t *testing.T) {
	s, err := fileblob.OpenDir(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	blobtest.RunTag(t, s)
}
