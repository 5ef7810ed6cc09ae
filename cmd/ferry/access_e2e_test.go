package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/activities"
	"github.com/ferry-faas/ferry/storage/postgres"
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
	var k struct{ Key, ID string }
	resp := s.do(t, http.MethodPost, "/v1/keys", map[string]any{"name": string(role), "role": role}, &k)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create key: %s", resp.Status)
	}
	return k.Key, k.ID
}

// uniqueName is a schedule name of its own for this test server: schedules
// live in Temporal, which every test shares.
func (s *testServer) uniqueName(prefix string) string {
	return prefix + "-" + strings.ToLower(s.cfg.TaskQueue[len(s.cfg.TaskQueue)-8:])
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
				run.Error.Type != activities.ErrTypeMapTooLarge || run.Error.Step != "0" ||
				!strings.Contains(run.Error.Message, fmt.Sprintf("has %d elements, more than the %d left", n, ferry.MaxMapItems)) {
				t.Fatalf("map of %d elements: %s %+v", n, resp.Status, run.Error)
			}
			id := uuid.MustParse(run.ID)
			invs, _, err := s.db.ListInvocations(context.Background(), postgres.InvocationFilter{ChainRunID: &id}, ferry.Page{Limit: 10})
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

		type firing struct {
			ID   string `json:"id"`
			Link string `json:"link"`
		}
		var got struct {
			NumRuns    int      `json:"num_runs"`
			Paused     bool     `json:"paused"`
			Note       string   `json:"note"`
			RecentRuns []firing `json:"recent_runs"`
		}
		// waitFor polls the schedule until ok or 30 s, returning each firing's record.
		waitFor := func(what string, ok func(map[string]ferry.Invocation) bool) map[string]ferry.Invocation {
			deadline := time.Now().Add(30 * time.Second)
			for {
				s.do(t, http.MethodGet, "/v1/schedules/"+name, nil, &got)
				records := map[string]ferry.Invocation{}
				for _, r := range got.RecentRuns {
					var inv ferry.Invocation
					s.do(t, http.MethodGet, r.Link, nil, &inv)
					records[r.ID] = inv
				}
				if ok(records) {
					return records
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: not within 30 s: %+v %+v", what, got, records)
				}
				time.Sleep(300 * time.Millisecond)
			}
		}
		waitFor("a completed run while the owner is active", func(rs map[string]ferry.Invocation) bool {
			for _, inv := range rs {
				if inv.Status == ferry.StatusCompleted && string(inv.Result) == "42" {
					return true
				}
			}
			return false
		})
		if resp := s.do(t, http.MethodDelete, "/v1/keys/"+devID, nil, nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("revoke: %s", resp.Status)
		}
		revoked := time.Now()
		records := waitFor("the schedule paused", func(map[string]ferry.Invocation) bool { return got.Paused })
		if !strings.Contains(got.Note, "revoked") || !strings.Contains(got.Note, devID) {
			t.Errorf("note of the paused schedule: %q", got.Note)
		}
		refused := 0
		for _, inv := range records {
			if inv.CreatedAt.Before(revoked.Add(-time.Second)) {
				continue // fired before the revocation (1 s of slack for clocks)
			}
			switch {
			case inv.Status == ferry.StatusFailed && inv.Error != nil && inv.Error.Type == activities.ErrTypeScheduleRefused &&
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
		var after struct {
			NumRuns int `json:"num_runs"`
		}
		s.do(t, http.MethodGet, "/v1/schedules/"+name, nil, &after)
		if after.NumRuns != got.NumRuns {
			t.Errorf("the paused schedule fired on: %d runs, %d when it was paused", after.NumRuns, got.NumRuns)
		}
	})
}
