// Package s3 stores function code and other blobs in an S3 bucket (MinIO, AWS S3
// or any server speaking the S3 API) through minio-go.
//
// Everything of a function lives under "functions/<function id>/": its code,
// content-addressed within the function ("code/<sha256 hex>", so versions with the
// same bytes share one object), and its build artifacts. A function's identity is
// never reused, so a function created later under the same name never reads a
// deleted one's objects, and a delete removes the whole prefix.
package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/ferry-faas/ferry"
)

// Config says where the store lives. MaxCodeSize (bytes) bounds PutCode; zero
// means no bound.
type Config struct {
	Endpoint  string // host:port, or a URL whose scheme sets Secure
	AccessKey string
	SecretKey string
	Bucket    string
	Secure    bool
	// MaxCodeSize bounds PutCode, in bytes; 0 means unbounded.
	MaxCodeSize int64
}

// Store is a bucket of blobs. It is safe for concurrent use.
type Store struct {
	client   *minio.Client
	bucket   string
	endpoint string // for error messages
	maxCode  int64
}

// maxRetries keeps a down server from stalling callers for long: minio-go retries
// ten times by default.
const maxRetries = 3

// FunctionPrefix is the key prefix of everything stored for one function.
func FunctionPrefix(functionID uuid.UUID) string { return "functions/" + functionID.String() + "/" }

// New connects to the S3 endpoint and creates the bucket when it is missing.
func New(ctx context.Context, c Config) (*Store, error) {
	endpoint, secure, err := parseEndpoint(c.Endpoint, c.Secure)
	if err != nil {
		return nil, err
	}
	if c.Bucket == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "FERRY_S3_BUCKET is empty")
	}
	client, err := minio.New(endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""),
		Secure:     secure,
		MaxRetries: maxRetries,
	})
	if err != nil {
		return nil, ferry.Wrap(err, ferry.EINVALID, "FERRY_S3_ENDPOINT %q: %v", c.Endpoint, err)
	}
	s := &Store{client: client, bucket: c.Bucket, endpoint: endpoint, maxCode: c.MaxCodeSize}
	exists, err := client.BucketExists(ctx, c.Bucket)
	if err != nil {
		return nil, s.mapErr(err, "bucket "+c.Bucket)
	}
	if !exists {
		err := client.MakeBucket(ctx, c.Bucket, minio.MakeBucketOptions{})
		if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
			err = nil // created concurrently by another process
		}
		if err != nil {
			return nil, s.mapErr(err, "bucket "+c.Bucket)
		}
	}
	return s, nil
}

// parseEndpoint accepts "host:port" or "http(s)://host:port".
func parseEndpoint(endpoint string, secure bool) (string, bool, error) {
	if endpoint == "" {
		return "", false, ferry.Errorf(ferry.EINVALID, "FERRY_S3_ENDPOINT is empty")
	}
	if !strings.Contains(endpoint, "://") {
		return endpoint, secure, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return "", false, ferry.Errorf(ferry.EINVALID,
			"FERRY_S3_ENDPOINT %q must be host:port or http(s)://host:port", endpoint)
	}
	return u.Host, u.Scheme == "https", nil
}

// Checksum is the sha256 hex digest PutCode uses as the code's identity.
func Checksum(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// CodeKey is the object key of a function's code bundle with the given checksum.
func CodeKey(functionID uuid.UUID, checksum string) string {
	return FunctionPrefix(functionID) + "code/" + checksum
}

// PutCode stores a function's code bundle under its content address and returns
// the key and the sha256 hex checksum. Bytes already stored for the function are
// not uploaded again; uploaded says whether this call stored them.
func (s *Store) PutCode(ctx context.Context, functionID uuid.UUID, data []byte) (key, checksum string, uploaded bool, err error) {
	if s.maxCode > 0 && int64(len(data)) > s.maxCode {
		return "", "", false, ferry.Errorf(ferry.ETOOLARGE, "code bundle is %d bytes, more than the limit of %d", len(data), s.maxCode)
	}
	if functionID == uuid.Nil {
		return "", "", false, ferry.Errorf(ferry.EINVALID, "code needs its function's id")
	}
	checksum = Checksum(data)
	key = CodeKey(functionID, checksum)
	exists, err := s.Exists(ctx, key)
	if err != nil || exists {
		return key, checksum, false, err
	}
	if err := s.Put(ctx, key, data); err != nil {
		return "", "", false, err
	}
	return key, checksum, true, nil
}

// Put stores data under key, replacing what was there.
func (s *Store) Put(ctx context.Context, key string, data []byte) error {
	_, err := s.client.PutObject(ctx, s.bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream"})
	return s.mapErr(err, objectName(key))
}

// Get returns the object stored under key; ENOTFOUND when there is none.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.mapErr(err, objectName(key))
	}
	defer obj.Close()
	data, err := io.ReadAll(obj) // the request happens on the first read
	if err != nil {
		return nil, s.mapErr(err, objectName(key))
	}
	return data, nil
}

// Exists reports whether an object is stored under key.
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	_, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err == nil {
		return true, nil
	}
	if err := s.mapErr(err, objectName(key)); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		return false, err
	}
	return false, nil
}

// Delete removes the object under key; deleting a missing object is no error.
func (s *Store) Delete(ctx context.Context, key string) error {
	err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
	if ferry.ErrorCode(s.mapErr(err, "")) == ferry.ENOTFOUND {
		return nil
	}
	return s.mapErr(err, objectName(key))
}

// Keys lists the keys that start with prefix, in key order.
func (s *Store) Keys(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, s.mapErr(obj.Err, fmt.Sprintf("objects under %q", prefix))
		}
		keys = append(keys, obj.Key)
	}
	return keys, nil
}

// DeletePrefix removes every object whose key starts with prefix.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) error {
	if prefix == "" {
		return ferry.Errorf(ferry.EINVALID, "refusing to delete the whole bucket")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	keys := make(chan minio.ObjectInfo)
	listErr := make(chan error, 1)
	go func() {
		var err error
		defer func() { close(keys); listErr <- err }()
		for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if obj.Err != nil {
				err = obj.Err
				return
			}
			select {
			case keys <- obj:
			case <-ctx.Done():
				err = ctx.Err()
				return
			}
		}
	}()
	for rerr := range s.client.RemoveObjects(ctx, s.bucket, keys, minio.RemoveObjectsOptions{}) {
		if rerr.Err != nil && ferry.ErrorCode(s.mapErr(rerr.Err, "")) != ferry.ENOTFOUND {
			return s.mapErr(rerr.Err, objectName(rerr.ObjectName))
		}
	}
	return s.mapErr(<-listErr, fmt.Sprintf("objects under %q", prefix))
}

// Ping checks that the server answers and the bucket exists.
func (s *Store) Ping(ctx context.Context) error {
	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return s.mapErr(err, "bucket "+s.bucket)
	}
	if !exists {
		return ferry.Errorf(ferry.EUNAVAILABLE, "S3 at %s has no bucket %q", s.endpoint, s.bucket)
	}
	return nil
}

func objectName(key string) string { return fmt.Sprintf("object %q", key) }

// mapErr turns a minio-go error into a *ferry.Error; what names the object.
func (s *Store) mapErr(err error, what string) error {
	if err == nil {
		return nil
	}
	wrap := func(code, format string, args ...any) error {
		return ferry.Wrap(err, code, format, args...)
	}
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchKey", "NotFound":
		return wrap(ferry.ENOTFOUND, "%s not found", what)
	case "NoSuchBucket":
		return wrap(ferry.EUNAVAILABLE, "S3 at %s has no bucket %q", s.endpoint, s.bucket)
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return wrap(ferry.EUNAVAILABLE,
			"S3 at %s refused the credentials (check FERRY_S3_ACCESS_KEY and FERRY_S3_SECRET_KEY): %s", s.endpoint, resp.Code)
	case "EntityTooLarge":
		return wrap(ferry.ETOOLARGE, "%s is too large for S3", what)
	case "":
		// No S3 answer at all: the server could not be reached.
		reason := "unreachable"
		switch {
		case errors.Is(err, context.Canceled):
			reason = "request cancelled"
		case errors.Is(err, context.DeadlineExceeded):
			reason = "timed out"
		}
		var ue *url.Error
		if errors.As(err, &ue) && ue.Err != nil && reason == "unreachable" {
			reason = "unreachable: " + ue.Err.Error()
		}
		return wrap(ferry.EUNAVAILABLE, "S3 at %s is %s", s.endpoint, reason)
	}
	if resp.StatusCode >= 500 {
		return wrap(ferry.EUNAVAILABLE, "S3 at %s failed: %s", s.endpoint, resp.Code)
	}
	return wrap(ferry.EINTERNAL, "S3 error on %s: %s", what, resp.Code)
}
