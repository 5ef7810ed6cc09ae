package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/activities"
	"github.com/ferry-faas/ferry/api"
	"github.com/ferry-faas/ferry/storage/postgres"
	"github.com/ferry-faas/ferry/storage/s3"
	"github.com/ferry-faas/ferry/workflows"
)

// fakeTemporal stands in for Temporal and the worker: a started "workflow"
// records running, then an outcome chosen by the event, in the real store.
// End-to-end runs through real Temporal and Docker live in cmd/ferry.
type fakeTemporal struct {
	t        *testing.T
	db       *postgres.DB
	code     *s3.Store
	queue    string
	startErr error

	// observer, when set, is told about every final record, as the worker
	// tells activities.Completions.
	observer activities.Observer
	// result says how Get reports a workflow's end (resultAsWorkflow by default).
	result fakeResult

	mu     sync.Mutex
	runs   map[string]*fakeRun
	starts map[string]int
	inputs map[string]workflows.InvokeInput
	eager  map[string]bool // workflow id → EnableEagerStart of its first start
}

func (f *fakeTemporal) eagerStart(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.eager[id]
}

var _ api.Temporal = (*fakeTemporal)(nil)

// fakeResult is how a fake workflow run reports its end.
type fakeResult int

const (
	// resultAsWorkflow: InvokeFunction's result (the record without its event)
	// when the function completed, an error otherwise.
	resultAsWorkflow fakeResult = iota
	// resultLost: an error whatever the outcome (Temporal's answer was lost).
	resultLost
	// resultNever: Get returns only when its context ends.
	resultNever
)

type fakeRun struct {
	id       string
	done     chan struct{}
	cancel   chan struct{}
	once     sync.Once
	inv      ferry.Invocation
	notFound bool
	result   fakeResult
}

func (r *fakeRun) GetID() string                  { return r.id }
func (r *fakeRun) GetRunID() string               { return "run-" + r.id }
func (r *fakeRun) GetFirstExecutionRunID() string { return r.GetRunID() }
func (r *fakeRun) Get(ctx context.Context, v any) error {
	return r.GetWithOptions(ctx, v, client.WorkflowRunGetOptions{})
}

func (r *fakeRun) GetWithOptions(ctx context.Context, v any, _ client.WorkflowRunGetOptions) error {
	if r.notFound {
		return serviceerror.NewNotFound("workflow not found")
	}
	if r.result == resultNever {
		<-ctx.Done()
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-r.done:
	}
	if r.result == resultLost {
		return errors.New("connection lost")
	}
	if r.inv.Status != ferry.StatusCompleted {
		return errors.New("workflow failed: " + string(r.inv.Status))
	}
	if out, ok := v.(*workflows.InvokeOutput); ok {
		// As the Run activity returns it: history never carries the event.
		out.Invocation = r.inv
		out.Invocation.Event = nil
	}
	return nil
}

func newFakeTemporal(t *testing.T) *fakeTemporal {
	return &fakeTemporal{t: t, runs: map[string]*fakeRun{}, starts: map[string]int{}, inputs: map[string]workflows.InvokeInput{},
		eager: map[string]bool{}}
}

func withTemporal(f *fakeTemporal) envOption {
	return func(d *api.Deps) {
		f.db, f.code = d.Store.(*postgres.DB), d.Code.(*s3.Store)
		f.queue = "test-queue"
		d.Temporal, d.TaskQueue = f, "test-queue"
	}
}

func (f *fakeTemporal) ExecuteWorkflow(ctx context.Context, o client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	if f.startErr != nil {
		return nil, f.startErr
	}
	if reflect.ValueOf(wf).Pointer() != reflect.ValueOf(workflows.InvokeFunction).Pointer() ||
		len(args) != 1 || o.TaskQueue != f.queue {
		f.t.Errorf("ExecuteWorkflow(%+v, %v, %v)", o, wf, args)
	}
	in := args[0].(workflows.InvokeInput)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.eager[o.ID]; !ok {
		f.eager[o.ID] = o.EnableEagerStart
	}
	if r, ok := f.runs[o.ID]; ok {
		return r, nil // WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
	}
	r := &fakeRun{id: o.ID, done: make(chan struct{}), cancel: make(chan struct{}), result: f.result}
	f.runs[o.ID] = r
	f.starts[o.ID]++
	f.inputs[o.ID] = in
	go f.work(r, in)
	return r, nil
}

// work plays the worker. Events: {"op":"fail"}, {"sleep_ms":N}, else echo.
func (f *fakeTemporal) work(r *fakeRun, in workflows.InvokeInput) {
	defer close(r.done)
	ctx := context.Background()
	event := in.Event
	if in.EventInRecord {
		inv, err := f.db.GetInvocation(ctx, in.InvocationID)
		if err != nil {
			f.t.Errorf("reading the event from the record: %v", err)
		}
		event = inv.Event
	}
	var ev struct {
		Op      string `json:"op"`
		SleepMS int    `json:"sleep_ms"`
	}
	_ = json.Unmarshal(event, &ev)
	if _, err := f.db.StartInvocation(ctx, in.InvocationID, r.GetRunID(), time.Now(), uuid.New(), time.Minute); err != nil {
		f.t.Errorf("StartInvocation: %v", err)
	}
	o := ferry.Outcome{Status: ferry.StatusCompleted, Logs: "log of " + in.InvocationID.String() + "\n",
		Metrics: &ferry.Metrics{DurationMS: 1, TotalMS: 2}}
	select {
	case <-time.After(time.Duration(ev.SleepMS) * time.Millisecond):
	case <-r.cancel:
		o = ferry.Outcome{Status: ferry.StatusCancelled, Error: &ferry.FunctionError{Type: "Cancelled", Message: "cancelled"}}
	}
	if o.Status == ferry.StatusCompleted {
		switch ev.Op {
		case "fail":
			o.Status, o.Error = ferry.StatusFailed, &ferry.FunctionError{Type: "ValueError", Message: "asked to fail"}
		default:
			res, _ := json.Marshal(map[string]any{"size": len(event)})
			o.Result = res
		}
	}
	inv, updated, err := f.db.FinishInvocation(ctx, in.InvocationID, o)
	if err != nil {
		f.t.Errorf("FinishInvocation: %v", err)
	}
	r.inv = inv
	if updated && f.observer != nil {
		f.observer.ObserveInvocation(inv)
	}
}

func (f *fakeTemporal) GetWorkflow(_ context.Context, id, _ string) client.WorkflowRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.runs[id]; ok {
		return r
	}
	return &fakeRun{id: id, notFound: true}
}

func (f *fakeTemporal) CancelWorkflow(_ context.Context, id, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.runs[id]
	if !ok {
		return serviceerror.NewNotFound("workflow not found")
	}
	r.once.Do(func() { close(r.cancel) })
	return nil
}

func (f *fakeTemporal) input(id string) workflows.InvokeInput {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inputs[id]
}

func (f *fakeTemporal) startCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts[id]
}

func deployPy(e *env, key, name string) {
	e.t.Helper()
	e.want(e.do("POST", "/v1/functions", key, map[string]any{"name": name, "runtime": "python",
		"handler": "app.handler", "code": b64([]byte(pySource))}), 201, "deploy "+name)
}

func (e *env) waitFinal(id string) response {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.do("GET", "/v1/invocations/"+id, e.admin, nil)
		e.want(r, 200, "get invocation")
		if ferry.InvocationStatus(r.str("status")).Final() || time.Now().After(deadline) {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestInvokeSyncAsyncIdempotent(t *testing.T) {
	f := newFakeTemporal(t)
	e := newEnv(t, withTemporal(f), func(d *api.Deps) { d.MaxBodyBytes = 1 << 20 })
	deployPy(e, e.admin, "echo")

	// Sync: 200 with the final record.
	r := e.do("POST", "/v1/functions/echo/invoke", e.admin, `{"name": "ferry"}`)
	e.want(r, 200, "sync invoke")
	id := r.str("id")
	if r.str("status") != "completed" || r.header.Get("Ferry-Invocation-Id") != id || r.header.Get("Ferry-Function-Error") != "" ||
		r.body["result"] == nil || r.str("workflow_id") != id || r.str("function") != "echo" || r.body["version"] != 1.0 {
		t.Fatalf("sync invoke: %s %v", r.raw, r.header)
	}
	if f.input(id).Function != "echo" || string(f.input(id).Event) != `{"name": "ferry"}` {
		t.Errorf("workflow input: %+v", f.inputs[id])
	}
	if !f.eagerStart(id) {
		t.Error("a sync invoke was not started eagerly")
	}

	// A failed function is still 200, flagged in a header.
	r = e.do("POST", "/v1/functions/echo/invoke", e.admin, `{"op": "fail"}`)
	e.want(r, 200, "failing invoke")
	failedID := r.str("id")
	if r.str("status") != "failed" || r.header.Get("Ferry-Function-Error") != "true" ||
		r.body["error"].(map[string]any)["type"] != "ValueError" {
		t.Fatalf("failing invoke: %s", r.raw)
	}

	// Async: 202 + Location, then completed.
	for _, how := range [][]string{{"?async=true"}, {"", "Prefer", "respond-async"}} {
		r = e.do("POST", "/v1/functions/echo/invoke"+how[0], e.admin, `{"sleep_ms": 100}`, how[1:]...)
		e.want(r, 202, "async invoke")
		if loc := r.header.Get("Location"); loc != "/v1/invocations/"+r.str("id") || r.str("status") != "pending" {
			t.Fatalf("async: Location %q body %s", loc, r.raw)
		}
		if got := e.waitFinal(r.str("id")); got.str("status") != "completed" {
			t.Fatalf("async invocation ended %s", got.raw)
		}
		// Async work goes to the task queue, where every worker may take it.
		if f.eagerStart(r.str("id")) {
			t.Error("an async invoke was started eagerly")
		}
	}

	// Idempotency: async start, sync with the same key waits for the same run.
	key := uuid.NewString()
	r1 := e.do("POST", "/v1/functions/echo/invoke?async=true", e.admin, `{"sleep_ms": 300}`, "Idempotency-Key", key)
	e.want(r1, 202, "idempotent async")
	r2 := e.do("POST", "/v1/functions/echo/invoke", e.admin, `{"sleep_ms": 300}`, "Idempotency-Key", key)
	e.want(r2, 200, "idempotent sync")
	r3 := e.do("POST", "/v1/functions/echo/invoke", e.admin, `{"sleep_ms": 300}`, "Idempotency-Key", key)
	e.want(r3, 200, "idempotent after the end")
	if r1.str("id") != r2.str("id") || r2.str("id") != r3.str("id") || r2.str("status") != "completed" {
		t.Fatalf("idempotency: ids %s %s %s, status %s", r1.str("id"), r2.str("id"), r3.str("id"), r2.str("status"))
	}
	// The same key with another event or version is refused, not answered with
	// the first invocation.
	r4 := e.do("POST", "/v1/functions/echo/invoke", e.admin, `{"other": 1}`, "Idempotency-Key", key)
	e.want(r4, 422, "idempotency key with another event")
	if msg := r4.errMessage(); !strings.Contains(msg, "Idempotency-Key") || !strings.Contains(msg, "another request") {
		t.Errorf("idempotency mismatch message %q", msg)
	}
	e.want(e.do("POST", "/v1/functions/echo/invoke?version=1", e.admin, `{"sleep_ms": 300}`, "Idempotency-Key", key),
		422, "idempotency key with another version")
	if n := f.startCount(r1.str("id")); n != 1 {
		t.Errorf("idempotent invocation started %d times", n)
	}

	// An event over 256 KiB stays out of Temporal's history, stored once: in the record.
	big := `{"pad": "` + strings.Repeat("x", 300<<10) + `"}`
	r = e.do("POST", "/v1/functions/echo/invoke", e.admin, big)
	e.want(r, 200, "large event")
	in := f.input(r.str("id"))
	if !in.EventInRecord || in.EventKey != "" || len(in.Event) != 0 {
		t.Errorf("large event input: in record %v, key %q, inline %d bytes", in.EventInRecord, in.EventKey, len(in.Event))
	}
	if ok, err := e.code.Exists(ctxT(t), "payloads/"+r.str("id")+"/event"); err != nil || ok {
		t.Errorf("large event also stored in S3: %v, %v", ok, err)
	}
	if r.body["result"].(map[string]any)["size"] != float64(len(big)) {
		t.Errorf("large event: result %v", r.body["result"])
	}

	// Bad requests.
	e.want(e.do("POST", "/v1/functions/echo/invoke", e.admin, `{"x": `), 400, "invalid event JSON")
	e.want(e.do("POST", "/v1/functions/echo/invoke?version=7", e.admin, `{}`), 404, "missing version")
	e.want(e.do("POST", "/v1/functions/echo/invoke?version=x", e.admin, `{}`), 400, "bad version")
	e.want(e.do("POST", "/v1/functions/nope/invoke", e.admin, `{}`), 404, "missing function")
	e.want(e.do("POST", "/v1/functions/echo/invoke?async=maybe", e.admin, `{}`), 400, "bad async")
	e.want(e.do("POST", "/v1/functions/echo/invoke", e.admin, `"`+strings.Repeat("x", 1<<20)+`"`), 413, "event over the body limit")
	r = e.do("POST", "/v1/functions/echo/invoke", e.admin, nil)
	e.want(r, 200, "no event")

	// Listing: newest first, filters, the dead-letter list.
	r = e.do("GET", "/v1/invocations?status=failed", e.admin, nil)
	e.want(r, 200, "failed list")
	if l := r.list("invocations"); len(l) != 1 || l[0].(map[string]any)["id"] != failedID {
		t.Errorf("failed list: %s", r.raw)
	}
	r = e.do("GET", "/v1/invocations?function=echo&limit=2", e.admin, nil)
	e.want(r, 200, "list by function")
	if l := r.list("invocations"); len(l) != 2 || r.str("next_cursor") == "" ||
		l[0].(map[string]any)["created_at"].(string) < l[1].(map[string]any)["created_at"].(string) {
		t.Errorf("list by function: %s", r.raw)
	}
	e.want(e.do("GET", "/v1/invocations?status=lost", e.admin, nil), 400, "bad status")
	e.want(e.do("GET", "/v1/invocations?since=yesterday", e.admin, nil), 400, "bad since")
	r = e.do("GET", "/v1/invocations?status=failed&since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z", e.admin, nil)
	e.want(r, 200, "list in a time range")
	if l := r.list("invocations"); len(l) != 0 {
		t.Errorf("failed list of the year 2000: %s", r.raw)
	}
	r = e.do("GET", "/v1/invocations?status=failed&since="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), e.admin, nil)
	e.want(r, 200, "list since an hour ago")
	if l := r.list("invocations"); len(l) != 1 {
		t.Errorf("failed list of the last hour: %s", r.raw)
	}

	// Get and logs.
	r = e.do("GET", "/v1/invocations/"+id, e.admin, nil)
	e.want(r, 200, "get")
	if r.str("status") != "completed" || r.str("run_id") != "run-"+id {
		t.Errorf("get: %s", r.raw)
	}
	r = e.do("GET", "/v1/invocations/"+id+"/logs", e.admin, nil)
	e.want(r, 200, "logs")
	if r.str("logs") != "log of "+id+"\n" {
		t.Errorf("logs: %s", r.raw)
	}
	r = e.do("GET", "/v1/invocations/"+id+"/logs", e.admin, nil, "Accept", "text/plain")
	if string(r.raw) != "log of "+id+"\n" {
		t.Errorf("plain logs: %q", r.raw)
	}
	e.want(e.do("GET", "/v1/invocations/"+uuid.NewString(), e.admin, nil), 404, "unknown invocation")
	e.want(e.do("GET", "/v1/invocations/123", e.admin, nil), 400, "bad invocation id")
}

// A sync invoke's answer is the record as stored, whichever source tells the
// end first: the worker in this process (Completions, `ferry server`),
// Temporal's result (which leaves the event out of history; `ferry api` with
// separate workers) or the store (a workflow that ended in error, or Temporal's
// answer lost).
func TestSyncAnswerSameFromEverySource(t *testing.T) {
	sources := []struct {
		name        string
		result      fakeResult
		completions bool
	}{
		{"worker in this process", resultNever, true},
		{"Temporal's result", resultAsWorkflow, false},
		{"the store", resultLost, false},
	}
	// The fields that name one invocation, its function or its times (each
	// source runs on its own server and database); everything else must match.
	perInvocation := []string{"id", "workflow_id", "run_id", "function_id", "created_at", "started_at", "finished_at"}
	for _, event := range []string{`{"name": "ferry"}`, `{"op": "fail"}`} {
		var first map[string]any
		var firstFrom string
		for _, src := range sources {
			f := newFakeTemporal(t)
			f.result = src.result
			e := newEnv(t, withTemporal(f), func(d *api.Deps) {
				if src.completions {
					c := &activities.Completions{}
					f.observer, d.Completions = c, c
				}
			})
			deployPy(e, e.admin, "echo")
			r := e.do("POST", "/v1/functions/echo/invoke", e.admin, event)
			e.want(r, 200, "sync invoke answered by "+src.name)
			got := r.body
			for _, k := range perInvocation {
				delete(got, k)
			}
			got["Ferry-Function-Error"] = r.header.Get("Ferry-Function-Error")
			if ev, _ := json.Marshal(got["event"]); string(ev) != compactJSON(t, event) {
				t.Errorf("event %s: answer by %s has event %s", event, src.name, ev)
			}
			if first == nil {
				first, firstFrom = got, src.name
				continue
			}
			if !reflect.DeepEqual(got, first) {
				t.Errorf("event %s: answer by %s\n%v\ndiffers from the answer by %s\n%v", event, src.name, got, firstFrom, first)
			}
		}
	}
}

func compactJSON(t *testing.T, s string) string {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestCancelAndRetry(t *testing.T) {
	f := newFakeTemporal(t)
	e := newEnv(t, withTemporal(f))
	deployPy(e, e.admin, "slow")
	inv, invID := e.newKey(ferry.RoleInvoker, "invoker")

	r := e.do("POST", "/v1/functions/slow/invoke?async=true", e.admin, `{"sleep_ms": 60000}`)
	e.want(r, 202, "start a long one")
	id := r.str("id")
	e.want(e.do("POST", "/v1/invocations/"+id+"/cancel", inv, nil), 403, "cancel without execute")
	e.want(e.do("POST", "/v1/invocations/"+id+"/retry", e.admin, nil), 409, "retry a running one")
	r = e.do("POST", "/v1/invocations/"+id+"/cancel", e.admin, nil)
	e.want(r, 200, "cancel")
	if r.str("status") != "cancelled" {
		t.Fatalf("cancel: %s", r.raw)
	}
	r = e.do("POST", "/v1/invocations/"+id+"/cancel", e.admin, nil)
	e.want(r, 409, "cancel twice")

	// Retry re-runs with the same version and event, linked to the old one.
	e.want(e.do("POST", "/v1/functions/"+"slow/permissions", e.admin, map[string]any{"key_id": invID, "permission": "execute"}), 200, "grant")
	r = e.do("POST", "/v1/invocations/"+id+"/retry", inv, nil)
	e.want(r, 202, "retry")
	newID := r.str("id")
	if newID == id || r.str("retry_of") != id || r.header.Get("Location") != "/v1/invocations/"+newID {
		t.Fatalf("retry: %s", r.raw)
	}
	if in := f.input(newID); string(in.Event) != `{"sleep_ms": 60000}` || in.Version != 1 {
		t.Errorf("retry input: %+v", in)
	}
	e.want(e.do("POST", "/v1/invocations/"+newID+"/cancel", e.admin, nil), 200, "cancel the retry")

	// A completed invocation cannot be retried; a pending one whose workflow is
	// gone is cancelled in the store.
	r = e.do("POST", "/v1/functions/slow/invoke", e.admin, `{}`)
	e.want(r, 200, "quick run")
	e.want(e.do("POST", "/v1/invocations/"+r.str("id")+"/retry", e.admin, nil), 409, "retry a completed one")
	orphan, _, err := e.db.CreateInvocation(ctxT(t), ferry.Invocation{Function: "slow", Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	orphan.WorkflowID = orphan.ID.String()
	r = e.do("POST", "/v1/invocations/"+orphan.ID.String()+"/cancel", e.admin, nil)
	e.want(r, 200, "cancel an orphan")
	if r.str("status") != "cancelled" {
		t.Errorf("orphan cancel: %s", r.raw)
	}
}

func TestInvokeWhenTemporalFails(t *testing.T) {
	f := newFakeTemporal(t)
	f.startErr = errors.New("connection refused")
	e := newEnv(t, withTemporal(f))
	deployPy(e, e.admin, "fn")
	r := e.do("POST", "/v1/functions/fn/invoke", e.admin, `{}`)
	e.want(r, 503, "start fails")
	if strings.Contains(r.errMessage(), "connection refused") {
		t.Errorf("internal error leaked: %q", r.errMessage())
	}
	invs, _, err := e.db.ListInvocations(ctxT(t), ferry.InvocationFilter{Function: "fn"}, ferry.Page{})
	if err != nil || len(invs) != 1 || invs[0].Status != ferry.StatusFailed || invs[0].Error.Type != "StartError" {
		t.Fatalf("invocation after a failed start: %+v %v", invs, err)
	}
	// With an idempotency key the record stays pending; the same key starts it later.
	r = e.do("POST", "/v1/functions/fn/invoke", e.admin, `{}`, "Idempotency-Key", "k1")
	e.want(r, 503, "start fails with key")
	f.startErr = nil
	r = e.do("POST", "/v1/functions/fn/invoke", e.admin, `{}`, "Idempotency-Key", "k1")
	e.want(r, 200, "same key after recovery")
	if r.str("status") != "completed" || f.startCount(r.str("id")) != 1 {
		t.Fatalf("recovered idempotent invoke: %s", r.raw)
	}

	// No Temporal at all.
	e2 := newEnv(t)
	deployPy(e2, e2.admin, "fn")
	e2.want(e2.do("POST", "/v1/functions/fn/invoke", e2.admin, `{}`), 503, "no Temporal client")
}

// TestSyncWaitBounded: a sync invoke waits at most as long as asked
// (Prefer: wait=N), and answers then 202 with the record's Location; the
// invocation goes on. A bad preference is a 400.
func TestSyncWaitBounded(t *testing.T) {
	f := newFakeTemporal(t)
	e := newEnv(t, withTemporal(f))
	deployPy(e, e.admin, "slow")
	began := time.Now()
	r := e.do("POST", "/v1/functions/slow/invoke", e.admin, `{"sleep_ms": 3000}`, "Prefer", "wait=1")
	took := time.Since(began)
	e.want(r, 202, "sync invoke past its wait")
	if took < time.Second || took > 2500*time.Millisecond {
		t.Errorf("answered after %s, want about 1 s", took)
	}
	if loc := r.header.Get("Location"); loc != "/v1/invocations/"+r.str("id") || r.str("status") == "completed" {
		t.Fatalf("Location %q, record %s", loc, r.raw)
	}
	if got := e.waitFinal(r.str("id")); got.str("status") != "completed" {
		t.Fatalf("the invocation did not go on: %s", got.raw)
	}
	// A wait long enough answers the result.
	e.want(e.do("POST", "/v1/functions/slow/invoke", e.admin, `{"sleep_ms": 100}`, "Prefer", "wait=10"), 200, "sync invoke within its wait")
	for _, bad := range []string{"wait=0", "wait=soon", "wait=-3"} {
		e.want(e.do("POST", "/v1/functions/slow/invoke", e.admin, `{}`, "Prefer", bad), 400, "Prefer: "+bad)
	}
}

// Grants are by name and end with their function: a key granted on a function
// created again under a deleted one's name never reads, lists, cancels or
// retries the deleted one's invocations (their events, results and logs).
func TestDeletedFunctionsInvocationsStayWithIt(t *testing.T) {
	f := newFakeTemporal(t)
	e := newEnv(t, withTemporal(f))
	deployPy(e, e.admin, "x")
	r := e.do("POST", "/v1/functions/x/invoke", e.admin, `{"secret": "a-secret"}`)
	e.want(r, 200, "invoke the first x")
	old := r.str("id")
	e.want(e.do("DELETE", "/v1/functions/x", e.admin, nil), 204, "delete x")

	deployPy(e, e.admin, "x")
	inv, invID := e.newKey(ferry.RoleInvoker, "invoker of the new x")
	for _, perm := range []string{"read", "execute"} {
		e.want(e.do("POST", "/v1/functions/x/permissions", e.admin, map[string]any{"key_id": invID, "permission": perm}), 200, "grant "+perm)
	}
	r = e.do("POST", "/v1/functions/x/invoke", inv, `{}`)
	e.want(r, 200, "invoke the new x")
	fresh := r.str("id")

	e.want(e.do("GET", "/v1/invocations/"+fresh, inv, nil), 200, "the new x's invocation")
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/invocations/" + old},
		{"GET", "/v1/invocations/" + old + "/logs"},
		{"POST", "/v1/invocations/" + old + "/retry"},
	} {
		r := e.do(c.method, c.path, inv, nil)
		e.want(r, 403, c.method+" "+c.path+" of the deleted x")
		if strings.Contains(string(r.raw), "a-secret") || !strings.Contains(r.errMessage(), "was deleted") {
			t.Errorf("%s %s: %s", c.method, c.path, r.raw)
		}
	}
	r = e.do("GET", "/v1/invocations?function=x", inv, nil)
	e.want(r, 200, "list x's invocations")
	if l := r.list("invocations"); len(l) != 1 || l[0].(map[string]any)["id"] != fresh {
		t.Errorf("the invoker lists %s, want only %s", r.raw, fresh)
	}
	// Keys that may read every function still see the history.
	e.want(e.do("GET", "/v1/invocations/"+old, e.admin, nil), 200, "admin reads the deleted x's invocation")
	r = e.do("GET", "/v1/invocations?function=x", e.admin, nil)
	if l := r.list("invocations"); len(l) != 2 {
		t.Errorf("admin lists %d invocations of x, want 2: %s", len(l), r.raw)
	}
}
