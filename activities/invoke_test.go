package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/runtimes"
	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

// fakeStore is an in-memory Store, ChainStore and ScheduleStore with the
// semantics of storage/postgres that the activities rely on: StartInvocation
// moves only a pending record, FinishInvocation writes a record once. A func
// field, when set, replaces that method. writes lists the writes in order.
type fakeStore struct {
	mu            sync.Mutex
	versions      []ferry.Version
	invocations   map[uuid.UUID]ferry.Invocation
	chainRuns     map[uuid.UUID]ferry.ChainRun
	chainVersions []ferry.ChainVersion
	keys          map[uuid.UUID]ferry.APIKey
	writes        []string
	leases        map[uuid.UUID]uuid.UUID // invocation → token of the attempt holding its lease

	getVersion      func(ctx context.Context, name string, version int) (ferry.Version, error)
	beforeCreate    func(inv ferry.Invocation) // runs before CreateInvocation, without the lock
	startInvocation func(ctx context.Context, id uuid.UUID, runID string, at time.Time) error
	// finishFails, when set, fails a FinishInvocation call before it writes.
	finishFails func() error
}

var (
	_ Store         = (*fakeStore)(nil)
	_ ChainStore    = (*fakeStore)(nil)
	_ ScheduleStore = (*fakeStore)(nil)
	_ Executor      = (*fakeExecutor)(nil)
	_ Objects       = memObjects(nil)
)

func newFakeStore(versions ...ferry.Version) *fakeStore {
	return &fakeStore{versions: versions, invocations: map[uuid.UUID]ferry.Invocation{},
		chainRuns: map[uuid.UUID]ferry.ChainRun{}, keys: map[uuid.UUID]ferry.APIKey{}}
}

func (s *fakeStore) write(format string, args ...any) {
	s.writes = append(s.writes, fmt.Sprintf(format, args...))
}

// Writes returns a copy of the writes so far.
func (s *fakeStore) Writes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.writes...)
}

func (s *fakeStore) invocation(id uuid.UUID) ferry.Invocation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.invocations[id]
}

func (s *fakeStore) GetVersion(ctx context.Context, name string, version int) (ferry.Version, error) {
	if s.getVersion != nil {
		return s.getVersion(ctx, name, version)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var found *ferry.Version
	for i, v := range s.versions {
		if v.Function == name && (version == 0 || v.Version == version) && (found == nil || v.Version > found.Version) {
			found = &s.versions[i]
		}
	}
	if found == nil {
		return ferry.Version{}, ferry.Errorf(ferry.ENOTFOUND, "function %q version %d not found", name, version)
	}
	return *found, nil
}

func (s *fakeStore) GetInvocation(_ context.Context, id uuid.UUID) (ferry.Invocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.invocations[id]
	if !ok {
		return inv, ferry.Errorf(ferry.ENOTFOUND, "invocation %s not found", id)
	}
	return inv, nil
}

func (s *fakeStore) CreateInvocation(_ context.Context, inv ferry.Invocation) (ferry.Invocation, bool, error) {
	if s.beforeCreate != nil {
		s.beforeCreate(inv)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.invocations[inv.ID]; ok {
		return old, false, ferry.Errorf(ferry.ECONFLICT, "invocation %s exists", inv.ID)
	}
	s.invocations[inv.ID] = inv
	s.write("create %s %s", inv.ID, inv.Status)
	return inv, true, nil
}

func (s *fakeStore) StartInvocation(ctx context.Context, id uuid.UUID, runID string, at time.Time, token uuid.UUID, ttl time.Duration) (ferry.InvocationStatus, error) {
	if s.startInvocation != nil {
		if err := s.startInvocation(ctx, id, runID, at); err != nil {
			return "", err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.write("start %s", id)
	inv, ok := s.invocations[id]
	if !ok {
		return "", ferry.Errorf(ferry.ENOTFOUND, "invocation %s not found", id)
	}
	if inv.Status.Final() {
		return inv.Status, nil
	}
	if l, held := s.leases[id]; held && l != token {
		return "", ferry.Errorf(ferry.ECONFLICT, "invocation %s is being run by another attempt", id)
	}
	if inv.Status == ferry.StatusPending {
		inv.Status, inv.RunID, inv.StartedAt = ferry.StatusRunning, runID, &at
	}
	inv.Attempts++
	s.invocations[id] = inv
	if s.leases == nil {
		s.leases = map[uuid.UUID]uuid.UUID{}
	}
	s.leases[id] = token
	return inv.Status, nil
}

func (s *fakeStore) RenewInvocation(_ context.Context, id, token uuid.UUID, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leases[id] != token {
		return ferry.Errorf(ferry.ECONFLICT, "lease not held")
	}
	return nil
}

func (s *fakeStore) ReleaseInvocation(_ context.Context, id, token uuid.UUID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leases[id] == token {
		delete(s.leases, id)
	}
	return nil
}

func (s *fakeStore) FinishInvocation(_ context.Context, id uuid.UUID, o ferry.Outcome) (ferry.Invocation, bool, error) {
	if s.finishFails != nil {
		if err := s.finishFails(); err != nil {
			return ferry.Invocation{}, false, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.write("finish %s %s", id, o.Status)
	inv, ok := s.invocations[id]
	if !ok {
		return inv, false, ferry.Errorf(ferry.ENOTFOUND, "invocation %s not found", id)
	}
	if inv.Status.Final() {
		return inv, false, nil
	}
	inv.Status, inv.Result, inv.Error, inv.Metrics, inv.FinishedAt = o.Status, o.Result, o.Error, o.Metrics, &o.FinishedAt
	s.invocations[id] = inv
	return inv, true, nil
}

func (s *fakeStore) GetChainRun(_ context.Context, id uuid.UUID) (ferry.ChainRun, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.chainRuns[id]
	if !ok {
		return r, ferry.Errorf(ferry.ENOTFOUND, "chain run %s not found", id)
	}
	return r, nil
}

func (s *fakeStore) CreateChainRun(_ context.Context, r ferry.ChainRun) (ferry.ChainRun, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.chainRuns[r.ID]; ok {
		return old, false, nil
	}
	if r.Status == "" {
		r.Status = ferry.StatusPending
	}
	s.chainRuns[r.ID] = r
	s.write("create chain run %s %s", r.ID, r.Status)
	return r, true, nil
}

func (s *fakeStore) StartChainRun(_ context.Context, id uuid.UUID, _ string, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.write("start chain run %s", id)
	return nil
}

func (s *fakeStore) FinishChainRun(_ context.Context, id uuid.UUID, o ferry.ChainOutcome) (ferry.ChainRun, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.chainRuns[id]
	if r.Status.Final() {
		return r, false, nil
	}
	r.Status, r.Output, r.Error = o.Status, o.Output, o.Error
	s.chainRuns[id] = r
	s.write("finish chain run %s %s", id, o.Status)
	return r, true, nil
}

func (s *fakeStore) GetChainVersion(_ context.Context, name string, version int) (ferry.ChainVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found *ferry.ChainVersion
	for i, v := range s.chainVersions {
		if v.Chain == name && (version == 0 || v.Version == version) && (found == nil || v.Version > found.Version) {
			found = &s.chainVersions[i]
		}
	}
	if found == nil {
		return ferry.ChainVersion{}, ferry.Errorf(ferry.ENOTFOUND, "chain %q version %d not found", name, version)
	}
	return *found, nil
}

func (s *fakeStore) KeyByID(_ context.Context, id uuid.UUID) (ferry.APIKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[id]
	if !ok {
		return k, ferry.Errorf(ferry.ENOTFOUND, "API key %s not found", id)
	}
	return k, nil
}

// fakeExecutor runs execute instead of a container and counts the runs.
type fakeExecutor struct {
	mu      sync.Mutex
	specs   []runtimes.Spec
	execute func(ctx context.Context, s runtimes.Spec) (runtimes.Result, error)
	buildGo func(ctx context.Context, srcDir, handler, outDir string) error
}

func (e *fakeExecutor) Execute(ctx context.Context, s runtimes.Spec) (runtimes.Result, error) {
	e.mu.Lock()
	e.specs = append(e.specs, s)
	e.mu.Unlock()
	return e.execute(ctx, s)
}

func (e *fakeExecutor) BuildGo(ctx context.Context, srcDir, handler, outDir string) error {
	return e.buildGo(ctx, srcDir, handler, outDir)
}

func (e *fakeExecutor) Runs() []runtimes.Spec {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]runtimes.Spec(nil), e.specs...)
}

// returns is an execute that always answers res.
func returns(res runtimes.Result) func(context.Context, runtimes.Spec) (runtimes.Result, error) {
	return func(context.Context, runtimes.Spec) (runtimes.Result, error) { return res, nil }
}

var discard = slog.New(slog.DiscardHandler)

// invokeFixture is one pending invocation of a Python function ready to run.
type invokeFixture struct {
	store *fakeStore
	exec  *fakeExecutor
	objs  memObjects
	a     *Invocations
	ver   ferry.Version
	in    RunInput
}

func newInvokeFixture(t *testing.T, execute func(context.Context, runtimes.Spec) (runtimes.Result, error)) *invokeFixture {
	t.Helper()
	ver := ferry.Version{FunctionID: uuid.New(), Function: "hello", Version: 2, Runtime: ferry.RuntimePython,
		Handler: "app.handler", Checksum: "sum", CodeKey: "code/hello/2"}
	f := &invokeFixture{store: newFakeStore(ver), exec: &fakeExecutor{execute: execute},
		objs: memObjects{ver.CodeKey: []byte("def handler(e, c): return e\n")}, ver: ver}
	f.a = &Invocations{Store: f.store, Objects: f.objs, Executor: f.exec, Logger: discard,
		Code: &CodeCache{Root: t.TempDir(), Objects: f.objs, Builder: f.exec, Unpack: writeFile, Logger: discard}}
	id := uuid.New()
	f.store.invocations[id] = ferry.Invocation{ID: id, Function: ver.Function, FunctionID: ver.FunctionID,
		Version: ver.Version, Status: ferry.StatusPending, CreatedAt: time.Now()}
	f.in = RunInput{InvocationID: id, Function: ver.Function, FunctionID: ver.FunctionID, Version: ver.Version,
		Event: json.RawMessage(`{"n":1}`), AcceptedAt: time.Now()}
	return f
}

// run executes Invocations.Run in Temporal's test activity environment
// (attempt 1, not local).
func (f *invokeFixture) run(t *testing.T) (RunOutput, error) {
	t.Helper()
	return executeActivity[RunOutput](t, f.a, f.a.Run, f.in)
}

// executeActivity runs fn of the registered activities in Temporal's test
// activity environment and decodes its result.
func executeActivity[T any](t *testing.T, activities, fn, in any) (T, error) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(activities)
	var out T
	val, err := env.ExecuteActivity(fn, in)
	if err != nil {
		return out, err
	}
	if err := val.Get(&out); err != nil {
		t.Fatal(err)
	}
	return out, nil
}

// finishes counts the FinishInvocation calls of id.
func (f *invokeFixture) finishes() int {
	n := 0
	for _, w := range f.store.Writes() {
		if strings.HasPrefix(w, "finish "+f.in.InvocationID.String()) {
			n++
		}
	}
	return n
}

// appError is err's application error, failing the test when there is none.
func appError(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		t.Fatalf("want an application error, got %v", err)
	}
	return ae
}

// TestRunCompletedRecordedOnce: a completed run executes the version's code
// once and records the result, logs and metrics in one final write, after
// the "running" write.
func TestRunCompletedRecordedOnce(t *testing.T) {
	f := newInvokeFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted,
		Result: json.RawMessage(`{"ok":true}`), Logs: "hi\n", Metrics: ferry.Metrics{DurationMS: 3, QueueMS: 1}}))
	out, err := f.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if out.Invocation.Status != ferry.StatusCompleted || string(out.Invocation.Result) != `{"ok":true}` || out.ResultOmitted {
		t.Fatalf("output %+v", out)
	}
	runs := f.exec.Runs()
	if len(runs) != 1 || runs[0].InvocationID != f.in.InvocationID.String() || runs[0].FunctionID != f.ver.FunctionID.String() ||
		string(runs[0].Event) != `{"n":1}` || runs[0].Limits.TimeoutSeconds != ferry.DefaultLimits.TimeoutSeconds {
		t.Fatalf("executed %+v", runs)
	}
	rec := f.store.invocation(f.in.InvocationID)
	if rec.Status != ferry.StatusCompleted || string(rec.Result) != `{"ok":true}` || rec.Metrics == nil ||
		rec.Metrics.DurationMS != 3 || rec.Metrics.QueueMS < 1 || rec.Metrics.TotalMS <= 0 || rec.StartedAt == nil {
		t.Fatalf("record %+v metrics %+v", rec, rec.Metrics)
	}
	want := []string{"start " + f.in.InvocationID.String(), "finish " + f.in.InvocationID.String() + " completed"}
	if got := f.store.Writes(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("writes %v, want %v", got, want)
	}
}

// TestRunRunningNeverAfterFinal: a slow "running" write lands before the
// function starts and so before the final write, for a completed run and for
// one the engine refuses.
func TestRunRunningNeverAfterFinal(t *testing.T) {
	for name, execute := range map[string]func(context.Context, runtimes.Spec) (runtimes.Result, error){
		"completed": returns(runtimes.Result{Status: runtimes.StatusCompleted, Result: json.RawMessage(`1`)}),
		"refused": func(context.Context, runtimes.Spec) (runtimes.Result, error) {
			return runtimes.Result{}, ferry.Errorf(ferry.EINVALID, "memory_mb: over the engine's bound")
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newInvokeFixture(t, execute)
			f.store.startInvocation = func(ctx context.Context, _ uuid.UUID, _ string, _ time.Time) error {
				time.Sleep(100 * time.Millisecond)
				return nil
			}
			if _, err := f.run(t); err != nil {
				t.Fatal(err)
			}
			w := f.store.Writes()
			if len(w) != 2 || !strings.HasPrefix(w[0], "start ") || !strings.HasPrefix(w[1], "finish ") {
				t.Fatalf("writes %v: want start, then finish", w)
			}
			if s := f.store.invocation(f.in.InvocationID).Status; !s.Final() {
				t.Fatalf("record %s after the run", s)
			}
		})
	}
}

// TestRunFunctionNotFound: a version that is gone, or that belongs to another
// function of the same name (deleted and created again), fails the
// invocation for good without running anything.
func TestRunFunctionNotFound(t *testing.T) {
	for name, change := range map[string]func(f *invokeFixture){
		"version gone":   func(f *invokeFixture) { f.store.versions = nil },
		"other identity": func(f *invokeFixture) { f.store.versions[0].FunctionID = uuid.New() },
	} {
		t.Run(name, func(t *testing.T) {
			f := newInvokeFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted}))
			change(f)
			out, err := f.run(t)
			if err != nil {
				t.Fatalf("want a final record, not a retry: %v", err)
			}
			rec := f.store.invocation(f.in.InvocationID)
			if out.Invocation.Status != ferry.StatusFailed || rec.Status != ferry.StatusFailed ||
				rec.Error == nil || rec.Error.Type != "FunctionNotFound" || !strings.Contains(rec.Error.Message, `"hello"`) {
				t.Fatalf("record %s %+v", rec.Status, rec.Error)
			}
			if n := len(f.exec.Runs()); n != 0 || f.finishes() != 1 {
				t.Fatalf("%d runs, %d final writes; want 0 and 1", n, f.finishes())
			}
		})
	}
}

// TestRunVersionLookupErrorRetries: a store that cannot answer is not a
// missing function: Run asks Temporal to retry and records nothing.
func TestRunVersionLookupErrorRetries(t *testing.T) {
	f := newInvokeFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted}))
	f.store.getVersion = func(context.Context, string, int) (ferry.Version, error) {
		return ferry.Version{}, errors.New("connection refused")
	}
	_, err := f.run(t)
	if ae := appError(t, err); ae.NonRetryable() || !strings.Contains(ae.Error(), "connection refused") {
		t.Fatalf("error %v (non-retryable %v)", ae, ae.NonRetryable())
	}
	if w := f.store.Writes(); len(w) != 0 {
		t.Fatalf("writes %v", w)
	}
}

// TestRunBuildErrorIsFinal: code that cannot be prepared (EUNPROCESSABLE from
// the code cache, e.g. a Go bundle that does not compile) fails the
// invocation as BuildError without running it; it is not retried.
func TestRunBuildErrorIsFinal(t *testing.T) {
	f := newInvokeFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted}))
	f.store.versions[0].Runtime = ferry.RuntimeGo
	f.store.versions[0].Handler = "main"
	f.exec.buildGo = func(context.Context, string, string, string) error {
		return ferry.Errorf(ferry.EUNPROCESSABLE, "go build failed:\n./main.go:3: undefined: x")
	}
	out, err := f.run(t)
	if err != nil {
		t.Fatalf("want a final record, not a retry: %v", err)
	}
	rec := f.store.invocation(f.in.InvocationID)
	if out.Invocation.Status != ferry.StatusFailed || rec.Error == nil || rec.Error.Type != "BuildError" ||
		!strings.Contains(rec.Error.Message, "undefined: x") {
		t.Fatalf("record %s %+v", rec.Status, rec.Error)
	}
	if n := len(f.exec.Runs()); n != 0 || f.finishes() != 1 {
		t.Fatalf("%d runs, %d final writes; want 0 and 1", n, f.finishes())
	}
}

// TestRunEngineRefusalIsFinal: an executor EINVALID (limits or settings the
// container engine refuses) fails the invocation now as InvalidConfiguration:
// no retry could succeed. Any other executor error is retried.
func TestRunEngineRefusalIsFinal(t *testing.T) {
	f := newInvokeFixture(t, func(context.Context, runtimes.Spec) (runtimes.Result, error) {
		return runtimes.Result{}, ferry.Errorf(ferry.EINVALID, "memory_mb: 99999 is more than the engine allows")
	})
	f.in.Retries = 3
	out, err := f.run(t)
	if err != nil {
		t.Fatalf("want a final record, not a retry: %v", err)
	}
	rec := f.store.invocation(f.in.InvocationID)
	if out.Invocation.Status != ferry.StatusFailed || rec.Error == nil || rec.Error.Type != ferry.ErrTypeInvalidConfig ||
		!strings.Contains(rec.Error.Message, "memory_mb") {
		t.Fatalf("record %s %+v", rec.Status, rec.Error)
	}
	if f.finishes() != 1 {
		t.Fatalf("%d final writes", f.finishes())
	}

	g := newInvokeFixture(t, func(context.Context, runtimes.Spec) (runtimes.Result, error) {
		return runtimes.Result{}, errors.New("docker daemon unreachable")
	})
	_, err = g.run(t)
	if ae := appError(t, err); ae.NonRetryable() {
		t.Fatalf("infrastructure error not retryable: %v", ae)
	}
	if s := g.store.invocation(g.in.InvocationID).Status; s.Final() || g.finishes() != 0 {
		t.Fatalf("record %s after an infrastructure error", s)
	}
}

// TestRunFailedFunctionRetries: a failed function with attempts left
// (attempt <= Retries) is a retryable FunctionFailed error and records
// nothing final; on its last attempt the failure is recorded.
func TestRunFailedFunctionRetries(t *testing.T) {
	failed := runtimes.Result{Status: runtimes.StatusFailed,
		Error: &ferry.FunctionError{Type: "ValueError", Message: "bad n"}}
	f := newInvokeFixture(t, returns(failed))
	f.in.Retries = 1 // the test environment runs attempt 1
	_, err := f.run(t)
	ae := appError(t, err)
	if ae.Type() != ferry.ErrTypeFunctionFailed || ae.NonRetryable() || !strings.Contains(ae.Error(), "ValueError: bad n") {
		t.Fatalf("error %q type %s non-retryable %v", ae.Error(), ae.Type(), ae.NonRetryable())
	}
	if s := f.store.invocation(f.in.InvocationID).Status; s.Final() || f.finishes() != 0 {
		t.Fatalf("record %s, %d final writes, while retries are left", s, f.finishes())
	}

	g := newInvokeFixture(t, returns(failed))
	g.in.Retries = 0
	out, err := g.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if out.Invocation.Status != ferry.StatusFailed || out.Invocation.Error == nil || out.Invocation.Error.Type != "ValueError" || g.finishes() != 1 {
		t.Fatalf("last attempt: %+v, %d final writes", out.Invocation, g.finishes())
	}
}

// TestRunTimeoutAndOOMRecorded: timeouts and OOM kills are recorded with
// their own status and error type, naming the limit.
func TestRunTimeoutAndOOMRecorded(t *testing.T) {
	for status, want := range map[runtimes.Status][2]string{
		runtimes.StatusTimeout: {string(ferry.StatusTimeout), "Timeout"},
		runtimes.StatusOOM:     {string(ferry.StatusFailed), "OutOfMemory"},
	} {
		f := newInvokeFixture(t, returns(runtimes.Result{Status: status}))
		f.in.TimeoutSeconds = 7
		out, err := f.run(t)
		if err != nil {
			t.Fatal(err)
		}
		e := out.Invocation.Error
		if string(out.Invocation.Status) != want[0] || e == nil || e.Type != want[1] {
			t.Fatalf("%s: recorded %s %+v", status, out.Invocation.Status, e)
		}
		if status == runtimes.StatusTimeout && !strings.Contains(e.Message, "7 s") {
			t.Fatalf("timeout message %q does not name the step's 7 s", e.Message)
		}
	}
}

// TestRunKeepsTheExecutorsOOMDiagnosis: the executor's message of an OOM kill
// (which says when it happened) is recorded, not replaced by a generic one.
func TestRunKeepsTheExecutorsOOMDiagnosis(t *testing.T) {
	diagnosis := &ferry.FunctionError{Type: ferry.ErrTypeOutOfMemory,
		Message: "the function ran out of memory (limit 64 MB) during start-up"}
	f := newInvokeFixture(t, returns(runtimes.Result{Status: runtimes.StatusOOM, Error: diagnosis}))
	out, err := f.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if e := out.Invocation.Error; out.Invocation.Status != ferry.StatusFailed || e == nil || *e != *diagnosis {
		t.Fatalf("recorded %s %+v, want failed %+v", out.Invocation.Status, e, diagnosis)
	}
}

// TestRunResultOmitted: a result over InlineLimit is recorded whole but
// left out of the activity's output (history), saying so.
func TestRunResultOmitted(t *testing.T) {
	big := json.RawMessage(`"` + strings.Repeat("r", InlineLimit) + `"`)
	f := newInvokeFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted, Result: big}))
	out, err := f.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if !out.ResultOmitted || out.Invocation.Result != nil || out.Invocation.Status != ferry.StatusCompleted {
		t.Fatalf("output: omitted %v, %d bytes of result", out.ResultOmitted, len(out.Invocation.Result))
	}
	if rec := f.store.invocation(f.in.InvocationID); len(rec.Result) != len(big) {
		t.Fatalf("record holds %d bytes, want %d", len(rec.Result), len(big))
	}
	// Exactly InlineLimit bytes still travel inline.
	edge := json.RawMessage(`"` + strings.Repeat("r", InlineLimit-2) + `"`)
	g := newInvokeFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted, Result: edge}))
	if out, err := g.run(t); err != nil || out.ResultOmitted || len(out.Invocation.Result) != InlineLimit {
		t.Fatalf("at the limit: omitted %v, %d bytes, %v", out.ResultOmitted, len(out.Invocation.Result), err)
	}
}

// TestRunErrorTruncated: a long error is recorded whole and cut in the output.
func TestRunErrorTruncated(t *testing.T) {
	long := strings.Repeat("e", MaxErrorText+100)
	f := newInvokeFixture(t, returns(runtimes.Result{Status: runtimes.StatusFailed,
		Error: &ferry.FunctionError{Type: "Error", Message: long}}))
	out, err := f.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if !out.ErrorTruncated || len(out.Invocation.Error.Message) > MaxErrorText+len("... (truncated)") {
		t.Fatalf("output error: truncated %v, %d bytes", out.ErrorTruncated, len(out.Invocation.Error.Message))
	}
	if rec := f.store.invocation(f.in.InvocationID); len(rec.Error.Message) != len(long) {
		t.Fatalf("record error %d bytes, want %d", len(rec.Error.Message), len(long))
	}
}

// TestRunEventInRecord: an event too large for history is read from the
// invocation's record, not the input.
func TestRunEventInRecord(t *testing.T) {
	f := newInvokeFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted, Result: json.RawMessage(`1`)}))
	big := json.RawMessage(`{"blob":"` + strings.Repeat("b", InlineLimit) + `"}`)
	inv := f.store.invocations[f.in.InvocationID]
	inv.Event = big
	f.store.invocations[f.in.InvocationID] = inv
	f.in.Event, f.in.EventInRecord = nil, true
	if _, err := f.run(t); err != nil {
		t.Fatal(err)
	}
	if runs := f.exec.Runs(); len(runs) != 1 || string(runs[0].Event) != string(big) {
		t.Fatalf("executed with %d bytes of event, want %d", len(runs[0].Event), len(big))
	}
}

// TestFinishKeepsFirstOutcome: Finish after a final record (a cancel racing
// a completion) returns the stored outcome and changes nothing.
func TestFinishKeepsFirstOutcome(t *testing.T) {
	f := newInvokeFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted, Result: json.RawMessage(`5`)}))
	if _, err := f.run(t); err != nil {
		t.Fatal(err)
	}
	out, err := f.a.Finish(context.Background(), FinishInput{InvocationID: f.in.InvocationID, Status: ferry.StatusCancelled})
	if err != nil || out.Invocation.Status != ferry.StatusCompleted || string(out.Invocation.Result) != `5` {
		t.Fatalf("finish after completion: %+v, %v", out.Invocation, err)
	}
	if s := f.store.invocation(f.in.InvocationID).Status; s != ferry.StatusCompleted {
		t.Fatalf("record %s", s)
	}
}

// TestRunNotStartedWithoutRunningWrite: while the "running" write fails
// (PostgreSQL down) the function does not start; Temporal retries the
// activity, and nothing is recorded.
func TestRunNotStartedWithoutRunningWrite(t *testing.T) {
	f := newInvokeFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted, Result: json.RawMessage(`1`)}))
	f.store.startInvocation = func(context.Context, uuid.UUID, string, time.Time) error {
		return ferry.Errorf(ferry.EUNAVAILABLE, "connection refused")
	}
	_, err := f.run(t)
	if ae := appError(t, err); ae.NonRetryable() || !strings.Contains(ae.Error(), "connection refused") {
		t.Fatalf("error %v", err)
	}
	if n := len(f.exec.Runs()); n != 0 || f.finishes() != 0 {
		t.Fatalf("%d runs, %d final writes while the running write failed; want 0 and 0", n, f.finishes())
	}
}

// TestRunFinalRecordNotRunAgain: an invocation whose record is already final
// (a replay re-running a local activity after its outcome was recorded) is
// answered from the record without running the function or writing.
func TestRunFinalRecordNotRunAgain(t *testing.T) {
	f := newInvokeFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted, Result: json.RawMessage(`2`)}))
	inv := f.store.invocations[f.in.InvocationID]
	inv.Status, inv.Result, inv.Attempts = ferry.StatusCompleted, json.RawMessage(`1`), 1
	f.store.invocations[f.in.InvocationID] = inv
	out, err := f.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if out.Invocation.Status != ferry.StatusCompleted || string(out.Invocation.Result) != `1` {
		t.Fatalf("output %+v", out.Invocation)
	}
	if n := len(f.exec.Runs()); n != 0 || f.finishes() != 0 || f.store.invocation(f.in.InvocationID).Attempts != 1 {
		t.Fatalf("%d runs, %d final writes, %d attempts; want 0, 0, 1", n, f.finishes(), f.store.invocation(f.in.InvocationID).Attempts)
	}
}

// TestRunFinishWriteRetried: a final write that fails (PostgreSQL restarting)
// is retried on its own; the function ran once and its outcome is recorded.
func TestRunFinishWriteRetried(t *testing.T) {
	f := newInvokeFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted, Result: json.RawMessage(`3`)}))
	fails := 3
	f.store.finishFails = func() error {
		if fails > 0 {
			fails--
			return ferry.Errorf(ferry.EUNAVAILABLE, "connection refused")
		}
		return nil
	}
	out, err := f.run(t)
	if err != nil {
		t.Fatal(err)
	}
	rec := f.store.invocation(f.in.InvocationID)
	if out.Invocation.Status != ferry.StatusCompleted || rec.Status != ferry.StatusCompleted || string(rec.Result) != `3` {
		t.Fatalf("output %+v, record %+v", out.Invocation, rec)
	}
	if n := len(f.exec.Runs()); n != 1 || rec.Attempts != 1 {
		t.Fatalf("%d runs, %d attempts; want 1 and 1", n, rec.Attempts)
	}
}

// TestRunAttemptsCounted: every start of the function counts in the record,
// a retry the function asked for included.
func TestRunAttemptsCounted(t *testing.T) {
	f := newInvokeFixture(t, returns(runtimes.Result{Status: runtimes.StatusFailed,
		Error: &ferry.FunctionError{Type: "ValueError", Message: "bad n"}}))
	f.in.Retries = 1
	if _, err := f.run(t); err == nil {
		t.Fatal("want a retryable error on attempt 1 of 2")
	}
	f.in.Retries = 0 // the test environment always runs attempt 1: this is the last
	if _, err := f.run(t); err != nil {
		t.Fatal(err)
	}
	if rec := f.store.invocation(f.in.InvocationID); rec.Attempts != 2 || rec.Status != ferry.StatusFailed {
		t.Fatalf("record %s with %d attempts, want failed with 2", rec.Status, rec.Attempts)
	}
}

func (s *fakeStore) ResolveAlias(ctx context.Context, function, name string, u float64) (ferry.Version, ferry.Alias, error) {
	return ferry.Version{}, ferry.Alias{}, ferry.Errorf(ferry.ENOTFOUND, "alias %q of function %q not found", name, function)
}

// TestRunWaitsForAnotherAttempt: while another attempt holds the record's
// lease (a workflow task retried while the first local activity still runs),
// Run does not start the function and asks Temporal to retry; once the lease
// is released it runs. Every Run releases its lease when it returns.
func TestRunWaitsForAnotherAttempt(t *testing.T) {
	f := newInvokeFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted, Result: json.RawMessage(`1`)}))
	other := uuid.New()
	f.store.leases = map[uuid.UUID]uuid.UUID{f.in.InvocationID: other}
	_, err := f.run(t)
	if ae := appError(t, err); ae.NonRetryable() || !strings.Contains(ae.Error(), "another attempt") {
		t.Fatalf("error %v", err)
	}
	if n := len(f.exec.Runs()); n != 0 {
		t.Fatalf("%d runs while another attempt held the lease", n)
	}
	_ = f.store.ReleaseInvocation(context.Background(), f.in.InvocationID, other)
	if _, err := f.run(t); err != nil {
		t.Fatal(err)
	}
	if n := len(f.exec.Runs()); n != 1 || len(f.store.leases) != 0 {
		t.Fatalf("%d runs, leases left %v", n, f.store.leases)
	}
}
