package postgres_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/google/uuid"
)

func TestChainRoundTrip(t *testing.T) {
	db, ctx := open(t), ctxT(t)
	steps := []ferry.Step{{Function: "a", Compensate: "undo-a"}, {Map: &ferry.Step{Function: "b", Retries: 2}, MaxConcurrency: 4}}
	_, err := db.CreateChainVersion(ctx, ferry.ChainVersion{Chain: "c", Steps: []ferry.Step{{Parallel: []ferry.Step{}}}})
	wantCode(t, err, ferry.EINVALID)
	v1, err := db.CreateChainVersion(ctx, ferry.ChainVersion{Chain: "c", Steps: steps, Description: "first"})
	if err != nil || v1.Version != 1 {
		t.Fatalf("%+v %v", v1, err)
	}
	v2, err := db.CreateChainVersion(ctx, ferry.ChainVersion{Chain: "c", Steps: steps[:1]})
	if err != nil || v2.Version != 2 {
		t.Fatalf("%+v %v", v2, err)
	}
	latest, err := db.GetChainVersion(ctx, "c", 0)
	if err != nil || latest.Version != 2 || len(latest.Steps) != 1 {
		t.Fatalf("latest %+v %v", latest, err)
	}
	first, err := db.GetChainVersion(ctx, "c", 1)
	if err != nil || first.Description != "first" || first.Steps[1].Map.Retries != 2 || first.Steps[1].MaxConcurrency != 4 {
		t.Fatalf("v1 %+v %v", first, err)
	}
	_, err = db.GetChainVersion(ctx, "c", 9)
	wantCode(t, err, ferry.ENOTFOUND)
	vs, _, err := db.ListChainVersions(ctx, "c", ferry.Viewer{}, ferry.Page{})
	if err != nil || len(vs) != 2 || vs[0].Version != 2 {
		t.Fatalf("versions %+v %v", vs, err)
	}

	run, created, err := db.CreateChainRun(ctx, ferry.ChainRun{Chain: "c", Version: 1, Input: json.RawMessage(`[1,2]`),
		IdempotencyKey: "k", RequestHash: "h1"})
	if err != nil || !created || run.Status != ferry.StatusPending || run.WorkflowID != run.ID.String() {
		t.Fatalf("run %+v %v", run, err)
	}
	again, created, err := db.CreateChainRun(ctx, ferry.ChainRun{Chain: "c", Version: 2, IdempotencyKey: "k", RequestHash: "h1"})
	if err != nil || created || again.ID != run.ID || again.Version != 1 {
		t.Fatalf("idempotent run %+v created=%v %v", again, created, err)
	}
	_, _, err = db.CreateChainRun(ctx, ferry.ChainRun{Chain: "c", Version: 1, IdempotencyKey: "k", RequestHash: "h2"})
	wantCode(t, err, ferry.EUNPROCESSABLE)
	// An expired key is free again.
	old, _, err := db.CreateChainRun(ctx, ferry.ChainRun{Chain: "c", Version: 1, IdempotencyKey: "old",
		CreatedAt: time.Now().Add(-ferry.IdempotencyKeyLifetime - time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if fresh, created, err := db.CreateChainRun(ctx, ferry.ChainRun{Chain: "c", Version: 1, IdempotencyKey: "old"}); err != nil || !created || fresh.ID == old.ID {
		t.Fatalf("expired key: %+v created=%v %v", fresh, created, err)
	}
	if err := db.StartChainRun(ctx, run.ID, "r1", run.CreatedAt); err != nil {
		t.Fatal(err)
	}
	steps0 := []ferry.StepStatus{{Path: "0", Function: "a", Version: 1, Status: ferry.StatusCompleted, InvocationID: ferry.StepInvocationID(run.ID, "0")}}
	fin, updated, err := db.FinishChainRun(ctx, run.ID, ferry.ChainOutcome{Status: ferry.StatusFailed, Steps: steps0,
		Error: &ferry.ChainError{Type: "ValueError", Message: "m", Step: "1", Compensations: []ferry.CompensationReport{{Step: "0", Function: "undo-a", Status: ferry.StatusCompleted}}}})
	if err != nil || !updated || fin.Status != ferry.StatusFailed || fin.Error.Compensations[0].Function != "undo-a" || len(fin.Steps) != 1 || fin.RunID != "r1" {
		t.Fatalf("finish %+v %v", fin, err)
	}
	_, updated, err = db.FinishChainRun(ctx, run.ID, ferry.ChainOutcome{Status: ferry.StatusCompleted})
	if err != nil || updated {
		t.Fatal("a final chain run changed")
	}
	runs, _, err := db.ListChainRuns(ctx, ferry.ChainRunFilter{Chain: "c", Status: ferry.StatusFailed}, ferry.Page{})
	if err != nil || len(runs) != 1 || runs[0].ID != run.ID {
		t.Fatalf("runs %+v %v", runs, err)
	}
	_, err = db.GetChainRun(ctx, uuid.New())
	wantCode(t, err, ferry.ENOTFOUND)
	if err := db.DeleteChain(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, db.DeleteChain(ctx, "c"), ferry.ENOTFOUND)
	if got, err := db.GetChainRun(ctx, run.ID); err != nil || got.IdempotencyKey != "" {
		t.Fatalf("runs outlive their chain, without their key: %q, %v", got.IdempotencyKey, err)
	}
	// A chain created later under the name does not get the deleted one's run for its key.
	if _, err := db.CreateChainVersion(ctx, ferry.ChainVersion{Chain: "c", Steps: steps}); err != nil {
		t.Fatal(err)
	}
	if fresh, created, err := db.CreateChainRun(ctx, ferry.ChainRun{Chain: "c", Version: 1, IdempotencyKey: "k", RequestHash: "h1"}); err != nil || !created || fresh.ID == run.ID {
		t.Fatalf("key of a deleted chain's run: %+v created=%v %v", fresh, created, err)
	}
}
