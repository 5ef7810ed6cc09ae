package api_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
)

// sseEvent is one server-sent event.
type sseEvent struct{ name, data string }

// follow opens GET /v1/invocations/{id}/logs?follow=true as an event stream
// and returns its events as they come.
func (e *env) follow(id, key string) (<-chan sseEvent, *http.Response) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(ctxT(e.t), "GET", e.url+"/v1/invocations/"+id+"/logs?follow=true", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { res.Body.Close() })
	ch := make(chan sseEvent, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[len("data: "):]
			case line == "" && ev.name != "":
				ch <- ev
				ev = sseEvent{}
			}
		}
	}()
	return ch, res
}

func nextEvent(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
	}
	return sseEvent{}
}

func wantText(t *testing.T, ev sseEvent, want string) {
	t.Helper()
	var d struct{ Text string }
	if ev.name != "logs" || json.Unmarshal([]byte(ev.data), &d) != nil || d.Text != want {
		t.Fatalf("event %s %s, want logs %q", ev.name, ev.data, want)
	}
}

// Following a running invocation: what the worker stores arrives as it is
// stored, a run that starts over says so, the stream ends with the record.
func TestFollowLogs(t *testing.T) {
	e := newEnv(t)
	deployPy(e, e.admin, "echo")
	ctx := ctxT(t)
	v, err := e.db.GetVersion(ctx, "echo", 0)
	if err != nil {
		t.Fatal(err)
	}
	inv, _, err := e.db.CreateInvocation(ctx, ferry.Invocation{Function: "echo", FunctionID: v.FunctionID, Version: v.Version})
	if err != nil {
		t.Fatal(err)
	}
	id := inv.ID.String()
	if _, err := e.db.StartInvocation(ctx, inv.ID, "run", time.Now(), uuid.New(), time.Minute); err != nil {
		t.Fatal(err)
	}
	run1, run2 := uuid.New(), uuid.New()
	appendLogs := func(stream uuid.UUID, offset int, text string) {
		t.Helper()
		if err := e.db.AppendLogs(ctx, inv.ID, stream, offset, text); err != nil {
			t.Fatal(err)
		}
	}
	appendLogs(run1, 0, "line 1\n")

	ch, res := e.follow(id, e.admin)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("follow: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	wantText(t, nextEvent(t, ch), "line 1\n")
	appendLogs(run1, 7, "line 2\n")
	wantText(t, nextEvent(t, ch), "line 2\n")
	// A second run (a retry) starts over; the end of the first is not shown.
	appendLogs(run2, 0, "again\n")
	appendLogs(run1, 14, "late\n")
	wantText(t, nextEvent(t, ch), "\n[ferry: the function runs again]\n")
	wantText(t, nextEvent(t, ch), "again\n")
	// The record's logs end the stream: what was not stored on the way, then the status.
	if _, _, err := e.db.FinishInvocation(ctx, inv.ID, ferry.Outcome{Status: ferry.StatusCompleted,
		Result: []byte(`1`), Logs: "again\nlast\n"}); err != nil {
		t.Fatal(err)
	}
	wantText(t, nextEvent(t, ch), "last\n")
	end := nextEvent(t, ch)
	if end.name != "end" || !strings.Contains(end.data, `"status":"completed"`) {
		t.Fatalf("end event %+v", end)
	}
	if _, ok := <-ch; ok {
		t.Error("the stream went on after the end event")
	}
	// The record replaced the chunks.
	if _, logs, chunks, err := e.db.FollowLogs(ctx, inv.ID, 0); err != nil || logs != "again\nlast\n" || len(chunks) != 0 {
		t.Errorf("after the end: logs %q, %d chunks, %v", logs, len(chunks), err)
	}
	// Plain text of a final invocation: its logs, then the end of the body.
	r := e.do("GET", "/v1/invocations/"+id+"/logs?follow=true", e.admin, nil, "Accept", "text/plain")
	if r.status != 200 || string(r.raw) != "again\nlast\n" {
		t.Errorf("plain follow: %d %q", r.status, r.raw)
	}
	e.want(e.do("GET", "/v1/invocations/"+id+"/logs?follow=maybe", e.admin, nil), 400, "bad follow")

	// Permissions are those of reading the logs.
	key, _ := e.newKey(ferry.RoleInvoker, "stranger")
	plain := e.do("GET", "/v1/invocations/"+id+"/logs", key, nil)
	followed := e.do("GET", "/v1/invocations/"+id+"/logs?follow=true", key, nil)
	e.want(plain, 403, "logs without a grant")
	e.want(followed, 403, "follow without a grant")
}
