package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	enumspb "go.temporal.io/api/enums/v1"
	"google.golang.org/protobuf/proto"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/runtimes"
	"github.com/ferry-faas/ferry/secrets"
)

// pySecret answers a digest of its secret and says only the value's length.
const pySecret = `import hashlib, os
def handler(event, context):
    v = os.environ["DB_PASSWORD"]
    print("secret of length", len(v))
    return {"sha256": hashlib.sha256(v.encode()).hexdigest()}
`

func newSecretsKey(t *testing.T) string {
	b := make([]byte, secrets.KeySize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// syncBuffer collects a server's whole log (debug included) for the search.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startLogged starts a server whose log, at debug level, goes to buf.
func startLogged(t *testing.T, cfg Config, buf io.Writer) *testServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.MultiWriter(buf, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := start(ctx, cfg, roles{api: true, worker: true}, log)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.serve(sctx) }()
	t.Cleanup(func() {
		stop()
		<-done
		a.close(context.Background())
	})
	return &testServer{app: a, cfg: cfg}
}

func TestE2ESecretsNeverLeak(t *testing.T) {
	cfg := testConfig(t, "e2e_secrets")
	oldKey := newSecretsKey(t)
	cfg.SecretsKey = oldKey
	var logs syncBuffer
	s := startLogged(t, cfg, &logs)
	s.requireImage(t, runtimes.DefaultImages[ferry.RuntimePython])

	// Every answer of the API in this test, searched at the end.
	var answers bytes.Buffer
	call := func(method, path string, body any, wantStatus int) []byte {
		t.Helper()
		resp := s.do(t, method, path, body, nil)
		b, _ := io.ReadAll(resp.Body)
		answers.Write(b)
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: %s %s, want %d", method, path, resp.Status, b, wantStatus)
		}
		return b
	}
	value := "pw-" + uuid.NewString()
	digest := func(v string) string { sum := sha256.Sum256([]byte(v)); return hex.EncodeToString(sum[:]) }

	call(http.MethodPut, "/v1/secrets/DB_PASSWORD", map[string]any{"value": value}, http.StatusCreated)
	call(http.MethodPut, "/v1/secrets/bad-name", map[string]any{"value": "x"}, http.StatusBadRequest)
	call(http.MethodGet, "/v1/secrets", nil, http.StatusOK)
	call(http.MethodGet, "/v1/secrets/DB_PASSWORD", nil, http.StatusOK)
	body := map[string]any{"name": "reads-secret", "runtime": "python", "handler": "app.handler", "filename": "app.py",
		"code": base64.StdEncoding.EncodeToString([]byte(pySecret)), "secrets": []string{"DB_PASSWORD"}}
	call(http.MethodPost, "/v1/functions", body, http.StatusCreated)
	body["secrets"] = []string{"NOPE"}
	if b := call(http.MethodPost, "/v1/functions", body, http.StatusBadRequest); !strings.Contains(string(b), `secret \"NOPE\" not found`) {
		t.Fatalf("deploy naming a missing secret: %s", b)
	}
	body["secrets"] = []string{"DB_PASSWORD"}
	call(http.MethodPost, "/v1/functions", body, http.StatusCreated)

	// An invoker cannot read the names; a developer cannot attach another's secret.
	invoker, _ := s.newKey(t, ferry.RoleInvoker)
	developer, _ := s.newKey(t, ferry.RoleDeveloper)
	for _, tc := range []struct {
		key, method, path string
		body              any
		want              int
	}{
		{invoker, http.MethodGet, "/v1/secrets", nil, http.StatusForbidden},
		{invoker, http.MethodPut, "/v1/secrets/X", map[string]any{"value": "v"}, http.StatusForbidden},
		{developer, http.MethodPut, "/v1/secrets/DB_PASSWORD", map[string]any{"value": "stolen"}, http.StatusForbidden},
		{developer, http.MethodDelete, "/v1/secrets/DB_PASSWORD", nil, http.StatusForbidden},
		{developer, http.MethodPost, "/v1/functions", map[string]any{"name": "thief", "runtime": "python", "handler": "app.handler",
			"filename": "app.py", "code": base64.StdEncoding.EncodeToString([]byte(pySecret)), "secrets": []string{"DB_PASSWORD"}}, http.StatusForbidden},
		{developer, http.MethodGet, "/v1/secrets", nil, http.StatusOK},
	} {
		resp := s.do(t, tc.method, tc.path, tc.body, nil, "Authorization", "Bearer "+tc.key)
		b, _ := io.ReadAll(resp.Body)
		answers.Write(b)
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s as %.6s: %s %s, want %d", tc.method, tc.path, tc.key, resp.Status, b, tc.want)
		}
	}
	// In use: not deleted.
	call(http.MethodDelete, "/v1/secrets/DB_PASSWORD", nil, http.StatusConflict)

	var ids []string
	invoke := func(want string) {
		t.Helper()
		b := call(http.MethodPost, "/v1/functions/reads-secret/invoke", map[string]any{}, http.StatusOK)
		var inv ferry.Invocation
		if err := json.Unmarshal(b, &inv); err != nil || inv.Status != ferry.StatusCompleted || !strings.Contains(string(inv.Result), digest(want)) {
			t.Fatalf("invoke: %s (%v)", b, err)
		}
		ids = append(ids, inv.ID.String())
	}
	for i := 0; i < 20; i++ {
		invoke(value)
	}
	// A new value reaches the next invocation, without a deploy.
	newValue := "pw2-" + uuid.NewString()
	call(http.MethodPut, "/v1/secrets/DB_PASSWORD", map[string]any{"value": newValue}, http.StatusOK)
	invoke(newValue)

	// Read everything a user or operator could read.
	call(http.MethodGet, "/v1/functions/reads-secret", nil, http.StatusOK)
	call(http.MethodGet, "/v1/functions/reads-secret/versions", nil, http.StatusOK)
	call(http.MethodGet, "/v1/invocations?function=reads-secret&limit=200", nil, http.StatusOK)
	for _, id := range ids {
		call(http.MethodGet, "/v1/invocations/"+id, nil, http.StatusOK)
		if b := call(http.MethodGet, "/v1/invocations/"+id+"/logs", nil, http.StatusOK); !strings.Contains(string(b), "secret of length") {
			t.Fatalf("logs of %s: %s", id, b)
		}
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var records, stored string
	if err := conn.QueryRow(ctx, `SELECT string_agg(row_to_json(i)::text, E'\n') FROM invocations i`).Scan(&records); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT string_agg(row_to_json(s)::text || encode(s.sealed, 'escape'), E'\n') FROM secrets s`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	var history bytes.Buffer
	for _, id := range ids {
		it := s.temporal.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		n := 0
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			b, err := proto.Marshal(ev) // payloads as raw bytes
			if err != nil {
				t.Fatal(err)
			}
			history.Write(b)
			n++
		}
		if n == 0 {
			t.Fatalf("no history for %s", id)
		}
	}
	for _, v := range []string{value, newValue} {
		for what, text := range map[string]string{"API answers": answers.String(), "server log": logs.String(),
			"invocation records": records, "secrets table": stored, "Temporal history": history.String()} {
			if len(text) == 0 {
				t.Fatalf("%s: nothing to search", what)
			}
			if strings.Contains(text, v) || strings.Contains(text, base64.StdEncoding.EncodeToString([]byte(v))) {
				t.Errorf("a secret's value appears in the %s", what)
			}
		}
	}
	t.Logf("searched %d B of API answers, %d B of log, %d B of records, %d B of Temporal history of %d invocations",
		answers.Len(), len(logs.String()), len(records), history.Len(), len(ids))

	// Start-up refuses a missing or wrong key, naming it.
	for _, tc := range []struct{ key, old, want string }{
		{"", "", "FERRY_SECRETS_KEY is not set, but the database holds secrets (1 sealed with key"},
		{newSecretsKey(t), "", "is not the key the stored secrets were sealed with"},
		{"not-base64!", "", "FERRY_SECRETS_KEY: not base64"},
		{base64.StdEncoding.EncodeToString([]byte("short")), "", "the key is 5 bytes, want 32"},
	} {
		c := cfg
		c.SecretsKey, c.SecretsOldKeys = tc.key, tc.old
		c.TaskQueue += "-x"
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		a, err := start(sctx, c, roles{api: true}, slog.New(slog.DiscardHandler))
		cancel()
		if err == nil {
			a.close(ctx)
			t.Fatalf("start with key %q: no error", tc.key)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("start with key %q: %v, want %q", tc.key, err, tc.want)
		}
	}

	// Rotation: a server with the new key and the old one re-encrypts at start;
	// then the new key alone is enough.
	rotated := cfg
	rotated.SecretsKey, rotated.SecretsOldKeys = newSecretsKey(t), oldKey
	rotated.TaskQueue += "-rotated"
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	a, err := start(sctx, rotated, roles{api: true}, slog.New(slog.DiscardHandler))
	cancel()
	if err != nil {
		t.Fatalf("start with the new key and the old one: %v", err)
	}
	a.close(ctx)
	newKey, _ := secrets.ParseKey("", rotated.SecretsKey)
	var keyID string
	if err := conn.QueryRow(ctx, `SELECT key_id FROM secrets WHERE name = 'DB_PASSWORD'`).Scan(&keyID); err != nil || keyID != secrets.KeyID(newKey) {
		t.Fatalf("after rotation the secret is sealed with key %q (%v), want %s", keyID, err, secrets.KeyID(newKey))
	}
	rotated.SecretsOldKeys = ""
	sctx, cancel = context.WithTimeout(ctx, time.Minute)
	a, err = start(sctx, rotated, roles{api: true}, slog.New(slog.DiscardHandler))
	cancel()
	if err != nil {
		t.Fatalf("start with the new key alone after the rotation: %v", err)
	}
	a.close(ctx)
	keys, err := rotated.keyring()
	if err != nil {
		t.Fatal(err)
	}
	got, err := (&secrets.Vault{Store: s.db, Keys: keys}).Resolve(ctx, []string{"DB_PASSWORD"})
	if err != nil || got["DB_PASSWORD"] != newValue {
		t.Fatalf("the new key alone does not open the rotated secret: %v", err)
	}
}
