package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferry-faas/ferry"
	apiclient "github.com/ferry-faas/ferry/client"
)

// httpJSON sends body (nil, []byte or any value to marshal) and decodes the answer into out.
func (s *testServer) do(t *testing.T, method, path string, body any, out any, headers ...string) *http.Response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.URL()+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %s: decode %q: %v", method, path, resp.Status, data, err)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return resp
}

// api is a typed client of the test server with the admin key.
func (s *testServer) api() *apiclient.Client { return apiclient.New(s.URL(), testAdminKey) }

// deploy deploys code through the typed client; extra holds the JSON deploy
// fields besides the code: limits (timeout_seconds, ...) and env.
func (s *testServer) deploy(t *testing.T, name, runtime, handler, filename, code string, extra map[string]any) {
	t.Helper()
	d := apiclient.Deploy{Name: name, Runtime: ferry.Runtime(runtime), Handler: handler, Filename: filename, Code: []byte(code)}
	if extra != nil {
		var fields struct {
			ferry.Limits
			Env map[string]string `json:"env"`
		}
		b, err := json.Marshal(extra)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fields); err != nil {
			t.Fatalf("deploy %s: extra %s: %v", name, b, err)
		}
		d.Limits, d.Env = fields.Limits, fields.Env
	}
	if _, err := s.api().Deploy(context.Background(), d); err != nil {
		t.Fatalf("deploy %s: %v", name, err)
	}
}

type invocationJSON struct {
	ID     string          `json:"id"`
	Status string          `json:"status"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
	Metrics *struct {
		Cold bool `json:"cold"`
	} `json:"metrics"`
}

func (s *testServer) invoke(t *testing.T, name string, event any, headers ...string) (invocationJSON, *http.Response) {
	t.Helper()
	var inv invocationJSON
	resp := s.do(t, http.MethodPost, "/v1/functions/"+name+"/invoke", event, &inv, headers...)
	return inv, resp
}

// waitFinal polls an invocation until it reaches a final status.
func (s *testServer) waitFinal(t *testing.T, id string, within time.Duration) invocationJSON {
	t.Helper()
	return waitFinalRecord(t, s, "/v1/invocations/"+id, "invocation "+id, within, 100*time.Millisecond,
		func(inv invocationJSON) string { return inv.Status })
}

// waitFinalRecord GETs path every so often until the record's status is final
// (what names the record in the failure).
func waitFinalRecord[T any](t *testing.T, s *testServer, path, what string, within, every time.Duration, status func(T) string) T {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var rec T
		s.do(t, http.MethodGet, path, nil, &rec)
		switch status(rec) {
		case "pending", "running", "waiting", "":
		default:
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still %q after %s", what, status(rec), within)
		}
		time.Sleep(every)
	}
}

const pyHello = `import os
def handler(event, context):
    print("hello from python")
    return {"hello": event.get("name"), "request": context.aws_request_id, "fn": context.function_name}
`

func TestE2EPythonSyncAndAsync(t *testing.T) {
	s := startTestServer(t, "e2e_python")
	s.deploy(t, "hello-py", "python", "hello.handler", "hello.py", pyHello, nil)

	inv, resp := s.invoke(t, "hello-py", map[string]any{"name": "ferry"})
	if resp.StatusCode != http.StatusOK || inv.Status != "completed" {
		t.Fatalf("sync invoke: %s %+v", resp.Status, inv)
	}
	var got map[string]string
	if err := json.Unmarshal(inv.Result, &got); err != nil || got["hello"] != "ferry" || got["request"] != inv.ID || got["fn"] != "hello-py" {
		t.Fatalf("result %s (%v)", inv.Result, err)
	}
	var logs struct {
		Logs string `json:"logs"`
	}
	s.do(t, http.MethodGet, "/v1/invocations/"+inv.ID+"/logs", nil, &logs)
	if !strings.Contains(logs.Logs, "hello from python") {
		t.Fatalf("logs %q", logs.Logs)
	}

	async, resp := s.invoke(t, "hello-py", map[string]any{"name": "async"}, "Prefer", "respond-async")
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Location") != "/v1/invocations/"+async.ID {
		t.Fatalf("async invoke: %s location %q", resp.Status, resp.Header.Get("Location"))
	}
	if final := s.waitFinal(t, async.ID, 30*time.Second); final.Status != "completed" {
		t.Fatalf("async final %+v", final)
	}
}
