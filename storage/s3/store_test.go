package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/internal/testenv"
)

func config() Config {
	return Config{
		Endpoint:  testenv.S3Endpoint,
		AccessKey: testenv.S3AccessKey,
		SecretKey: testenv.S3SecretKey,
		Bucket:    testenv.S3Bucket,
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// open connects to the test S3 server; it skips (or fails under
// FERRY_REQUIRE_SERVICES) when the server is down.
func open(t *testing.T, c Config) *Store {
	t.Helper()
	s, err := New(ctxT(t), c)
	if ferry.ErrorCode(err) == ferry.EUNAVAILABLE {
		testenv.Unavailable(t, "S3", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := ferry.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPutGetDelete(t *testing.T) {
	s, ctx := open(t, config()), ctxT(t)
	key := "test/" + uuid.NewString() + "/blob"
	t.Cleanup(func() { s.Delete(context.Background(), key) })

	if ok, err := s.Exists(ctx, key); err != nil || ok {
		t.Fatalf("exists before put: %v, %v", ok, err)
	}
	_, err := s.Get(ctx, key)
	wantCode(t, err, ferry.ENOTFOUND)
	if !strings.Contains(ferry.ErrorMessage(err), key) {
		t.Errorf("message %q does not name the key", ferry.ErrorMessage(err))
	}

	data := randomBytes(t, 3<<20)
	if err := s.Put(ctx, key, data); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Exists(ctx, key); err != nil || !ok {
		t.Fatalf("exists after put: %v, %v", ok, err)
	}
	got, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes back, not the %d put", len(got), len(data))
	}
	if err := s.Put(ctx, key, []byte("replaced")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, key); string(got) != "replaced" {
		t.Fatalf("after overwrite: %q", got)
	}
	empty := key + "-empty"
	if err := s.Put(ctx, empty, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, empty); err != nil || len(got) != 0 {
		t.Fatalf("empty object: %q, %v", got, err)
	}

	for _, k := range []string{key, key, empty} { // twice: idempotent
		if err := s.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.Exists(ctx, key); err != nil || ok {
		t.Fatalf("exists after delete: %v, %v", ok, err)
	}
	_, err = s.Get(ctx, key)
	wantCode(t, err, ferry.ENOTFOUND)
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPutCodeDedup(t *testing.T) {
	s, ctx := open(t, config()), ctxT(t)
	code := append([]byte("def handler(event, context):\n    return event\n# "), []byte(uuid.NewString())...)

	key, sum, err := s.PutCode(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Delete(context.Background(), key) })
	if sum != Checksum(code) || len(sum) != 64 || key != "code/"+sum {
		t.Fatalf("key %q checksum %q", key, sum)
	}
	first, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// S3 times have one-second resolution: a second upload would move it.
	time.Sleep(1100 * time.Millisecond)
	key2, sum2, err := s.PutCode(ctx, code)
	if err != nil || key2 != key || sum2 != sum {
		t.Fatalf("second put: %q %q %v", key2, sum2, err)
	}
	second, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !second.LastModified.Equal(first.LastModified) {
		t.Fatalf("same bytes uploaded twice: last modified %v then %v", first.LastModified, second.LastModified)
	}
	got, err := s.Get(ctx, key)
	if err != nil || !bytes.Equal(got, code) {
		t.Fatalf("get code: %q, %v", got, err)
	}

	// Other bytes, other object.
	other := append(code, '\n')
	key3, _, err := s.PutCode(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Delete(context.Background(), key3) })
	if key3 == key {
		t.Fatal("different bytes share a key")
	}
}

func TestPutCodeSizeLimit(t *testing.T) {
	c := config()
	c.MaxCodeSize = 1000
	s, ctx := open(t, c), ctxT(t)
	_, _, err := s.PutCode(ctx, randomBytes(t, 1001))
	wantCode(t, err, ferry.ETOOLARGE)
	key, _, err := s.PutCode(ctx, randomBytes(t, 1000))
	if err != nil {
		t.Fatalf("code at the limit: %v", err)
	}
	s.Delete(ctx, key)
}

func TestNewCreatesBucket(t *testing.T) {
	c := config()
	c.Bucket = "ferry-test-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	s := open(t, c)
	ctx := ctxT(t)
	t.Cleanup(func() {
		if err := s.client.RemoveBucket(context.Background(), c.Bucket); err != nil {
			t.Logf("removing bucket %s: %v", c.Bucket, err)
		}
	})
	if ok, err := s.client.BucketExists(ctx, c.Bucket); err != nil || !ok {
		t.Fatalf("bucket %s not created: %v", c.Bucket, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// A second New finds the bucket and keeps it.
	if _, err := New(ctx, c); err != nil {
		t.Fatal(err)
	}
}

func TestUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := config()
	c.Endpoint = addr
	start := time.Now()
	_, err = New(ctxT(t), c)
	wantCode(t, err, ferry.EUNAVAILABLE)
	if msg := ferry.ErrorMessage(err); !strings.Contains(msg, addr) {
		t.Fatalf("message %q does not name %s", msg, addr)
	}
	t.Logf("closed port: %q after %v", ferry.ErrorMessage(err), time.Since(start))

	// Ping of a store whose server went away.
	client, err := minio.New(addr, &minio.Options{MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	gone := &Store{client: client, bucket: "ferry", endpoint: addr}
	err = gone.Ping(ctxT(t))
	wantCode(t, err, ferry.EUNAVAILABLE)
	if msg := ferry.ErrorMessage(err); !strings.Contains(msg, addr) {
		t.Fatalf("ping message %q does not name %s", msg, addr)
	}
}

func TestBadCredentials(t *testing.T) {
	if _, err := New(ctxT(t), config()); err != nil {
		testenv.Unavailable(t, "S3", err)
	}
	c := config()
	c.SecretKey = "wrong-" + c.SecretKey
	_, err := New(ctxT(t), c)
	wantCode(t, err, ferry.EUNAVAILABLE)
	if msg := ferry.ErrorMessage(err); !strings.Contains(msg, "FERRY_S3_SECRET_KEY") {
		t.Fatalf("message %q does not point at the credentials", msg)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{Endpoint: "", Bucket: "b"},
		{Endpoint: "ftp://host:21", Bucket: "b"},
		{Endpoint: "http://host:9000/path", Bucket: "b"},
		{Endpoint: "127.0.0.1:9000", Bucket: ""},
	} {
		_, err := New(ctxT(t), c)
		wantCode(t, err, ferry.EINVALID)
	}
	if ep, secure, err := parseEndpoint("https://s3.example.com", false); err != nil || ep != "s3.example.com" || !secure {
		t.Fatalf("https URL: %q %v %v", ep, secure, err)
	}
}
