package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EEachRuntimeAndStatus deploys the README's examples in every runtime
// and functions that fail in each way, through the HTTP API, and checks the
// statuses the API reports.
func TestE2EEachRuntimeAndStatus(t *testing.T) {
	s := startTestServer(t, "e2e_runtimes")
	example := func(path string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", path))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	s.deploy(t, "hello-python", "python", "hello.handler", "hello.py", example("hello-python/hello.py"), nil)
	s.deploy(t, "hello-nodejs", "nodejs", "index.handler", "index.mjs", example("hello-nodejs/index.mjs"), nil)
	s.deploy(t, "hello-go", "go", "Handle", "main.go", example("hello-go/main.go"), map[string]any{"timeout_seconds": 30})
	for _, name := range []string{"hello-python", "hello-nodejs", "hello-go"} {
		inv, resp := s.invoke(t, name, map[string]string{"name": "Ferry"})
		var got struct{ Message string }
		_ = json.Unmarshal(inv.Result, &got)
		if resp.StatusCode != http.StatusOK || inv.Status != "completed" || got.Message != "Hello, Ferry!" {
			t.Errorf("%s: %s %s %s %+v", name, resp.Status, inv.Status, inv.Result, inv.Error)
		}
		var logs struct{ Logs string }
		s.do(t, http.MethodGet, "/v1/invocations/"+inv.ID+"/logs", nil, &logs)
		if !strings.Contains(logs.Logs, "greeting Ferry") {
			t.Errorf("%s logs: %q", name, logs.Logs)
		}
	}

	// Deleting a function deletes everything stored under its identity: its code
	// and its Go binary.
	var goFn struct{ ID string }
	var list struct {
		Functions []struct{ ID, Name string }
	}
	s.do(t, http.MethodGet, "/v1/functions", nil, &list)
	for _, f := range list.Functions {
		if f.Name == "hello-go" {
			goFn.ID = f.ID
		}
	}
	prefix := "functions/" + goFn.ID + "/"
	if keys, err := s.objects.Keys(context.Background(), prefix); err != nil || len(keys) != 2 {
		t.Errorf("objects of hello-go before its delete: %v, %v; want its code and its binary", keys, err)
	}
	if resp := s.do(t, http.MethodDelete, "/v1/functions/hello-go", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete hello-go: %s", resp.Status)
	}
	if keys, err := s.objects.Keys(context.Background(), prefix); err != nil || len(keys) != 0 || goFn.ID == "" {
		t.Errorf("objects of hello-go (id %q) after its delete: %v, %v", goFn.ID, keys, err)
	}

	for _, c := range []struct {
		name, code     string
		extra          map[string]any
		status, errTyp string
	}{
		{"raises", "def handler(e, c):\n    raise ValueError('bad input')\n", nil, "failed", "ValueError"},
		{"hangs", "import time\ndef handler(e, c):\n    time.sleep(30)\n", map[string]any{"timeout_seconds": 1}, "timeout", ""},
		{"hogs", "def handler(e, c):\n    x = []\n    while True:\n        x.append(bytearray(16 << 20))\n", map[string]any{"memory_mb": 64}, "failed", "OutOfMemory"},
	} {
		s.deploy(t, c.name, "python", "f.handler", "f.py", c.code, c.extra)
		inv, resp := s.invoke(t, c.name, map[string]any{})
		if resp.StatusCode != http.StatusOK || inv.Status != c.status || resp.Header.Get("Ferry-Function-Error") != "true" {
			t.Errorf("%s: %s status %s, want %s with Ferry-Function-Error", c.name, resp.Status, inv.Status, c.status)
			continue
		}
		if c.errTyp != "" && (inv.Error == nil || inv.Error.Type != c.errTyp) {
			t.Errorf("%s: error %+v, want type %s", c.name, inv.Error, c.errTyp)
		}
	}
}

// TestE2EHandlerPaths deploys handlers that name a file in a folder, as Lambda
// allows, and invokes them; a Go handler is a function name, and a path is
// refused with the reason.
func TestE2EHandlerPaths(t *testing.T) {
	s := startTestServer(t, "e2e_handler_paths")
	for _, c := range []struct {
		name, runtime, handler, file, code, want string
	}{
		{"py-src", "python", "src/app.handler", "src/app.py", "def handler(e, c):\n    return __name__\n", `"src.app"`},
		{"py-src-pkg", "python", "src/pkg/app.handler", "src/pkg/app.py", "def handler(e, c):\n    return __name__\n", `"src.pkg.app"`},
		{"node-src", "nodejs", "src/app.handler", "src/app.js", "exports.handler = async () => __filename;\n", `"/var/task/src/app.js"`},
		{"node-src-pkg", "nodejs", "src/pkg/app.handler", "src/pkg/app.mjs", "export const handler = async () => import.meta.url;\n", `"file:///var/task/src/pkg/app.mjs"`},
	} {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, err := zw.Create(c.file)
		if err == nil {
			_, err = w.Write([]byte(c.code))
		}
		if err == nil {
			err = zw.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		s.deploy(t, c.name, c.runtime, c.handler, "code.zip", buf.String(), nil)
		inv, resp := s.invoke(t, c.name, map[string]any{})
		if resp.StatusCode != http.StatusOK || inv.Status != "completed" || string(inv.Result) != c.want {
			t.Errorf("%s (%s): %s %s result %s, want %s; error %+v", c.name, c.handler, resp.Status, inv.Status, inv.Result, c.want, inv.Error)
		}
	}

	var refused struct {
		Error struct{ Code, Message string }
	}
	resp := s.do(t, http.MethodPost, "/v1/functions", map[string]any{"name": "go-src", "runtime": "go", "handler": "src/main.Handle",
		"filename": "main.go", "code": base64.StdEncoding.EncodeToString([]byte("package main\n\nfunc Handle() {}\n"))}, &refused)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(refused.Error.Message, `handler: go handler "src/main.Handle" must be the name of a function of package main at the bundle root (such as Handle), not a path`) {
		t.Errorf("go handler with a path: %s %+v, want 400 saying why", resp.Status, refused)
	}
}
