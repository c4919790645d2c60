// Package s3blob implements blob.Store on an S3-compatible object store, for
// target URLs of the form s3://BUCKET/PREFIX.
//
// Object keys are PREFIX/KEY (or KEY when there is no prefix). Credentials
// come only from the default AWS chain (environment, shared profile, instance
// metadata). Request and response checksums are computed only when an
// operation requires them, which S3-compatible servers accept. The SDK's own
// retries are disabled: callers (the copier) retry transient errors with
// their own backoff.
//
// Errors are classified: a missing object wraps blob.ErrNotFound, a lost
// conditional write wraps blob.ErrPrecondition, and errors that retrying will
// not fix (missing bucket, denied access, bad credentials, wrong region, other
// 4xx) wrap blob.ErrPermanent. Timeouts, throttling, 5xx responses and
// network errors are returned unmarked, as transient.
package s3blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/verneuil-go/verneuil/internal/blob"
)

// DefaultRegion is used when neither the options nor the AWS configuration
// chain name a region.
const DefaultRegion = "us-east-1"

// maxDeleteBatch is the most keys one DeleteObjects request may carry.
const maxDeleteBatch = 1000

func init() {
	blob.Register("s3", func(ctx context.Context, u *url.URL, opts blob.Options) (blob.Store, error) {
		return Open(ctx, u, opts)
	})
}

// Store is a blob.Store on an S3 bucket.
type Store struct {
	cli      *s3.Client
	bucket   string
	prefix   string // "" or ends with "/"
	endpoint string // "" for AWS
	region   string

	mu        sync.Mutex
	transport *http.Transport // set when the HTTP client is first used
	bucketOK  bool            // the bucket is known to exist
}

var _ blob.Store = (*Store)(nil)

// Open opens the store for u (s3://BUCKET/PREFIX) with opts.
func Open(ctx context.Context, u *url.URL, opts blob.Options) (*Store, error) {
	if u.Scheme != "s3" {
		return nil, fmt.Errorf("s3 target: unexpected scheme %q", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, errors.New("s3 target must be s3://BUCKET/PREFIX: missing bucket")
	}
	if u.User != nil {
		return nil, errors.New("s3 target: credentials in the URL are not supported; use the AWS credentials chain (environment, shared profile, instance metadata)")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("s3 target: query and fragment are not supported (set endpoint, region and path_style as target options)")
	}
	s := &Store{bucket: u.Host, endpoint: opts.Endpoint}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if err := blob.ValidKey(p); err != nil {
			return nil, fmt.Errorf("s3 target: invalid prefix: %w", err)
		}
		s.prefix = p + "/"
	}
	if s.endpoint != "" {
		eu, err := url.Parse(s.endpoint)
		if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
			return nil, fmt.Errorf("s3 target: endpoint %q must be an http:// or https:// URL", s.endpoint)
		}
		if eu.User != nil {
			return nil, errors.New("s3 target: credentials in the endpoint URL are not supported")
		}
	}

	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		// The copier runs up to copier_workers × 4 requests at once;
		// the SDK's default of 10 idle connections per host makes it
		// dial (and leave TIME_WAIT sockets) under load.
		tr.MaxIdleConnsPerHost = max(tr.MaxIdleConnsPerHost, 128)
		tr.MaxIdleConns = max(tr.MaxIdleConns, 256)
		s.mu.Lock()
		s.transport = tr
		s.mu.Unlock()
	})
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
		config.WithHTTPClient(httpClient),
		config.WithLogger(logging.Nop{}),
		config.WithClientLogMode(0),
	}
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3 target: load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	s.region = cfg.Region
	s.cli = s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.Retryer = aws.NopRetryer{}
		o.RetryMaxAttempts = 0 // ignore AWS_MAX_ATTEMPTS: the copier retries
		o.UsePathStyle = opts.PathStyle
		if s.endpoint != "" {
			o.BaseEndpoint = aws.String(s.endpoint)
		}
	})
	return s, nil
}

// String implements blob.Store.
func (s *Store) String() string {
	name := "s3://" + s.bucket + "/" + s.prefix
	if s.endpoint != "" {
		return name + " at " + s.endpoint
	}
	return name
}

// Close implements blob.Store: it closes idle connections.
func (s *Store) Close() error {
	s.mu.Lock()
	tr := s.transport
	s.mu.Unlock()
	if tr != nil {
		tr.CloseIdleConnections()
	}
	return nil
}

// key validates k and returns the object key.
func (s *Store) key(k string) (*string, error) {
	if err := blob.ValidKey(k); err != nil {
		return nil, err
	}
	return aws.String(s.prefix + k), nil
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, key string, data []byte) error {
	return s.put(ctx, "put", key, data, nil, nil)
}

// PutIf implements blob.Store, with If-None-Match: * when ifVersion is ""
// and If-Match: ifVersion otherwise.
func (s *Store) PutIf(ctx context.Context, key string, data []byte, ifVersion string) error {
	if ifVersion == "" {
		return s.put(ctx, "put-if-absent", key, data, aws.String("*"), nil)
	}
	return s.put(ctx, "put-if-match", key, data, nil, aws.String(ifVersion))
}

func (s *Store) put(ctx context.Context, op, key string, data []byte, ifNoneMatch, ifMatch *string) error {
	k, err := s.key(key)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, key, err)
	}
	_, err = s.cli.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           k,
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		IfNoneMatch:   ifNoneMatch,
		IfMatch:       ifMatch,
	})
	if err == nil {
		return nil
	}
	conditional := ifNoneMatch != nil || ifMatch != nil
	if conditional {
		status, code := errorCode(err)
		switch {
		case status == http.StatusPreconditionFailed || code == "PreconditionFailed":
			return fmt.Errorf("%s %s: %w", op, key, blob.ErrPrecondition)
		case code == "ConditionalRequestConflict":
			// A concurrent conditional write to the same key is in flight:
			// AWS asks to retry, which for the caller means re-reading.
			return fmt.Errorf("%s %s: conflicting concurrent write: %w", op, key, blob.ErrPrecondition)
		case ifMatch != nil && (code == "NoSuchKey" || (status == http.StatusNotFound && code == "")):
			return fmt.Errorf("%s %s: object does not exist: %w", op, key, blob.ErrPrecondition)
		}
	}
	return s.classify(ctx, op, key, err)
}

// Get implements blob.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	data, _, err := s.get(ctx, "get", key, nil)
	return data, err
}

// GetVersioned implements blob.Store. The version is the object's ETag.
func (s *Store) GetVersioned(ctx context.Context, key string) ([]byte, string, error) {
	data, out, err := s.get(ctx, "get", key, nil)
	if err != nil {
		return nil, "", err
	}
	if out.ETag == nil || *out.ETag == "" {
		return nil, "", fmt.Errorf("get %s: %s returned no ETag: %w", key, s, blob.ErrPermanent)
	}
	return data, *out.ETag, nil
}

// GetRange implements blob.Store.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("get %s: invalid range offset %d length %d", key, offset, length)
	}
	if length == 0 {
		// An empty range cannot be expressed in a Range header; still
		// report a missing object.
		if _, err := s.head(ctx, "get", key); err != nil {
			return nil, err
		}
		return []byte{}, nil
	}
	end := offset + length - 1
	if end < offset { // overflow
		end = 1<<63 - 1
	}
	data, out, err := s.get(ctx, "get", key, aws.String(fmt.Sprintf("bytes=%d-%d", offset, end)))
	if errors.Is(err, errRangeNotSatisfiable) {
		return []byte{}, nil // offset at or past the end
	}
	if err != nil {
		return nil, err
	}
	if out.ContentRange == nil || *out.ContentRange == "" {
		// The server ignored the Range header and sent the whole object.
		if offset >= int64(len(data)) {
			return []byte{}, nil
		}
		data = data[offset:]
		if int64(len(data)) > length {
			data = data[:length]
		}
	}
	return data, nil
}

var errRangeNotSatisfiable = errors.New("range not satisfiable")

func (s *Store) get(ctx context.Context, op, key string, rng *string) ([]byte, *s3.GetObjectOutput, error) {
	return s.getWith(ctx, op, key, &s3.GetObjectInput{Range: rng})
}

// getWith is get with more of the request's fields set in in (Bucket and
// Key are filled in).
func (s *Store) getWith(ctx context.Context, op, key string, in *s3.GetObjectInput) ([]byte, *s3.GetObjectOutput, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", op, key, err)
	}
	in.Bucket, in.Key = &s.bucket, k
	out, err := s.cli.GetObject(ctx, in)
	if err != nil {
		status, code := errorCode(err)
		if in.Range != nil && (status == http.StatusRequestedRangeNotSatisfiable || code == "InvalidRange") {
			return nil, nil, errRangeNotSatisfiable
		}
		if in.IfNoneMatch != nil && status == http.StatusNotModified {
			return nil, nil, fmt.Errorf("%s %s: %w", op, key, blob.ErrNotModified)
		}
		return nil, nil, s.classify(ctx, op, key, err)
	}
	defer out.Body.Close()
	// Never trust the announced length with memory: bound it, and the
	// read, by the largest object of the format (a server may ignore a
	// Range header and send the whole object).
	limit := int64(blob.MaxObjectSize)
	if out.ContentLength != nil && *out.ContentLength > limit {
		return nil, nil, fmt.Errorf("%s %s: %s announced %d bytes, more than %d: %w", op, key, s.where(), *out.ContentLength, limit, blob.ErrTooLarge)
	}
	var buf bytes.Buffer
	if out.ContentLength != nil && *out.ContentLength > 0 {
		// MinRead more: ReadFrom grows a full buffer (a copy of the whole
		// body) before it reads the EOF.
		buf.Grow(int(*out.ContentLength) + bytes.MinRead)
	}
	if _, err := io.Copy(&buf, io.LimitReader(out.Body, limit+1)); err != nil {
		return nil, nil, s.classify(ctx, op, key, fmt.Errorf("read body: %w", err))
	}
	if int64(buf.Len()) > limit {
		return nil, nil, fmt.Errorf("%s %s: %s sent more than %d bytes: %w", op, key, s.where(), limit, blob.ErrTooLarge)
	}
	if out.ContentLength != nil && int64(buf.Len()) != *out.ContentLength {
		return nil, nil, fmt.Errorf("%s %s: short body: got %d of %d bytes", op, key, buf.Len(), *out.ContentLength)
	}
	return buf.Bytes(), out, nil
}

// head returns the object's metadata. HEAD responses carry no error body, so
// a 404 could mean a missing bucket: check the bucket once before reporting
// the object missing.
func (s *Store) head(ctx context.Context, op, key string) (*s3.HeadObjectOutput, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, key, err)
	}
	out, err := s.cli.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: k})
	if err == nil {
		return out, nil
	}
	if status, code := errorCode(err); status == http.StatusNotFound && (code == "" || code == "NotFound") {
		if berr := s.checkBucket(ctx, op, key); berr != nil {
			return nil, berr
		}
	}
	return nil, s.classify(ctx, op, key, err)
}

// checkBucket returns a permanent error when the bucket does not exist. A
// positive answer is remembered.
func (s *Store) checkBucket(ctx context.Context, op, key string) error {
	s.mu.Lock()
	ok := s.bucketOK
	s.mu.Unlock()
	if ok {
		return nil
	}
	_, err := s.cli.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	status, _ := errorCode(err)
	switch {
	case err == nil:
		s.mu.Lock()
		s.bucketOK = true
		s.mu.Unlock()
		return nil
	case status == http.StatusNotFound:
		return fmt.Errorf("%s %s: bucket %q does not exist at %s: %w", op, key, s.bucket, s.where(), blob.ErrPermanent)
	case status == http.StatusForbidden:
		// Possibly no permission for HeadBucket; the object answer stands.
		return nil
	default:
		return s.classify(ctx, op, key, err)
	}
}

// Exists implements blob.Store.
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	_, err := s.head(ctx, "exists", key)
	if errors.Is(err, blob.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// List implements blob.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	keys := []string{}
	p := s3.NewListObjectsV2Paginator(s.cli, &s3.ListObjectsV2Input{
		Bucket: &s.bucket,
		Prefix: aws.String(s.prefix + prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.classify(ctx, "list", prefix+"*", err)
		}
		for _, obj := range page.Contents {
			if obj.Key == nil {
				continue
			}
			k, ok := strings.CutPrefix(*obj.Key, s.prefix)
			if !ok || !strings.HasPrefix(k, prefix) {
				continue
			}
			keys = append(keys, k)
		}
	}
	// S3 lists in UTF-8 byte order; some compatible servers do not.
	slices.Sort(keys)
	return keys, nil
}

// Delete implements blob.Store. Several keys are deleted with DeleteObjects
// in batches of 1000, or one by one on servers without it.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	objs := make([]types.ObjectIdentifier, 0, len(keys))
	for _, key := range keys {
		k, err := s.key(key)
		if err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		objs = append(objs, types.ObjectIdentifier{Key: k})
	}
	if len(objs) == 1 {
		return s.deleteOne(ctx, keys[0])
	}
	for batch := range slices.Chunk(objs, maxDeleteBatch) {
		out, err := s.cli.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &s.bucket,
			Delete: &types.Delete{Objects: batch, Quiet: aws.Bool(true)},
		})
		if status, code := errorCode(err); status == http.StatusNotImplemented || code == "NotImplemented" {
			for _, o := range batch {
				if err := s.deleteOne(ctx, strings.TrimPrefix(*o.Key, s.prefix)); err != nil {
					return err
				}
			}
			continue
		}
		if err != nil {
			return s.classify(ctx, "delete", fmt.Sprintf("%d keys", len(batch)), err)
		}
		var errs []error
		for _, e := range out.Errors {
			code, msg := aws.ToString(e.Code), aws.ToString(e.Message)
			if code == "NoSuchKey" {
				continue
			}
			key := strings.TrimPrefix(aws.ToString(e.Key), s.prefix)
			err := fmt.Errorf("delete %s: %s at %s: %s: %s", key, s.bucket, s.where(), code, msg)
			if code == "AccessDenied" || code == "NoSuchBucket" {
				err = fmt.Errorf("%w: %w", err, blob.ErrPermanent)
			}
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
	}
	return nil
}

func (s *Store) deleteOne(ctx context.Context, key string) error {
	k, err := s.key(key)
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	_, err = s.cli.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: k})
	if err != nil {
		if status, code := errorCode(err); code == "NoSuchKey" || (status == http.StatusNotFound && code == "") {
			return nil
		}
		return s.classify(ctx, "delete", key, err)
	}
	return nil
}

// errorCode returns the HTTP status and S3 error code of an SDK error (0 and
// "" when there was no response).
func errorCode(err error) (status int, code string) {
	if err == nil {
		return 0, ""
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return status, code
}

// transientCodes are 4xx error codes that retrying may fix.
var transientCodes = map[string]bool{
	"RequestTimeout":             true,
	"RequestTimeTooSkewed":       true, // the clock may be corrected
	"SlowDown":                   true,
	"Throttling":                 true,
	"ThrottlingException":        true,
	"TooManyRequests":            true,
	"RequestLimitExceeded":       true,
	"OperationAborted":           true,
	"ExpiredToken":               true, // refreshed by the credentials chain
	"TokenRefreshRequired":       true,
	"InternalError":              true,
	"ServiceUnavailable":         true,
	"ConditionalRequestConflict": true,
}

func (s *Store) where() string {
	if s.endpoint != "" {
		return s.endpoint
	}
	return "AWS S3 (region " + s.region + ")"
}

// classify wraps an SDK error from operation op on key with the blob error
// classes.
func (s *Store) classify(ctx context.Context, op, key string, err error) error {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s at %s: %w", op, key, s.where(), err)
	}
	status, code := errorCode(err)
	permanent := func(why string) error {
		return fmt.Errorf("%s %s: %s: %w: %w", op, key, why, blob.ErrPermanent, err)
	}
	switch {
	case code == "NoSuchBucket":
		return permanent(fmt.Sprintf("bucket %q does not exist at %s", s.bucket, s.where()))
	case code == "NoSuchKey" || code == "NotFound" || (status == http.StatusNotFound && code == ""):
		// Other 404 codes (e.g. versitygw's XAdminUserNotFound for an
		// unknown access key) are not about the object.
		return fmt.Errorf("%s %s: %w", op, key, blob.ErrNotFound)
	case status == http.StatusPreconditionFailed:
		return fmt.Errorf("%s %s: %w", op, key, blob.ErrPrecondition)
	case transientCodes[code], status == 0, status == http.StatusRequestTimeout,
		status == http.StatusTooManyRequests, status >= 500:
		return fmt.Errorf("%s %s at %s: %w", op, key, s.where(), err)
	case code == "InvalidAccessKeyId" || code == "XAdminUserNotFound":
		return permanent(fmt.Sprintf("%s does not know the access key (check the AWS credentials chain)", s.where()))
	case code == "SignatureDoesNotMatch":
		return permanent(fmt.Sprintf("%s rejected the request signature (wrong secret key?)", s.where()))
	case code == "AccessDenied" || code == "Forbidden" || status == http.StatusForbidden:
		return permanent(fmt.Sprintf("access denied to bucket %q at %s", s.bucket, s.where()))
	case code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" ||
		code == "IllegalLocationConstraintException" || (status >= 300 && status < 400):
		return permanent(fmt.Sprintf("bucket %q is not in region %q at %s (set the target's region)", s.bucket, s.region, s.where()))
	default:
		return permanent(fmt.Sprintf("bucket %q at %s", s.bucket, s.where()))
	}
}
