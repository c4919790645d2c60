package s3blob

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/verneuil-go/verneuil/internal/blob"
)

// Tag implements blob.TagChecker with one HEAD request carrying
// If-None-Match: known (the object's ETag), which the server answers with
// 304 Not Modified, and no body, while the object is unchanged. A server
// that ignores the condition still returns the ETag, which is compared.
func (s *Store) Tag(ctx context.Context, key, known string) (string, error) {
	k, err := s.key(key)
	if err != nil {
		return "", fmt.Errorf("tag %s: %w", key, err)
	}
	in := &s3.HeadObjectInput{Bucket: &s.bucket, Key: k}
	if known != "" {
		in.IfNoneMatch = aws.String(known)
	}
	out, err := s.cli.HeadObject(ctx, in)
	if err != nil {
		if status, _ := errorCode(err); status == http.StatusNotModified {
			return known, fmt.Errorf("tag %s: %w", key, blob.ErrNotModified)
		}
		if _, herr := s.head(ctx, "tag", key); herr != nil {
			return "", herr // classified, with the bucket checked on 404
		}
		return "", s.classify(ctx, "tag", key, err)
	}
	if out.ETag == nil || *out.ETag == "" {
		return "", fmt.Errorf("tag %s: %s returned no ETag: %w", key, s, blob.ErrPermanent)
	}
	if known != "" && *out.ETag == known {
		return known, fmt.Errorf("tag %s: %w", key, blob.ErrNotModified)
	}
	return *out.ETag, nil
}

// GetTagged implements blob.TaggedGetter with one GET carrying
// If-None-Match: known, which the server answers with 304 Not Modified and
// no body while the object is unchanged. A server that ignores the
// condition still returns the ETag, which is compared.
func (s *Store) GetTagged(ctx context.Context, key, known string) ([]byte, string, error) {
	in := &s3.GetObjectInput{}
	if known != "" {
		in.IfNoneMatch = aws.String(known)
	}
	data, out, err := s.getWith(ctx, "get", key, in)
	if err != nil {
		if errors.Is(err, blob.ErrNotModified) {
			return nil, known, err
		}
		return nil, "", err
	}
	if out.ETag == nil || *out.ETag == "" {
		return nil, "", fmt.Errorf("get %s: %s returned no ETag: %w", key, s, blob.ErrPermanent)
	}
	if known != "" && *out.ETag == known {
		return nil, known, fmt.Errorf("get %s: %w", key, blob.ErrNotModified)
	}
	return data, *out.ETag, nil
}
