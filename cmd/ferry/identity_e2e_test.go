package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// A function deleted and created again under its name is another function:
// nothing of the deleted one (cached version, unpacked code, warm container,
// idempotency key) serves the new one, although name and version number repeat.
func TestE2EDeletedFunctionNeverServesItsSuccessor(t *testing.T) {
	s := startTestServer(t, "e2e_identity")
	const codeA = `import os
def handler(event, context):
    return {"code": "A", "secret": os.environ.get("SECRET")}
`
	const codeB = `import os
def handler(event, context):
    return {"code": "B", "secret": os.environ.get("SECRET")}
`
	type answer struct{ Code, Secret string }
	invoke := func(label string, headers ...string) (invocationJSON, answer) {
		t.Helper()
		inv, resp := s.invoke(t, "x", map[string]any{}, headers...)
		if resp.StatusCode != http.StatusOK || inv.Status != "completed" {
			t.Fatalf("%s: %s %+v", label, resp.Status, inv)
		}
		var a answer
		if err := json.Unmarshal(inv.Result, &a); err != nil {
			t.Fatalf("%s: result %s: %v", label, inv.Result, err)
		}
		return inv, a
	}

	s.deploy(t, "x", "python", "app.handler", "app.py", codeA, map[string]any{"env": map[string]string{"SECRET": "a-secret"}})
	keyed, a := invoke("A keyed", "Idempotency-Key", "k1")
	if a != (answer{"A", "a-secret"}) {
		t.Fatalf("A's invocation answered %+v", a)
	}
	if warm, a := invoke("A warm"); a.Code != "A" || warm.Metrics == nil || warm.Metrics.Cold {
		t.Fatalf("A's second invocation: %+v metrics %+v (want a warm container)", a, warm.Metrics)
	}
	if resp := s.do(t, http.MethodDelete, "/v1/functions/x", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %s", resp.Status)
	}

	s.deploy(t, "x", "python", "app.handler", "app.py", codeB, map[string]any{"env": map[string]string{"SECRET": "b-secret"}})
	inv, b := invoke("B")
	if b != (answer{"B", "b-secret"}) {
		t.Fatalf("B's invocation answered %+v: it ran the deleted function", b)
	}
	if inv.Metrics == nil || !inv.Metrics.Cold {
		t.Fatalf("B's first invocation was not cold: %+v (a warm container of A's?)", inv.Metrics)
	}
	// The key A used names A's invocation only.
	again, b := invoke("B keyed", "Idempotency-Key", "k1")
	if again.ID == keyed.ID || b.Code != "B" {
		t.Fatalf("B's keyed invocation returned %s (A's was %s), answer %+v", again.ID, keyed.ID, b)
	}
}

// Byte-identical single-file bundles with different handler names are laid out
// per version, not per content: each runs.
func TestE2EIdenticalCodeDifferentHandlers(t *testing.T) {
	s := startTestServer(t, "e2e_same_bytes")
	const code = "def handler(event, context):\n    return {'ok': True}\n"
	s.deploy(t, "first", "python", "app.handler", "", code, nil)
	s.deploy(t, "second", "python", "main.handler", "", code, nil)
	s.deploy(t, "first", "python", "other.handler", "", code, nil) // a new version of the same bytes
	for _, name := range []string{"first", "second"} {
		inv, resp := s.invoke(t, name, map[string]any{})
		var got struct{ OK bool }
		if resp.StatusCode != http.StatusOK || inv.Status != "completed" || json.Unmarshal(inv.Result, &got) != nil || !got.OK {
			t.Fatalf("%s: %s %s (error %+v)", name, resp.Status, inv.Result, inv.Error)
		}
	}
	// One folder per version in the worker's code cache.
	dirs, err := filepath.Glob(filepath.Join(s.cfg.DataDir, "code", "src", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 2 {
		t.Fatalf("code cache folders %v, want one per invoked version (2)", dirs)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Fatal(err)
		}
	}
}
