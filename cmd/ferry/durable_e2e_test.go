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

// durableHandler is a handler of one runtime for the durable tests.
type durableHandler struct {
	runtime, handler, filename, code string
}

// threeSteps: steps one, two and three print "ran <name>" and return 1, 2, 3;
// step three sleeps event.sleep seconds first. The handler prints "run begins"
// on every run and returns [one, two, three].
var threeSteps = map[string]durableHandler{
	"python": {"python", "app.handler", "app.py", `import time

def handler(event, context):
    print("run begins")
    def run(name, value, sleep=0):
        print("ran", name)
        time.sleep(sleep)
        return value
    a = context.step("one", lambda: run("one", 1))
    b = context.step("two", lambda: run("two", a + 1))
    c = context.step("three", lambda: run("three", b + 1, event.get("sleep", 0)))
    return [a, b, c]
`},
}

// durableDB opens the test server's database for the step records.
func durableDB(t *testing.T, cfg Config) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// TestDurableStepsSurviveWorkerKill: for each runtime, a handler of three
// steps; the worker (a separate process) is killed with SIGKILL while step 3
// runs. After a restart the invocation completes, and steps 1 and 2 did not
// run again: each has one record, made before the kill, and the run that
// completed printed only step 3.
func TestDurableStepsSurviveWorkerKill(t *testing.T) {
	for _, rt := range []string{"python"} {
		t.Run(rt, func(t *testing.T) {
			h := threeSteps[rt]
			cfg := testConfig(t, "e2e_durable_kill_"+rt)
			s := startWithConfig(t, cfg, roles{api: true})
			worker, _ := startWorkerProcess(t, cfg)
			db := durableDB(t, cfg)
			ctx := context.Background()

			s.deploy(t, "steps", h.runtime, h.handler, h.filename, h.code, map[string]any{"timeout_seconds": 10})
			inv, resp := s.invoke(t, "steps", map[string]any{"sleep": 4}, "Prefer", "respond-async")
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("invoke: %s", resp.Status)
			}
			id := uuid.MustParse(inv.ID)
			deadline := time.Now().Add(2 * time.Minute)
			for {
				ops, err := db.ListOperations(ctx, id, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				if len(ops) >= 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("steps 1-2 not recorded after 2 min (%d records)", len(ops))
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond) // inside step 3's sleep
			if err := worker.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = worker.Wait()
			killedAt := time.Now()
			startWorkerProcess(t, cfg)

			final := s.waitFinal(t, inv.ID, 3*time.Minute)
			if final.Status != "completed" || strings.ReplaceAll(string(final.Result), " ", "") != "[1,2,3]" {
				t.Fatalf("invocation %s: %s %s %+v", inv.ID, final.Status, final.Result, final.Error)
			}
			t.Logf("completed %s after the kill", time.Since(killedAt).Round(time.Millisecond))
			ops, err := db.ListOperations(ctx, id, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if len(ops) != 3 {
				t.Fatalf("want 3 step records, got %+v", ops)
			}
			for i, op := range ops {
				if op.Name != []string{"one", "two", "three"}[i] || op.Status != ferry.OperationSucceeded || op.Attempts != 1 {
					t.Errorf("record %d: %+v", i, op)
				}
				if i < 2 && !op.CreatedAt.Before(killedAt) {
					t.Errorf("step %s recorded after the kill: it ran again", op.Name)
				}
			}
			logs, err := db.InvocationLogs(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(logs, "run begins") || !strings.Contains(logs, "ran three") {
				t.Fatalf("the completing run's logs lack its output: %q", logs)
			}
			if strings.Contains(logs, "ran one") || strings.Contains(logs, "ran two") {
				t.Errorf("steps 1-2 ran again after the kill: %q", logs)
			}
		})
	}
}
