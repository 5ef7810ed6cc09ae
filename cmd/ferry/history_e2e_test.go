package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/activities"
	"github.com/ferry-faas/ferry/reconcile"
)

const pySleep = `import time
def handler(event, context):
    time.sleep(120)
    return event
`

const pyEcho = `def handler(event, context):
    return event
`

// TestE2EMapOf200000Elements is issue 8 item 10: a map step over a 200,000
// element array, whose input travels by reference. Temporal used to
// terminate the run within a second (the split elements exceeded the blob
// limit of a local activity marker) and its record stayed running. Now the
// map fails cleanly (ferry.MaxMapItems), recorded by the workflow itself.
func TestE2EMapOf200000Elements(t *testing.T) {
	s := startTestServer(t, "e2e_map_200k")
	s.deploy(t, "echo", "python", "echo.handler", "echo.py", pyEcho, nil)
	s.deployChain(t, map[string]any{"name": "wide", "steps": []any{
		map[string]any{"map": map[string]any{"function": "echo"}, "max_concurrency": 4}}})
	in := make([]int, 200000)
	for i := range in {
		in[i] = i
	}
	run, resp := s.runChain(t, "wide", in)
	if resp.StatusCode != http.StatusOK || run.Status != "failed" || run.Error == nil ||
		run.Error.Type != ferry.ErrTypeMapTooLarge || run.Error.Step != "0" {
		t.Fatalf("%s %s %+v", resp.Status, run.Status, run.Error)
	}
	d, err := s.temporal.DescribeWorkflow(context.Background(), run.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if st := d.RawResponse.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_FAILED {
		t.Fatalf("workflow %s, want failed", st)
	}
}

// TestE2EMapOfLargestInput maps over the largest array a map may take
// (ferry.MaxMapItems elements) in the largest body the API accepts: 10,000
// elements of 500 bytes, by reference. Split into one activity result, as it
// used to be, that is 5 MB in one local activity marker, and Temporal
// terminated the run at once. Now the elements are read from stored chunks:
// the run goes on, its elements run, and a cancel ends it cancelled.
func TestE2EMapOfLargestInput(t *testing.T) {
	s := startTestServer(t, "e2e_map_largest")
	s.deploy(t, "echo", "python", "echo.handler", "echo.py", pyEcho, nil)
	s.deployChain(t, map[string]any{"name": "wide", "steps": []any{
		map[string]any{"map": map[string]any{"function": "echo"}, "max_concurrency": 4}}})
	in := make([]string, ferry.MaxMapItems)
	for i := range in {
		in[i] = fmt.Sprintf("%05d", i) + strings.Repeat("x", 495)
	}
	run, resp := s.runChain(t, "wide", in, "Prefer", "respond-async")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%s %+v", resp.Status, run)
	}
	ctx := context.Background()
	// Wait until elements have completed; the workflow must be running all along.
	deadline := time.Now().Add(90 * time.Second)
	for {
		d, err := s.temporal.DescribeWorkflow(ctx, run.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		if st := d.RawResponse.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			t.Fatalf("workflow %s, want running", st)
		}
		var invs struct {
			Invocations []invocationJSON `json:"invocations"`
		}
		s.do(t, http.MethodGet, "/v1/invocations?status=completed&chain_run_id="+run.ID, nil, &invs)
		if len(invs.Invocations) >= 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d elements completed after 90 s", len(invs.Invocations))
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The map's chunks are stored under the run's prefix; its input is not
	// (the workflow loads it from the run's record).
	keys := s.payloadKeys(t, run.ID)
	if len(keys) == 0 || slices.Contains(keys, "payloads/"+run.ID+"/input") {
		t.Fatalf("objects of the running run: %v", keys)
	}
	// An element's output is its input.
	var cur chainRunJSON
	s.do(t, http.MethodGet, "/v1/chain-runs/"+run.ID, nil, &cur)
	found := false
	for _, st := range cur.Steps {
		if st.Status == "completed" && strings.HasPrefix(st.Path, "0.map[") {
			var el invocationJSON
			s.do(t, http.MethodGet, st.Invocation, nil, &el)
			i, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(st.Path, "0.map["), "]"))
			if want, _ := json.Marshal(in[i]); string(el.Result) != string(want) {
				t.Fatalf("element %s returned %.40s", st.Path, el.Result)
			}
			found = true
			break
		}
	}
	if !found {
		t.Fatalf("progress lists no completed element: %+v", cur.Steps)
	}

	resp = s.do(t, http.MethodPost, "/v1/chain-runs/"+run.ID+"/cancel", nil, nil)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		t.Fatalf("cancel: %s", resp.Status)
	}
	final := s.waitRun(t, run.ID, time.Minute)
	if final.Status != "cancelled" || final.Error == nil || final.Error.Type != "Cancelled" {
		t.Fatalf("run %s %+v", final.Status, final.Error)
	}
	d, err := s.temporal.DescribeWorkflow(ctx, run.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if st := d.RawResponse.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED {
		t.Fatalf("workflow %s, want canceled", st)
	}
	// Deleted once the run was recorded cancelled.
	if keys := s.payloadKeys(t, run.ID); len(keys) != 0 {
		t.Fatalf("the cancelled run left %d objects: %.3v", len(keys), keys)
	}
}

// TestE2ETerminatedWorkflowsGetFinalRecords terminates the workflows of a
// running invocation and of a running chain run, as an operator or a Temporal
// limit would. Cancel of the invocation answers its final record at once
// (it used to answer 202 forever), and the reconciler closes the chain run
// and its step.
func TestE2ETerminatedWorkflowsGetFinalRecords(t *testing.T) {
	s := startTestServer(t, "e2e_terminated")
	s.deploy(t, "sleepy", "python", "sleep.handler", "sleep.py", pySleep, map[string]any{"timeout_seconds": 180})
	ctx := context.Background()
	waitRunning := func(path string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			var rec struct{ Status string }
			s.do(t, http.MethodGet, path, nil, &rec)
			if rec.Status == "running" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is %s after a minute", path, rec.Status)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	t.Run("invocation: cancel answers the final record", func(t *testing.T) {
		inv, resp := s.invoke(t, "sleepy", 1, "Prefer", "respond-async")
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%s", resp.Status)
		}
		waitRunning("/v1/invocations/" + inv.ID)
		if err := s.temporal.TerminateWorkflow(ctx, inv.ID, "", "stopped by the operator"); err != nil {
			t.Fatal(err)
		}
		var got invocationJSON
		resp = s.do(t, http.MethodPost, "/v1/invocations/"+inv.ID+"/cancel", nil, &got)
		if resp.StatusCode != http.StatusOK || got.Status != "failed" || got.Error == nil ||
			got.Error.Type != ferry.ErrTypeTerminated || !strings.Contains(got.Error.Message, "stopped by the operator") {
			t.Fatalf("cancel: %s %+v %+v", resp.Status, got, got.Error)
		}
	})

	t.Run("sync invoke and sync chain run answer the final record", func(t *testing.T) {
		s.deployChain(t, map[string]any{"name": "slow-sync", "steps": []any{map[string]any{"function": "sleepy"}}})
		for _, path := range []string{"/v1/functions/sleepy/invoke", "/v1/chains/slow-sync/invoke"} {
			type answer struct {
				status int
				rec    invocationJSON
			}
			got := make(chan answer, 1)
			key := uuid.NewString()
			go func() {
				var rec invocationJSON
				resp := s.do(t, http.MethodPost, path, 1, &rec, "Idempotency-Key", key)
				got <- answer{resp.StatusCode, rec}
			}()
			// The same key finds the waiting request's record.
			var rec invocationJSON
			deadline := time.Now().Add(time.Minute)
			for rec.Status != "running" {
				if time.Now().After(deadline) {
					t.Fatalf("%s: %+v not running", path, rec)
				}
				time.Sleep(300 * time.Millisecond)
				s.do(t, http.MethodPost, path, 1, &rec, "Idempotency-Key", key, "Prefer", "respond-async")
			}
			if err := s.temporal.TerminateWorkflow(ctx, rec.ID, "", "stopped by the operator"); err != nil {
				t.Fatal(err)
			}
			a := <-got
			if a.status != http.StatusOK || a.rec.Status != "failed" || a.rec.Error == nil || a.rec.Error.Type != ferry.ErrTypeTerminated {
				t.Fatalf("%s: %d %+v %+v", path, a.status, a.rec, a.rec.Error)
			}
		}
	})

	t.Run("chain run without a workflow: cancel closes it and deletes its payloads", func(t *testing.T) {
		s.deployChain(t, map[string]any{"name": "orphan", "steps": []any{map[string]any{"function": "sleepy"}}})
		id := uuid.Must(uuid.NewV7())
		if _, _, err := s.db.CreateChainRun(ctx, ferry.ChainRun{ID: id, Chain: "orphan", Version: 1, Status: ferry.StatusPending,
			WorkflowID: id.String(), CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := s.objects.Put(ctx, activities.PayloadKey(id, "0/output"), []byte(`1`)); err != nil {
			t.Fatal(err)
		}
		var got chainRunJSON
		resp := s.do(t, http.MethodPost, "/v1/chain-runs/"+id.String()+"/cancel", nil, &got)
		if resp.StatusCode != http.StatusOK || got.Status != "cancelled" {
			t.Fatalf("cancel: %s %+v", resp.Status, got)
		}
		if keys := s.payloadKeys(t, id.String()); len(keys) != 0 {
			t.Fatalf("the cancelled run left objects: %v", keys)
		}
	})

	t.Run("chain run: the reconciler closes it and its step", func(t *testing.T) {
		s.deployChain(t, map[string]any{"name": "slow", "steps": []any{map[string]any{"function": "sleepy"}}})
		run, resp := s.runChain(t, "slow", 1, "Prefer", "respond-async")
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%s", resp.Status)
		}
		waitRunning("/v1/chain-runs/" + run.ID)
		var cur chainRunJSON
		deadline := time.Now().Add(time.Minute)
		for len(cur.Steps) == 0 || cur.Steps[0].Status != "running" {
			if time.Now().After(deadline) {
				t.Fatalf("step not running: %+v", cur.Steps)
			}
			time.Sleep(200 * time.Millisecond)
			s.do(t, http.MethodGet, "/v1/chain-runs/"+run.ID, nil, &cur)
		}
		step := cur.Steps[0].Invocation
		waitRunning(step)
		reason := "RecordMarkerCommandAttributes.Details exceeds size limit."
		if err := s.temporal.TerminateWorkflow(ctx, run.ID, "", reason); err != nil {
			t.Fatal(err)
		}
		// What a run stores before it is terminated (a map's chunk, say) goes with it.
		chunk := activities.PayloadKey(uuid.MustParse(run.ID), "0/items/0")
		if err := s.objects.Put(ctx, chunk, []byte(`[]`)); err != nil {
			t.Fatal(err)
		}
		r := &reconcile.Reconciler{Store: s.db, Temporal: s.temporal, Objects: s.objects, MinAge: time.Nanosecond}
		n, err := r.Sweep(ctx)
		if err != nil || n != 2 {
			t.Fatalf("sweep closed %d records (want the run and its step): %v", n, err)
		}
		if keys := s.payloadKeys(t, run.ID); len(keys) != 0 {
			t.Fatalf("the reconciled run left objects: %v", keys)
		}
		var got chainRunJSON
		s.do(t, http.MethodGet, "/v1/chain-runs/"+run.ID, nil, &got)
		if got.Status != "failed" || got.Error == nil || got.Error.Type != ferry.ErrTypeTerminated ||
			got.Error.Message != "the workflow was terminated: "+reason {
			t.Fatalf("run %s %+v", got.Status, got.Error)
		}
		var inv invocationJSON
		s.do(t, http.MethodGet, step, nil, &inv)
		if inv.Status != "failed" || inv.Error == nil || inv.Error.Type != ferry.ErrTypeTerminated {
			t.Fatalf("step %s %+v", inv.Status, inv.Error)
		}
		// A cancel now answers 409: the run is final.
		resp = s.do(t, http.MethodPost, "/v1/chain-runs/"+run.ID+"/cancel", nil, nil)
		if resp.StatusCode != http.StatusConflict {
			t.Fatalf("cancel after close: %s", resp.Status)
		}
	})
}
