package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/api"
	"github.com/ferry-faas/ferry/internal/testenv"
	"github.com/ferry-faas/ferry/storage/postgres/pgtest"
	"github.com/ferry-faas/ferry/storage/s3"
)

type cliResult struct {
	stdout, stderr string
	code           int
	err            error
}

// runCLI runs one client command the way main does and returns its output and exit code.
func runCLI(t *testing.T, baseURL, key string, args ...string) cliResult {
	t.Helper()
	root := &cobra.Command{Use: "ferry", SilenceErrors: true, SilenceUsage: true}
	root.AddCommand(clientCommands()...)
	if baseURL != "" {
		args = append(args, "--url", baseURL)
	}
	if key != "" {
		args = append(args, "--api-key", key)
	}
	root.SetArgs(args)
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(`{"from": "stdin"}`))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := root.ExecuteContext(ctx)
	r := cliResult{stdout: out.String(), stderr: errb.String(), err: err}
	var ec exitCoder
	switch {
	case err == nil:
	case errors.As(err, &ec):
		r.code = ec.ExitCode()
	default:
		r.code = -1
	}
	return r
}

func (r cliResult) want(t *testing.T, code int, what string) cliResult {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d (err %v), want %d\nstdout: %s\nstderr: %s", what, r.code, r.err, code, r.stdout, r.stderr)
	}
	return r
}

// apiServer is the real API (no Temporal) on a fresh database and the test bucket.
func apiServer(t *testing.T) (string, string) {
	t.Helper()
	db := pgtest.Open(t, "ferry_test_client")
	ctx := context.Background()
	code, err := s3.New(ctx, s3.Config{Endpoint: testenv.S3Endpoint, AccessKey: testenv.S3AccessKey,
		SecretKey: testenv.S3SecretKey, Bucket: testenv.S3Bucket})
	if ferry.ErrorCode(err) == ferry.EUNAVAILABLE {
		testenv.Unavailable(t, "S3", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	admin, err := api.EnsureAdminKey(ctx, db, "")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Deps{Store: db, Chains: db, Code: code}))
	t.Cleanup(srv.Close)
	return srv.URL, admin
}

func TestClientCommandsAgainstAPI(t *testing.T) {
	url, admin := apiServer(t)
	dir := t.TempDir()
	fnDir := filepath.Join(dir, "Hello_World")
	cliMust(t, os.MkdirAll(filepath.Join(fnDir, "lib"), 0o755))
	cliMust(t, os.MkdirAll(filepath.Join(fnDir, ".git"), 0o755))
	cliMust(t, os.WriteFile(filepath.Join(fnDir, "app.py"), []byte("from lib import util\ndef handler(event, context):\n    return util.X\n"), 0o644))
	cliMust(t, os.WriteFile(filepath.Join(fnDir, "lib", "util.py"), []byte("X = 1\n"), 0o644))
	cliMust(t, os.WriteFile(filepath.Join(fnDir, ".git", "HEAD"), []byte("ref: x\n"), 0o644))
	jsFile := filepath.Join(dir, "greet.js")
	cliMust(t, os.WriteFile(jsFile, []byte("exports.handler = async (e) => e;\n"), 0o644))

	// A folder is packed; the name defaults to the folder's.
	r := runCLI(t, url, admin, "deploy", fnDir, "--runtime", "python", "--handler", "app.handler").want(t, 0, "deploy folder")
	if !strings.HasPrefix(r.stdout, "Deployed hello-world version 1 (python, handler app.handler") {
		t.Errorf("deploy output: %q", r.stdout)
	}
	// The same folder again: a new version with the same checksum (reproducible archive).
	runCLI(t, url, admin, "deploy", fnDir, "--name", "hello-world", "--runtime", "python", "--handler", "app.handler").want(t, 0, "redeploy")
	r = runCLI(t, url, admin, "versions", "hello-world", "-o", "json").want(t, 0, "versions json")
	var vs struct {
		Versions []ferry.Version `json:"versions"`
	}
	cliMust(t, json.Unmarshal([]byte(r.stdout), &vs))
	if len(vs.Versions) != 2 || vs.Versions[0].Version != 2 || vs.Versions[0].Checksum != vs.Versions[1].Checksum {
		t.Errorf("versions: %+v", vs.Versions)
	}
	r = runCLI(t, url, admin, "versions", "hello-world").want(t, 0, "versions table")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "VERSION") {
		t.Errorf("versions table: %q", r.stdout)
	}

	// A single file with limits and env.
	runCLI(t, url, admin, "deploy", jsFile, "--runtime", "nodejs", "--handler", "greet.handler", "--timeout", "1m",
		"--memory", "256", "--env", "A=1", "--env", "B=x=y", "--network", "--description", "greets").want(t, 0, "deploy file")
	r = runCLI(t, url, admin, "get", "greet", "-o", "json").want(t, 0, "get json")
	var v ferry.Version
	cliMust(t, json.Unmarshal([]byte(r.stdout), &v))
	if v.Limits.TimeoutSeconds != 60 || v.Limits.MemoryMB != 256 || !v.Limits.Network ||
		v.Env["A"] != "1" || v.Env["B"] != "x=y" || v.Description != "greets" {
		t.Errorf("get greet: %+v", v)
	}
	r = runCLI(t, url, admin, "get", "greet").want(t, 0, "get table")
	if !strings.Contains(r.stdout, "env B") || !strings.Contains(r.stdout, "timeout_seconds  60") {
		t.Errorf("get table: %q", r.stdout)
	}
	// What the API refuses is an API error (exit 3) naming the field: a
	// negative --version showed the latest version instead.
	r = runCLI(t, url, admin, "get", "greet", "--version", "-1").want(t, exitAPI, "negative version")
	if !strings.Contains(r.err.Error(), "version: must be an integer between 1 and 2147483647") {
		t.Errorf("negative version: %v", r.err)
	}
	r = runCLI(t, url, admin, "deploy", jsFile, "--runtime", "nodejs", "--handler", "greet.handler", "--env", "FERRY_SOCKET=/x").want(t, exitAPI, "reserved env")
	if !strings.Contains(r.err.Error(), "env: FERRY_SOCKET is reserved") {
		t.Errorf("reserved env: %v", r.err)
	}
	// A chain file with a key given twice is refused before it is sent (the
	// conversion to JSON kept the last one); the API's errors name the step.
	dupFile := filepath.Join(dir, "dup.yaml")
	cliMust(t, os.WriteFile(dupFile, []byte("name: c\nsteps:\n- function: greet\n  function: hello-world\n"), 0o644))
	r = runCLI(t, url, admin, "chain", "deploy", dupFile).want(t, exitUsage, "duplicate key in a chain file")
	if !strings.Contains(r.err.Error(), `mapping key "function" already defined at line 3`) {
		t.Errorf("duplicate key in a chain file: %v", r.err)
	}
	bogusFile := filepath.Join(dir, "bogus.json")
	cliMust(t, os.WriteFile(bogusFile, []byte(`{"name": "c", "steps": [{"function": "greet"}, {"function": "greet", "bogus": 1}]}`), 0o644))
	r = runCLI(t, url, admin, "chain", "deploy", bogusFile).want(t, exitAPI, "unknown field in a chain file")
	if !strings.Contains(r.err.Error(), "steps[1].bogus: unknown field") {
		t.Errorf("unknown field in a chain file: %v", r.err)
	}
	r = runCLI(t, url, admin, "ls").want(t, 0, "ls")
	if !strings.Contains(r.stdout, "greet ") || !strings.Contains(r.stdout, "hello-world") || !strings.HasPrefix(r.stdout, "NAME") {
		t.Errorf("ls: %q", r.stdout)
	}

	// Keys: create (secret on stdout once), list, use, revoke.
	r = runCLI(t, url, admin, "keys", "create", "--role", "invoker", "--name", "ci").want(t, 0, "keys create")
	invKey := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(invKey, "fy_") || len(invKey) != 35 || !strings.Contains(r.stderr, "shown only this once") {
		t.Fatalf("keys create: %q / %q", r.stdout, r.stderr)
	}
	r = runCLI(t, url, admin, "keys", "list", "-o", "json").want(t, 0, "keys list")
	var keys struct {
		Keys []ferry.APIKey `json:"keys"`
	}
	cliMust(t, json.Unmarshal([]byte(r.stdout), &keys))
	var invID string
	for _, k := range keys.Keys {
		if k.Name == "ci" && k.Prefix == invKey[:8] {
			invID = k.ID.String()
		}
	}
	if invID == "" || strings.Contains(r.stdout, invKey) {
		t.Fatalf("keys list: %s", r.stdout)
	}
	r = runCLI(t, url, invKey, "get", "greet").want(t, exitAPI, "invoker without grant")
	if !strings.Contains(r.err.Error(), "HTTP 403") {
		t.Errorf("403 message: %v", r.err)
	}
	runCLI(t, url, invKey, "keys", "list").want(t, exitAPI, "invoker lists keys")
	runCLI(t, url, admin, "keys", "revoke", invID).want(t, 0, "revoke")
	runCLI(t, url, invKey, "ls").want(t, exitAPI, "revoked key")
	r = runCLI(t, url, "", "ls").want(t, exitAPI, "no key")
	if !strings.Contains(r.err.Error(), "FERRY_API_KEY") {
		t.Errorf("401 without key should hint at FERRY_API_KEY: %v", r.err)
	}

	// Errors: API refusals are 3, usage errors 2, server trouble 4.
	r = runCLI(t, url, admin, "deploy", jsFile, "--runtime", "cobol", "--handler", "greet.handler").want(t, exitAPI, "bad runtime")
	if !strings.Contains(r.err.Error(), "runtime: must be one of") {
		t.Errorf("bad runtime message: %v", r.err)
	}
	runCLI(t, url, admin, "deploy", jsFile).want(t, exitUsage, "deploy without runtime")
	runCLI(t, url, admin, "deploy", filepath.Join(dir, "missing")).want(t, exitUsage, "deploy a missing path")
	runCLI(t, url, admin, "deploy", jsFile, "--runtime", "nodejs", "--handler", "greet.handler", "--timeout", "1.5s").want(t, exitUsage, "bad timeout")
	runCLI(t, url, admin, "get").want(t, exitUsage, "get without a name")
	runCLI(t, url, admin, "ls", "--nope").want(t, exitUsage, "unknown flag")
	runCLI(t, url, admin, "ls", "-o", "yaml").want(t, exitUsage, "bad output")
	runCLI(t, "http://127.0.0.1:1", admin, "ls").want(t, exitServer, "unreachable server")
	runCLI(t, url, admin, "invoke", "greet", "--data", "{}").want(t, exitServer, "invoke without Temporal (503)")

	r = runCLI(t, url, admin, "invocations", "-o", "json").want(t, 0, "invocations")
	if strings.TrimSpace(r.stdout) != "{\n  \"invocations\": []\n}" {
		t.Errorf("invocations: %q", r.stdout)
	}
	runCLI(t, url, admin, "rm", "greet").want(t, 0, "rm")
	runCLI(t, url, admin, "get", "greet").want(t, exitAPI, "get removed")
}

// Invocation ids of the fake API: UUIDs, as the API's.
const (
	idOK    = "0190a000-0000-7000-8000-000000000001"
	idAsync = "0190a000-0000-7000-8000-000000000002"
	idFail  = "0190a000-0000-7000-8000-000000000003"
	idSlow  = "0190a000-0000-7000-8000-000000000004"
	idNew   = "0190a000-0000-7000-8000-000000000005"
	idAbc   = "0190a000-0000-7000-8000-000000000006"
	idDone  = "0190a000-0000-7000-8000-000000000007"
	idOld   = "0190a000-0000-7000-8000-000000000008"
)

// fakeInvokeAPI answers invoke, invocations, logs, cancel and retry with
// canned records, to check the CLI's output and exit codes.
func fakeInvokeAPI(t *testing.T) (*httptest.Server, *atomic.Value) {
	var last atomic.Value // the last invoke request
	polls := atomic.Int32{}
	inv := func(id, status string, extra string) string {
		return `{"id":"` + id + `","function":"f","version":1,"status":"` + status + `"` + extra + `}`
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/functions/{name}/invoke", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		last.Store(r.URL.RawQuery + "|" + r.Header.Get("Idempotency-Key") + "|" + string(body))
		w.Header().Set("Content-Type", "application/json")
		switch r.PathValue("name") {
		case "ok":
			if r.URL.Query().Get("async") == "true" {
				w.WriteHeader(202)
				io.WriteString(w, inv(idAsync, "pending", ""))
				return
			}
			io.WriteString(w, inv(idOK, "completed", `,"result":{"hello":"world"},"metrics":{"duration_ms":1.5}`))
		case "fail":
			io.WriteString(w, inv(idFail, "failed", `,"error":{"type":"ValueError","message":"bad input","stack":"line 1"}`))
		case "slow":
			w.WriteHeader(202)
			io.WriteString(w, inv(idSlow, "running", ""))
		case "broken":
			w.WriteHeader(500)
			io.WriteString(w, `{"error":{"code":"internal","message":"internal error"}}`)
		}
	})
	mux.HandleFunc("GET /v1/invocations/"+idSlow, func(w http.ResponseWriter, r *http.Request) {
		if polls.Add(1) < 3 {
			io.WriteString(w, inv(idSlow, "running", ""))
			return
		}
		io.WriteString(w, inv(idSlow, "timeout", `,"error":{"type":"Timeout","message":"took too long"}`))
	})
	mux.HandleFunc("GET /v1/invocations/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"id":"`+idOK+`","status":"completed","logs":"line one\nline two\n"}`)
	})
	mux.HandleFunc("POST /v1/invocations/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == idDone {
			w.WriteHeader(409)
			io.WriteString(w, `{"error":{"code":"conflict","message":"invocation done is already completed"}}`)
			return
		}
		io.WriteString(w, inv(r.PathValue("id"), "cancelled", ""))
	})
	mux.HandleFunc("POST /v1/invocations/{id}/retry", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(202)
		io.WriteString(w, inv(idNew, "pending", `,"retry_of":"`+r.PathValue("id")+`"`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &last
}

func TestClientInvokeOutputAndExitCodes(t *testing.T) {
	srv, last := fakeInvokeAPI(t)
	url := srv.URL

	r := runCLI(t, url, "k", "invoke", "ok", "--data", `{"a":1}`, "--version", "2", "--idempotency-key", "K1").want(t, 0, "invoke ok")
	if strings.TrimSpace(r.stdout) != "{\n  \"hello\": \"world\"\n}" || !strings.Contains(r.stderr, idOK+" f v1: completed in 1.5 ms") {
		t.Errorf("invoke ok: stdout %q stderr %q", r.stdout, r.stderr)
	}
	if got := last.Load(); got != `version=2|K1|{"a":1}` {
		t.Errorf("invoke request: %v", got)
	}
	dataFile := filepath.Join(t.TempDir(), "event.json")
	cliMust(t, os.WriteFile(dataFile, []byte(`{"from": "file"}`), 0o644))
	runCLI(t, url, "k", "invoke", "ok", "--data", "@"+dataFile).want(t, 0, "invoke @file")
	if got := last.Load(); got != `||{"from": "file"}` {
		t.Errorf("invoke @file request: %v", got)
	}
	runCLI(t, url, "k", "invoke", "ok", "--data", "@-").want(t, 0, "invoke @-")
	if got := last.Load(); got != `||{"from": "stdin"}` {
		t.Errorf("invoke @- request: %v", got)
	}
	runCLI(t, url, "k", "invoke", "ok", "--data", "{not json").want(t, exitUsage, "invalid --data")

	r = runCLI(t, url, "k", "invoke", "fail").want(t, exitFunctionFailed, "failed function")
	if !strings.Contains(r.err.Error(), "ValueError: bad input") || !strings.Contains(r.stderr, "line 1") {
		t.Errorf("failed: err %v stderr %q", r.err, r.stderr)
	}
	r = runCLI(t, url, "k", "invoke", "fail", "-o", "json").want(t, exitFunctionFailed, "failed function json")
	var rec ferry.Invocation
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil || rec.Status != "failed" {
		t.Errorf("failed json: %q", r.stdout)
	}
	r = runCLI(t, url, "k", "invoke", "ok", "--async").want(t, 0, "async")
	if strings.TrimSpace(r.stdout) != idAsync {
		t.Errorf("async: %q", r.stdout)
	}
	// The server answered 202 to a sync invoke: the CLI polls until the end.
	r = runCLI(t, url, "k", "invoke", "slow").want(t, exitFunctionFailed, "slow times out")
	if !strings.Contains(r.err.Error(), "timeout") {
		t.Errorf("slow: %v", r.err)
	}
	runCLI(t, url, "k", "invoke", "broken").want(t, exitServer, "server error")

	r = runCLI(t, url, "k", "logs", "x").want(t, 0, "logs")
	if r.stdout != "line one\nline two\n" {
		t.Errorf("logs: %q", r.stdout)
	}
	r = runCLI(t, url, "k", "cancel", idAbc).want(t, 0, "cancel")
	if strings.TrimSpace(r.stdout) != idAbc+" cancelled" {
		t.Errorf("cancel: %q", r.stdout)
	}
	r = runCLI(t, url, "k", "cancel", idDone).want(t, exitAPI, "cancel a final one")
	if !strings.Contains(r.err.Error(), "already completed (HTTP 409)") {
		t.Errorf("cancel 409: %v", r.err)
	}
	r = runCLI(t, url, "k", "retry", idOld).want(t, 0, "retry")
	if strings.TrimSpace(r.stdout) != idNew {
		t.Errorf("retry: %q", r.stdout)
	}
}

func TestPackDirIsReproducible(t *testing.T) {
	dir := t.TempDir()
	cliMust(t, os.WriteFile(filepath.Join(dir, "a.py"), []byte("A"), 0o644))
	a, err := packDir(dir)
	cliMust(t, err)
	future := time.Now().Add(time.Hour)
	cliMust(t, os.Chtimes(filepath.Join(dir, "a.py"), future, future))
	b, err := packDir(dir)
	cliMust(t, err)
	if !bytes.Equal(a, b) {
		t.Error("packing the same content twice gave different archives")
	}
	if got := defaultName("/x/Hello_World.tar.gz"); got != "hello-world" {
		t.Errorf("defaultName = %q", got)
	}
}

func cliMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
