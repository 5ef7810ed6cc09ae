package main

import (
	"context"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/storage/postgres"
	"github.com/google/uuid"
)

// runsOf counts how often a worker started the function of a step invocation
// (the "chain step running" line RunStep logs right before running it).
func runsOf(log string, id uuid.UUID) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "chain step running") && strings.Contains(line, id.String()) {
			n++
		}
	}
	return n
}

// TestChainSurvivesWorkerKill: a 6-step chain of ~1 s steps; the worker (a
// separate process) is killed with SIGKILL during step 3 and restarted. The
// chain completes and steps 1-2 ran exactly once: one completed record each,
// and no second start of their function in either worker's log, although the
// restarted worker replays the chain (local activity results of the first
// workflow task never reached Temporal's history).
func TestChainSurvivesWorkerKill(t *testing.T) {
	cfg := testConfig(t, "e2e_chain_crash")
	s := startWithConfig(t, cfg, roles{api: true})
	worker, log1 := startWorkerProcess(t, cfg)

	s.deploy(t, "tick", "python", "tick.handler", "tick.py",
		"import time\ndef handler(event, context):\n    print('tick', event)\n    time.sleep(1)\n    return event + 1\n",
		map[string]any{"timeout_seconds": 10})
	steps := make([]any, 6)
	for i := range steps {
		steps[i] = map[string]any{"function": "tick"}
	}
	s.deployChain(t, map[string]any{"name": "six", "steps": steps})
	run, resp := s.runChain(t, "six", 0, "Prefer", "respond-async")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("invoke: %s", resp.Status)
	}
	runID := uuid.MustParse(run.ID)
	step := func(i int) uuid.UUID { return ferry.StepInvocationID(runID, string(rune('0'+i))) }

	// Kill once step 3 runs.
	deadline := time.Now().Add(90 * time.Second)
	for {
		var inv invocationJSON
		s.do(t, http.MethodGet, "/v1/invocations/"+step(2).String(), nil, &inv)
		if inv.Status == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("step 3 not running after 90 s (status %q)", inv.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := worker.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = worker.Wait()
	killedAt := time.Now()
	_, log2 := startWorkerProcess(t, cfg)

	final := s.waitRun(t, run.ID, 3*time.Minute)
	if final.Status != "completed" || string(final.Output) != "6" {
		t.Fatalf("chain run %s: %s output %s error %+v", run.ID, final.Status, final.Output, final.Error)
	}
	t.Logf("chain completed %s after the kill", time.Since(killedAt).Round(time.Millisecond))

	ctx := context.Background()
	db, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	invs, _, err := db.ListInvocations(ctx, ferry.InvocationFilter{ChainRunID: &runID}, ferry.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(invs) != 6 {
		t.Fatalf("want 6 step invocation records, got %d", len(invs))
	}
	for i := range 6 {
		inv, err := db.GetInvocation(ctx, step(i))
		if err != nil || inv.Status != ferry.StatusCompleted {
			t.Fatalf("step %d: %+v %v", i+1, inv.Status, err)
		}
	}
	both := log1.String() + log2.String()
	for i := range 2 {
		if n := runsOf(both, step(i)); n != 1 {
			t.Errorf("step %d: its function was started %d times, want exactly 1", i+1, n)
		}
	}
	if !strings.Contains(log2.String(), "chain step already finished") {
		t.Log("note: the restarted worker did not need to replay a finished step")
	}
	t.Logf("step 3 started %d times (killed mid-run, so at least twice expected)", runsOf(both, step(2)))
	if runsOf(log1.String(), step(0)) != 1 {
		t.Fatal("the first worker's log does not show step 1 starting: the check above would be vacuous")
	}
}
