package s3blob_test

import (
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob/blobtest"
	"github.com/verneuil-go/verneuil/internal/blob/s3test"
)

func TestGetTagged(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	blobtest.RunGetTagged(t, open(t, "s3://"+bucket+"/gettagged", endpoint))
}
