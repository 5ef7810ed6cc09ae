package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// Payload is a JSON value inside a chain: inline when small, otherwise a key
// in the object store, so that large values never enter Temporal's history.
// An empty payload is JSON null.
type Payload struct {
	Inline json.RawMessage `json:"inline,omitempty"`
	Ref    string          `json:"ref,omitempty"`
}

// Size is the number of bytes the payload puts into Temporal's history.
func (p Payload) Size() int { return len(p.Inline) + len(p.Ref) }

// PayloadKey is the object key of a chain run's payload named name.
func PayloadKey(chainRunID uuid.UUID, name string) string {
	return PayloadPrefix(chainRunID) + name
}

// PayloadPrefix starts the object keys of every payload a chain run stores;
// they are deleted once the run is final (FinishChain, or the reconciler).
func PayloadPrefix(chainRunID uuid.UUID) string {
	return "payloads/" + chainRunID.String() + "/"
}

// RunInputRef is the payload of a chain run's input that is too large for
// Temporal's history: a reference to the input in the run's record, so that
// it is stored once.
func RunInputRef(chainRunID uuid.UUID) Payload {
	return Payload{Ref: runInputRefPrefix + chainRunID.String()}
}

// ChainStore is what the chain activities need from PostgreSQL.
type ChainStore interface {
	GetVersion(ctx context.Context, name string, version int) (ferry.Version, error)
	ResolveAlias(ctx context.Context, function, name string, u float64) (ferry.Version, ferry.Alias, error)
	GetInvocation(ctx context.Context, id uuid.UUID) (ferry.Invocation, error)
	GetChainRun(ctx context.Context, id uuid.UUID) (ferry.ChainRun, error)
	CreateInvocation(ctx context.Context, inv ferry.Invocation) (ferry.Invocation, bool, error)
	StartChainRun(ctx context.Context, id uuid.UUID, runID string, at time.Time) error
	FinishChainRun(ctx context.Context, id uuid.UUID, o ferry.ChainOutcome) (ferry.ChainRun, bool, error)
}

// Chains holds the chain activities. A function step reuses Invocations.Run,
// so it is an ordinary invocation with its record, logs and metrics.
type Chains struct {
	Store       ChainStore
	Objects     ChainObjects
	Invocations *Invocations
	Logger      *slog.Logger
	// ScheduleStore records schedule firings (CreateScheduledRun). nil: a
	// firing fails, not retried, saying so.
	ScheduleStore ScheduleStore
	// Schedules pauses a schedule whose firing was refused (nil: not paused).
	Schedules SchedulePauser
}

// ChainObjects is the object store as the chain activities use it.
type ChainObjects interface {
	Objects
	DeletePrefix(ctx context.Context, prefix string) error
}

// BeginInput starts a chain run: the versions of its functions get pinned.
type BeginInput struct {
	ChainRunID uuid.UUID    `json:"chain_run_id"`
	Steps      []ferry.Step `json:"steps"`
}

// BeginOutput holds the steps with every version, timeout and retry count filled in.
type BeginOutput struct {
	Steps []ferry.Step `json:"steps"`
}

// BeginChain pins versions (latest at this moment for unpinned steps) and marks the
// run running. A missing function fails the chain without retries.
func (a *Chains) BeginChain(ctx context.Context, in BeginInput) (BeginOutput, error) {
	steps := make([]ferry.Step, len(in.Steps))
	for i, s := range in.Steps {
		p, err := a.pin(ctx, in.ChainRunID, s, strconv.Itoa(i))
		if err != nil {
			return BeginOutput{}, err
		}
		steps[i] = p
	}
	info := activity.GetInfo(ctx)
	if err := a.Store.StartChainRun(ctx, in.ChainRunID, info.WorkflowExecution.RunID, time.Now()); err != nil {
		return BeginOutput{}, err
	}
	return BeginOutput{Steps: steps}, nil
}

func (a *Chains) pin(ctx context.Context, run uuid.UUID, s ferry.Step, path string) (ferry.Step, error) {
	switch s.Kind() {
	case ferry.StepParallel:
		branches := make([]ferry.Step, len(s.Parallel))
		for i, b := range s.Parallel {
			p, err := a.pin(ctx, run, b, fmt.Sprintf("%s.parallel[%d]", path, i))
			if err != nil {
				return s, err
			}
			branches[i] = p
		}
		s.Parallel = branches
		return s, nil
	case ferry.StepMap:
		inner, err := a.pin(ctx, run, *s.Map, path+".map")
		if err != nil {
			return s, err
		}
		s.Map = &inner
		if s.MaxConcurrency == 0 {
			s.MaxConcurrency = ferry.DefaultMapParallel
		}
		return s, nil
	case ferry.StepWait:
		return s, nil
	}
	var v ferry.Version
	var err error
	if s.Alias != "" {
		// Drawn from the run and the step: a retried BeginChain picks the same.
		v, _, err = a.Store.ResolveAlias(ctx, s.Function, s.Alias, ferry.AliasDraw(run.String()+"\x00"+path))
		err = stepNotFound(err, path)
	} else {
		v, err = a.version(ctx, s.Function, s.Version, path)
	}
	if err != nil {
		return s, err
	}
	s.Version = v.Version
	l := v.Limits.WithDefaults()
	if s.TimeoutSeconds == 0 {
		s.TimeoutSeconds = l.TimeoutSeconds
	}
	if s.Retries == 0 {
		s.Retries = l.Retries
	}
	if s.Compensate != "" {
		cv, err := a.version(ctx, s.Compensate, s.CompensateVersion, path+".compensate")
		if err != nil {
			return s, err
		}
		s.CompensateVersion = cv.Version
	}
	return s, nil
}

func (a *Chains) version(ctx context.Context, name string, version int, path string) (ferry.Version, error) {
	v, err := a.Store.GetVersion(ctx, name, version)
	return v, stepNotFound(err, path)
}

// stepNotFound fails the chain without retries when a step's function,
// version or alias is missing.
func stepNotFound(err error, path string) error {
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("step %s: %s", path, ferry.ErrorMessage(err)), ferry.ErrTypeFunctionNotFound, nil)
	}
	return err
}

// StepInput runs one function step of a chain run.
type StepInput struct {
	ChainRunID     uuid.UUID `json:"chain_run_id"`
	Path           string    `json:"path"`
	Function       string    `json:"function"`
	Version        int       `json:"version"`
	Input          Payload   `json:"input"`
	TimeoutSeconds int       `json:"timeout_seconds"`
	Retries        int       `json:"retries"`
	// InlineMax is the largest output returned inline (0: InlineLimit); steps
	// inside a map use MapItemInline.
	InlineMax int `json:"inline_max,omitempty"`
	// Parent, when set, runs the function for a durable invoke operation of
	// that invocation (Path is the operation's name) instead of a chain step:
	// the invocation's id derives from the parent's, and it has no chain run.
	Parent uuid.UUID `json:"parent,omitempty"`
	// Owner is the parent's API key (RunInput.Owner), for the invocations
	// that the invoked function invokes in turn.
	Owner uuid.UUID `json:"owner,omitempty"`
}

// StepOutput is the step's final invocation status and output.
type StepOutput struct {
	InvocationID uuid.UUID              `json:"invocation_id"`
	Status       ferry.InvocationStatus `json:"status"`
	Output       Payload                `json:"output"`
	Error        *ferry.FunctionError   `json:"error,omitempty"`
}

// RunStep runs a function step as an ordinary invocation whose id is derived
// from the chain run and the step's path. It is idempotent: when that
// invocation has already finished (a replay after a crash re-runs local
// activities whose results never reached history) it returns the stored
// outcome without running the function again.
func (a *Chains) RunStep(ctx context.Context, in StepInput) (StepOutput, error) {
	id := ferry.StepInvocationID(in.ChainRunID, in.Path)
	log := a.Logger.With("chain_run", in.ChainRunID, "step", in.Path, "invocation", id, "function", in.Function)
	var chainRunID *uuid.UUID
	if in.Parent != uuid.Nil {
		id = InvokeOperationID(in.Parent, in.Path)
		log = a.Logger.With("parent", in.Parent, "operation", in.Path, "invocation", id, "function", in.Function)
	} else {
		chainRunID = &in.ChainRunID
	}
	inv, err := a.Store.GetInvocation(ctx, id)
	switch {
	case err == nil && inv.Status.Final():
		log.Info("chain step already finished, reusing its record", "status", inv.Status)
		return a.stepOutput(ctx, in, inv)
	case err == nil:
		// Started before (a crash, or a retry): run it again under the same record.
	case ferry.ErrorCode(err) == ferry.ENOTFOUND:
		event, err := a.load(ctx, in.Input)
		if err != nil {
			return StepOutput{}, err
		}
		v, err := a.version(ctx, in.Function, in.Version, in.Path)
		if err != nil {
			return StepOutput{}, err
		}
		inv, _, err = a.Store.CreateInvocation(ctx, ferry.Invocation{ID: id, Function: in.Function,
			FunctionID: v.FunctionID, Version: in.Version,
			Status: ferry.StatusPending, Event: event, ChainRunID: chainRunID, WorkflowID: activity.GetInfo(ctx).WorkflowExecution.ID,
			CreatedAt: time.Now()})
		if ferry.ErrorCode(err) == ferry.ECONFLICT {
			// A concurrent attempt created it: read it back.
			inv, err = a.Store.GetInvocation(ctx, id)
		}
		if err != nil {
			return StepOutput{}, err
		}
	default:
		return StepOutput{}, err
	}
	event := inv.Event
	log.Info("chain step running", "attempt", activity.GetInfo(ctx).Attempt)
	out, err := a.Invocations.Run(ctx, RunInput{InvocationID: id, Function: in.Function,
		FunctionID: inv.FunctionID, Version: in.Version,
		Event: event, AcceptedAt: inv.CreatedAt, TimeoutSeconds: in.TimeoutSeconds, Retries: in.Retries, Owner: in.Owner})
	if err != nil {
		return StepOutput{}, err
	}
	if out.Suspension != nil {
		// A chain step's (or an invoke operation's) invocation cannot
		// suspend: the chain waits with its own wait and callback steps.
		if out, err = a.Invocations.finish(ctx, id, ferry.Outcome{Status: ferry.StatusFailed, Error: &ferry.FunctionError{
			Type: "Durable.Unsupported", Message: "a function run as a chain step cannot wait (wait or callback); use the chain's own steps"}}); err != nil {
			return StepOutput{}, err
		}
	}
	rec := out.Invocation
	if out.ResultOmitted {
		if rec, err = a.Store.GetInvocation(ctx, id); err != nil {
			return StepOutput{}, err
		}
	}
	return a.stepOutput(ctx, in, rec)
}

// InvokeOperationID is the id of the invocation that a durable invoke
// operation named name of invocation parent runs.
func InvokeOperationID(parent uuid.UUID, name string) uuid.UUID {
	return uuid.NewSHA1(parent, []byte("invoke\x00"+name))
}

func (a *Chains) stepOutput(ctx context.Context, in StepInput, inv ferry.Invocation) (StepOutput, error) {
	out := StepOutput{InvocationID: inv.ID, Status: inv.Status, Error: historyError(inv.Error)}
	if inv.Status != ferry.StatusCompleted {
		return out, nil
	}
	limit := InlineLimit
	if in.InlineMax > 0 {
		limit = in.InlineMax
	}
	if len(inv.Result) <= limit {
		out.Output = Payload{Inline: inv.Result}
		return out, nil
	}
	// Stored once: the invocation record holds the result; history carries a
	// reference to it.
	out.Output = Payload{Ref: resultRefPrefix + inv.ID.String()}
	return out, nil
}

// Payload references to a value in a record, as opposed to an object key:
// an invocation's result (the rest is the invocation id) and a chain run's
// input (the rest is the chain run id).
const (
	resultRefPrefix   = "invocation-result:"
	runInputRefPrefix = "chain-run-input:"
)

// store keeps data inline when small and puts it into the object store otherwise.
func (a *Chains) store(ctx context.Context, key string, data json.RawMessage) (Payload, error) {
	return a.storeUpTo(ctx, key, data, InlineLimit)
}

// storeUpTo keeps data inline up to limit bytes.
func (a *Chains) storeUpTo(ctx context.Context, key string, data json.RawMessage, limit int) (Payload, error) {
	if len(data) <= limit {
		return Payload{Inline: data}, nil
	}
	if err := a.Objects.Put(ctx, key, data); err != nil {
		return Payload{}, err
	}
	return Payload{Ref: key}, nil
}

// load returns the JSON value of p (nil for null).
func (a *Chains) load(ctx context.Context, p Payload) (json.RawMessage, error) {
	if p.Ref == "" {
		return p.Inline, nil
	}
	if id, ok := strings.CutPrefix(p.Ref, resultRefPrefix); ok {
		invID, err := uuid.Parse(id)
		if err != nil {
			return nil, fmt.Errorf("payload reference %q: %w", p.Ref, err)
		}
		inv, err := a.Store.GetInvocation(ctx, invID)
		return inv.Result, err
	}
	if id, ok := strings.CutPrefix(p.Ref, runInputRefPrefix); ok {
		runID, err := uuid.Parse(id)
		if err != nil {
			return nil, fmt.Errorf("payload reference %q: %w", p.Ref, err)
		}
		run, err := a.Store.GetChainRun(ctx, runID)
		return run.Input, err
	}
	return a.Objects.Get(ctx, p.Ref)
}

// CombineInput builds one JSON value from payloads: an array of the elements of
// the stored lists (see StoreList) followed by Parts, or an object when Keys
// names each part.
type CombineInput struct {
	Key   string    `json:"key"` // object key for the result when it is large
	Lists []string  `json:"lists,omitempty"`
	Parts []Payload `json:"parts"`
	Keys  []string  `json:"keys,omitempty"`
}

// CombinePayloads materializes a combined value that is too large to build in the workflow.
func (a *Chains) CombinePayloads(ctx context.Context, in CombineInput) (Payload, error) {
	var parts []Payload
	for _, key := range in.Lists {
		data, err := a.Objects.Get(ctx, key)
		if err != nil {
			return Payload{}, err
		}
		var list []Payload
		if err := json.Unmarshal(data, &list); err != nil {
			return Payload{}, fmt.Errorf("stored list %s: %w", key, err)
		}
		parts = append(parts, list...)
	}
	parts = append(parts, in.Parts...)
	var buf bytes.Buffer
	open, close := byte('['), byte(']')
	if in.Keys != nil {
		open, close = '{', '}'
	}
	buf.WriteByte(open)
	for i, p := range parts {
		if i > 0 {
			buf.WriteByte(',')
		}
		if in.Keys != nil {
			k, _ := json.Marshal(in.Keys[i])
			buf.Write(k)
			buf.WriteByte(':')
		}
		v, err := a.load(ctx, p)
		if err != nil {
			return Payload{}, err
		}
		if len(v) == 0 {
			v = json.RawMessage("null")
		}
		buf.Write(v)
	}
	buf.WriteByte(close)
	return a.store(ctx, in.Key, buf.Bytes())
}

// SplitInput splits a stored JSON array into its elements.
type SplitInput struct {
	Key   string  `json:"key"` // prefix for elements too large to inline
	Input Payload `json:"input"`
	Max   int     `json:"max,omitempty"` // more elements fail with MapTooLarge (0: no bound)
}

// MapTooLargeMessage says why a map step of n elements fails when the run may
// map only left more.
func MapTooLargeMessage(n, left int) string {
	return fmt.Sprintf("the map's input has %d elements, more than the %d left of the %d that one chain run may map (nested maps included)",
		n, max(left, 0), ferry.MaxMapItems)
}

// SplitPayload returns the elements of a large array, each inline or by reference.
func (a *Chains) SplitPayload(ctx context.Context, in SplitInput) ([]Payload, error) {
	data, err := a.load(ctx, in.Input)
	if err != nil {
		return nil, err
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(data, &elems); err != nil {
		return nil, temporal.NewNonRetryableApplicationError("the input of a map step must be a JSON array", ferry.ErrTypeMapInput, nil)
	}
	if in.Max > 0 && len(elems) > in.Max {
		return nil, temporal.NewNonRetryableApplicationError(MapTooLargeMessage(len(elems), in.Max), ferry.ErrTypeMapTooLarge, nil)
	}
	out := make([]Payload, len(elems))
	for i, e := range elems {
		if out[i], err = a.store(ctx, in.Key+"/"+strconv.Itoa(i), e); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// PayloadList is a map step's input array stored in chunks, so that no
// activity result carries all of its elements: chunk i holds Counts[i]
// elements and is stored under Key/i.
type PayloadList struct {
	Key    string `json:"key"`
	Counts []int  `json:"counts"`
}

// Len is the number of elements.
func (l PayloadList) Len() int {
	n := 0
	for _, c := range l.Counts {
		n += c
	}
	return n
}

// ChunkKey is the object key of chunk i.
func (l PayloadList) ChunkKey(i int) string { return l.Key + "/" + strconv.Itoa(i) }

// MapChunk is the most elements in one chunk of a PayloadList.
const MapChunk = 500

// SplitList splits a stored JSON array into chunks of at most MapChunk
// elements and ListLimit bytes; an element larger than MapItemInline is
// stored on its own and referenced.
func (a *Chains) SplitList(ctx context.Context, in SplitInput) (PayloadList, error) {
	data, err := a.load(ctx, in.Input)
	if err != nil {
		return PayloadList{}, err
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(data, &elems); err != nil {
		return PayloadList{}, temporal.NewNonRetryableApplicationError("the input of a map step must be a JSON array", ferry.ErrTypeMapInput, nil)
	}
	if in.Max > 0 && len(elems) > in.Max {
		return PayloadList{}, temporal.NewNonRetryableApplicationError(MapTooLargeMessage(len(elems), in.Max), ferry.ErrTypeMapTooLarge, nil)
	}
	list := PayloadList{Key: in.Key}
	var chunk []Payload
	size := 0
	flush := func() error {
		b, err := json.Marshal(chunk)
		if err != nil {
			return err
		}
		if err := a.Objects.Put(ctx, list.ChunkKey(len(list.Counts)), b); err != nil {
			return err
		}
		list.Counts = append(list.Counts, len(chunk))
		chunk, size = nil, 0
		return nil
	}
	for i, e := range elems {
		p, err := a.storeUpTo(ctx, in.Key+"/item-"+strconv.Itoa(i), e, MapItemInline)
		if err != nil {
			return PayloadList{}, err
		}
		if len(chunk) == MapChunk || len(chunk) > 0 && size+p.Size()+32 > ListLimit {
			if err := flush(); err != nil {
				return PayloadList{}, err
			}
		}
		chunk = append(chunk, p)
		size += p.Size() + 32 // the JSON around it
	}
	if len(chunk) > 0 {
		if err := flush(); err != nil {
			return PayloadList{}, err
		}
	}
	return list, nil
}

// LoadChunk returns the elements of one chunk of a PayloadList.
func (a *Chains) LoadChunk(ctx context.Context, key string) ([]Payload, error) {
	data, err := a.Objects.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	var items []Payload
	if err := json.Unmarshal(data, &items); err != nil {
		return nil, fmt.Errorf("stored chunk %s: %w", key, err)
	}
	return items, nil
}

// Completed is a completed function step with a compensation, or (List set)
// Count such steps stored under List: the map elements of an earlier batch.
type Completed struct {
	Path     string  `json:"path"`
	Function string  `json:"function,omitempty"`
	Version  int     `json:"version,omitempty"`
	Input    Payload `json:"input"`
	Output   Payload `json:"output"`
	List     string  `json:"list,omitempty"`
	Count    int     `json:"count,omitempty"`
}

// StoreCompletedInput stores completed steps (StoreCompleted).
type StoreCompletedInput struct {
	Key   string      `json:"key"`
	Items []Completed `json:"items"`
}

// StoreCompleted writes the list and returns its key.
func (a *Chains) StoreCompleted(ctx context.Context, in StoreCompletedInput) (string, error) {
	data, err := json.Marshal(in.Items)
	if err != nil {
		return "", err
	}
	return in.Key, a.Objects.Put(ctx, in.Key, data)
}

// LoadCompletedInput asks for the stored completed steps just before End.
type LoadCompletedInput struct {
	Key string `json:"key"`
	End int    `json:"end"`
}

// CompletedSlice is Items = list[Start:End].
type CompletedSlice struct {
	Start int         `json:"start"`
	Items []Completed `json:"items"`
}

// LoadCompleted returns the stored completed steps before End, as many as fit
// in ListLimit bytes (at least one).
func (a *Chains) LoadCompleted(ctx context.Context, in LoadCompletedInput) (CompletedSlice, error) {
	data, err := a.Objects.Get(ctx, in.Key)
	if err != nil {
		return CompletedSlice{}, err
	}
	var list []Completed
	if err := json.Unmarshal(data, &list); err != nil {
		return CompletedSlice{}, fmt.Errorf("stored list %s: %w", in.Key, err)
	}
	end := min(in.End, len(list))
	start, size := end, 0
	for start > 0 {
		n := list[start-1].Input.Size() + list[start-1].Output.Size() + len(list[start-1].Path) + 128
		if start < end && size+n > ListLimit {
			break
		}
		size += n
		start--
	}
	return CompletedSlice{Start: start, Items: list[start:end]}, nil
}

// StorePayloadInput stores one value (StorePayload).
type StorePayloadInput struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// StorePayload puts a value into the object store and returns its reference:
// for a step input that must not enter history.
func (a *Chains) StorePayload(ctx context.Context, in StorePayloadInput) (Payload, error) {
	if err := a.Objects.Put(ctx, in.Key, in.Value); err != nil {
		return Payload{}, err
	}
	return Payload{Ref: in.Key}, nil
}

// StoreListInput stores a list of payloads (map results carried across
// continue-as-new by reference).
type StoreListInput struct {
	Key   string    `json:"key"`
	Items []Payload `json:"items"`
}

// StorePayloadList writes the list and returns its key.
func (a *Chains) StorePayloadList(ctx context.Context, in StoreListInput) (string, error) {
	data, err := json.Marshal(in.Items)
	if err != nil {
		return "", err
	}
	return in.Key, a.Objects.Put(ctx, in.Key, data)
}

// FinishChainInput records the outcome of a chain run.
type FinishChainInput struct {
	ChainRunID uuid.UUID              `json:"chain_run_id"`
	Status     ferry.InvocationStatus `json:"status"`
	Output     Payload                `json:"output"`
	Error      *ferry.ChainError      `json:"error,omitempty"`
	Steps      []ferry.StepStatus     `json:"steps"`
}

// FinishChain records the chain run's outcome (the output is stored in full)
// and then deletes the payloads the run stored: nothing reads them once the
// record is final. A retry after that delete (a local activity re-run on
// replay) finds the output gone and the record final: it only deletes.
func (a *Chains) FinishChain(ctx context.Context, in FinishChainInput) error {
	var out json.RawMessage
	if in.Status == ferry.StatusCompleted {
		var err error
		if out, err = a.load(ctx, in.Output); err != nil {
			// Read the record only now: the common path need not.
			if run, gerr := a.Store.GetChainRun(ctx, in.ChainRunID); gerr != nil || !run.Status.Final() {
				return err
			}
			return a.Objects.DeletePrefix(ctx, PayloadPrefix(in.ChainRunID))
		}
		if len(out) == 0 {
			out = json.RawMessage("null")
		}
	}
	_, _, err := a.Store.FinishChainRun(ctx, in.ChainRunID, ferry.ChainOutcome{Status: in.Status, Output: out,
		Error: in.Error, Steps: in.Steps, FinishedAt: time.Now()})
	if err != nil {
		return err
	}
	return a.Objects.DeletePrefix(ctx, PayloadPrefix(in.ChainRunID))
}
