package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/activities"
	"github.com/google/uuid"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// fakeSteps plays the step activities: "inc" adds one to a number, "echo"
// returns its input, "fail" fails, "flaky" fails its first attempt with an
// infrastructure error; "undo-*" compensations record their order.
type fakeSteps struct {
	mu        sync.Mutex
	calls     map[string]int // path → RunStep calls
	undone    []string       // compensation paths in the order they ran
	running   int
	maxRun    int
	attempts  map[string]int
	finished  activities.FinishChainInput
	finishCnt int
	inputs    map[string]activities.StepInput // path → last RunStep input
}

func newFakeSteps() *fakeSteps {
	return &fakeSteps{calls: map[string]int{}, attempts: map[string]int{}, inputs: map[string]activities.StepInput{}}
}

func (f *fakeSteps) register(env *testsuite.TestWorkflowEnvironment) {
	env.OnActivity(chainActs.BeginChain, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BeginInput) (activities.BeginOutput, error) {
			return activities.BeginOutput{Steps: pinAll(in.Steps)}, nil
		}).Maybe()
	env.OnActivity(chainActs.RunStep, mock.Anything, mock.Anything).Return(f.run).Maybe()
	env.OnActivity(chainActs.FinishChain, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FinishChainInput) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.finished = in
			f.finishCnt++
			return nil
		}).Maybe()
	env.OnActivity(chainActs.StorePayloadList, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.StoreListInput) (string, error) { return in.Key, nil }).Maybe()
}

func pinAll(steps []ferry.Step) []ferry.Step {
	out := make([]ferry.Step, len(steps))
	for i, s := range steps {
		switch s.Kind() {
		case ferry.StepParallel:
			s.Parallel = pinAll(s.Parallel)
		case ferry.StepMap:
			inner := pinAll([]ferry.Step{*s.Map})[0]
			s.Map = &inner
		default:
			if s.Version == 0 {
				s.Version = 7
			}
			if s.TimeoutSeconds == 0 {
				s.TimeoutSeconds = 5
			}
		}
		out[i] = s
	}
	return out
}

func (f *fakeSteps) run(_ context.Context, in activities.StepInput) (activities.StepOutput, error) {
	f.mu.Lock()
	f.calls[in.Path]++
	f.inputs[in.Path] = in
	f.attempts[in.Path]++
	attempt := f.attempts[in.Path]
	f.running++
	f.maxRun = max(f.maxRun, f.running)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running--
		f.mu.Unlock()
	}()
	out := activities.StepOutput{InvocationID: ferry.StepInvocationID(in.ChainRunID, in.Path), Status: ferry.StatusCompleted}
	switch in.Function {
	case "inc":
		var n int
		_ = json.Unmarshal(in.Input.Inline, &n)
		out.Output.Inline = json.RawMessage(strconv.Itoa(n + 1))
	case "echo":
		out.Output = in.Input
	case "fail":
		out.Status = ferry.StatusFailed
		out.Error = &ferry.FunctionError{Type: "ValueError", Message: "boom at " + in.Path}
	case "flaky":
		if attempt == 1 {
			return activities.StepOutput{}, errors.New("docker hiccup")
		}
		out.Output = in.Input
	default: // compensations
		f.mu.Lock()
		f.undone = append(f.undone, in.Path)
		f.mu.Unlock()
		out.Output.Inline = json.RawMessage(`"undone"`)
	}
	return out, nil
}

func chainEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *fakeSteps) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	Register(env)
	env.RegisterActivity(&activities.Chains{})
	f := newFakeSteps()
	f.register(env)
	return env, f
}

func fn(name string) ferry.Step { return ferry.Step{Function: name} }

func runChain(t *testing.T, env *testsuite.TestWorkflowEnvironment, input string, steps ...ferry.Step) (ChainOutput, error) {
	t.Helper()
	env.ExecuteWorkflow(RunChain, ChainInput{ChainRunID: uuid.New(), Chain: "c", Version: 1, Steps: steps,
		Input: Payload{Inline: json.RawMessage(input)}})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	var out ChainOutput
	if err := env.GetWorkflowError(); err != nil {
		return out, err
	}
	return out, env.GetWorkflowResult(&out)
}

func TestChainSequencePassesOutputs(t *testing.T) {
	env, f := chainEnv(t)
	out, err := runChain(t, env, `1`, fn("inc"), fn("inc"), fn("inc"))
	if err != nil {
		t.Fatal(err)
	}
	if string(out.Output.Inline) != "4" || out.Status != ferry.StatusCompleted {
		t.Fatalf("output %s status %s", out.Output.Inline, out.Status)
	}
	if f.finished.Status != ferry.StatusCompleted || len(f.finished.Steps) != 3 || f.finishCnt != 1 {
		t.Fatalf("finish %+v", f.finished)
	}
	for i, s := range f.finished.Steps {
		if s.Path != strconv.Itoa(i) || s.Status != ferry.StatusCompleted || s.Version != 7 {
			t.Fatalf("step %d: %+v", i, s)
		}
	}
}

func TestChainParallelKeepsBranchOrder(t *testing.T) {
	env, _ := chainEnv(t)
	out, err := runChain(t, env, `1`, ferry.Step{Parallel: []ferry.Step{fn("inc"), fn("echo"),
		{Parallel: []ferry.Step{fn("inc"), fn("echo")}}}}, fn("echo"))
	if err != nil {
		t.Fatal(err)
	}
	if string(out.Output.Inline) != `[2,1,[2,1]]` {
		t.Fatalf("output %s", out.Output.Inline)
	}
}

func TestChainMapRespectsMaxConcurrency(t *testing.T) {
	env, f := chainEnv(t)
	var in []int
	for i := range 40 {
		in = append(in, i)
	}
	b, _ := json.Marshal(in)
	out, err := runChain(t, env, string(b), ferry.Step{Map: &ferry.Step{Function: "inc"}, MaxConcurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	if err := json.Unmarshal(out.Output.Inline, &got); err != nil || len(got) != 40 {
		t.Fatalf("output %s", out.Output.Inline)
	}
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("element %d = %d", i, v)
		}
	}
	if f.maxRun > 3 {
		t.Fatalf("%d map elements ran at once, max_concurrency is 3", f.maxRun)
	}
	if f.calls["0.map[39]"] != 1 {
		t.Fatalf("calls %v", f.calls)
	}
}

func TestChainMapNeedsArray(t *testing.T) {
	env, f := chainEnv(t)
	_, err := runChain(t, env, `{"not":"array"}`, ferry.Step{Map: &ferry.Step{Function: "inc"}})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ferry.ErrTypeStepFailed {
		t.Fatalf("want StepFailed, got %v", err)
	}
	if f.finished.Status != ferry.StatusFailed || f.finished.Error.Type != ferry.ErrTypeMapInput {
		t.Fatalf("finish %+v", f.finished.Error)
	}
}

func TestChainRetriesInfrastructureErrors(t *testing.T) {
	env, f := chainEnv(t)
	out, err := runChain(t, env, `"x"`, fn("flaky"), fn("echo"))
	if err != nil {
		t.Fatal(err)
	}
	if string(out.Output.Inline) != `"x"` || f.attempts["0"] != 2 {
		t.Fatalf("output %s attempts %v", out.Output.Inline, f.attempts)
	}
}

func TestChainOnErrorContinue(t *testing.T) {
	env, f := chainEnv(t)
	out, err := runChain(t, env, `1`, ferry.Step{Function: "fail", OnError: ferry.OnErrorContinue}, fn("echo"))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Error ferry.FunctionError `json:"error"`
		Step  string              `json:"step"`
	}
	if err := json.Unmarshal(out.Output.Inline, &got); err != nil || got.Error.Type != "ValueError" || got.Step != "0" {
		t.Fatalf("output %s", out.Output.Inline)
	}
	if f.finished.Steps[0].Status != ferry.StatusFailed || f.finished.Status != ferry.StatusCompleted {
		t.Fatalf("finish %+v", f.finished)
	}
}

func TestChainCompensatesInReverseOrder(t *testing.T) {
	env, f := chainEnv(t)
	// Compensations run as heartbeating activities sized for any function
	// timeout, never as local activities sized for a 0 s step.
	localCompensations := 0
	env.SetOnLocalActivityStartedListener(func(_ *activity.Info, _ context.Context, args []interface{}) {
		if in, ok := args[0].(activities.StepInput); ok && strings.HasSuffix(in.Path, ".compensate") {
			localCompensations++
		}
	})
	_, err := runChain(t, env, `1`,
		ferry.Step{Function: "inc", Compensate: "undo-a"},
		ferry.Step{Parallel: []ferry.Step{{Function: "inc", Compensate: "undo-b"}}},
		ferry.Step{Function: "inc"}, // no compensation
		ferry.Step{Function: "inc", Compensate: "undo-d"},
		fn("fail"),
		ferry.Step{Function: "inc", Compensate: "undo-never"})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ferry.ErrTypeStepFailed {
		t.Fatalf("want StepFailed, got %v", err)
	}
	want := []string{"3.compensate", "1.parallel[0].compensate", "0.compensate"}
	if fmt.Sprint(f.undone) != fmt.Sprint(want) {
		t.Fatalf("compensations ran %v, want %v", f.undone, want)
	}
	ce := f.finished.Error
	if f.finished.Status != ferry.StatusFailed || ce == nil || ce.Step != "4" || ce.Type != "ValueError" {
		t.Fatalf("finish %+v", f.finished)
	}
	if len(ce.Compensations) != 3 || ce.Compensations[0].Step != "3" || ce.Compensations[0].Function != "undo-d" ||
		ce.Compensations[2].Status != ferry.StatusCompleted {
		t.Fatalf("report %+v", ce.Compensations)
	}
	if f.calls["5"] != 0 {
		t.Fatal("a step after the failure ran")
	}
	var details ferry.ChainError
	if err := appErr.Details(&details); err != nil || len(details.Compensations) != 3 {
		t.Fatalf("error details %+v %v", details, err)
	}
	if localCompensations != 0 {
		t.Errorf("%d compensations ran as local activities", localCompensations)
	}
}

func TestChainProgressQuery(t *testing.T) {
	env, _ := chainEnv(t)
	if _, err := runChain(t, env, `1`, fn("inc"), fn("inc")); err != nil {
		t.Fatal(err)
	}
	v, err := env.QueryWorkflow(ProgressQuery)
	if err != nil {
		t.Fatal(err)
	}
	var p ChainProgress
	if err := v.Get(&p); err != nil || len(p.Steps) != 2 || p.Steps[1].Status != ferry.StatusCompleted ||
		p.Steps[1].InvocationID != ferry.StepInvocationID(p.ChainRunID, "1") {
		t.Fatalf("progress %+v %v", p, err)
	}
}

func TestChainLargeMapContinuesAsNew(t *testing.T) {
	env, f := chainEnv(t)
	n := MapBatch + 20
	in := make([]int, n)
	b, _ := json.Marshal(in)
	id := uuid.New()
	steps := []ferry.Step{fn("inc"), {Map: &ferry.Step{Function: "inc"}, MaxConcurrency: 50}}
	// The first step outputs 1 (inc of the number 0), so feed the map directly.
	env.ExecuteWorkflow(RunChain, ChainInput{ChainRunID: id, Steps: steps[1:], Input: Payload{Inline: b}})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	if f.calls[fmt.Sprintf("0.map[%d]", MapBatch-1)] != 1 || f.calls[fmt.Sprintf("0.map[%d]", MapBatch)] != 0 {
		t.Fatal("the first run should do exactly one batch")
	}
	var next ChainInput
	if err := converterDecode(can, &next); err != nil {
		t.Fatal(err)
	}
	r := next.Resume
	if r == nil || r.Next != 0 || r.MapDone != MapBatch || len(r.MapLists) != 1 || r.Continued != 1 || len(r.Progress) != 0 {
		// The finished elements leave the carried progress: they are invocation records.
		t.Fatalf("resume %+v", r)
	}

	// The continued run does the rest and combines the stored results.
	env2, f2 := chainEnv(t)
	var combined activities.CombineInput
	env2.OnActivity(chainActs.CombinePayloads, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CombineInput) (Payload, error) {
			combined = in
			return Payload{Ref: in.Key}, nil
		})
	env2.ExecuteWorkflow(RunChain, next)
	if err := env2.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(f2.calls) != 20 || f2.calls[fmt.Sprintf("0.map[%d]", n-1)] != 1 || f2.calls["0.map[0]"] != 0 {
		t.Fatalf("continued run calls %d", len(f2.calls))
	}
	if len(combined.Lists) != 1 || len(combined.Parts) != 20 {
		t.Fatalf("combine %d lists %d parts", len(combined.Lists), len(combined.Parts))
	}
	// The record lists the last batch's elements; every element is an invocation.
	if f2.finished.Status != ferry.StatusCompleted || len(f2.finished.Steps) != 20 {
		t.Fatalf("finish %s with %d steps", f2.finished.Status, len(f2.finished.Steps))
	}
}

func TestChainBeginFailureFailsRun(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	Register(env)
	env.RegisterActivity(&activities.Chains{})
	env.OnActivity(chainActs.BeginChain, mock.Anything, mock.Anything).Return(activities.BeginOutput{},
		temporal.NewNonRetryableApplicationError("step 0: function \"nope\" not found", ferry.ErrTypeFunctionNotFound, nil))
	var finished activities.FinishChainInput
	env.OnActivity(chainActs.FinishChain, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FinishChainInput) error {
		finished = in
		return nil
	})
	env.ExecuteWorkflow(RunChain, ChainInput{ChainRunID: uuid.New(), Steps: []ferry.Step{fn("nope")}})
	if env.GetWorkflowError() == nil || finished.Status != ferry.StatusFailed || finished.Error.Type != ferry.ErrTypeFunctionNotFound {
		t.Fatalf("finish %+v", finished.Error)
	}
}

func converterDecode(can *workflow.ContinueAsNewError, v any) error {
	return converter.GetDefaultDataConverter().FromPayloads(can.Input, v)
}

// TestChainMapItemCap: maps may process ferry.MaxMapItems elements per run in
// all, nested maps included; past that the map step fails with MapTooLarge
// before any of its elements runs.
func TestChainMapItemCap(t *testing.T) {
	array := func(n int) string { return "[" + strings.TrimSuffix(strings.Repeat("0,", n), ",") + "]" }

	env, f := chainEnv(t)
	_, err := runChain(t, env, array(ferry.MaxMapItems+1), ferry.Step{Map: &ferry.Step{Function: "inc"}})
	if err == nil || f.finished.Status != ferry.StatusFailed || f.finished.Error.Type != ferry.ErrTypeMapTooLarge ||
		f.finished.Error.Step != "0" || !strings.Contains(f.finished.Error.Message, fmt.Sprintf("has %d elements", ferry.MaxMapItems+1)) {
		t.Fatalf("map of %d elements: err %v, finish %+v", ferry.MaxMapItems+1, err, f.finished.Error)
	}
	if len(f.calls) != 0 {
		t.Fatalf("%d elements ran", len(f.calls))
	}

	// 100 rows of 100 elements: 100 + 100×100 elements in all, one map too many.
	rows := "[" + strings.TrimSuffix(strings.Repeat(array(100)+",", 100), ",") + "]"
	env, f = chainEnv(t)
	_, err = runChain(t, env, rows, ferry.Step{Map: &ferry.Step{Map: &ferry.Step{Function: "inc"}}, MaxConcurrency: 1})
	if err == nil || f.finished.Error == nil || f.finished.Error.Type != ferry.ErrTypeMapTooLarge ||
		f.finished.Error.Step != "0.map[99]" {
		t.Fatalf("nested maps: err %v, finish %+v", err, f.finished.Error)
	}
	if n := len(f.calls); n != 99*100 {
		t.Fatalf("%d elements ran, want the first 99 rows' 9900", n)
	}
}

// TestChainMapReadsStoredChunks: a map over an input by reference reads its
// elements chunk by chunk (each chunk once), never as one activity result.
func TestChainMapReadsStoredChunks(t *testing.T) {
	env, _ := chainEnv(t)
	env.OnActivity(chainActs.SplitList, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SplitInput) (activities.PayloadList, error) {
			if in.Input.Ref != "input-key" {
				return activities.PayloadList{}, fmt.Errorf("split of %+v", in.Input)
			}
			return activities.PayloadList{Key: "chunks", Counts: []int{2, 3, 1}}, nil
		})
	var mu sync.Mutex
	loads := map[string]int{}
	env.OnActivity(chainActs.LoadChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, key string) ([]Payload, error) {
			mu.Lock()
			loads[key]++
			mu.Unlock()
			first := map[string]int{"chunks/0": 0, "chunks/1": 2, "chunks/2": 5}[key]
			n := map[string]int{"chunks/0": 2, "chunks/1": 3, "chunks/2": 1}[key]
			var out []Payload
			for i := first; i < first+n; i++ {
				out = append(out, Payload{Inline: json.RawMessage(strconv.Itoa(i * 10))})
			}
			return out, nil
		})
	env.ExecuteWorkflow(RunChain, ChainInput{ChainRunID: uuid.New(), Chain: "c", Version: 1,
		Steps: []ferry.Step{{Map: &ferry.Step{Function: "inc"}, MaxConcurrency: 2}}, Input: Payload{Ref: "input-key"}})
	var out ChainOutput
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	if string(out.Output.Inline) != `[1,11,21,31,41,51]` {
		t.Fatalf("output %s", out.Output.Inline)
	}
	if len(loads) != 3 || loads["chunks/0"] != 1 || loads["chunks/1"] != 1 || loads["chunks/2"] != 1 {
		t.Fatalf("chunk loads %v", loads)
	}
}

// TestChainMapCompensationsAcrossBatches: the completed elements of a
// finished batch leave the continue-as-new input for the object store, and a
// later failure still compensates every element, newest first.
func TestChainMapCompensationsAcrossBatches(t *testing.T) {
	stored := map[string][]Completed{}
	mockStore := func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(chainActs.StoreCompleted, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.StoreCompletedInput) (string, error) {
				stored[in.Key] = in.Items
				return in.Key, nil
			}).Maybe()
		env.OnActivity(chainActs.LoadCompleted, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.LoadCompletedInput) (activities.CompletedSlice, error) {
				start := max(in.End-7, 0) // small slices, as a large list would give
				return activities.CompletedSlice{Start: start, Items: stored[in.Key][start:in.End]}, nil
			}).Maybe()
	}
	env, _ := chainEnv(t)
	mockStore(env)
	n := MapBatch + 5
	b, _ := json.Marshal(make([]int, n))
	steps := []ferry.Step{{Map: &ferry.Step{Function: "inc", Compensate: "undo-el"}, MaxConcurrency: 50}, fn("fail")}
	env.ExecuteWorkflow(RunChain, ChainInput{ChainRunID: uuid.New(), Steps: steps, Input: Payload{Inline: b}})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next ChainInput
	if err := converterDecode(can, &next); err != nil {
		t.Fatal(err)
	}
	if c := next.Resume.Completed; len(c) != 1 || c[0].List == "" || c[0].Count != MapBatch || len(stored[c[0].List]) != MapBatch {
		t.Fatalf("carried completed %+v", c)
	}

	env2, f2 := chainEnv(t)
	mockStore(env2)
	env2.ExecuteWorkflow(RunChain, next)
	var appErr *temporal.ApplicationError
	if err := env2.GetWorkflowError(); !errors.As(err, &appErr) {
		t.Fatalf("want failure, got %v", err)
	}
	// The last batch's elements first (in their completion order), then the
	// stored ones from the newest.
	if len(f2.undone) != n {
		t.Fatalf("%d compensations", len(f2.undone))
	}
	first := stored[next.Resume.Completed[0].List]
	for i, p := range f2.undone {
		el, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(p, "0.map["), "].compensate"))
		if i < 5 && el < MapBatch || i >= 5 && p != first[n-1-i].Path+".compensate" {
			t.Fatalf("compensation %d is %s: %v", i, p, f2.undone[:min(len(f2.undone), 8)])
		}
	}
	var ce ferry.ChainError
	if err := appErr.Details(&ce); err != nil || len(ce.Compensations) != maxReports {
		t.Fatalf("failure details carry %d reports: %v", len(ce.Compensations), err)
	}
	if len(f2.finished.Error.Compensations) != n {
		t.Fatalf("record has %d reports", len(f2.finished.Error.Compensations))
	}
}

// TestChainParallelBoundsHistory: inside a parallel step, outputs travel
// inline up to MapItemInline, and a regular activity's large input is stored
// first and passed by reference (its input would be in history).
func TestChainParallelBoundsHistory(t *testing.T) {
	env, f := chainEnv(t)
	var stored []string
	env.OnActivity(chainActs.StorePayload, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.StorePayloadInput) (Payload, error) {
			stored = append(stored, in.Key)
			return Payload{Ref: in.Key}, nil
		})
	env.OnActivity(chainActs.CombinePayloads, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CombineInput) (Payload, error) { return Payload{Ref: in.Key}, nil })
	big := `"` + strings.Repeat("x", activities.MapItemInline) + `"`
	slow := ferry.Step{Function: "echo", TimeoutSeconds: 60} // a regular activity
	_, err := runChain(t, env, big, ferry.Step{Parallel: []ferry.Step{fn("echo"), slow}})
	if err != nil {
		t.Fatal(err)
	}
	if f.inputs["0.parallel[0]"].InlineMax != activities.MapItemInline || string(f.inputs["0.parallel[0]"].Input.Inline) != big {
		t.Fatalf("local branch input %+v", f.inputs["0.parallel[0]"].InlineMax)
	}
	if in := f.inputs["0.parallel[1]"].Input; in.Ref == "" || len(in.Inline) != 0 || len(stored) != 1 || stored[0] != in.Ref ||
		!strings.HasSuffix(in.Ref, "/0.parallel[1]/input") {
		t.Fatalf("regular branch input: %d bytes inline, ref %q; stored %v", len(in.Inline), in.Ref, stored)
	}
}
