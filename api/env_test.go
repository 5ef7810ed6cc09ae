package api_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/api"
	"github.com/ferry-faas/ferry/internal/testenv"
	"github.com/ferry-faas/ferry/metrics"
	"github.com/ferry-faas/ferry/storage/postgres"
	"github.com/ferry-faas/ferry/storage/postgres/pgtest"
	"github.com/ferry-faas/ferry/storage/s3"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	_ api.Store      = (*postgres.DB)(nil)
	_ api.ChainStore = (*postgres.DB)(nil)
)

// env is one API server on a fresh database and the shared test bucket.
type env struct {
	t     *testing.T
	db    *postgres.DB
	code  *s3.Store
	url   string
	admin string
	deps  api.Deps
	reg   *prometheus.Registry // the metrics the server observes
}

type envOption func(*api.Deps)

var envSeq int // tests of this package do not run in parallel

var dbNameRE = regexp.MustCompile(`[^a-z0-9_]+`)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	envSeq++ // a test may start several servers, each on its own database
	name := "ferry_test_api_" + strings.Trim(dbNameRE.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(name) > 58 {
		name = name[:58]
	}
	name += fmt.Sprintf("_%d", envSeq)
	db := pgtest.Open(t, name)
	ctx := ctxT(t)
	code, err := s3.New(ctx, s3.Config{Endpoint: testenv.S3Endpoint, AccessKey: testenv.S3AccessKey,
		SecretKey: testenv.S3SecretKey, Bucket: testenv.S3Bucket, MaxCodeSize: 1 << 20})
	if ferry.ErrorCode(err) == ferry.EUNAVAILABLE {
		testenv.Unavailable(t, "S3", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	admin, err := api.EnsureAdminKey(ctx, db, "")
	if err != nil || !regexp.MustCompile(`^fy_[0-9A-Za-z]{32}$`).MatchString(admin) {
		t.Fatalf("EnsureAdminKey = %q, %v", admin, err)
	}
	reg := metrics.NewRegistry()
	d := api.Deps{
		Store: db, Chains: db, Code: code,
		Ready:        map[string]func(context.Context) error{"postgres": db.Ping, "s3": code.Ping},
		Metrics:      metrics.New(reg),
		MaxBodyBytes: 64 << 10,
		MaxCodeBytes: 1 << 20,
		CancelWait:   2 * time.Second,
	}
	for _, o := range opts {
		o(&d)
	}
	srv := httptest.NewServer(api.New(d))
	t.Cleanup(srv.Close)
	return &env{t: t, db: db, code: code, url: srv.URL, admin: admin, deps: d, reg: reg}
}

// newEnvOn starts another API server on base's database and bucket.
func newEnvOn(t *testing.T, base *env, opts ...envOption) *env {
	t.Helper()
	d := base.deps
	for _, o := range opts {
		o(&d)
	}
	srv := httptest.NewServer(api.New(d))
	t.Cleanup(srv.Close)
	return &env{t: t, db: base.db, code: base.code, url: srv.URL, admin: base.admin, deps: d}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// response is a decoded API answer.
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r response) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r response) errMessage() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

func (r response) str(k string) string {
	s, _ := r.body[k].(string)
	return s
}

func (r response) list(k string) []any {
	l, _ := r.body[k].([]any)
	return l
}

// do sends a request; body may be nil, []byte, string, or anything to marshal as JSON.
func (e *env) do(method, path, key string, body any, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ctype = bytes.NewReader(b), "application/json"
	case string:
		rd, ctype = strings.NewReader(b), "application/json"
	case *multipartBody:
		rd, ctype = bytes.NewReader(b.buf.Bytes()), b.ctype
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequestWithContext(ctxT(e.t), method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// want checks the status (and for errors the code) of a response.
func (e *env) want(r response, status int, what string) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("%s: status %d, want %d; body %s", what, r.status, status, r.raw)
	}
	if status >= 400 {
		if r.errCode() == "" || r.errMessage() == "" {
			e.t.Fatalf("%s: error body %s lacks code or message", what, r.raw)
		}
	}
}

// adminID is the id of the admin key the env bootstrapped.
func (e *env) adminID() uuid.UUID {
	e.t.Helper()
	keys, err := e.db.ListKeys(ctxT(e.t))
	if err != nil || len(keys) == 0 {
		e.t.Fatalf("keys: %v, %v", keys, err)
	}
	return keys[0].ID
}

// newKey creates a key with the admin key and returns its secret and id.
func (e *env) newKey(role ferry.Role, name string) (string, string) {
	e.t.Helper()
	r := e.do("POST", "/v1/keys", e.admin, map[string]any{"name": name, "role": role})
	e.want(r, 201, "create key")
	return r.str("key"), r.str("id")
}

// Function sources used by the tests.
const (
	pySource   = "def handler(event, context):\n    return {'hello': event.get('name', 'world')}\n"
	nodeSource = "exports.handler = async (event) => ({ hello: event.name || 'world' });\n"
	goSource   = "package main\n\nimport \"context\"\n\nfunc Handle(ctx context.Context, event map[string]any) (map[string]any, error) {\n\treturn map[string]any{\"hello\": event[\"name\"]}, nil\n}\n"
)

func zipOf(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, content := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(content))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tarGzOf(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(content))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	_ = gz.Close()
	return buf.Bytes()
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

type multipartBody struct {
	buf   bytes.Buffer
	ctype string
}

// multipartOf builds a deploy form; fields are name/value pairs.
func multipartOf(t *testing.T, filename string, code []byte, fields ...string) *multipartBody {
	m := &multipartBody{}
	mw := multipart.NewWriter(&m.buf)
	for i := 0; i+1 < len(fields); i += 2 {
		_ = mw.WriteField(fields[i], fields[i+1])
	}
	fw, err := mw.CreateFormFile("code", filename)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(code)
	_ = mw.Close()
	m.ctype = mw.FormDataContentType()
	return m
}

// countFunctions reads the store directly: "creates nothing" is checked there.
func (e *env) countFunctions() int {
	e.t.Helper()
	fns, _, err := e.db.ListFunctions(ctxT(e.t), ferry.Viewer{}, ferry.Page{Limit: 200})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(fns)
}

// codeExists reports whether any function's code in the bucket is data.
func (e *env) codeExists(data []byte) bool {
	e.t.Helper()
	keys, err := e.code.Keys(ctxT(e.t), "functions/")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, k := range keys {
		if strings.HasSuffix(k, "/code/"+s3.Checksum(data)) {
			return true
		}
	}
	return false
}

func apiEnsure(e *env, fromEnv string) (string, error) {
	return api.EnsureAdminKey(ctxT(e.t), e.db, fromEnv)
}
