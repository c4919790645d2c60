package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/verneuil-go/verneuil/internal/blob/s3test"
)

// TestStoredAndRawGet counts and fetches the objects under a prefix of a
// real S3 server, ignoring those beside it.
func TestStoredAndRawGet(t *testing.T) {
	endpoint, _ := s3test.Start(t)
	client := s3test.Client(endpoint)
	ctx := context.Background()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	put := func(key string, n int) {
		t.Helper()
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
			Body: bytes.NewReader(make([]byte, n))}); err != nil {
			t.Fatal(err)
		}
	}
	for i, k := range []string{"verneuil/c/chunks/a", "verneuil/c/chunks/b", "verneuil/c/dbs/k/latest"} {
		put(k, 1000*(i+1))
	}
	put("verneuil/cc/other", 5000)
	put("litestream/c/db00000/0000/x.ltx", 7000)

	n, size, err := stored(ctx, client, "verneuil/c/")
	if err != nil || n != 3 || size != 6000 {
		t.Errorf("stored: %d objects, %d bytes, %v; want 3, 6000", n, size, err)
	}
	n, size, err = rawGet(ctx, client, "verneuil/c/", 2)
	if err != nil || n != 3 || size != 6000 {
		t.Errorf("rawGet: %d objects, %d bytes, %v; want 3, 6000", n, size, err)
	}
}
