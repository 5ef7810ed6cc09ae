package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/activities"
	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ProgressQuery is the name of RunChain's query for per-step progress.
const ProgressQuery = "progress"

// Limits that make a chain run continue as new, so that its history stays far
// below Temporal's limits. Continue-as-new happens between top-level steps and
// between batches of a top-level map step.
const (
	MapBatch         = 500
	MaxHistoryLength = 20000
	// MaxHistoryBytes: past this history size a top-level map batch starts no
	// more elements and the run continues as new (Temporal warns at 10 MiB and
	// terminates a workflow at 50 MiB).
	MaxHistoryBytes = 4 << 20
)

// versionBoundedHistory marks runs that keep their history bounded for any
// input: a map's input is split into stored chunks read one at a time, map
// elements travel inline up to activities.MapItemInline, a map batch also
// ends by history size, and finished map elements leave the progress that
// continue-as-new carries. Version 2 also bounds what steps inside a
// parallel step put into history like map elements, keeps a regular
// activity's input inline only up to that bound (larger ones are stored
// first), and cuts both to smallInline once the run's history is large.
const versionBoundedHistory = "bounded-history"

// smallInline bounds inline step inputs and outputs once a run's history has
// passed MaxHistoryBytes (nested maps and parallel steps, which do not
// continue as new).
const smallInline = 1 << 10

// Payload is a JSON value in a chain, inline or by reference.
type Payload = activities.Payload

// ChainInput starts (or continues) a chain run. The API records the pending
// run first; Steps are the definition as stored, pinned by Begin.
type ChainInput struct {
	ChainRunID uuid.UUID    `json:"chain_run_id"`
	Chain      string       `json:"chain"`
	Version    int          `json:"version"`
	Steps      []ferry.Step `json:"steps"`
	Input      Payload      `json:"input"`
	// Resume is set when a run continues as new.
	Resume *ChainResume `json:"resume,omitempty"`
}

// ChainStart starts the workflow of a recorded chain run of version v over the
// API: workflow id = the run's, eager start, and a memo the UI shows. An input
// too large for Temporal's history stays in the run's record only; the
// workflow loads it from there.
func ChainStart(taskQueue string, run ferry.ChainRun, v ferry.ChainVersion) Start {
	in := ChainInput{ChainRunID: run.ID, Chain: v.Chain, Version: v.Version, Steps: v.Steps,
		Input: Payload{Inline: run.Input}}
	if len(run.Input) > activities.InlineLimit {
		in.Input = activities.RunInputRef(run.ID)
	}
	return Start{
		Options: client.StartWorkflowOptions{
			ID:                       run.WorkflowID,
			TaskQueue:                taskQueue,
			EnableEagerStart:         true,
			WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			Memo:                     map[string]any{"chain": run.Chain, "version": run.Version},
		},
		Workflow: RunChain,
		Input:    in,
	}
}

// ChainResume is the state a chain run carries across continue-as-new. Map
// results done so far travel by reference (MapLists).
type ChainResume struct {
	Next      int                `json:"next"`                // top-level step to run
	Current   Payload            `json:"current"`             // its input
	MapDone   int                `json:"map_done"`            // elements of a map step Next already done
	MapLists  []string           `json:"map_lists"`           // stored results of those elements, in order
	Completed []Completed        `json:"completed"`           // compensable steps that completed, in order
	Progress  []ferry.StepStatus `json:"progress"`            // per-step progress so far
	Continued int                `json:"continued"`           // continue-as-new count
	MapItems  int                `json:"map_items,omitempty"` // map elements counted so far (ferry.MaxMapItems)
	// MapList is the map step's input split into stored chunks, so that a
	// continued run does not split it again.
	MapList *activities.PayloadList `json:"map_list,omitempty"`
}

// Completed is a completed function step with a compensation.
type Completed = activities.Completed

// maxReports bounds the compensation reports in the workflow's own result and
// failure (history); the run's record lists them all.
const maxReports = 100

// ChainOutput is RunChain's result; the full record is in PostgreSQL.
type ChainOutput struct {
	ChainRunID uuid.UUID              `json:"chain_run_id"`
	Status     ferry.InvocationStatus `json:"status"`
	Output     Payload                `json:"output"`
	Error      *ferry.ChainError      `json:"error,omitempty"`
}

// ChainProgress answers the progress query.
type ChainProgress struct {
	ChainRunID uuid.UUID          `json:"chain_run_id"`
	Steps      []ferry.StepStatus `json:"steps"`
}

// stepError is a step that failed (and was not told to continue).
type stepError struct {
	path string
	err  *ferry.FunctionError
}

func (e *stepError) Error() string {
	return fmt.Sprintf("step %s: %s: %s", e.path, e.err.Type, e.err.Message)
}

// chainActs names the chain activities (registered with a nil receiver).
var chainActs *activities.Chains

// chainRun is the state of one run of RunChain.
type chainRun struct {
	in        ChainInput
	progress  []ferry.StepStatus
	index     map[string]int // path → index in progress
	completed []Completed
	mapItems  int  // elements of the run's map steps so far
	bounded   bool // versionBoundedHistory ≥ 1
	bounded2  bool // versionBoundedHistory ≥ 2
}

// RunChain runs a chain's steps. Each function step is an ordinary invocation
// run by the RunStep activity (a local activity for functions of at most
// LocalActivityMaxSeconds, like InvokeFunction); see docs/ARCHITECTURE.md for
// why activities and not child workflows. When a step fails, the compensations
// of completed steps run in reverse order and the run ends failed.
func RunChain(ctx workflow.Context, in ChainInput) (ChainOutput, error) {
	r := &chainRun{in: in, index: map[string]int{}}
	res := in.Resume
	if res == nil {
		res = &ChainResume{Current: in.Input}
	}
	for _, p := range res.Progress {
		r.index[p.Path] = len(r.progress)
		r.progress = append(r.progress, p)
	}
	r.completed, r.mapItems = res.Completed, res.MapItems
	v := workflow.GetVersion(ctx, versionBoundedHistory, workflow.DefaultVersion, 2)
	r.bounded, r.bounded2 = v >= 1, v >= 2
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (ChainProgress, error) {
		return ChainProgress{ChainRunID: in.ChainRunID, Steps: r.progress}, nil
	}); err != nil {
		return ChainOutput{}, err
	}

	if in.Resume == nil {
		var begun activities.BeginOutput
		err := workflow.ExecuteLocalActivity(bookkeeping(ctx), chainActs.BeginChain,
			activities.BeginInput{ChainRunID: in.ChainRunID, Steps: in.Steps}).Get(ctx, &begun)
		if err != nil {
			return r.fail(ctx, &stepError{path: "", err: errorOf(err, "ChainStartFailed")})
		}
		r.in.Steps = begun.Steps
	}

	cur := res.Current
	for i := res.Next; i < len(r.in.Steps); i++ {
		path := strconv.Itoa(i)
		step := r.in.Steps[i]
		if i > res.Next && (workflow.GetInfo(ctx).GetCurrentHistoryLength() > MaxHistoryLength ||
			r.bounded && workflow.GetInfo(ctx).GetCurrentHistorySize() > MaxHistoryBytes) {
			return ChainOutput{}, r.continueAsNew(ctx, &ChainResume{Next: i, Current: cur, Continued: res.Continued + 1})
		}
		var out Payload
		var err error
		if step.Kind() == ferry.StepMap {
			at := &ChainResume{Continued: res.Continued}
			if i == res.Next {
				at.MapDone, at.MapLists, at.MapList = res.MapDone, res.MapLists, res.MapList
			}
			out, err = r.topMap(ctx, step, path, cur, at)
		} else {
			out, err = r.runStep(ctx, step, path, cur)
		}
		var cont *continueErr
		if errors.As(err, &cont) {
			cont.resume.Next, cont.resume.Current = i, cur
			return ChainOutput{}, r.continueAsNew(ctx, cont.resume)
		}
		if err != nil {
			return r.fail(ctx, err)
		}
		cur = out
	}
	out := ChainOutput{ChainRunID: in.ChainRunID, Status: ferry.StatusCompleted, Output: cur}
	if err := r.finish(ctx, activities.FinishChainInput{ChainRunID: in.ChainRunID, Status: ferry.StatusCompleted,
		Output: cur, Steps: r.progress}); err != nil {
		return out, err
	}
	return out, nil
}

// continueErr asks RunChain to continue as new with resume.
type continueErr struct{ resume *ChainResume }

func (e *continueErr) Error() string { return "continue as new" }

func (r *chainRun) continueAsNew(ctx workflow.Context, res *ChainResume) error {
	res.Completed, res.Progress, res.MapItems = r.completed, r.progress, r.mapItems
	in := r.in
	in.Resume = res
	return workflow.NewContinueAsNewError(ctx, RunChain, in)
}

// runStep runs any step on input and returns its output.
func (r *chainRun) runStep(ctx workflow.Context, step ferry.Step, path string, input Payload) (Payload, error) {
	var out Payload
	var err error
	switch step.Kind() {
	case ferry.StepFunction:
		out, err = r.runFunction(ctx, step, path, input)
	case ferry.StepParallel:
		out, err = r.runParallel(ctx, step, path, input)
	case ferry.StepMap:
		out, err = r.runMap(ctx, step, path, input)
	case ferry.StepWait:
		out, err = r.runWait(ctx, step, path, input)
	}
	var se *stepError
	if step.OnError == ferry.OnErrorContinue && errors.As(err, &se) {
		b, _ := json.Marshal(map[string]any{"error": se.err, "step": se.path})
		return Payload{Inline: b}, nil
	}
	return out, err
}

// runWait sleeps on a durable timer; the step's output is its input. No
// older history has a wait step (they did not validate), so the version
// marker only records that this one may.
func (r *chainRun) runWait(ctx workflow.Context, step ferry.Step, path string, input Payload) (Payload, error) {
	workflow.GetVersion(ctx, "chain-wait", workflow.DefaultVersion, 1)
	st := ferry.StepStatus{Path: path, Status: ferry.StatusWaiting}
	r.setStatus(st)
	if err := workflow.Sleep(ctx, time.Duration(step.WaitSeconds)*time.Second); err != nil {
		st.Status = ferry.StatusCancelled
		r.setStatus(st)
		return Payload{}, err
	}
	st.Status = ferry.StatusCompleted
	r.setStatus(st)
	return input, nil
}

func (r *chainRun) setStatus(s ferry.StepStatus) {
	if i, ok := r.index[s.Path]; ok {
		r.progress[i] = s
		return
	}
	r.index[s.Path] = len(r.progress)
	r.progress = append(r.progress, s)
}

func (r *chainRun) runFunction(ctx workflow.Context, step ferry.Step, path string, input Payload) (Payload, error) {
	out, err := r.invoke(ctx, step.Function, step.Version, step.TimeoutSeconds, step.Retries, path, input, false)
	if err != nil {
		return Payload{}, err
	}
	if step.Compensate != "" {
		r.completed = append(r.completed, Completed{Path: path, Function: step.Compensate,
			Version: step.CompensateVersion, Input: input, Output: out})
	}
	return out, nil
}

// invoke runs one function as a step activity and tracks its progress.
func (r *chainRun) invoke(ctx workflow.Context, fn string, version, timeout, retries int, path string, input Payload, compensation bool) (Payload, error) {
	st := ferry.StepStatus{Path: path, Function: fn, Version: version, Status: ferry.StatusRunning,
		InvocationID: ferry.StepInvocationID(r.in.ChainRunID, path), Compensation: compensation}
	r.setStatus(st)
	in := activities.StepInput{ChainRunID: r.in.ChainRunID, Path: path, Function: fn, Version: version,
		Input: input, TimeoutSeconds: timeout, Retries: retries}
	in.InlineMax, _ = ctx.Value(mapItemInline{}).(int)
	if r.bounded2 && workflow.GetInfo(ctx).GetCurrentHistorySize() > MaxHistoryBytes {
		in.InlineMax = smallInline
	}
	// budget sizes the activity. A compensation runs with its function's own
	// timeout (timeout 0), which may be up to the maximum: it gets a
	// heartbeating activity long enough for that, not the 0 s step's.
	budget := timeout
	if compensation && workflow.GetVersion(ctx, "compensation-budget", workflow.DefaultVersion, 1) == 1 {
		budget = ferry.MaxLimits.TimeoutSeconds
	}
	if !isLocal(budget) {
		// A regular activity's input is in history (a local one's is not).
		if limit := in.InlineMax; r.bounded2 && limit > 0 && len(in.Input.Inline) > limit {
			var ref Payload
			err := workflow.ExecuteLocalActivity(bookkeeping(ctx), chainActs.StorePayload, activities.StorePayloadInput{
				Key: activities.PayloadKey(r.in.ChainRunID, path+"/input"), Value: in.Input.Inline}).Get(ctx, &ref)
			in.Input = ref
			if err != nil {
				st.Status, st.Error = ferry.StatusFailed, errorOf(err, ferry.ErrTypeInfrastructure)
				r.setStatus(st)
				return Payload{}, &stepError{path: path, err: st.Error}
			}
		}
	}
	// 0: no schedule-to-close bound; a chain run has no execution timeout to fit in.
	f := functionActivity(ctx, budget, 0, chainActs.RunStep, in)
	var out activities.StepOutput
	if err := f.Get(ctx, &out); err != nil {
		if ctx.Err() != nil {
			st.Status = ferry.StatusCancelled
			r.setStatus(st)
			return Payload{}, err
		}
		st.Status, st.Error = ferry.StatusFailed, errorOf(err, ferry.ErrTypeInfrastructure)
		r.setStatus(st)
		return Payload{}, &stepError{path: path, err: st.Error}
	}
	st.Status, st.Error = out.Status, out.Error
	r.setStatus(st)
	if out.Status != ferry.StatusCompleted {
		e := out.Error
		if e == nil {
			e = &ferry.FunctionError{Type: ferry.ErrTypeError, Message: "function " + string(out.Status)}
		}
		return Payload{}, &stepError{path: path, err: e}
	}
	return out.Output, nil
}

func (r *chainRun) runParallel(ctx workflow.Context, step ferry.Step, path string, input Payload) (Payload, error) {
	if r.bounded2 {
		// Branches run at once: their results may land in one workflow task.
		ctx = workflow.WithValue(ctx, mapItemInline{}, activities.MapItemInline)
	}
	outs := make([]Payload, len(step.Parallel))
	errs := make([]error, len(step.Parallel))
	wg := workflow.NewWaitGroup(ctx)
	for i, b := range step.Parallel {
		wg.Add(1)
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer wg.Done()
			outs[i], errs[i] = r.runStep(ctx, b, fmt.Sprintf("%s.parallel[%d]", path, i), input)
		})
	}
	wg.Wait(ctx)
	for _, err := range errs {
		if err != nil {
			return Payload{}, err
		}
	}
	return r.combine(ctx, path+"/output", outs, nil, nil)
}

func (r *chainRun) runMap(ctx workflow.Context, step ferry.Step, path string, input Payload) (Payload, error) {
	items, err := r.split(ctx, path, input, true)
	if err != nil {
		return Payload{}, err
	}
	outs, _, err := r.mapRange(ctx, step, path, items, 0, items.len(), false)
	if err != nil {
		return Payload{}, err
	}
	return r.combine(ctx, path+"/output", outs, nil, nil)
}

// topMap runs a top-level map step in batches of MapBatch elements and
// continues as new between batches, carrying finished results by reference.
// at holds where a continued run resumes (MapDone, MapLists, MapList).
func (r *chainRun) topMap(ctx workflow.Context, step ferry.Step, path string, input Payload, at *ChainResume) (Payload, error) {
	var items *mapElems
	var err error
	if at.MapList != nil {
		items = &mapElems{list: *at.MapList}
	} else if items, err = r.split(ctx, path, input, at.MapDone == 0); err != nil { // later batches were counted by the first
		return Payload{}, err
	}
	done, lists, n := at.MapDone, at.MapLists, items.len()
	if !r.bounded && n <= MapBatch {
		out, _, err := r.mapRange(ctx, step, path, items, 0, n, false)
		if err != nil {
			return r.mapFailed(step, err)
		}
		return r.combine(ctx, path+"/output", out, nil, nil)
	}
	outs, end, err := r.mapRange(ctx, step, path, items, done, min(done+MapBatch, n), r.bounded)
	if err != nil {
		return r.mapFailed(step, err)
	}
	if end < n {
		var key string
		err := workflow.ExecuteLocalActivity(bookkeeping(ctx), chainActs.StorePayloadList, activities.StoreListInput{
			Key: activities.PayloadKey(r.in.ChainRunID, fmt.Sprintf("%s/results-%d", path, done)), Items: outs}).Get(ctx, &key)
		if err != nil {
			return Payload{}, &stepError{path: path, err: errorOf(err, ferry.ErrTypeInfrastructure)}
		}
		next := &ChainResume{MapDone: end, MapLists: append(append([]string(nil), lists...), key), Continued: at.Continued + 1}
		if r.bounded {
			// The finished elements are invocation records; the progress that
			// continue-as-new carries keeps only the other steps.
			r.dropProgress(path + ".map[")
			if err := r.storeCompleted(ctx, path, done); err != nil {
				return Payload{}, &stepError{path: path, err: errorOf(err, ferry.ErrTypeInfrastructure)}
			}
			if items.list.Key != "" {
				next.MapList = &items.list
			}
		}
		return Payload{}, &continueErr{resume: next}
	}
	return r.combine(ctx, path+"/output", outs, lists, nil)
}

// dropProgress removes the progress of steps whose path starts with prefix.
func (r *chainRun) dropProgress(prefix string) {
	kept := r.progress[:0]
	r.index = map[string]int{}
	for _, p := range r.progress {
		if !strings.HasPrefix(p.Path, prefix) {
			r.index[p.Path] = len(kept)
			kept = append(kept, p)
		}
	}
	r.progress = kept
}

func (r *chainRun) mapFailed(step ferry.Step, err error) (Payload, error) {
	var se *stepError
	if step.OnError == ferry.OnErrorContinue && errors.As(err, &se) {
		b, _ := json.Marshal(map[string]any{"error": se.err, "step": se.path})
		return Payload{Inline: b}, nil
	}
	return Payload{}, err
}

// mapElems are a map step's elements: in memory when its input was inline (or
// split by the old SplitPayload), else in stored chunks read in order.
type mapElems struct {
	inline []Payload
	list   activities.PayloadList
	first  int       // index of loaded[0]
	loaded []Payload // the chunk read last
}

func (m *mapElems) len() int {
	if m.list.Key == "" {
		return len(m.inline)
	}
	return m.list.Len()
}

// get returns element i, reading its chunk when it is not the one read last.
func (m *mapElems) get(ctx workflow.Context, i int) (Payload, error) {
	if m.list.Key == "" {
		return m.inline[i], nil
	}
	if i < m.first || i >= m.first+len(m.loaded) {
		c, first := 0, 0
		for c < len(m.list.Counts)-1 && first+m.list.Counts[c] <= i {
			first += m.list.Counts[c]
			c++
		}
		var chunk []Payload
		err := workflow.ExecuteLocalActivity(bookkeeping(ctx), chainActs.LoadChunk, m.list.ChunkKey(c)).Get(ctx, &chunk)
		if err != nil {
			return Payload{}, err
		}
		if len(chunk) != m.list.Counts[c] {
			return Payload{}, fmt.Errorf("chunk %d of %s has %d elements, want %d", c, m.list.Key, len(chunk), m.list.Counts[c])
		}
		m.first, m.loaded = first, chunk
	}
	return m.loaded[i-m.first], nil
}

// split returns the elements of a map step's input and, with count, counts
// them against the run's ferry.MaxMapItems.
func (r *chainRun) split(ctx workflow.Context, path string, input Payload, count bool) (*mapElems, error) {
	left := ferry.MaxMapItems - r.mapItems
	items := &mapElems{}
	if input.Ref == "" {
		var elems []json.RawMessage
		if err := json.Unmarshal(input.Inline, &elems); err != nil || input.Inline == nil {
			return nil, &stepError{path: path, err: &ferry.FunctionError{Type: ferry.ErrTypeMapInput,
				Message: "the input of a map step must be a JSON array"}}
		}
		items.inline = make([]Payload, len(elems))
		for i, e := range elems {
			items.inline[i] = Payload{Inline: e}
		}
	} else {
		in := activities.SplitInput{Key: activities.PayloadKey(r.in.ChainRunID, path+"/items"), Input: input}
		if count {
			in.Max = max(left, 1) // an early cut, before the elements are stored; the count below decides
		}
		var err error
		if r.bounded {
			err = workflow.ExecuteLocalActivity(bookkeeping(ctx), chainActs.SplitList, in).Get(ctx, &items.list)
		} else {
			err = workflow.ExecuteLocalActivity(bookkeeping(ctx), chainActs.SplitPayload, in).Get(ctx, &items.inline)
		}
		if err != nil {
			return nil, &stepError{path: path, err: errorOf(err, ferry.ErrTypeInfrastructure)}
		}
	}
	if !count {
		return items, nil
	}
	n := items.len()
	r.mapItems += n
	// Runs recorded before the cap replay as they ran.
	if n > left && workflow.GetVersion(ctx, "map-item-cap", workflow.DefaultVersion, 1) == 1 {
		return nil, &stepError{path: path, err: &ferry.FunctionError{Type: ferry.ErrTypeMapTooLarge,
			Message: activities.MapTooLargeMessage(n, left)}}
	}
	return items, nil
}

// mapItemInline is the workflow context key that bounds inline step outputs
// inside a map or a parallel step (activities.MapItemInline).
type mapItemInline struct{}

// mapRange runs the map's inner step on items[from:to], at most
// MaxConcurrency at a time, and returns their outputs in order. With
// stopEarly it starts no more elements once the history passes
// MaxHistoryBytes; end is where it stopped.
func (r *chainRun) mapRange(ctx workflow.Context, step ferry.Step, path string, items *mapElems, from, to int, stopEarly bool) ([]Payload, int, error) {
	n := step.MaxConcurrency
	if n <= 0 {
		n = ferry.DefaultMapParallel
	}
	if r.bounded {
		ctx = workflow.WithValue(ctx, mapItemInline{}, activities.MapItemInline)
	}
	sem := workflow.NewSemaphore(ctx, int64(n))
	// Not named results: the coroutines write into these after an early return.
	outs := make([]Payload, to-from)
	errs := make([]error, to-from)
	wg := workflow.NewWaitGroup(ctx)
	end := to
	for i := from; i < to; i++ {
		if err := sem.Acquire(ctx, 1); err != nil {
			return nil, 0, err
		}
		if stopEarly && i > from && workflow.GetInfo(ctx).GetCurrentHistorySize() > MaxHistoryBytes {
			sem.Release(1)
			end = i
			break
		}
		item, err := items.get(ctx, i)
		if err != nil {
			sem.Release(1)
			errs[i-from] = &stepError{path: path, err: errorOf(err, ferry.ErrTypeInfrastructure)}
			end = i + 1
			break
		}
		wg.Add(1)
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer wg.Done()
			defer sem.Release(1)
			outs[i-from], errs[i-from] = r.runStep(ctx, *step.Map, fmt.Sprintf("%s.map[%d]", path, i), item)
		})
	}
	wg.Wait(ctx)
	for _, err := range errs[:end-from] {
		if err != nil {
			return nil, 0, err
		}
	}
	return outs[:end-from], end, nil
}

// combine builds an array (or, with keys, an object) of parts and stored lists,
// in the workflow when everything is small and inline, else in an activity.
func (r *chainRun) combine(ctx workflow.Context, name string, parts []Payload, lists []string, keys []string) (Payload, error) {
	size := 0
	inline := len(lists) == 0
	for _, p := range parts {
		size += p.Size() + 1
		if p.Ref != "" {
			inline = false
		}
	}
	if inline && size+64 <= activities.InlineLimit {
		buf := []byte{'['}
		if keys != nil {
			buf[0] = '{'
		}
		for i, p := range parts {
			if i > 0 {
				buf = append(buf, ',')
			}
			if keys != nil {
				k, _ := json.Marshal(keys[i])
				buf = append(append(buf, k...), ':')
			}
			if len(p.Inline) == 0 {
				buf = append(buf, "null"...)
			} else {
				buf = append(buf, p.Inline...)
			}
		}
		if keys != nil {
			buf = append(buf, '}')
		} else {
			buf = append(buf, ']')
		}
		return Payload{Inline: buf}, nil
	}
	var out Payload
	err := workflow.ExecuteLocalActivity(bookkeeping(ctx), chainActs.CombinePayloads, activities.CombineInput{
		Key: activities.PayloadKey(r.in.ChainRunID, name), Lists: lists, Parts: parts, Keys: keys}).Get(ctx, &out)
	if err != nil {
		return Payload{}, &stepError{path: name, err: errorOf(err, ferry.ErrTypeInfrastructure)}
	}
	return out, nil
}

// fail runs the compensations of completed steps in reverse order and records
// the run as failed (or cancelled) with the original error and the report.
func (r *chainRun) fail(ctx workflow.Context, cause error) (ChainOutput, error) {
	status := ferry.StatusFailed
	if ctx.Err() != nil || temporal.IsCanceledError(cause) {
		status = ferry.StatusCancelled
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	ce := &ferry.ChainError{Type: ferry.ErrTypeStepFailed, Message: cause.Error()}
	var se *stepError
	if errors.As(cause, &se) {
		ce.Step, ce.Type, ce.Message = se.path, se.err.Type, se.err.Message
	}
	if status == ferry.StatusCancelled {
		ce.Type, ce.Message = ferry.ErrTypeCancelled, "chain run cancelled"
	}
	for i := len(r.completed) - 1; i >= 0; i-- {
		c := r.completed[i]
		if c.List == "" {
			ce.Compensations = append(ce.Compensations, r.compensate(dctx, c))
			continue
		}
		// Map elements of an earlier batch, stored: read back to front in
		// slices that each fit in history.
		for end := c.Count; end > 0; {
			var sl activities.CompletedSlice
			err := workflow.ExecuteLocalActivity(bookkeeping(dctx), chainActs.LoadCompleted,
				activities.LoadCompletedInput{Key: c.List, End: end}).Get(dctx, &sl)
			if err != nil {
				ce.Compensations = append(ce.Compensations, ferry.CompensationReport{Step: c.Path, Status: ferry.StatusFailed,
					Error: errorOf(err, ferry.ErrTypeInfrastructure)})
				break
			}
			for j := len(sl.Items) - 1; j >= 0; j-- {
				ce.Compensations = append(ce.Compensations, r.compensate(dctx, sl.Items[j]))
			}
			end = sl.Start
		}
	}
	out := ChainOutput{ChainRunID: r.in.ChainRunID, Status: status, Error: ce}
	if err := r.finish(dctx, activities.FinishChainInput{ChainRunID: r.in.ChainRunID, Status: status,
		Error: ce, Steps: r.progress}); err != nil {
		return out, err
	}
	if r.bounded && len(ce.Compensations) > maxReports {
		short := *ce
		short.Compensations = ce.Compensations[:maxReports]
		ce, out.Error = &short, &short
	}
	if status == ferry.StatusCancelled {
		return out, temporal.NewCanceledError()
	}
	return out, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: %s", ce.Type, ce.Message), ferry.ErrTypeStepFailed, nil, ce)
}

// compensate runs the compensation of a completed step and reports it.
func (r *chainRun) compensate(ctx workflow.Context, c Completed) ferry.CompensationReport {
	arg, err := r.combine(ctx, c.Path+".compensate/input", []Payload{c.Input, c.Output}, nil, []string{"input", "output"})
	rep := ferry.CompensationReport{Step: c.Path, Function: c.Function,
		InvocationID: ferry.StepInvocationID(r.in.ChainRunID, c.Path+".compensate"), Status: ferry.StatusCompleted}
	if err == nil {
		_, err = r.invoke(ctx, c.Function, c.Version, 0, 0, c.Path+".compensate", arg, true)
	}
	var se *stepError
	if errors.As(err, &se) {
		rep.Status, rep.Error = ferry.StatusFailed, se.err
	} else if err != nil {
		rep.Status, rep.Error = ferry.StatusFailed, errorOf(err, ferry.ErrTypeInfrastructure)
	}
	return rep
}

// storeCompleted moves the completed map elements of path (the tail of the
// compensation list) to the object store, leaving one entry that names them,
// so that continue-as-new does not carry them.
func (r *chainRun) storeCompleted(ctx workflow.Context, path string, done int) error {
	i := len(r.completed)
	for i > 0 && r.completed[i-1].List == "" && strings.HasPrefix(r.completed[i-1].Path, path+".map[") {
		i--
	}
	if i == len(r.completed) {
		return nil
	}
	var key string
	err := workflow.ExecuteLocalActivity(bookkeeping(ctx), chainActs.StoreCompleted, activities.StoreCompletedInput{
		Key: activities.PayloadKey(r.in.ChainRunID, fmt.Sprintf("%s/completed-%d", path, done)), Items: r.completed[i:]}).Get(ctx, &key)
	if err != nil {
		return err
	}
	r.completed = append(r.completed[:i:i], Completed{Path: path, List: key, Count: len(r.completed) - i})
	return nil
}

func (r *chainRun) finish(ctx workflow.Context, in activities.FinishChainInput) error {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	return workflow.ExecuteLocalActivity(bookkeeping(dctx), chainActs.FinishChain, in).Get(dctx, nil)
}

// errorOf describes an activity error as a function error.
func errorOf(err error, typ string) *ferry.FunctionError {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		t := appErr.Type()
		if t == "" {
			t = typ
		}
		return &ferry.FunctionError{Type: t, Message: appErr.Message()}
	}
	return &ferry.FunctionError{Type: typ, Message: err.Error()}
}
