package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const pyFollow = `import time

def handler(event, context):
    print("first", flush=True)
    time.sleep((event or {}).get("s", 2.5))
    print("second", flush=True)
    return "done"
`

// Following an invocation through the whole stack (API, Temporal, worker,
// Docker): the first line arrives while the function sleeps, before the
// second is written; the stream ends with the invocation.
func TestFollowLogsEndToEnd(t *testing.T) {
	s := startTestServer(t, "e2e_follow")
	url, key := s.URL(), testAdminKey
	dir := filepath.Join(t.TempDir(), "follow")
	cliMust(t, os.MkdirAll(dir, 0o755))
	cliMust(t, os.WriteFile(filepath.Join(dir, "app.py"), []byte(pyFollow), 0o644))
	runCLI(t, url, key, "deploy", dir, "--runtime", "python", "--handler", "app.handler", "--timeout", "20").want(t, 0, "deploy")

	r := runCLI(t, url, key, "invoke", "follow", "--async").want(t, 0, "async invoke")
	id := strings.TrimSpace(r.stdout)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/v1/invocations/"+id+"/logs?follow=true", nil)
	cliMust(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	cliMust(t, err)
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("follow: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	var text strings.Builder
	var firstAt, secondAt time.Time
	status := ""
	sc := bufio.NewScanner(res.Body)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		case strings.HasPrefix(line, "data: ") && event == "logs":
			var d struct{ Text string }
			cliMust(t, json.Unmarshal([]byte(line[len("data: "):]), &d))
			text.WriteString(d.Text)
			if firstAt.IsZero() && strings.Contains(text.String(), "first\n") {
				firstAt = time.Now()
			}
			if secondAt.IsZero() && strings.Contains(text.String(), "second\n") {
				secondAt = time.Now()
			}
		case strings.HasPrefix(line, "data: ") && event == "end":
			var d struct{ Status string }
			cliMust(t, json.Unmarshal([]byte(line[len("data: "):]), &d))
			status = d.Status
		}
	}
	if status != "completed" || text.String() != "first\nsecond\n" {
		inv := getCLI(t, url, id)
		t.Logf("record: %s %+v", inv.Status, inv.Error)
		t.Fatalf("followed %q, end status %q", text.String(), status)
	}
	// The function sleeps 2.5 s between the lines.
	if gap := secondAt.Sub(firstAt); gap < 1500*time.Millisecond {
		t.Errorf("the first line arrived %v before the second, want it while the function slept", gap)
	}

	// The CLI: logs -f of a final invocation prints its logs; invoke --follow
	// shows them on stderr while the result goes to stdout.
	r = runCLI(t, url, key, "logs", "-f", id).want(t, 0, "logs -f")
	if r.stdout != "first\nsecond\n" {
		t.Errorf("logs -f: %q", r.stdout)
	}
	r = runCLI(t, url, key, "invoke", "follow", "--follow", "--data", `{"s": 0.5}`).want(t, 0, "invoke --follow")
	if !strings.HasPrefix(r.stderr, "first\nsecond\n") || strings.TrimSpace(r.stdout) != `"done"` {
		t.Errorf("invoke --follow: stdout %q stderr %q", r.stdout, r.stderr)
	}
	runCLI(t, url, key, "invoke", "follow", "--follow", "--async").want(t, exitUsage, "--follow with --async")
}
