package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
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
	"nodejs": {"nodejs", "app.handler", "app.js", `const run = (name, value, sleep = 0) => new Promise((resolve) => {
  console.log('ran', name);
  setTimeout(() => resolve(value), sleep * 1000);
});
exports.handler = async (event, context) => {
  console.log('run begins');
  const a = await context.step('one', () => run('one', 1));
  const b = await context.step('two', () => run('two', a + 1));
  const c = await context.step('three', () => run('three', b + 1, event.sleep || 0));
  return [a, b, c];
};
`},
	"go": {"go", "Handle", "main.go", `package main

import (
	"context"
	"fmt"
	"time"
)

func run(name string, value int, sleep float64) func(context.Context) (interface{}, error) {
	return func(context.Context) (interface{}, error) {
		fmt.Println("ran", name)
		time.Sleep(time.Duration(sleep * float64(time.Second)))
		return value, nil
	}
}

func Handle(ctx context.Context, event struct{ Sleep float64 }) ([]int, error) {
	fmt.Println("run begins")
	var a, b, c int
	if err := FerryStep(ctx, "one", &a, run("one", 1, 0)); err != nil {
		return nil, err
	}
	if err := FerryStep(ctx, "two", &b, run("two", a+1, 0)); err != nil {
		return nil, err
	}
	if err := FerryStep(ctx, "three", &c, run("three", b+1, event.Sleep)); err != nil {
		return nil, err
	}
	return []int{a, b, c}, nil
}
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
	for _, rt := range []string{"python", "nodejs", "go"} {
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

// waitTwice: step "before", a wait of event.wait seconds, step "after".
var waitTwice = map[string]durableHandler{
	"python": {"python", "app.handler", "app.py", `def handler(event, context):
    print("run begins")
    def run(name, value):
        print("ran", name)
        return value
    a = context.step("before", lambda: run("before", 1))
    context.wait(event["wait"])
    b = context.step("after", lambda: run("after", a + 1))
    return [a, b]
`},
	"nodejs": {"nodejs", "app.handler", "app.js", `exports.handler = async (event, context) => {
  console.log('run begins');
  const run = (name, value) => { console.log('ran', name); return value; };
  const a = await context.step('before', () => run('before', 1));
  await context.wait(event.wait);
  const b = await context.step('after', () => run('after', a + 1));
  return [a, b];
};
`},
	"go": {"go", "Handle", "main.go", `package main

import (
	"context"
	"fmt"
	"time"
)

func Handle(ctx context.Context, event struct{ Wait float64 }) ([]int, error) {
	fmt.Println("run begins")
	var a, b int
	if err := FerryStep(ctx, "before", &a, func(context.Context) (interface{}, error) {
		fmt.Println("ran before")
		return 1, nil
	}); err != nil {
		return nil, err
	}
	if err := FerryWait(ctx, "", time.Duration(event.Wait*float64(time.Second))); err != nil {
		return nil, err
	}
	if err := FerryStep(ctx, "after", &b, func(context.Context) (interface{}, error) {
		fmt.Println("ran after")
		return a + 1, nil
	}); err != nil {
		return nil, err
	}
	return []int{a, b}, nil
}
`},
}

// waitForStatus polls an invocation until its status is want.
func (s *testServer) waitForStatus(t *testing.T, id, want string, within time.Duration) invocationJSON {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var inv invocationJSON
		s.do(t, http.MethodGet, "/v1/invocations/"+id, nil, &inv)
		if inv.Status == want {
			return inv
		}
		if inv.Status != "pending" && inv.Status != "running" && inv.Status != "waiting" {
			var logs struct{ Logs string }
			s.do(t, http.MethodGet, "/v1/invocations/"+id+"/logs", nil, &logs)
			t.Fatalf("invocation %s ended %s (%+v), want %q; logs %q", id, inv.Status, inv.Error, want, logs.Logs)
		}
		if time.Now().After(deadline) {
			t.Fatalf("invocation %s is %q after %s, want %q", id, inv.Status, within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkWaitedOnce: the handler ran twice (before and after the wait) and
// each step once, in order, in the invocation's logs.
func checkWaitedOnce(t *testing.T, logs string) {
	t.Helper()
	if n := strings.Count(logs, "run begins"); n != 2 {
		t.Errorf("the handler ran %d times, want 2 (before and after the wait): %q", n, logs)
	}
	if strings.Count(logs, "ran before") != 1 || strings.Count(logs, "ran after") != 1 {
		t.Errorf("want each step to run once: %q", logs)
	}
	i, j, k := strings.Index(logs, "ran before"), strings.Index(logs, "suspended at wait"), strings.Index(logs, "ran after")
	if i < 0 || j < i || k < j {
		t.Errorf("logs out of order: %q", logs)
	}
}

// TestDurableWait: wait(2 s) releases the container to the warm pool while the
// invocation is waiting, then the handler runs again with step "before"
// replayed.
func TestDurableWait(t *testing.T) {
	for _, rt := range []string{"python", "nodejs", "go"} {
		t.Run(rt, func(t *testing.T) {
			h := waitTwice[rt]
			s := startTestServer(t, "e2e_durable_wait_"+rt)
			s.deploy(t, "waits", h.runtime, h.handler, h.filename, h.code, map[string]any{"timeout_seconds": 10})
			began := time.Now()
			inv, resp := s.invoke(t, "waits", map[string]any{"wait": 2}, "Prefer", "respond-async")
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("invoke: %s", resp.Status)
			}
			s.waitForStatus(t, inv.ID, "waiting", time.Minute)
			if st := s.executor.Stats(); st.Busy != 0 || st.Idle < 1 {
				t.Errorf("while waiting the container must be idle in the warm pool: %+v", st)
			}
			final := s.waitFinal(t, inv.ID, time.Minute)
			if final.Status != "completed" || strings.ReplaceAll(string(final.Result), " ", "") != "[1,2]" {
				t.Fatalf("invocation: %s %s %+v", final.Status, final.Result, final.Error)
			}
			if took := time.Since(began); took < 2*time.Second {
				t.Errorf("completed after %s, before its wait of 2 s ended", took)
			}
			t.Logf("completed %s after the invoke (wait 2 s)", time.Since(began).Round(time.Millisecond))
			var rec struct {
				FinishedAt time.Time `json:"finished_at"`
			}
			s.do(t, http.MethodGet, "/v1/invocations/"+inv.ID, nil, &rec)
			var st struct {
				Steps []struct {
					Kind      string    `json:"kind"`
					WaitUntil time.Time `json:"wait_until"`
				} `json:"steps"`
			}
			s.do(t, http.MethodGet, "/v1/invocations/"+inv.ID+"/steps", nil, &st)
			for _, op := range st.Steps {
				if op.Kind == "wait" {
					t.Logf("resume: the record was final %s after the wait ended (timer, Run, replay, step, record)",
						rec.FinishedAt.Sub(op.WaitUntil).Round(time.Millisecond))
				}
			}
			var logs struct{ Logs string }
			s.do(t, http.MethodGet, "/v1/invocations/"+inv.ID+"/logs", nil, &logs)
			checkWaitedOnce(t, logs.Logs)
		})
	}
}

// TestDurableWaitSurvivesWorkerRestart: while the invocation waits (10 s),
// the Temporal server (a dev server of this test's own) is stopped, the worker
// killed, and both started again; the wait ends and the handler resumes on the
// new worker.
func TestDurableWaitSurvivesWorkerRestart(t *testing.T) {
	h := waitTwice["python"]
	temporal := newDevTemporal(t)
	cfg := testConfig(t, "e2e_durable_wait_restart")
	cfg.TemporalAddress = temporal.addr
	s := startWithConfig(t, cfg, roles{api: true})
	worker, _ := startWorkerProcess(t, cfg)
	s.deploy(t, "waits", h.runtime, h.handler, h.filename, h.code, map[string]any{"timeout_seconds": 10})
	inv, resp := s.invoke(t, "waits", map[string]any{"wait": 10}, "Prefer", "respond-async")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("invoke: %s", resp.Status)
	}
	s.waitForStatus(t, inv.ID, "waiting", time.Minute)
	temporal.stop(t)
	if err := worker.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = worker.Wait()
	temporal.start(t)
	startWorkerProcess(t, cfg)
	final := s.waitFinal(t, inv.ID, 2*time.Minute)
	if final.Status != "completed" || strings.ReplaceAll(string(final.Result), " ", "") != "[1,2]" {
		t.Fatalf("invocation: %s %s %+v", final.Status, final.Result, final.Error)
	}
	var logs struct{ Logs string }
	s.do(t, http.MethodGet, "/v1/invocations/"+inv.ID+"/logs", nil, &logs)
	checkWaitedOnce(t, logs.Logs)
}

// approvalHandler creates the callback "approval" (timeout event.timeout),
// returns its id from the step "submit", sleeps event.pause s in the step
// "pause", then waits for the callback: {"approval": body}, or {"error": type}.
const approvalHandler = `import time

def handler(event, context):
    print("run begins")
    cb = context.create_callback("approval", timeout=event.get("timeout", 60))
    context.step("submit", lambda: cb.callback_id)
    context.step("pause", lambda: time.sleep(event.get("pause", 0)))
    try:
        return {"approval": cb.result()}
    except Exception as e:
        return {"error": getattr(e, "type", type(e).__name__), "message": str(e)}
`

type stepsJSON struct {
	Status string `json:"status"`
	Steps  []struct {
		Name   string          `json:"name"`
		Kind   string          `json:"kind"`
		Status string          `json:"status"`
		Result json.RawMessage `json:"result"`
	} `json:"steps"`
}

// callbackToken polls the steps of invocation id until "submit" recorded the token.
func (s *testServer) callbackToken(t *testing.T, id string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var st stepsJSON
		s.do(t, http.MethodGet, "/v1/invocations/"+id+"/steps", nil, &st)
		for _, op := range st.Steps {
			var token string
			if op.Name == "submit" && json.Unmarshal(op.Result, &token) == nil && token != "" {
				return token
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no callback token after a minute: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postCallback POSTs body to the callback of token, without an API key.
func (s *testServer) postCallback(t *testing.T, token string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(s.URL()+"/v1/callbacks/"+token, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDurableCallbacks: a POST before the handler waits, a POST while it
// waits, a reused token, a wrong token, a bad body, a timeout, and a cancel of
// a waiting invocation, each with its documented answer.
func TestDurableCallbacks(t *testing.T) {
	s := startTestServer(t, "e2e_durable_callbacks")
	s.deploy(t, "approve", "python", "app.handler", "app.py", approvalHandler, map[string]any{"timeout_seconds": 10})
	start := func(event map[string]any) string {
		inv, resp := s.invoke(t, "approve", event, "Prefer", "respond-async")
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("invoke: %s", resp.Status)
		}
		return inv.ID
	}
	result := func(id string) string {
		final := s.waitFinal(t, id, time.Minute)
		if final.Status != "completed" {
			t.Fatalf("invocation %s: %s %+v", id, final.Status, final.Error)
		}
		return strings.ReplaceAll(string(final.Result), " ", "")
	}

	t.Run("after the wait", func(t *testing.T) {
		id := start(map[string]any{})
		token := s.callbackToken(t, id)
		if len(token) < 43 {
			t.Fatalf("token %q is shorter than 256 bits in base64", token)
		}
		s.waitForStatus(t, id, "waiting", time.Minute)
		if code, body := s.postCallback(t, token, []byte(`{"ok":`)); code != http.StatusBadRequest {
			t.Errorf("a body that is not JSON: %d %s, want 400", code, body)
		}
		if code, body := s.postCallback(t, token, bytes.Repeat([]byte(" "), 300<<10)); code != http.StatusRequestEntityTooLarge {
			t.Errorf("a body over 256 KiB: %d %s, want 413", code, body)
		}
		if code, body := s.postCallback(t, token, []byte(`{"by":"ann"}`)); code != http.StatusAccepted {
			t.Fatalf("POST: %d %s", code, body)
		}
		if got := result(id); got != `{"approval":{"by":"ann"}}` {
			t.Errorf("result %s", got)
		}
		if code, body := s.postCallback(t, token, []byte(`{}`)); code != http.StatusConflict {
			t.Errorf("a reused token: %d %s, want 409", code, body)
		}
		wrong := []byte(token)
		wrong[5] ^= 1
		if code, body := s.postCallback(t, string(wrong), []byte(`{}`)); code != http.StatusNotFound {
			t.Errorf("a wrong token: %d %s, want 404", code, body)
		}
		if code, _ := s.postCallback(t, "short", []byte(`{}`)); code != http.StatusNotFound {
			t.Errorf("a malformed token: %d, want 404", code)
		}
	})
	t.Run("before the wait", func(t *testing.T) {
		id := start(map[string]any{"pause": 4})
		token := s.callbackToken(t, id) // the handler is in "pause" now
		if code, body := s.postCallback(t, token, []byte(`"early"`)); code != http.StatusAccepted {
			t.Fatalf("POST: %d %s", code, body)
		}
		if got := result(id); got != `{"approval":"early"}` {
			t.Errorf("result %s", got)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		id := start(map[string]any{"timeout": 2})
		token := s.callbackToken(t, id)
		if got := result(id); !strings.Contains(got, `"error":"Callback.Timeout"`) {
			t.Errorf("result %s, want the error Callback.Timeout", got)
		}
		if code, body := s.postCallback(t, token, []byte(`{}`)); code != http.StatusConflict {
			t.Errorf("a POST after the timeout: %d %s, want 409", code, body)
		}
	})
	t.Run("cancel while waiting", func(t *testing.T) {
		id := start(map[string]any{})
		s.waitForStatus(t, id, "waiting", time.Minute)
		s.do(t, http.MethodPost, "/v1/invocations/"+id+"/cancel", nil, nil)
		if final := s.waitFinal(t, id, time.Minute); final.Status != "cancelled" {
			t.Errorf("cancelled while waiting: %s", final.Status)
		}
	})
	t.Run("sync invoke answers 202 when it waits", func(t *testing.T) {
		var inv invocationJSON
		resp := s.do(t, http.MethodPost, "/v1/functions/approve/invoke", map[string]any{}, &inv)
		if resp.StatusCode != http.StatusAccepted || inv.Status != "waiting" || resp.Header.Get("Location") != "/v1/invocations/"+inv.ID {
			t.Errorf("sync invoke of a handler that waits: %s status %q Location %q", resp.Status, inv.Status, resp.Header.Get("Location"))
		}
	})
}

// TestDurableStepCost measures what one step adds to a warm Python handler:
// invocations of 20 steps and of none, interleaved, on the same warm
// container; (duration with 20 - duration without) / 20 per pair. The
// numbers go to docs/BENCHMARKS.md; the test checks that every step was recorded.
func TestDurableStepCost(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	s := startTestServer(t, "e2e_durable_step_cost")
	s.deploy(t, "steps", "python", "app.handler", "app.py", `def handler(event, context):
    return [context.step("s%d" % i, lambda: i) for i in range(event["n"])]
`, map[string]any{"timeout_seconds": 10})
	duration := func(n int) float64 {
		var inv struct {
			ID      string `json:"id"`
			Status  string `json:"status"`
			Metrics struct {
				DurationMS float64 `json:"duration_ms"`
			} `json:"metrics"`
		}
		s.do(t, http.MethodPost, "/v1/functions/steps/invoke", map[string]any{"n": n}, &inv)
		if inv.Status != "completed" {
			t.Fatalf("invocation of %d steps: %s", n, inv.Status)
		}
		if n > 0 {
			var st stepsJSON
			s.do(t, http.MethodGet, "/v1/invocations/"+inv.ID+"/steps", nil, &st)
			if len(st.Steps) != n {
				t.Fatalf("%d steps recorded, want %d", len(st.Steps), n)
			}
		}
		return inv.Metrics.DurationMS
	}
	duration(0) // warm up
	duration(20)
	const pairs, steps = 40, 20
	var per []float64
	var base []float64
	for range pairs {
		d0 := duration(0)
		d := duration(steps)
		base = append(base, d0)
		per = append(per, (d-d0)/steps)
	}
	sort.Float64s(per)
	sort.Float64s(base)
	t.Logf("one step on a warm container: p50 %.3f ms, p99 %.3f ms (%d pairs of %d steps vs none); handler without steps p50 %.3f ms",
		per[len(per)/2], per[len(per)*99/100], pairs, steps, base[len(base)/2])
}

// TestDurableOrderExamples runs the README's order flow (examples/order-*):
// the order waits, the approval is POSTed to the URL the handler printed, and
// the order ends charged with each step run once.
func TestDurableOrderExamples(t *testing.T) {
	s := startTestServer(t, "e2e_durable_examples")
	for _, ex := range []struct{ runtime, dir, file string }{
		{"python", "order-python", "order.py"}, {"nodejs", "order-nodejs", "order.js"},
	} {
		t.Run(ex.runtime, func(t *testing.T) {
			code, err := os.ReadFile(filepath.Join("..", "..", "examples", ex.dir, ex.file))
			if err != nil {
				t.Fatal(err)
			}
			s.deploy(t, ex.dir, ex.runtime, "order.handler", ex.file, string(code), nil)
			inv, resp := s.invoke(t, ex.dir, map[string]any{"id": "42", "item": "kayak", "qty": 1, "amount": 899}, "Prefer", "respond-async")
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("invoke: %s", resp.Status)
			}
			s.waitForStatus(t, inv.ID, "waiting", time.Minute)
			var logs struct{ Logs string }
			s.do(t, http.MethodGet, "/v1/invocations/"+inv.ID+"/logs", nil, &logs)
			i := strings.Index(logs.Logs, "/v1/callbacks/")
			if i < 0 {
				t.Fatalf("no callback URL in the logs: %q", logs.Logs)
			}
			token := strings.Fields(logs.Logs[i+len("/v1/callbacks/"):])[0]
			if code, body := s.postCallback(t, token, []byte(`{"approved": true}`)); code != http.StatusAccepted {
				t.Fatalf("approve: %d %s", code, body)
			}
			final := s.waitFinal(t, inv.ID, time.Minute)
			if final.Status != "completed" || !strings.Contains(string(final.Result), `"charged"`) {
				t.Fatalf("order: %s %s %+v", final.Status, final.Result, final.Error)
			}
			s.do(t, http.MethodGet, "/v1/invocations/"+inv.ID+"/logs", nil, &logs)
			if strings.Count(logs.Logs, "reserving") != 1 || strings.Count(logs.Logs, "charging") != 1 {
				t.Errorf("each step must run once: %q", logs.Logs)
			}
		})
	}
}

// TestDurableLimits: a duplicate step name, a step result that is not JSON and
// too many steps fail the invocation with their error types; a result over
// 256 KiB is stored by reference and replayed whole.
func TestDurableLimits(t *testing.T) {
	s := startTestServer(t, "e2e_durable_limits")
	s.deploy(t, "limits", "python", "app.handler", "app.py", `def handler(event, context):
    case = event["case"]
    if case == "duplicate":
        context.step("a", lambda: 1)
        context.step("a", lambda: 2)
    if case == "notjson":
        context.step("s", lambda: {1, 2})
    if case == "many":
        for i in range(1001):
            context.step("s%d" % i, lambda: i)
    if case == "large":
        big = context.step("big", lambda: "x" * (300 << 10))
        context.wait(0.1)
        return len(big)
`, map[string]any{"timeout_seconds": 10})
	for c, want := range map[string]string{"duplicate": "Durable.DuplicateName", "notjson": "Step.MarshalError",
		"many": "Durable.TooManyOperations"} {
		inv, _ := s.invoke(t, "limits", map[string]any{"case": c}, "Prefer", "respond-async")
		final := s.waitFinal(t, inv.ID, time.Minute)
		if final.Status != "failed" || final.Error == nil || final.Error.Type != want {
			t.Errorf("%s: %s %+v, want failed %s", c, final.Status, final.Error, want)
		}
	}
	inv, _ := s.invoke(t, "limits", map[string]any{"case": "large"}, "Prefer", "respond-async")
	if final := s.waitFinal(t, inv.ID, time.Minute); final.Status != "completed" || string(final.Result) != "307200" {
		t.Fatalf("large: %s %s %+v", final.Status, final.Result, final.Error)
	}
	var st struct {
		Steps []struct {
			Name          string `json:"name"`
			ResultOmitted bool   `json:"result_omitted"`
			ResultSize    int    `json:"result_size"`
		} `json:"steps"`
	}
	s.do(t, http.MethodGet, "/v1/invocations/"+inv.ID+"/steps", nil, &st)
	if len(st.Steps) != 2 || !st.Steps[0].ResultOmitted || st.Steps[0].ResultSize != 307202 {
		t.Errorf("steps of large: %+v", st.Steps)
	}
}

// TestDurableInvoke: context.invoke runs another function as its own
// invocation (id derived from the caller's and the operation's name) and the
// handler replays with its result; a failure of the invoked function raises in
// the handler, an unknown function is refused at once; steps before an invoke
// do not run again.
func TestDurableInvoke(t *testing.T) {
	s := startTestServer(t, "e2e_durable_invoke")
	s.deploy(t, "double", "python", "app.handler", "app.py", `def handler(event, context):
    print("doubling", event["n"])
    return event["n"] * 2
`, nil)
	s.deploy(t, "fails", "python", "app.handler", "app.py", `def handler(event, context):
    raise ValueError("boom")
`, nil)
	s.deploy(t, "caller", "python", "app.handler", "app.py", `def handler(event, context):
    print("run begins")
    def first():
        print("ran a")
        return event["n"]
    a = context.step("a", first)
    b = context.invoke("double", {"n": a}, name="double")
    try:
        context.invoke("fails", {}, name="fails")
        failed = None
    except Exception as exc:
        failed = str(exc)
    try:
        context.invoke("no-such-function", {})
        missing = None
    except Exception as exc:
        missing = str(exc)
    return {"b": b, "failed": failed, "missing": missing}
`, map[string]any{"timeout_seconds": 10})
	inv, resp := s.invoke(t, "caller", map[string]any{"n": 21}, "Prefer", "respond-async")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("invoke: %s", resp.Status)
	}
	final := s.waitFinal(t, inv.ID, 2*time.Minute)
	var out struct {
		B       int     `json:"b"`
		Failed  *string `json:"failed"`
		Missing *string `json:"missing"`
	}
	if final.Status != "completed" || json.Unmarshal(final.Result, &out) != nil {
		t.Fatalf("caller: %s %s %+v", final.Status, final.Result, final.Error)
	}
	if out.B != 42 || out.Failed == nil || !strings.Contains(*out.Failed, "boom") ||
		out.Missing == nil || !strings.Contains(*out.Missing, "no-such-function") {
		t.Errorf("caller's result: %s", final.Result)
	}
	var logs struct{ Logs string }
	s.do(t, http.MethodGet, "/v1/invocations/"+inv.ID+"/logs", nil, &logs)
	if n := strings.Count(logs.Logs, "run begins"); n != 3 || strings.Count(logs.Logs, "ran a") != 1 {
		t.Errorf("want 3 runs (two invokes suspend) and step a once: %q", logs.Logs)
	}
	var st struct {
		Steps []struct {
			Name   string          `json:"name"`
			Kind   string          `json:"kind"`
			Status string          `json:"status"`
			Result json.RawMessage `json:"result"`
		} `json:"steps"`
	}
	s.do(t, http.MethodGet, "/v1/invocations/"+inv.ID+"/steps", nil, &st)
	got := []string{}
	for _, op := range st.Steps {
		got = append(got, op.Name+" "+op.Kind+" "+op.Status+" "+string(op.Result))
	}
	want := []string{"a step succeeded 21", "double invoke succeeded 42", "fails invoke failed "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("operations: %q, want %q", got, want)
	}
	// The invoked function ran as an invocation of its own, with its logs.
	child := s.waitFinal(t, uuid.NewSHA1(uuid.MustParse(inv.ID), []byte("invoke\x00double")).String(), time.Minute)
	if child.Status != "completed" || string(child.Result) != "42" {
		t.Errorf("invoked invocation: %s %s", child.Status, child.Result)
	}

	// An invoke runs only what the invocation's key may execute.
	key, keyID := s.newKey(t, ferry.RoleInvoker)
	asInvoker := []string{"Authorization", "Bearer " + key, "Prefer", "respond-async"}
	grant := func(fn string) {
		if resp := s.do(t, http.MethodPost, "/v1/functions/"+fn+"/permissions",
			map[string]any{"key_id": keyID, "permission": "execute"}, nil); resp.StatusCode >= 300 {
			t.Fatalf("grant on %s: %s", fn, resp.Status)
		}
	}
	grant("caller")
	inv, _ = s.invoke(t, "caller", map[string]any{"n": 1}, asInvoker...)
	if final := s.waitFinal(t, inv.ID, time.Minute); final.Status != "failed" || final.Error == nil ||
		final.Error.Type != "Invoke.Forbidden" || !strings.Contains(final.Error.Message, `"double"`) {
		t.Errorf("invoke without execute on double: %s %+v", final.Status, final.Error)
	}
	grant("double")
	grant("fails")
	inv, _ = s.invoke(t, "caller", map[string]any{"n": 2}, asInvoker...)
	if final := s.waitFinal(t, inv.ID, time.Minute); final.Status != "completed" || !strings.Contains(strings.ReplaceAll(string(final.Result), " ", ""), `"b":4`) {
		t.Errorf("invoke with execute on double: %s %s %+v", final.Status, final.Result, final.Error)
	}
}

// TestDurableInvokeRuntimes: invoke in Node.js and Go returns the invoked
// function's result and raises its failure.
func TestDurableInvokeRuntimes(t *testing.T) {
	s := startTestServer(t, "e2e_durable_invoke_rt")
	s.deploy(t, "double", "python", "app.handler", "app.py", `def handler(event, context):
    if event["n"] < 0:
        raise ValueError("negative")
    return event["n"] * 2
`, nil)
	callers := map[string]struct{ runtime, handler, filename, code string }{
		"nodejs": {"nodejs", "app.handler", "app.js", `exports.handler = async (event, context) => {
  const b = await context.invoke('double', { n: event.n }, 'double');
  let failed = null;
  try { await context.invoke('double', { n: -1 }, 'negative'); } catch (e) { failed = e.message; }
  return { b, failed };
};
`},
		"go": {"go", "Handle", "main.go", `package main

import "context"

func Handle(ctx context.Context, event struct{ N int }) (map[string]interface{}, error) {
	var b int
	if err := FerryInvoke(ctx, "double", "double", map[string]int{"n": event.N}, &b); err != nil {
		return nil, err
	}
	failed := ""
	if err := FerryInvoke(ctx, "negative", "double", map[string]int{"n": -1}, nil); err != nil {
		failed = err.Error()
	}
	return map[string]interface{}{"b": b, "failed": failed}, nil
}
`},
	}
	for _, rt := range []string{"nodejs", "go"} {
		t.Run(rt, func(t *testing.T) {
			h := callers[rt]
			s.deploy(t, "caller-"+rt, h.runtime, h.handler, h.filename, h.code, map[string]any{"timeout_seconds": 10})
			inv, _ := s.invoke(t, "caller-"+rt, map[string]any{"n": 21}, "Prefer", "respond-async")
			final := s.waitFinal(t, inv.ID, 2*time.Minute)
			var out struct {
				B      int    `json:"b"`
				Failed string `json:"failed"`
			}
			if final.Status != "completed" || json.Unmarshal(final.Result, &out) != nil || out.B != 42 ||
				!strings.Contains(out.Failed, "negative") {
				t.Fatalf("caller: %s %s %+v", final.Status, final.Result, final.Error)
			}
		})
	}
}

// TestChainWait: a chain's wait step sleeps on a durable timer and passes its
// input on; bad wait steps are refused at deploy.
func TestChainWait(t *testing.T) {
	s := startTestServer(t, "e2e_chain_wait")
	s.deploy(t, "inc", "python", "inc.handler", "inc.py", pyInc, nil)
	for _, bad := range []map[string]any{
		{"wait_seconds": -1},
		{"wait_seconds": int64(ferry.MaxWait/time.Second) + 1},
		{"wait_seconds": 5, "function": "inc"},
		{"wait_seconds": 5, "on_error": "continue"},
	} {
		var body map[string]any
		resp := s.do(t, http.MethodPost, "/v1/chains", map[string]any{"name": "bad-wait", "steps": []any{bad}}, &body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(fmt.Sprint(body), "steps[0]") {
			t.Errorf("deploy of %v: %s %v, want 400 naming steps[0]", bad, resp.Status, body)
		}
	}
	s.deployChain(t, map[string]any{"name": "inc-wait-inc", "steps": []any{
		map[string]any{"function": "inc"}, map[string]any{"wait_seconds": 2}, map[string]any{"function": "inc"}}})
	began := time.Now()
	run, resp := s.runChain(t, "inc-wait-inc", 40)
	if resp.StatusCode != http.StatusOK || run.Status != "completed" || string(run.Output) != "42" {
		t.Fatalf("run: %s %s %s %+v", resp.Status, run.Status, run.Output, run.Error)
	}
	if took := time.Since(began); took < 2*time.Second {
		t.Errorf("completed after %s, before its wait of 2 s ended", took)
	}
	var got []string
	for _, st := range run.Steps {
		got = append(got, st.Path+" "+st.Status)
	}
	if strings.Join(got, ",") != "0 completed,1 completed,2 completed" {
		t.Errorf("steps: %q", got)
	}
}
