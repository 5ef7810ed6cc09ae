package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
)

// get fetches url without a key and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// newKey creates an API key with the admin key; it returns the secret and id.
func (s *testServer) newKey(t *testing.T, role ferry.Role) (string, string) {
	t.Helper()
	k, secret, err := s.api().CreateKey(context.Background(), string(role), role)
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	return secret, k.ID.String()
}

// uniqueName is a schedule name of its own for this test server: schedules
// live in Temporal, which every test shares.
func (s *testServer) uniqueName(prefix string) string {
	return prefix + "-" + strings.ToLower(s.cfg.TaskQueue[len(s.cfg.TaskQueue)-8:])
}

type scheduleState struct {
	NumRuns    int    `json:"num_runs"`
	Paused     bool   `json:"paused"`
	Note       string `json:"note"`
	RecentRuns []struct {
		ID   string `json:"id"`
		Link string `json:"link"`
	} `json:"recent_runs"`
	Target struct {
		FunctionID string `json:"function_id"`
	} `json:"target"`
}

// waitSchedule polls a schedule until ok or 30 s; it returns the schedule and
// the records of its recent firings by id.
func (s *testServer) waitSchedule(t *testing.T, name, what string, ok func(scheduleState, map[string]ferry.Invocation) bool) (scheduleState, map[string]ferry.Invocation) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got scheduleState
		s.do(t, http.MethodGet, "/v1/schedules/"+name, nil, &got)
		records := map[string]ferry.Invocation{}
		for _, r := range got.RecentRuns {
			var inv ferry.Invocation
			s.do(t, http.MethodGet, r.Link, nil, &inv)
			records[r.ID] = inv
		}
		if ok(got, records) {
			return got, records
		}
		if time.Now().After(deadline) {
			t.Fatalf("schedule %s, %s: not within 30 s: %+v %+v", name, what, got, records)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func completedWith(result string) func(scheduleState, map[string]ferry.Invocation) bool {
	return func(_ scheduleState, rs map[string]ferry.Invocation) bool {
		for _, inv := range rs {
			if inv.Status == ferry.StatusCompleted && string(inv.Result) == result {
				return true
			}
		}
		return false
	}
}

func paused(sch scheduleState, _ map[string]ferry.Invocation) bool { return sch.Paused }

// deployAs deploys a Python function with key and returns its identity.
func (s *testServer) deployAs(t *testing.T, key, name, code string) string {
	t.Helper()
	var v struct {
		FunctionID string `json:"function_id"`
	}
	resp := s.do(t, http.MethodPost, "/v1/functions", map[string]any{"name": name, "runtime": "python", "handler": "f.handler",
		"filename": "f.py", "code": base64.StdEncoding.EncodeToString([]byte(code))}, &v, "Authorization", "Bearer "+key)
	if resp.StatusCode != http.StatusCreated || v.FunctionID == "" {
		t.Fatalf("deploy %s: %s %+v", name, resp.Status, v)
	}
	return v.FunctionID
}

func TestAccessE2E(t *testing.T) {
	s := startTestServer(t, "e2e_access")
	s.requireImage(t, "ferry/python:latest")
	s.deploy(t, "inc", "python", "inc.handler", "inc.py", pyInc, nil)

	t.Run("metrics on their own listener", func(t *testing.T) {
		if inv, resp := s.invoke(t, "inc", 1); resp.StatusCode != http.StatusOK || inv.Status != "completed" {
			t.Fatalf("invoke: %s %+v", resp.Status, inv)
		}
		if code, _ := get(t, s.URL()+"/metrics"); code != http.StatusNotFound {
			t.Errorf("GET /metrics on the API's listener: %d, want 404", code)
		}
		code, body := get(t, s.MetricsURL())
		if code != http.StatusOK || !strings.Contains(body, `ferry_invocations_total{function="inc",status="completed"} 1`) ||
			!strings.Contains(body, `ferry_http_request_duration_seconds_count{method="POST",route="/v1/functions/:name/invoke",status="200"} 1`) {
			t.Errorf("metrics listener: %d\n%s", code, body)
		}
	})

	t.Run("map item cap", func(t *testing.T) {
		s.deployChain(t, map[string]any{"name": "fan-out", "steps": []any{
			map[string]any{"map": map[string]any{"function": "inc"}}}})
		// Inline, and by reference (over 256 KiB: SplitPayload refuses it).
		for _, in := range [][]string{make([]string, ferry.MaxMapItems+1), slices.Repeat([]string{strings.Repeat("x", 30)}, 15000)} {
			n := len(in)
			run, resp := s.runChain(t, "fan-out", in)
			if resp.StatusCode != http.StatusOK || run.Status != "failed" || run.Error == nil ||
				run.Error.Type != ferry.ErrTypeMapTooLarge || run.Error.Step != "0" ||
				!strings.Contains(run.Error.Message, fmt.Sprintf("has %d elements, more than the %d left", n, ferry.MaxMapItems)) {
				t.Fatalf("map of %d elements: %s %+v", n, resp.Status, run.Error)
			}
			id := uuid.MustParse(run.ID)
			invs, _, err := s.db.ListInvocations(context.Background(), ferry.InvocationFilter{ChainRunID: &id}, ferry.Page{Limit: 10})
			if err != nil || len(invs) != 0 {
				t.Fatalf("map of %d elements started %d invocations (%v)", n, len(invs), err)
			}
		}
	})

	t.Run("schedule of a revoked key", func(t *testing.T) {
		dev, devID := s.newKey(t, ferry.RoleDeveloper)
		asDev := []string{"Authorization", "Bearer " + dev}
		s.deploy(t, "inc-dev", "python", "inc.handler", "inc.py", pyInc, nil)
		s.do(t, http.MethodPost, "/v1/functions/inc-dev/permissions", map[string]any{"key_id": devID, "permission": "execute"}, nil)
		name := s.uniqueName("owned")
		var sch map[string]any
		resp := s.do(t, http.MethodPost, "/v1/schedules", map[string]any{"name": name, "every": "1s",
			"target": map[string]any{"function": "inc-dev"}, "payload": 41, "owner_key_id": devID}, &sch, asDev...)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("a schedule naming its owner: %s %v", resp.Status, sch)
		}
		resp = s.do(t, http.MethodPost, "/v1/schedules", map[string]any{"name": name, "every": "1s",
			"target": map[string]any{"function": "inc-dev"}, "payload": 41}, &sch, asDev...)
		if resp.StatusCode != http.StatusCreated || sch["owner_key_id"] != devID {
			t.Fatalf("create: %s %v", resp.Status, sch)
		}
		t.Cleanup(func() { s.do(t, http.MethodDelete, "/v1/schedules/"+name, nil, nil) })

		s.waitSchedule(t, name, "a completed run while the owner is active", completedWith("42"))
		if resp := s.do(t, http.MethodDelete, "/v1/keys/"+devID, nil, nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("revoke: %s", resp.Status)
		}
		revoked := time.Now()
		got, records := s.waitSchedule(t, name, "the schedule paused", paused)
		if !strings.Contains(got.Note, "revoked") || !strings.Contains(got.Note, devID) {
			t.Errorf("note of the paused schedule: %q", got.Note)
		}
		refused := 0
		for _, inv := range records {
			if inv.CreatedAt.Before(revoked.Add(-time.Second)) {
				continue // fired before the revocation (1 s of slack for clocks)
			}
			switch {
			case inv.Status == ferry.StatusFailed && inv.Error != nil && inv.Error.Type == ferry.ErrTypeScheduleRefused &&
				strings.Contains(inv.Error.Message, "revoked"):
				refused++
			case inv.Status == ferry.StatusCompleted && inv.CreatedAt.Before(revoked):
				// started just before the revocation took effect
			default:
				t.Errorf("a firing after the revocation: %+v", inv)
			}
		}
		if refused == 0 {
			t.Errorf("no refused firing recorded: %+v", records)
		}
		// Paused for good: no run after the pause.
		time.Sleep(2500 * time.Millisecond)
		var after scheduleState
		s.do(t, http.MethodGet, "/v1/schedules/"+name, nil, &after)
		if after.NumRuns != got.NumRuns {
			t.Errorf("the paused schedule fired on: %d runs, %d when it was paused", after.NumRuns, got.NumRuns)
		}
	})

	t.Run("schedule of a deleted and re-created function", func(t *testing.T) {
		devA, _ := s.newKey(t, ferry.RoleDeveloper)
		devB, _ := s.newKey(t, ferry.RoleDeveloper)
		asA, asB := []string{"Authorization", "Bearer " + devA}, []string{"Authorization", "Bearer " + devB}
		idA := s.deployAs(t, devA, "x", pyInc)
		name := s.uniqueName("of-x")
		var sch scheduleState
		resp := s.do(t, http.MethodPost, "/v1/schedules", map[string]any{"name": name, "every": "1s",
			"target": map[string]any{"function": "x", "function_id": idA}, "payload": 41}, &sch, asA...)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("a schedule naming the function's identity: %s", resp.Status)
		}
		resp = s.do(t, http.MethodPost, "/v1/schedules", map[string]any{"name": name, "every": "1s",
			"target": map[string]any{"function": "x"}, "payload": 41}, &sch, asA...)
		if resp.StatusCode != http.StatusCreated || sch.Target.FunctionID != idA {
			t.Fatalf("create: %s %+v, want target.function_id %s", resp.Status, sch, idA)
		}
		t.Cleanup(func() { s.do(t, http.MethodDelete, "/v1/schedules/"+name, nil, nil) })
		s.waitSchedule(t, name, "a run of A's x", completedWith("42"))

		// A's x is deleted, and the process dies before it deletes the schedule;
		// B deploys another x.
		s.do(t, http.MethodPost, "/v1/schedules/"+name+"/pause", nil, nil, asA...)
		if _, _, err := s.db.DeleteFunction(context.Background(), "x"); err != nil {
			t.Fatal(err)
		}
		idB := s.deployAs(t, devB, "x", "def handler(event, context):\n    return event + 1000\n")
		s.do(t, http.MethodPost, "/v1/schedules/"+name+"/resume", nil, nil)
		resumed := time.Now()
		got, records := s.waitSchedule(t, name, "paused after a refused firing", func(sch scheduleState, rs map[string]ferry.Invocation) bool {
			return sch.Paused && strings.Contains(sch.Note, "deleted")
		})
		refused := 0
		for _, inv := range records {
			if inv.CreatedAt.After(resumed.Add(-time.Second)) && inv.Status == ferry.StatusFailed && inv.Error != nil &&
				inv.Error.Type == ferry.ErrTypeScheduleRefused && strings.Contains(inv.Error.Message, idA) {
				refused++
			}
		}
		if refused == 0 || !strings.Contains(got.Note, idA) {
			t.Errorf("no refused firing: note %q, records %+v", got.Note, records)
		}
		invs, _, err := s.db.ListInvocations(context.Background(), ferry.InvocationFilter{Function: "x"}, ferry.Page{Limit: 200})
		if err != nil {
			t.Fatal(err)
		}
		for _, inv := range invs {
			if inv.FunctionID.String() == idB || string(inv.Result) == "1041" {
				t.Errorf("the schedule of A's x invoked B's x: %+v", inv)
			}
		}

		// Deleting a function over the API deletes its schedules.
		nameB := s.uniqueName("of-xb")
		if resp := s.do(t, http.MethodPost, "/v1/schedules", map[string]any{"name": nameB, "every": "1h",
			"target": map[string]any{"function": "x"}}, nil, asB...); resp.StatusCode != http.StatusCreated {
			t.Fatalf("create B's schedule: %s", resp.Status)
		}
		t.Cleanup(func() { s.do(t, http.MethodDelete, "/v1/schedules/"+nameB, nil, nil) })
		deadline := time.Now().Add(30 * time.Second)
		for { // Temporal's list of schedules lags behind their creation
			var all struct {
				Schedules []struct{ Name string } `json:"schedules"`
			}
			s.do(t, http.MethodGet, "/v1/schedules", nil, &all)
			if slices.ContainsFunc(all.Schedules, func(x struct{ Name string }) bool { return x.Name == nameB }) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("schedule %s not listed within 30 s", nameB)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if resp := s.do(t, http.MethodDelete, "/v1/functions/x", nil, nil, asB...); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("delete B's x: %s", resp.Status)
		}
		if resp := s.do(t, http.MethodGet, "/v1/schedules/"+nameB, nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("the schedule of a deleted function: %s, want 404", resp.Status)
		}
		if resp := s.do(t, http.MethodGet, "/v1/schedules/"+name, nil, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("the schedule of A's x, deleted before: %s, want 200 (B's delete leaves it)", resp.Status)
		}
	})
}
