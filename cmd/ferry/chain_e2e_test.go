package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dockerclient "github.com/docker/docker/client"
	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/activities"
	"github.com/ferry-faas/ferry/internal/testenv"
	"github.com/ferry-faas/ferry/workflows"
	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"sigs.k8s.io/yaml"
)

type chainRunJSON struct {
	ID     string          `json:"id"`
	Status string          `json:"status"`
	Output json.RawMessage `json:"output"`
	Error  *struct {
		Type          string `json:"type"`
		Message       string `json:"message"`
		Step          string `json:"step"`
		Compensations []struct {
			Step         string `json:"step"`
			Function     string `json:"function"`
			InvocationID string `json:"invocation_id"`
			Status       string `json:"status"`
		} `json:"compensations"`
	} `json:"error"`
	Steps []struct {
		Path         string `json:"path"`
		Function     string `json:"function"`
		Status       string `json:"status"`
		InvocationID string `json:"invocation_id"`
		Invocation   string `json:"invocation"`
	} `json:"steps"`
}

func (s *testServer) deployChain(t *testing.T, def any) {
	t.Helper()
	var body map[string]any
	resp := s.do(t, http.MethodPost, "/v1/chains", def, &body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("deploy chain: %s %v", resp.Status, body)
	}
}

func (s *testServer) runChain(t *testing.T, name string, input any, headers ...string) (chainRunJSON, *http.Response) {
	t.Helper()
	var run chainRunJSON
	resp := s.do(t, http.MethodPost, "/v1/chains/"+name+"/invoke", input, &run, headers...)
	return run, resp
}

// waitRun polls a chain run until it reaches a final status.
func (s *testServer) waitRun(t *testing.T, id string, within time.Duration) chainRunJSON {
	t.Helper()
	return waitFinalRecord(t, s, "/v1/chain-runs/"+id, "chain run "+id, within, 200*time.Millisecond,
		func(run chainRunJSON) string { return run.Status })
}

// payloadKeys lists the objects stored under a chain run's payload prefix.
func (s *testServer) payloadKeys(t *testing.T, runID string) []string {
	t.Helper()
	keys, err := s.objects.Keys(context.Background(), activities.PayloadPrefix(uuid.MustParse(runID)))
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// chainInput is the input a chain run's workflow was started with.
func (s *testServer) chainInput(t *testing.T, runID string) workflows.ChainInput {
	t.Helper()
	it := s.temporal.GetWorkflowHistory(context.Background(), runID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	ev, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	var in workflows.ChainInput
	data := ev.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0].GetData()
	if err := json.Unmarshal(data, &in); err != nil {
		t.Fatalf("workflow input %.100s: %v", data, err)
	}
	return in
}

func readExample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "chain", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// requireImage skips (or fails under FERRY_REQUIRE_SERVICES) when a runtime
// image has not been built on this machine.
func (s *testServer) requireImage(t *testing.T, image string) {
	t.Helper()
	docker, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	if _, err := docker.ImageInspect(context.Background(), image); err != nil {
		testenv.Unavailable(t, "Docker image "+image, err)
	}
}

const pyInc = `def handler(event, context):
    return event + 1
`

const pyTag = `def handler(event, context):
    return {"tag": context.function_name, "input": event}
`

const pyUndo = `def handler(event, context):
    print("compensating", context.function_name, event["output"]["tag"])
    return {"undone": event["output"]["tag"]}
`

const pyBoom = `def handler(event, context):
    raise ValueError("card declined")
`

func TestE2EChains(t *testing.T) {
	s := startTestServer(t, "e2e_chains")
	s.deploy(t, "inc", "python", "inc.handler", "inc.py", pyInc, nil)

	t.Run("validation names the step", func(t *testing.T) {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		resp := s.do(t, http.MethodPost, "/v1/chains", map[string]any{"name": "bad", "steps": []any{
			map[string]any{"function": "inc"},
			map[string]any{"parallel": []any{map[string]any{"function": "inc"}, map[string]any{"map": map[string]any{"function": "nope"}}}},
		}}, &e)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Error.Message, "steps[1].parallel[1].map.function") {
			t.Fatalf("%s %+v", resp.Status, e)
		}
	})

	t.Run("sync, async and idempotency", func(t *testing.T) {
		s.deployChain(t, map[string]any{"name": "add3", "steps": []any{
			map[string]any{"function": "inc"}, map[string]any{"function": "inc"}, map[string]any{"function": "inc"}}})
		run, resp := s.runChain(t, "add3", 1)
		if resp.StatusCode != http.StatusOK || run.Status != "completed" || string(run.Output) != "4" {
			t.Fatalf("%s %+v", resp.Status, run)
		}
		if len(run.Steps) != 3 || run.Steps[2].Status != "completed" || run.Steps[2].Invocation != "/v1/invocations/"+run.Steps[2].InvocationID {
			t.Fatalf("steps %+v", run.Steps)
		}
		var inv ferry.Invocation
		s.do(t, http.MethodGet, run.Steps[1].Invocation, nil, &inv)
		if inv.Status != ferry.StatusCompleted || string(inv.Result) != "3" || inv.ChainRunID == nil || inv.ChainRunID.String() != run.ID {
			t.Fatalf("step invocation %+v", inv)
		}
		async, resp := s.runChain(t, "add3", 10, "Prefer", "respond-async", "Idempotency-Key", "k1")
		if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Location") != "/v1/chain-runs/"+async.ID {
			t.Fatalf("async: %s", resp.Status)
		}
		again, _ := s.runChain(t, "add3", 10, "Idempotency-Key", "k1")
		if again.ID != async.ID || again.Status != "completed" || string(again.Output) != "13" {
			t.Fatalf("idempotent run %+v, first %s", again, async.ID)
		}
		var runs struct {
			Runs []chainRunJSON `json:"runs"`
		}
		s.do(t, http.MethodGet, "/v1/chains/add3/runs", nil, &runs)
		if len(runs.Runs) != 2 {
			t.Fatalf("runs %+v", runs)
		}
	})

	t.Run("example chain python node go", func(t *testing.T) {
		s.requireImage(t, "ferry/go:latest")
		s.requireImage(t, "ferry/nodejs:latest")
		s.deploy(t, "split-words", "python", "split.handler", "split.py", readExample(t, "split.py"), nil)
		s.deploy(t, "shout", "nodejs", "shout.handler", "shout.js", readExample(t, "shout.js"), nil)
		s.deploy(t, "summarize", "go", "Handle", "summarize.go", readExample(t, "summarize/summarize.go"), map[string]any{"timeout_seconds": 10})
		var def map[string]any
		if err := yaml.Unmarshal([]byte(readExample(t, "chain.yaml")), &def); err != nil {
			t.Fatal(err)
		}
		s.deployChain(t, def)
		run, resp := s.runChain(t, "words", map[string]any{"text": "Ferry runs durable chains of functions"})
		if resp.StatusCode != http.StatusOK || run.Status != "completed" {
			t.Fatalf("%s %+v", resp.Status, run)
		}
		var sum struct {
			Count   int    `json:"count"`
			Letters int    `json:"letters"`
			Longest string `json:"longest"`
		}
		if err := json.Unmarshal(run.Output, &sum); err != nil || sum.Count != 6 || sum.Letters != 33 || sum.Longest != "FUNCTIONS" {
			t.Fatalf("output %s", run.Output)
		}
		if len(run.Steps) != 8 { // split, 6 shouts, summarize
			t.Fatalf("%d steps", len(run.Steps))
		}
	})

	t.Run("third step fails and compensations run in reverse", func(t *testing.T) {
		s.deploy(t, "reserve", "python", "tag.handler", "tag.py", pyTag, nil)
		s.deploy(t, "charge", "python", "tag.handler", "tag.py", pyTag, nil)
		s.deploy(t, "release", "python", "undo.handler", "undo.py", pyUndo, nil)
		s.deploy(t, "refund", "python", "undo.handler", "undo.py", pyUndo, nil)
		s.deploy(t, "ship", "python", "boom.handler", "boom.py", pyBoom, nil)
		s.deployChain(t, map[string]any{"name": "order", "steps": []any{
			map[string]any{"function": "reserve", "compensate": "release"},
			map[string]any{"function": "charge", "compensate": "refund"},
			map[string]any{"function": "ship"},
			map[string]any{"function": "inc"},
		}})
		run, resp := s.runChain(t, "order", map[string]any{"item": 1})
		if resp.StatusCode != http.StatusOK || run.Status != "failed" || resp.Header.Get("Ferry-Function-Error") != "true" {
			t.Fatalf("%s %+v", resp.Status, run)
		}
		e := run.Error
		if e == nil || e.Step != "2" || !strings.Contains(e.Message, "card declined") || len(e.Compensations) != 2 ||
			e.Compensations[0].Function != "refund" || e.Compensations[1].Function != "release" {
			t.Fatalf("error %+v", e)
		}
		var refund, release ferry.Invocation
		s.do(t, http.MethodGet, "/v1/invocations/"+e.Compensations[0].InvocationID, nil, &refund)
		s.do(t, http.MethodGet, "/v1/invocations/"+e.Compensations[1].InvocationID, nil, &release)
		if refund.Status != ferry.StatusCompleted || release.Status != ferry.StatusCompleted ||
			!release.StartedAt.After(*refund.FinishedAt) {
			t.Fatalf("refund %+v release %+v", refund, release)
		}
		if string(refund.Result) != `{"undone": "charge"}` && string(refund.Result) != `{"undone":"charge"}` {
			t.Fatalf("refund result %s", refund.Result)
		}
		for _, st := range run.Steps {
			if st.Path == "3" {
				t.Fatal("the step after the failure ran")
			}
		}
	})

	t.Run("200-element map with max_concurrency 8", func(t *testing.T) {
		s.deployChain(t, map[string]any{"name": "map200", "steps": []any{
			map[string]any{"map": map[string]any{"function": "inc"}, "max_concurrency": 8}}})
		in := make([]int, 200)
		for i := range in {
			in[i] = i
		}
		began := time.Now()
		run, resp := s.runChain(t, "map200", in)
		if resp.StatusCode != http.StatusOK || run.Status != "completed" {
			t.Fatalf("%s %+v", resp.Status, run.Error)
		}
		t.Logf("200-element map: %s", time.Since(began))
		var out []int
		if err := json.Unmarshal(run.Output, &out); err != nil || len(out) != 200 {
			t.Fatalf("output %s", run.Output)
		}
		for i, v := range out {
			if v != i+1 {
				t.Fatalf("element %d = %d", i, v)
			}
		}
		id := uuid.MustParse(run.ID)
		invs, _, err := s.db.ListInvocations(context.Background(), ferry.InvocationFilter{ChainRunID: &id}, ferry.Page{Limit: 200})
		if err != nil || len(invs) != 200 {
			t.Fatalf("%d step invocations (%v)", len(invs), err)
		}
		// At most 8 ran at once: no instant is inside more than 8 [started, finished] intervals.
		for _, a := range invs {
			n := 0
			for _, b := range invs {
				if !b.StartedAt.After(*a.StartedAt) && b.FinishedAt.After(*a.StartedAt) {
					n++
				}
			}
			if n > 8 {
				t.Fatalf("%d invocations overlapped at %s", n, a.StartedAt)
			}
		}
	})

	t.Run("5 MB intermediate result by reference", func(t *testing.T) {
		s.deploy(t, "big", "python", "big.handler", "big.py", `def handler(event, context):
    return "x" * (5 * 1024 * 1024)
`, nil)
		s.deploy(t, "measure", "python", "m.handler", "m.py", `def handler(event, context):
    return len(event)
`, nil)
		s.deployChain(t, map[string]any{"name": "large", "steps": []any{
			map[string]any{"function": "big"}, map[string]any{"function": "measure"}}})
		run, resp := s.runChain(t, "large", nil)
		if resp.StatusCode != http.StatusOK || run.Status != "completed" || string(run.Output) != fmt.Sprint(5<<20) {
			t.Fatalf("%s %+v output %.100s", resp.Status, run.Error, run.Output)
		}
		// Stored once: in the step's invocation record, not also in the object store.
		if keys := s.payloadKeys(t, run.ID); len(keys) != 0 {
			t.Fatalf("the run left objects: %v", keys)
		}
	})

	t.Run("input over 256 KiB by reference to the run's record", func(t *testing.T) {
		s.deploy(t, "echo", "python", "echo.handler", "echo.py", pyEcho, nil)
		s.deployChain(t, map[string]any{"name": "echo-map", "steps": []any{
			map[string]any{"map": map[string]any{"function": "echo"}, "max_concurrency": 8}}})
		in := make([]string, 30)
		for i := range in {
			in[i] = fmt.Sprintf("%02d", i) + strings.Repeat("x", 10000)
		}
		run, resp := s.runChain(t, "echo-map", in, "Prefer", "respond-async")
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%s %+v", resp.Status, run)
		}
		// The workflow's input names the record; the input is not in the object store.
		if start := s.chainInput(t, run.ID); start.Input.Ref != "chain-run-input:"+run.ID || start.Input.Inline != nil {
			t.Fatalf("workflow input %+v, want a reference to the run's record", start.Input)
		}
		if ok, err := s.objects.Exists(context.Background(), "payloads/"+run.ID+"/input"); err != nil || ok {
			t.Fatalf("the input is in the object store too: %v %v", ok, err)
		}
		s.temporal.GetWorkflow(context.Background(), run.ID, "").Get(context.Background(), nil)
		got := s.waitRun(t, run.ID, time.Minute)
		var out []string
		if err := json.Unmarshal(got.Output, &out); got.Status != "completed" || err != nil || !slices.Equal(out, in) {
			t.Fatalf("run %s %+v, output %.100s", got.Status, got.Error, got.Output)
		}
		// The map's chunks and its 300 KB output were stored (payloads/<run>/0/...)
		// and deleted once the run was recorded.
		if keys := s.payloadKeys(t, run.ID); len(keys) != 0 {
			t.Fatalf("the run left objects: %v", keys)
		}
	})

	t.Run("schedule fires at least twice", func(t *testing.T) {
		name := s.scheduleEverySecond(t, "tick", "inc", 41)
		deadline := time.Now().Add(30 * time.Second)
		for {
			var got struct {
				RecentRuns []struct {
					ID   string `json:"id"`
					Link string `json:"link"`
				} `json:"recent_runs"`
			}
			s.do(t, http.MethodGet, "/v1/schedules/"+name, nil, &got)
			done := 0
			for _, r := range got.RecentRuns {
				var inv ferry.Invocation
				s.do(t, http.MethodGet, r.Link, nil, &inv)
				if inv.Status == ferry.StatusCompleted && string(inv.Result) == "42" {
					done++
				}
			}
			if done >= 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("schedule completed %d runs in 30 s: %+v", done, got)
			}
			time.Sleep(500 * time.Millisecond)
		}
		var sch map[string]any
		resp := s.do(t, http.MethodPost, "/v1/schedules/"+name+"/pause", nil, &sch)
		if resp.StatusCode != http.StatusOK || sch["paused"] != true {
			t.Fatalf("pause: %s %v", resp.Status, sch)
		}
	})

	t.Run("scheduled invocation gets the API's execution timeout", func(t *testing.T) {
		// Under 30 s: the scheduled formula used to floor it there (16m, not 15m10s),
		// plus the longest durable wait.
		s.deploy(t, "inc5", "python", "inc.handler", "inc.py", pyInc, map[string]any{"timeout_seconds": 5, "retries": 1})
		want := workflows.InvokeExecutionTimeout(ferry.Limits{TimeoutSeconds: 5, Retries: 1})
		// A firing is listed as soon as its ScheduledRun starts, a moment before
		// that starts the invocation's workflow: wait for it to exist.
		timeoutOf := func(id string) time.Duration {
			t.Helper()
			for wait := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				d, err := s.temporal.DescribeWorkflow(context.Background(), id, "")
				var notFound *serviceerror.NotFound
				if errors.As(err, &notFound) && time.Now().Before(wait) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				return d.RawResponse.GetExecutionConfig().GetWorkflowExecutionTimeout().AsDuration()
			}
		}
		inv, resp := s.invoke(t, "inc5", 1)
		if resp.StatusCode != http.StatusOK || inv.Status != "completed" {
			t.Fatalf("invoke: %s %+v", resp.Status, inv)
		}
		if got := timeoutOf(inv.ID); got != want || want != 15*time.Minute+10*time.Second+ferry.MaxWait {
			t.Fatalf("API invocation's execution timeout %v, want %v", got, want)
		}
		name := s.scheduleEverySecond(t, "tick5", "inc5", 1)
		deadline := time.Now().Add(30 * time.Second)
		for {
			var got struct {
				RecentRuns []struct {
					ID string `json:"id"`
				} `json:"recent_runs"`
			}
			s.do(t, http.MethodGet, "/v1/schedules/"+name, nil, &got)
			if len(got.RecentRuns) > 0 && got.RecentRuns[0].ID != "" {
				if d := timeoutOf(got.RecentRuns[0].ID); d != want {
					t.Fatalf("scheduled invocation's execution timeout %v, want %v (as over the API)", d, want)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no scheduled run in 30 s: %+v", got)
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
}

// scheduleEverySecond creates a schedule that invokes function with payload
// every second (removed when the test ends) and returns its name.
func (s *testServer) scheduleEverySecond(t *testing.T, prefix, function string, payload any) string {
	t.Helper()
	var sch map[string]any
	resp := s.do(t, http.MethodPost, "/v1/schedules", map[string]any{"name": prefix + "-" + strings.ToLower(s.cfg.TaskQueue[len(s.cfg.TaskQueue)-8:]),
		"every": "1s", "target": map[string]any{"function": function}, "payload": payload, "overlap": "skip"}, &sch)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("%s %v", resp.Status, sch)
	}
	name := sch["name"].(string)
	t.Cleanup(func() { s.do(t, http.MethodDelete, "/v1/schedules/"+name, nil, nil) })
	return name
}
