package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
)

const pyCLI = `import time

def handler(event, context):
    print("cli handler got", event)
    op = (event or {}).get("op")
    if op == "fail":
        raise ValueError("asked to fail")
    if op == "sleep":
        time.sleep(event["seconds"])
    return {"hello": (event or {}).get("name", "world")}
`

// TestCLIEndToEnd drives the client commands against a whole Ferry (API,
// Temporal, worker, Docker) in this process.
func TestCLIEndToEnd(t *testing.T) {
	s := startTestServer(t, "e2e_cli")
	url, key := s.URL(), testAdminKey
	dir := filepath.Join(t.TempDir(), "cli-fn")
	cliMust(t, os.MkdirAll(dir, 0o755))
	cliMust(t, os.WriteFile(filepath.Join(dir, "app.py"), []byte(pyCLI), 0o644))
	runCLI(t, url, key, "deploy", dir, "--runtime", "python", "--handler", "app.handler", "--timeout", "20").want(t, 0, "deploy")
	runCLI(t, url, key, "deploy", dir, "--name", "cli-short", "--runtime", "python", "--handler", "app.handler", "--timeout", "1").want(t, 0, "deploy short")

	r := runCLI(t, url, key, "invoke", "cli-fn", "--data", `{"name": "cli"}`).want(t, 0, "invoke")
	if strings.TrimSpace(r.stdout) != "{\n  \"hello\": \"cli\"\n}" || !strings.Contains(r.stderr, "completed") {
		t.Fatalf("invoke: stdout %q stderr %q", r.stdout, r.stderr)
	}

	// A failing function: exit 1; retry re-runs it as a new, linked invocation.
	r = runCLI(t, url, key, "invoke", "cli-fn", "--data", `{"op": "fail"}`, "-o", "json").want(t, exitFunctionFailed, "failing invoke")
	var failed ferry.Invocation
	cliMust(t, json.Unmarshal([]byte(r.stdout), &failed))
	if failed.Status != "failed" || failed.Error == nil || failed.Error.Type != "ValueError" {
		t.Fatalf("failed invocation: %s", r.stdout)
	}
	r = runCLI(t, url, key, "retry", failed.ID.String()).want(t, 0, "retry")
	retried := waitCLI(t, url, strings.TrimSpace(r.stdout))
	if retried.Status != "failed" || retried.RetryOf == nil || *retried.RetryOf != failed.ID {
		t.Errorf("retried invocation: %+v", retried)
	}

	// Timeout: exit 1 with status timeout.
	r = runCLI(t, url, key, "invoke", "cli-short", "--data", `{"op": "sleep", "seconds": 5}`).want(t, exitFunctionFailed, "timeout")
	if !strings.Contains(r.err.Error(), "timeout") {
		t.Errorf("timeout error: %v", r.err)
	}

	// Async, then the logs.
	r = runCLI(t, url, key, "invoke", "cli-fn", "--async", "--data", `{"name": "async"}`).want(t, 0, "async")
	id := strings.TrimSpace(r.stdout)
	if inv := waitCLI(t, url, id); inv.Status != "completed" {
		t.Fatalf("async invocation: %+v", inv)
	}
	r = runCLI(t, url, key, "logs", id).want(t, 0, "logs")
	if !strings.Contains(r.stdout, "cli handler got {'name': 'async'}") {
		t.Errorf("logs: %q", r.stdout)
	}

	// The same idempotency key twice: one invocation.
	a := runCLI(t, url, key, "invoke", "cli-fn", "--idempotency-key", "once", "-o", "json").want(t, 0, "idempotent 1")
	b := runCLI(t, url, key, "invoke", "cli-fn", "--idempotency-key", "once", "-o", "json").want(t, 0, "idempotent 2")
	var ia, ib ferry.Invocation
	cliMust(t, json.Unmarshal([]byte(a.stdout), &ia))
	cliMust(t, json.Unmarshal([]byte(b.stdout), &ib))
	if ia.ID == uuid.Nil || ia.ID != ib.ID {
		t.Errorf("idempotency key gave %s and %s", ia.ID, ib.ID)
	}

	// Cancel a long one once it runs.
	r = runCLI(t, url, key, "invoke", "cli-fn", "--async", "--data", `{"op": "sleep", "seconds": 15}`).want(t, 0, "long async")
	long := strings.TrimSpace(r.stdout)
	deadline := time.Now().Add(30 * time.Second)
	for getCLI(t, url, long).Status != ferry.StatusRunning && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	r = runCLI(t, url, key, "cancel", long).want(t, 0, "cancel")
	if inv := waitCLI(t, url, long); inv.Status != "cancelled" {
		t.Errorf("cancelled invocation: %+v (cancel said %q)", inv, r.stdout)
	}
	runCLI(t, url, key, "cancel", long).want(t, exitAPI, "cancel twice")

	r = runCLI(t, url, key, "invocations", "--function", "cli-fn", "--status", "failed", "-o", "json").want(t, 0, "dead letters")
	var dl struct {
		Invocations []ferry.Invocation `json:"invocations"`
	}
	cliMust(t, json.Unmarshal([]byte(r.stdout), &dl))
	if len(dl.Invocations) != 2 {
		t.Errorf("failed invocations: %d, want 2 (the failure and its retry)", len(dl.Invocations))
	}
}

func getCLI(t *testing.T, url, id string) ferry.Invocation {
	t.Helper()
	root := runCLI(t, url, testAdminKey, "invocations", "--limit", "200", "-o", "json").want(t, 0, "invocations")
	var l struct {
		Invocations []ferry.Invocation `json:"invocations"`
	}
	cliMust(t, json.Unmarshal([]byte(root.stdout), &l))
	for _, inv := range l.Invocations {
		if inv.ID.String() == id {
			return inv
		}
	}
	t.Fatalf("invocation %s not listed", id)
	return ferry.Invocation{}
}

func waitCLI(t *testing.T, url, id string) ferry.Invocation {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		inv := getCLI(t, url, id)
		if inv.Status.Final() || time.Now().After(deadline) {
			return inv
		}
		time.Sleep(200 * time.Millisecond)
	}
}
