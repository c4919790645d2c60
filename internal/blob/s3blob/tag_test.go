package s3blob_test

import (
	"testing"

	"github.com/verneuil-go/verneuil/internal/blob/blobtest"
	"github.com/verneuil-go/verneuil/internal/blob/s3test"
)

func TestTag(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	blobtest.RunTag(t, open(t, "s3://"+bucket+"/tag", endpoint))
}
