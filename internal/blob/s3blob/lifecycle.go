package s3blob

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/verneuil-go/verneuil/internal/blob"
)

var (
	_ blob.Lifecycle = (*Store)(nil)
	_ blob.Toucher   = (*Store)(nil)
)

// Walk implements blob.Walker: one ListObjectsV2 page (up to 1000 keys)
// per call of fn, with each object's size and Last-Modified.
func (s *Store) Walk(ctx context.Context, prefix string, fn func([]blob.ObjectInfo) error) error {
	p := s3.NewListObjectsV2Paginator(s.cli, &s3.ListObjectsV2Input{
		Bucket: &s.bucket,
		Prefix: aws.String(s.prefix + prefix),
	})
	var page []blob.ObjectInfo
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return s.classify(ctx, "list", prefix+"*", err)
		}
		page = page[:0]
		for _, obj := range out.Contents {
			if obj.Key == nil {
				continue
			}
			k, ok := strings.CutPrefix(*obj.Key, s.prefix)
			if !ok || !strings.HasPrefix(k, prefix) {
				continue
			}
			page = append(page, blob.ObjectInfo{Key: k, Size: aws.ToInt64(obj.Size), ModTime: aws.ToTime(obj.LastModified)})
		}
		if len(page) > 0 {
			if err := fn(page); err != nil {
				return err
			}
		}
	}
	return nil
}

// Stat implements blob.Stater with a HEAD request.
func (s *Store) Stat(ctx context.Context, key string) (blob.ObjectInfo, error) {
	out, err := s.head(ctx, "stat", key)
	if err != nil {
		return blob.ObjectInfo{}, err
	}
	return blob.ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// Touch implements blob.Toucher: the object is copied onto itself with its
// metadata replaced, which S3 requires to accept a self-copy and which
// sets a new Last-Modified without sending the bytes again. Some
// compatible servers accept the copy but keep the old time (versitygw);
// when the time the copy reports is not recent, the object is read and
// written again.
func (s *Store) Touch(ctx context.Context, key string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	start := time.Now()
	src := s.bucket + "/" + (&url.URL{Path: *k}).EscapedPath()
	out, err := s.cli.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:            &s.bucket,
		Key:               k,
		CopySource:        &src,
		MetadataDirective: types.MetadataDirectiveReplace,
		Metadata:          map[string]string{"touched": start.UTC().Format(time.RFC3339)},
	})
	if err != nil {
		return s.classify(ctx, "touch", key, err)
	}
	if out.CopyObjectResult != nil && aws.ToTime(out.CopyObjectResult.LastModified).After(start.Add(-touchSlack)) {
		return nil
	}
	data, err := s.Get(ctx, key)
	if err != nil {
		return err
	}
	return s.Put(ctx, key, data)
}

// touchSlack is how far before the request a copy's Last-Modified may be
// (its one-second resolution, clock differences) and still count as new.
const touchSlack = 2 * time.Second
