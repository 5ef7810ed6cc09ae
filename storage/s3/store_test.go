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

func TestPutCodeDedupPerFunction(t *testing.T) {
	s, ctx := open(t, config()), ctxT(t)
	code := append([]byte("def handler(event, context):\n    return event\n# "), []byte(uuid.NewString())...)
	fn, other := uuid.New(), uuid.New()
	t.Cleanup(func() {
		s.DeletePrefix(context.Background(), FunctionPrefix(fn))
		s.DeletePrefix(context.Background(), FunctionPrefix(other))
	})

	key, sum, uploaded, err := s.PutCode(ctx, fn, code)
	if err != nil {
		t.Fatal(err)
	}
	if sum != Checksum(code) || len(sum) != 64 || key != "functions/"+fn.String()+"/code/"+sum || !uploaded {
		t.Fatalf("key %q checksum %q uploaded %v", key, sum, uploaded)
	}
	// The same bytes of the same function: stored once.
	key2, sum2, uploaded, err := s.PutCode(ctx, fn, code)
	if err != nil || key2 != key || sum2 != sum || uploaded {
		t.Fatalf("second put: %q %q uploaded %v, %v", key2, sum2, uploaded, err)
	}
	got, err := s.Get(ctx, key)
	if err != nil || !bytes.Equal(got, code) {
		t.Fatalf("get code: %q, %v", got, err)
	}
	// Other bytes, other object; the same bytes of another function: its own object.
	key3, _, _, err := s.PutCode(ctx, fn, append(code, '\n'))
	if err != nil || key3 == key {
		t.Fatalf("different bytes: key %q, %v", key3, err)
	}
	key4, _, uploaded, err := s.PutCode(ctx, other, code)
	if err != nil || key4 == key || !uploaded {
		t.Fatalf("another function's code: key %q uploaded %v, %v", key4, uploaded, err)
	}
	if _, _, _, err := s.PutCode(ctx, uuid.Nil, code); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Fatalf("code without a function id: %v", err)
	}

	// Deleting a function's prefix removes all of its objects, and only its.
	if err := s.Put(ctx, FunctionPrefix(fn)+"go/x/Handle/bootstrap", []byte("bin")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePrefix(ctx, FunctionPrefix(fn)); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{key, key3, FunctionPrefix(fn) + "go/x/Handle/bootstrap"} {
		if ok, err := s.Exists(ctx, k); err != nil || ok {
			t.Fatalf("%s after DeletePrefix: exists %v, %v", k, ok, err)
		}
	}
	if ok, err := s.Exists(ctx, key4); err != nil || !ok {
		t.Fatalf("the other function's code after DeletePrefix: exists %v, %v", ok, err)
	}
	if err := s.DeletePrefix(ctx, ""); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Fatalf("DeletePrefix(\"\") = %v, want invalid", err)
	}
}

func TestPutCodeSizeLimit(t *testing.T) {
	c := config()
	c.MaxCodeSize = 1000
	s, ctx := open(t, c), ctxT(t)
	fn := uuid.New()
	_, _, _, err := s.PutCode(ctx, fn, randomBytes(t, 1001))
	wantCode(t, err, ferry.ETOOLARGE)
	key, _, _, err := s.PutCode(ctx, fn, randomBytes(t, 1000))
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
