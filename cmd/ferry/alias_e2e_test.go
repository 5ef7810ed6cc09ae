package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/runtimes"
)

// pyVersion answers the version that ran, as the runtime tells it.
const pyVersion = `V = %d
def handler(event, context):
    return {"code": V, "version": int(context.function_version)}
`

type aliasE2E struct {
	Name              string  `json:"name"`
	Version           int     `json:"version"`
	AdditionalVersion int     `json:"additional_version"`
	AdditionalWeight  float64 `json:"additional_weight"`
	Previous          *struct {
		Version           int `json:"version"`
		AdditionalVersion int `json:"additional_version"`
	} `json:"previous"`
}

// ranVersion checks that the invocation completed and that the version in its
// record is the one that ran, and returns it.
func ranVersion(inv ferry.Invocation, resp *http.Response) (int, error) {
	var got struct{ Code, Version int }
	if resp.StatusCode != http.StatusOK || inv.Status != ferry.StatusCompleted || json.Unmarshal(inv.Result, &got) != nil {
		return 0, fmt.Errorf("invoke: %s %+v", resp.Status, inv)
	}
	if got.Code != inv.Version || got.Version != inv.Version {
		return 0, fmt.Errorf("record says version %d, the function ran code of version %d (context: %d)", inv.Version, got.Code, got.Version)
	}
	return inv.Version, nil
}

func TestE2EAliasesWeightsRollback(t *testing.T) {
	s := startTestServer(t, "e2e_aliases")
	s.requireImage(t, runtimes.DefaultImages[ferry.RuntimePython])
	for v := 1; v <= 2; v++ {
		s.deploy(t, "canary", "python", "app.handler", "app.py", fmt.Sprintf(pyVersion, v), nil)
	}
	invoke := func(query string, headers ...string) (ferry.Invocation, *http.Response) {
		var inv ferry.Invocation
		resp := s.do(t, http.MethodPost, "/v1/functions/canary/invoke"+query, map[string]any{}, &inv, headers...)
		return inv, resp
	}
	// ran invokes and returns the version that ran (checked against the record).
	ran := func(query string, headers ...string) (int, ferry.Invocation) {
		t.Helper()
		inv, resp := invoke(query, headers...)
		v, err := ranVersion(inv, resp)
		if err != nil {
			t.Fatal(err)
		}
		return v, inv
	}
	setAlias := func(body map[string]any, wantStatus int) aliasE2E {
		t.Helper()
		var a aliasE2E
		resp := s.do(t, http.MethodPut, "/v1/functions/canary/aliases/prod", body, &a)
		if resp.StatusCode != wantStatus {
			t.Fatalf("set alias %v: %s %+v", body, resp.Status, a)
		}
		return a
	}

	// Refusals name the field; nothing is stored.
	for _, tc := range []struct {
		body map[string]any
		code int
		want string
	}{
		{map[string]any{"version": 3}, 404, "version 3 not found"},
		{map[string]any{"version": 1, "additional_version": 2, "additional_weight": 1.5}, 400, "additional_weight"},
		{map[string]any{"version": 1, "additional_version": 1, "additional_weight": 0.5}, 400, "additional_version"},
		{map[string]any{"version": 0}, 400, "version"},
	} {
		var e struct{ Error ferry.Error }
		resp := s.do(t, http.MethodPut, "/v1/functions/canary/aliases/prod", tc.body, &e)
		if resp.StatusCode != tc.code || !strings.Contains(e.Error.Message, tc.want) {
			t.Errorf("set alias %v: %s %+v, want %d naming %q", tc.body, resp.Status, e, tc.code, tc.want)
		}
	}
	if _, resp := invoke("?alias=prod"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("invoke of a missing alias: %s", resp.Status)
	}
	if _, resp := invoke("?alias=prod&version=1"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("invoke with alias and version: %s", resp.Status)
	}

	// One version: every invocation runs it, whatever the latest is.
	if a := setAlias(map[string]any{"version": 1}, http.StatusCreated); a.Previous != nil {
		t.Fatalf("a new alias has a previous target: %+v", a)
	}
	if v, _ := ran("?alias=prod"); v != 1 {
		t.Fatalf("alias prod → 1 ran version %d", v)
	}
	if v, _ := ran(""); v != 2 {
		t.Fatalf("the latest ran version %d", v)
	}

	// A chain step and a schedule name the alias the same way.
	s.deployChain(t, map[string]any{"name": "via-alias", "steps": []map[string]any{{"function": "canary", "alias": "prod"}}})
	run, resp := s.runChain(t, "via-alias", map[string]any{})
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		t.Fatalf("run chain: %s %+v", resp.Status, run)
	}
	if run = s.waitRun(t, run.ID, time.Minute); run.Status != "completed" || !strings.Contains(string(run.Output), `"version": 1`) && !strings.Contains(string(run.Output), `"version":1`) {
		t.Fatalf("chain through prod → 1: %+v %s", run, run.Output)
	}
	var bad struct{ Error ferry.Error }
	if resp := s.do(t, http.MethodPost, "/v1/chains", map[string]any{"name": "bad-alias",
		"steps": []map[string]any{{"function": "canary", "alias": "nope"}}}, &bad); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(bad.Error.Message, "steps[0].alias") {
		t.Fatalf("chain with a missing alias: %s %+v", resp.Status, bad)
	}
	var sch map[string]any
	name := "alias-" + strings.ToLower(s.cfg.TaskQueue[len(s.cfg.TaskQueue)-8:])
	if resp := s.do(t, http.MethodPost, "/v1/schedules", map[string]any{"name": name, "every": "1s",
		"target": map[string]any{"function": "canary", "alias": "prod"}, "overlap": "skip"}, &sch); resp.StatusCode != http.StatusCreated {
		t.Fatalf("schedule of an alias: %s %v", resp.Status, sch)
	}
	t.Cleanup(func() { s.do(t, http.MethodDelete, "/v1/schedules/"+name, nil, nil) })
	s.waitSchedule(t, name, "a firing through prod → 1", completedWith(`{"code":1,"version":1}`))
	s.do(t, http.MethodDelete, "/v1/schedules/"+name, nil, nil)

	// 90/10: the split holds over 1000 invocations.
	a := setAlias(map[string]any{"version": 1, "additional_version": 2, "additional_weight": 0.1}, http.StatusOK)
	if a.Previous == nil || a.Previous.Version != 1 || a.Previous.AdditionalVersion != 0 {
		t.Fatalf("previous target not kept: %+v", a)
	}
	const n, workers = 1000, 4
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/workers; i++ {
				// A 503 (Temporal too slow to accept the start on a loaded
				// machine) is answered the way a client would: ask again.
				inv, resp := invoke("?alias=prod")
				for try := 0; resp.StatusCode == http.StatusServiceUnavailable && try < 10; try++ {
					time.Sleep(time.Second)
					inv, resp = invoke("?alias=prod")
				}
				v, err := ranVersion(inv, resp)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				counts[v]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("1000 invocations of prod at 90/10: %v", counts)
	if counts[1] < 850 || counts[1] > 950 || counts[2] < 50 || counts[2] > 150 || counts[1]+counts[2] != n {
		t.Fatalf("90/10 split ran %v, want 850-950 of version 1 and 50-150 of version 2", counts)
	}

	// The same Idempotency-Key picks the same version: one invocation.
	_, first := ran("?alias=prod", "Idempotency-Key", "k-1")
	if _, again := ran("?alias=prod", "Idempotency-Key", "k-1"); again.ID != first.ID {
		t.Fatalf("same key, another invocation: %s, %s", first.ID, again.ID)
	}

	// Rollback: back to version 1 alone; a second one undoes it.
	var rb aliasE2E
	if resp := s.do(t, http.MethodPost, "/v1/functions/canary/aliases/prod/rollback", nil, &rb); resp.StatusCode != http.StatusOK ||
		rb.Version != 1 || rb.AdditionalVersion != 0 || rb.Previous == nil || rb.Previous.AdditionalVersion != 2 {
		t.Fatalf("rollback: %s %+v", resp.Status, rb)
	}
	for i := 0; i < 20; i++ {
		if v, _ := ran("?alias=prod"); v != 1 {
			t.Fatalf("after the rollback prod ran version %d", v)
		}
	}

	// Listing, deleting.
	var list struct{ Aliases []aliasE2E }
	if s.do(t, http.MethodGet, "/v1/functions/canary/aliases", nil, &list); len(list.Aliases) != 1 || list.Aliases[0].Version != 1 {
		t.Fatalf("aliases: %+v", list)
	}
	if resp := s.do(t, http.MethodDelete, "/v1/functions/canary/aliases/prod", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete alias: %s", resp.Status)
	}
	if _, resp := invoke("?alias=prod"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("invoke of a deleted alias: %s", resp.Status)
	}
}
