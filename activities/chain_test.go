package activities

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/runtimes"
	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
)

// TestSplitListBoundsChunks: chunks hold at most MapChunk elements and
// ListLimit bytes, and an element above MapItemInline travels by reference.
func TestSplitListBoundsChunks(t *testing.T) {
	objs := memObjects{}
	elems := make([]json.RawMessage, 0, 1300)
	for i := 0; i < 1200; i++ {
		elems = append(elems, json.RawMessage(`1`))
	}
	big := json.RawMessage(`"` + strings.Repeat("x", MapItemInline) + `"`)
	mid := json.RawMessage(`"` + strings.Repeat("y", MapItemInline-100) + `"`)
	elems = append(elems, big)
	for i := 0; i < 40; i++ {
		elems = append(elems, mid)
	}
	data, _ := json.Marshal(elems)
	objs["in"] = data
	a := &Chains{Objects: objs}
	list, err := a.SplitList(context.Background(), SplitInput{Key: "k", Input: Payload{Ref: "in"}})
	if err != nil {
		t.Fatal(err)
	}
	if list.Len() != len(elems) || list.Counts[0] != MapChunk || list.Counts[1] != MapChunk {
		t.Fatalf("counts %v", list.Counts)
	}
	i := 0
	for c := range list.Counts {
		raw := objs[list.ChunkKey(c)]
		if len(raw) > ListLimit {
			t.Errorf("chunk %d has %d bytes", c, len(raw))
		}
		items, err := a.LoadChunk(context.Background(), list.ChunkKey(c))
		if err != nil || len(items) != list.Counts[c] {
			t.Fatalf("chunk %d: %d items, %v", c, len(items), err)
		}
		for _, p := range items {
			if i == 1200 {
				if p.Ref == "" || string(objs[p.Ref]) != string(big) {
					t.Fatalf("element %d inline (%d bytes)", i, len(p.Inline))
				}
			} else if p.Ref != "" {
				t.Fatalf("element %d by reference", i)
			}
			i++
		}
	}
}

func (m memObjects) DeletePrefix(_ context.Context, prefix string) error {
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			delete(m, k)
		}
	}
	return nil
}

// memChainStore keeps chain runs in memory; other ChainStore calls panic.
type memChainStore struct {
	ChainStore
	runs map[uuid.UUID]ferry.ChainRun
}

func (m *memChainStore) GetChainRun(_ context.Context, id uuid.UUID) (ferry.ChainRun, error) {
	r, ok := m.runs[id]
	if !ok {
		return r, ferry.Errorf(ferry.ENOTFOUND, "chain run %s not found", id)
	}
	return r, nil
}

func (m *memChainStore) FinishChainRun(_ context.Context, id uuid.UUID, o ferry.ChainOutcome) (ferry.ChainRun, bool, error) {
	r, ok := m.runs[id]
	if !ok || r.Status.Final() {
		return r, false, nil
	}
	r.Status, r.Output, r.Error = o.Status, o.Output, o.Error
	m.runs[id] = r
	return r, true, nil
}

// TestLoadRunInputRef: a large chain run input travels as a reference to the
// run's record and loads from there, not from the object store.
func TestLoadRunInputRef(t *testing.T) {
	id := uuid.New()
	input := json.RawMessage(`"` + strings.Repeat("i", 300<<10) + `"`)
	a := &Chains{Store: &memChainStore{runs: map[uuid.UUID]ferry.ChainRun{id: {ID: id, Input: input}}}, Objects: memObjects{}}
	ref := RunInputRef(id)
	if ref.Ref != "chain-run-input:"+id.String() || ref.Size() > 64 {
		t.Fatalf("ref %+v", ref)
	}
	got, err := a.load(context.Background(), ref)
	if err != nil || string(got) != string(input) {
		t.Fatalf("load: %d bytes, %v", len(got), err)
	}
	if _, err := a.load(context.Background(), Payload{Ref: "chain-run-input:nope"}); err == nil {
		t.Fatal("a malformed reference loaded")
	}
	if _, err := a.load(context.Background(), RunInputRef(uuid.New())); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Fatalf("the input of a missing run: %v", err)
	}
}

// TestFinishChainDeletesPayloads: FinishChain records the output read from
// the object store, then deletes the run's payloads (only its own); a retry
// after that delete finds the record final and succeeds without the output.
func TestFinishChainDeletesPayloads(t *testing.T) {
	id, other := uuid.New(), uuid.New()
	store := &memChainStore{runs: map[uuid.UUID]ferry.ChainRun{
		id: {ID: id, Status: ferry.StatusRunning}, other: {ID: other, Status: ferry.StatusRunning}}}
	objs := memObjects{
		PayloadKey(id, "0/output"):      []byte(`{"big":true}`),
		PayloadKey(id, "1/items/0"):     []byte(`[1]`),
		PayloadKey(other, "0/output"):   []byte(`2`),
		"payloads/" + id.String() + "x": []byte(`3`), // not under the run's prefix
	}
	a := &Chains{Store: store, Objects: objs}
	in := FinishChainInput{ChainRunID: id, Status: ferry.StatusCompleted, Output: Payload{Ref: PayloadKey(id, "0/output")}}
	for attempt := 1; attempt <= 2; attempt++ {
		if err := a.FinishChain(context.Background(), in); err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		if r := store.runs[id]; r.Status != ferry.StatusCompleted || string(r.Output) != `{"big":true}` {
			t.Fatalf("attempt %d: record %s %s", attempt, r.Status, r.Output)
		}
		if len(objs) != 2 || objs[PayloadKey(other, "0/output")] == nil || objs["payloads/"+id.String()+"x"] == nil {
			t.Fatalf("attempt %d: objects left %v", attempt, objs)
		}
	}
	// A missing output of a run that is not final is an error, not a delete.
	err := a.FinishChain(context.Background(), FinishChainInput{ChainRunID: other, Status: ferry.StatusCompleted,
		Output: Payload{Ref: PayloadKey(other, "gone")}})
	if ferry.ErrorCode(err) != ferry.ENOTFOUND || store.runs[other].Status != ferry.StatusRunning || objs[PayloadKey(other, "0/output")] == nil {
		t.Fatalf("missing output: %v, run %s, objects %v", err, store.runs[other].Status, objs)
	}
}

// stepFixture is a chain run whose function steps run through the fakes of
// invoke_test.go.
type stepFixture struct {
	*invokeFixture
	chains *Chains
	in     StepInput
	id     uuid.UUID // the step's invocation
}

func newStepFixture(t *testing.T, execute func(context.Context, runtimes.Spec) (runtimes.Result, error)) *stepFixture {
	f := newInvokeFixture(t, execute)
	delete(f.store.invocations, f.in.InvocationID) // steps create their own
	s := &stepFixture{invokeFixture: f}
	s.chains = &Chains{Store: f.store, Objects: f.objs, Invocations: f.a, Logger: discard}
	s.in = StepInput{ChainRunID: uuid.New(), Path: "1", Function: f.ver.Function, Version: f.ver.Version,
		Input: Payload{Inline: json.RawMessage(`{"step":1}`)}, TimeoutSeconds: 9}
	s.id = ferry.StepInvocationID(s.in.ChainRunID, s.in.Path)
	return s
}

// runStep executes Chains.RunStep in Temporal's test activity environment.
func (s *stepFixture) runStep(t *testing.T) (StepOutput, error) {
	t.Helper()
	return executeActivity[StepOutput](t, s.chains, s.chains.RunStep, s.in)
}

// creates counts the CreateInvocation writes of the step's invocation.
func (s *stepFixture) creates() int {
	n := 0
	for _, w := range s.store.Writes() {
		if strings.HasPrefix(w, "create "+s.id.String()) {
			n++
		}
	}
	return n
}

// TestRunStepIdempotent: a step creates its invocation once (id derived from
// the chain run and path, event from the input, linked to the run) and runs
// it; running the step again (a local activity re-run on replay) returns the
// stored outcome without running the function or creating anything.
func TestRunStepIdempotent(t *testing.T) {
	s := newStepFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted, Result: json.RawMessage(`{"out":2}`)}))
	for attempt := 1; attempt <= 2; attempt++ {
		out, err := s.runStep(t)
		if err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		if out.InvocationID != s.id || out.Status != ferry.StatusCompleted || string(out.Output.Inline) != `{"out":2}` || out.Output.Ref != "" {
			t.Fatalf("attempt %d: output %+v", attempt, out)
		}
		if n := len(s.exec.Runs()); n != 1 || s.creates() != 1 {
			t.Fatalf("attempt %d: %d runs, %d creates; want 1 and 1", attempt, n, s.creates())
		}
	}
	runs := s.exec.Runs()
	if string(runs[0].Event) != `{"step":1}` || runs[0].Limits.TimeoutSeconds != 9 {
		t.Fatalf("ran with event %s, timeout %d", runs[0].Event, runs[0].Limits.TimeoutSeconds)
	}
	rec := s.store.invocation(s.id)
	if rec.ChainRunID == nil || *rec.ChainRunID != s.in.ChainRunID || rec.FunctionID != s.ver.FunctionID || string(rec.Event) != `{"step":1}` {
		t.Fatalf("record %+v", rec)
	}
}

// TestRunStepAlreadyFinal: a step whose invocation is already final returns
// the stored outcome (a failure too) without running.
func TestRunStepAlreadyFinal(t *testing.T) {
	s := newStepFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted}))
	s.store.invocations[s.id] = ferry.Invocation{ID: s.id, Function: s.ver.Function, Version: s.ver.Version,
		Status: ferry.StatusFailed, Error: &ferry.FunctionError{Type: "KeyError", Message: "x"}}
	out, err := s.runStep(t)
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != ferry.StatusFailed || out.Error == nil || out.Error.Type != "KeyError" || len(s.exec.Runs()) != 0 || len(s.store.Writes()) != 0 {
		t.Fatalf("output %+v, %d runs, writes %v", out, len(s.exec.Runs()), s.store.Writes())
	}
}

// TestRunStepStartedBefore: a step whose invocation exists but is not final
// (a crash mid-run) runs again under the same record with its stored event.
func TestRunStepStartedBefore(t *testing.T) {
	s := newStepFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted, Result: json.RawMessage(`3`)}))
	s.store.invocations[s.id] = ferry.Invocation{ID: s.id, Function: s.ver.Function, FunctionID: s.ver.FunctionID,
		Version: s.ver.Version, Status: ferry.StatusRunning, Event: json.RawMessage(`"stored"`), CreatedAt: time.Now()}
	out, err := s.runStep(t)
	if err != nil {
		t.Fatal(err)
	}
	runs := s.exec.Runs()
	if out.Status != ferry.StatusCompleted || string(out.Output.Inline) != `3` || len(runs) != 1 || string(runs[0].Event) != `"stored"` || s.creates() != 0 {
		t.Fatalf("output %+v, runs %d, creates %d", out, len(runs), s.creates())
	}
}

// TestRunStepConcurrentCreate: when a concurrent attempt creates the step's
// invocation first (CreateInvocation answers ECONFLICT), the step reads that
// record back and runs it once, with that record's event.
func TestRunStepConcurrentCreate(t *testing.T) {
	s := newStepFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted, Result: json.RawMessage(`4`)}))
	s.store.beforeCreate = func(inv ferry.Invocation) {
		s.store.mu.Lock()
		defer s.store.mu.Unlock()
		inv.Event = json.RawMessage(`"theirs"`)
		s.store.invocations[inv.ID] = inv
	}
	out, err := s.runStep(t)
	if err != nil {
		t.Fatal(err)
	}
	runs := s.exec.Runs()
	if out.Status != ferry.StatusCompleted || string(out.Output.Inline) != `4` || len(runs) != 1 || string(runs[0].Event) != `"theirs"` {
		t.Fatalf("output %+v, %d runs", out, len(runs))
	}
	if rec := s.store.invocation(s.id); rec.Status != ferry.StatusCompleted || s.creates() != 0 {
		t.Fatalf("record %s, %d creates of our own", rec.Status, s.creates())
	}
}

// TestRunStepLargeOutputByReference: an output above the step's inline bound
// travels as a reference to the invocation's result, which loads back whole,
// also when Run left the result out of its own output.
func TestRunStepLargeOutputByReference(t *testing.T) {
	for name, size := range map[string]int{"map item": MapItemInline + 10, "over InlineLimit": InlineLimit + 10} {
		t.Run(name, func(t *testing.T) {
			big := json.RawMessage(`"` + strings.Repeat("o", size) + `"`)
			s := newStepFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted, Result: big}))
			s.in.InlineMax = MapItemInline
			out, err := s.runStep(t)
			if err != nil {
				t.Fatal(err)
			}
			if out.Output.Inline != nil || out.Output.Ref != "invocation-result:"+s.id.String() {
				t.Fatalf("output %d bytes inline, ref %q", len(out.Output.Inline), out.Output.Ref)
			}
			got, err := s.chains.load(context.Background(), out.Output)
			if err != nil || string(got) != string(big) {
				t.Fatalf("load: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestRunStepFunctionNotFound: a step whose function is gone fails the chain
// without retries, naming the step, and creates no invocation.
func TestRunStepFunctionNotFound(t *testing.T) {
	s := newStepFixture(t, returns(runtimes.Result{Status: runtimes.StatusCompleted}))
	s.store.versions = nil
	_, err := s.runStep(t)
	ae := appError(t, err)
	if ae.Type() != ferry.ErrTypeFunctionNotFound || !ae.NonRetryable() || !strings.Contains(ae.Error(), "step 1:") {
		t.Fatalf("error %q type %s non-retryable %v", ae.Error(), ae.Type(), ae.NonRetryable())
	}
	if s.creates() != 0 || len(s.exec.Runs()) != 0 {
		t.Fatalf("writes %v", s.store.Writes())
	}
}

// TestSplitPayload: the elements of an array, small ones inline and larger
// ones stored under Key/i; a non-array and too many elements fail without
// retries.
func TestSplitPayload(t *testing.T) {
	objs := memObjects{}
	a := &Chains{Objects: objs}
	big := `"` + strings.Repeat("s", InlineLimit) + `"`
	objs["in"] = []byte(`[1,{"a":null},` + big + `,null]`)
	items, err := a.SplitPayload(context.Background(), SplitInput{Key: "k", Input: Payload{Ref: "in"}, Max: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 4 || string(items[0].Inline) != `1` || string(items[1].Inline) != `{"a":null}` ||
		items[2].Ref != "k/2" || string(objs["k/2"]) != big || string(items[3].Inline) != `null` {
		t.Fatalf("items %+v", items)
	}
	for name, c := range map[string]struct {
		in   SplitInput
		typ  string
		text string
	}{
		"not an array": {SplitInput{Input: Payload{Inline: json.RawMessage(`{"a":1}`)}}, ferry.ErrTypeMapInput, "must be a JSON array"},
		"null":         {SplitInput{Input: Payload{}}, ferry.ErrTypeMapInput, "must be a JSON array"},
		"too many":     {SplitInput{Input: Payload{Inline: json.RawMessage(`[1,2,3]`)}, Max: 2}, ferry.ErrTypeMapTooLarge, "has 3 elements, more than the 2 left"},
	} {
		_, err := a.SplitPayload(context.Background(), c.in)
		ae := appError(t, err)
		if ae.Type() != c.typ || !ae.NonRetryable() || !strings.Contains(ae.Error(), c.text) {
			t.Errorf("%s: error %q type %s non-retryable %v", name, ae.Error(), ae.Type(), ae.NonRetryable())
		}
	}
	if _, err := a.SplitPayload(context.Background(), SplitInput{Input: Payload{Ref: "gone"}}); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Fatalf("missing input: %v", err)
	}
}

// TestCombinePayloads: stored lists, then parts, into one array (or an object
// when Keys names the parts); references load, an empty part is null, and a
// large result is stored under Key.
func TestCombinePayloads(t *testing.T) {
	objs := memObjects{"ref": []byte(`{"r":1}`)}
	list, _ := json.Marshal([]Payload{{Inline: json.RawMessage(`1`)}, {Ref: "ref"}})
	objs["list"] = list
	a := &Chains{Objects: objs}
	ctx := context.Background()
	got, err := a.CombinePayloads(ctx, CombineInput{Key: "out", Lists: []string{"list"},
		Parts: []Payload{{Inline: json.RawMessage(`"p"`)}, {}}})
	if err != nil || string(got.Inline) != `[1,{"r":1},"p",null]` {
		t.Fatalf("array: %s, %v", got.Inline, err)
	}
	got, err = a.CombinePayloads(ctx, CombineInput{Key: "out", Keys: []string{"a", `q"uote`},
		Parts: []Payload{{Ref: "ref"}, {Inline: json.RawMessage(`2`)}}})
	if err != nil || string(got.Inline) != `{"a":{"r":1},"q\"uote":2}` {
		t.Fatalf("object: %s, %v", got.Inline, err)
	}
	big := json.RawMessage(`"` + strings.Repeat("c", InlineLimit) + `"`)
	got, err = a.CombinePayloads(ctx, CombineInput{Key: "out", Parts: []Payload{{Inline: big}}})
	if err != nil || got.Ref != "out" || string(objs["out"]) != "["+string(big)+"]" {
		t.Fatalf("large: ref %q, stored %d bytes, %v", got.Ref, len(objs["out"]), err)
	}
	if _, err := a.CombinePayloads(ctx, CombineInput{Parts: []Payload{{Ref: "gone"}}}); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Fatalf("missing part: %v", err)
	}
}

// fakePauser records the schedules paused through it.
type fakePauser struct {
	mu     sync.Mutex
	paused map[string]string // schedule id → note
}

type fakeScheduleHandle struct {
	client.ScheduleHandle // other methods are not used
	id                    string
	p                     *fakePauser
}

func (p *fakePauser) GetHandle(_ context.Context, id string) client.ScheduleHandle {
	return fakeScheduleHandle{id: id, p: p}
}

func (h fakeScheduleHandle) Pause(_ context.Context, o client.SchedulePauseOptions) error {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	h.p.paused[h.id] = o.Note
	return nil
}

// scheduleFixture has a function "hello" and a chain "flow", and the key
// that created the schedules.
type scheduleFixture struct {
	store  *fakeStore
	chains *Chains
	pauser *fakePauser
	ver    ferry.Version
	owner  ferry.APIKey
}

func newScheduleFixture() *scheduleFixture {
	ver := ferry.Version{FunctionID: uuid.New(), Function: "hello", Version: 3}
	s := &scheduleFixture{store: newFakeStore(ver), pauser: &fakePauser{paused: map[string]string{}}, ver: ver,
		owner: ferry.APIKey{ID: uuid.New(), Prefix: "fk_abc"}}
	s.store.keys[s.owner.ID] = s.owner
	s.store.chainVersions = []ferry.ChainVersion{{ChainID: uuid.New(), Chain: "flow", Version: 1,
		Steps: []ferry.Step{{Function: "hello"}}}}
	s.chains = &Chains{Store: s.store, ScheduleStore: s.store, Objects: memObjects{}, Logger: discard, Schedules: s.pauser}
	return s
}

func (s *scheduleFixture) fire(t *testing.T, in ScheduledRunInput) (ScheduledRunRecord, error) {
	t.Helper()
	return executeActivity[ScheduledRunRecord](t, s.chains, s.chains.CreateScheduledRun, in)
}

// TestCreateScheduledRunFunction: a firing records a pending invocation of
// the version it pins, once: a retried firing finds the same record.
func TestCreateScheduledRunFunction(t *testing.T) {
	s := newScheduleFixture()
	in := ScheduledRunInput{Schedule: "nightly", Kind: TargetFunction, Target: "hello", Payload: json.RawMessage(`{"p":1}`),
		Owner: s.owner.ID, FunctionID: s.ver.FunctionID}
	var first ScheduledRunRecord
	for attempt := 1; attempt <= 2; attempt++ {
		rec, err := s.fire(t, in)
		if err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		if rec.Final || rec.Invoke == nil || rec.Invoke.InvocationID != rec.ID || rec.Invoke.FunctionID != s.ver.FunctionID ||
			rec.Invoke.Version != 3 || string(rec.Invoke.Event) != `{"p":1}` {
			t.Fatalf("attempt %d: record %+v invoke %+v", attempt, rec, rec.Invoke)
		}
		if attempt == 1 {
			first = rec
		} else if rec.ID != first.ID {
			t.Fatalf("a retried firing made record %s, first %s", rec.ID, first.ID)
		}
	}
	if w := s.store.Writes(); len(w) != 1 || w[0] != "create "+first.ID.String()+" pending" {
		t.Fatalf("writes %v", w)
	}
}

// TestCreateScheduledRunRefused: a firing whose owner key is gone or
// revoked, or whose function was deleted (even when another function took
// its name), records a failed ScheduleRefused invocation or chain run that
// says why, pauses the schedule, and runs nothing; a retried firing finds the
// refusal final and records nothing more.
func TestCreateScheduledRunRefused(t *testing.T) {
	cases := map[string]struct {
		kind, target string
		change       func(s *scheduleFixture, in *ScheduledRunInput)
		why          string
	}{
		"owner deleted": {TargetFunction, "hello", func(s *scheduleFixture, in *ScheduledRunInput) {
			delete(s.store.keys, s.owner.ID)
		}, "no longer exists"},
		"owner revoked": {TargetFunction, "hello", func(s *scheduleFixture, in *ScheduledRunInput) {
			now := time.Now()
			k := s.owner
			k.RevokedAt = &now
			s.store.keys[k.ID] = k
		}, "the API key fk_abc"},
		"function deleted": {TargetFunction, "hello", func(s *scheduleFixture, in *ScheduledRunInput) {
			s.store.versions = nil
		}, "was deleted"},
		"name taken by another function": {TargetFunction, "hello", func(s *scheduleFixture, in *ScheduledRunInput) {
			s.store.versions[0].FunctionID = uuid.New()
		}, "is another one"},
		"chain owner revoked": {TargetChain, "flow", func(s *scheduleFixture, in *ScheduledRunInput) {
			now := time.Now()
			k := s.owner
			k.RevokedAt = &now
			s.store.keys[k.ID] = k
		}, "was revoked"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s := newScheduleFixture()
			in := ScheduledRunInput{Schedule: "nightly", Kind: c.kind, Target: c.target, Owner: s.owner.ID}
			if c.kind == TargetFunction {
				in.FunctionID = s.ver.FunctionID
			}
			c.change(s, &in)
			for attempt := 1; attempt <= 2; attempt++ {
				rec, err := s.fire(t, in)
				if err != nil || !rec.Final || rec.Invoke != nil || rec.Steps != nil {
					t.Fatalf("attempt %d: %+v, %v", attempt, rec, err)
				}
				var typ, msg string
				var status ferry.InvocationStatus
				if c.kind == TargetFunction {
					inv := s.store.invocation(rec.ID)
					status = inv.Status
					if inv.Error != nil {
						typ, msg = inv.Error.Type, inv.Error.Message
					}
				} else {
					run := s.store.chainRuns[rec.ID]
					status = run.Status
					if run.Error != nil {
						typ, msg = run.Error.Type, run.Error.Message
					}
				}
				if status != ferry.StatusFailed || typ != ferry.ErrTypeScheduleRefused || !strings.Contains(msg, `schedule "nightly" was not run`) ||
					!strings.Contains(msg, c.why) {
					t.Fatalf("attempt %d: recorded %s %s %q", attempt, status, typ, msg)
				}
				if note := s.pauser.paused[ScheduleIDPrefix+"nightly"]; note != msg || len(s.pauser.paused) != 1 {
					t.Fatalf("attempt %d: paused %v", attempt, s.pauser.paused)
				}
				if w := s.store.Writes(); len(w) != 1 {
					t.Fatalf("attempt %d: writes %v", attempt, w)
				}
			}
		})
	}
}

// TestCreateScheduledRunNotFound: a target missing without a pinned identity
// (schedules older than identities, or a chain) fails the firing without
// retries and records nothing; an unknown kind likewise.
func TestCreateScheduledRunNotFound(t *testing.T) {
	for name, c := range map[string]struct {
		in  ScheduledRunInput
		typ string
	}{
		"function": {ScheduledRunInput{Schedule: "s", Kind: TargetFunction, Target: "nope"}, ferry.ErrTypeFunctionNotFound},
		"chain":    {ScheduledRunInput{Schedule: "s", Kind: TargetChain, Target: "nope"}, ferry.ErrTypeFunctionNotFound},
		"kind":     {ScheduledRunInput{Schedule: "s", Kind: "cron", Target: "hello"}, "InvalidTarget"},
	} {
		s := newScheduleFixture()
		_, err := s.fire(t, c.in)
		ae := appError(t, err)
		if ae.Type() != c.typ || !ae.NonRetryable() {
			t.Errorf("%s: error %q type %s non-retryable %v", name, ae.Error(), ae.Type(), ae.NonRetryable())
		}
		if w := s.store.Writes(); len(w) != 0 || len(s.pauser.paused) != 0 {
			t.Errorf("%s: writes %v, paused %v", name, w, s.pauser.paused)
		}
	}
}
