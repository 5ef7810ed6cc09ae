// Package activities holds Ferry's Temporal activities. They do the I/O that
// workflows must not: read versions, fetch code, run containers, record results.
package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/runtimes"
	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// Bounds of what Ferry puts into Temporal's history, far below its blob limit
// (2 MiB per payload; 512 KiB warns) and history size limit (50 MiB); larger
// values travel by reference. docs/ARCHITECTURE.md lists every path.
const (
	// InlineLimit is the largest payload that travels through Temporal's history;
	// bigger events and results go through the object store or PostgreSQL by reference.
	InlineLimit = 256 << 10
	// MapItemInline is the largest element of a map step's input, and output of
	// a step inside a map, that travels inline: a map has up to 500 elements
	// per batch (and up to 100 in flight), each in history.
	MapItemInline = 16 << 10
	// ListLimit bounds the bytes of a list of payloads an activity returns to a
	// workflow (a chunk of a map's input).
	ListLimit = 256 << 10
	// MaxErrorText bounds an error's message and stack as history carries them;
	// the record keeps them whole.
	MaxErrorText = 8 << 10
)

// historyError is e as history may carry it: message and stack bounded.
func historyError(e *ferry.FunctionError) *ferry.FunctionError {
	if e == nil || len(e.Message) <= MaxErrorText && len(e.Stack) <= MaxErrorText {
		return e
	}
	c := *e
	c.Message, c.Stack = truncate(c.Message), truncate(c.Stack)
	return &c
}

func truncate(s string) string {
	if len(s) <= MaxErrorText {
		return s
	}
	return strings.ToValidUTF8(s[:MaxErrorText], "") + "... (truncated)"
}

// Store is what the invocation activities need from PostgreSQL.
type Store interface {
	GetVersion(ctx context.Context, name string, version int) (ferry.Version, error)
	GetInvocation(ctx context.Context, id uuid.UUID) (ferry.Invocation, error)
	StartInvocation(ctx context.Context, id uuid.UUID, runID string, at time.Time, token uuid.UUID, ttl time.Duration) (ferry.InvocationStatus, error)
	RenewInvocation(ctx context.Context, id, token uuid.UUID, ttl time.Duration) error
	ReleaseInvocation(ctx context.Context, id, token uuid.UUID) error
	FinishInvocation(ctx context.Context, id uuid.UUID, o ferry.Outcome) (ferry.Invocation, bool, error)
}

// Objects is what the activities need from the object store.
type Objects interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, data []byte) error
	Exists(ctx context.Context, key string) (bool, error)
}

// Executor runs code in containers.
type Executor interface {
	Execute(ctx context.Context, s runtimes.Spec) (runtimes.Result, error)
	BuildGo(ctx context.Context, srcDir, handler, outDir string) error
}

// Observer is told about every finished invocation (Prometheus metrics).
type Observer interface {
	ObserveInvocation(inv ferry.Invocation)
}

// RunInput starts one invocation (workflows.InvokeInput is the same type).
type RunInput struct {
	InvocationID uuid.UUID `json:"invocation_id"`
	Function     string    `json:"function"`
	// FunctionID pins the function's identity (ferry.Function.ID): when the
	// function called Function is another one by the time this runs (deleted and
	// created again), the invocation fails as FunctionNotFound. Zero in inputs
	// recorded before identities: the version is then read by name.
	FunctionID uuid.UUID       `json:"function_id,omitempty"`
	Version    int             `json:"version"`
	Event      json.RawMessage `json:"event,omitempty"`
	// EventInRecord says that the event was too large for Temporal's history and
	// is read from the invocation's record; Event is empty then. EventKey (older
	// inputs only) named such an event in the object store.
	EventInRecord bool      `json:"event_in_record,omitempty"`
	EventKey      string    `json:"event_key,omitempty"`
	AcceptedAt    time.Time `json:"accepted_at"`
	// TimeoutSeconds and Retries are copied from the version so that the
	// workflow can choose its activity options without a lookup.
	TimeoutSeconds int `json:"timeout_seconds"`
	Retries        int `json:"retries"`
	// Owner is the API key the invocation runs for (nil for chain steps,
	// schedules and older inputs): a durable invoke may only run functions it
	// may execute.
	Owner uuid.UUID `json:"owner,omitempty"`
}

// RunOutput is the final record as stored. Event is never included, and Result
// only when it is small enough for Temporal's history (ResultOmitted otherwise).
type RunOutput struct {
	Invocation    ferry.Invocation `json:"invocation"`
	ResultOmitted bool             `json:"result_omitted,omitempty"`
	// Suspension is set when a durable handler stopped at a wait or a
	// callback: the record is waiting and the workflow resumes it later.
	Suspension *Suspension `json:"suspension,omitempty"`
	// ErrorTruncated says Error is cut to MaxErrorText; the record has it whole.
	ErrorTruncated bool `json:"error_truncated,omitempty"`
}

// FinishInput records a final status that the workflow, not the function,
// decided on: a cancellation, or infrastructure that never came back.
type FinishInput struct {
	InvocationID uuid.UUID              `json:"invocation_id"`
	Status       ferry.InvocationStatus `json:"status"`
	Error        *ferry.FunctionError   `json:"error,omitempty"`
}

// SecretResolver returns the values of named secrets; a missing one is ENOTFOUND.
type SecretResolver interface {
	Resolve(ctx context.Context, names []string) (map[string]string, error)
}

// Invocations runs function invocations. Its exported methods are activities.
type Invocations struct {
	Store    Store
	Objects  Objects
	Executor Executor
	Code     *CodeCache
	Observer Observer // optional
	// Logs, when set, stores output while the function runs, for followers.
	Logs   LogStore
	Logger *slog.Logger
	// Secrets resolves the values of the secrets a version reads, at run time
	// (*secrets.Vault); nil: a version that reads secrets fails.
	Secrets SecretResolver
	// Keys reads API keys and grants, for what a durable invoke may run; nil:
	// durable invokes are refused.
	Keys KeyStore
	// Durable records the operations of durable handlers; nil: their
	// operations fail with Runtime.DurableUnavailable.
	Durable DurableStore
	// CallbackBaseURL is the API's public base URL, for callback URLs.
	CallbackBaseURL string

	versions     sync.Map // versionKey → ferry.Version; versions are immutable
	versionCount atomic.Int64
}

// versionKey names a version by its function's identity, which a re-created
// function does not reuse: names and version numbers are reused.
type versionKey struct {
	function uuid.UUID
	version  int
}

// maxCachedVersions bounds the version cache; past it the cache starts over.
const maxCachedVersions = 10000

// version returns the version in pins, from the cache when seen before.
func (a *Invocations) version(ctx context.Context, in RunInput) (ferry.Version, error) {
	k := versionKey{in.FunctionID, in.Version}
	if in.FunctionID != uuid.Nil {
		if cached, ok := a.versions.Load(k); ok {
			return cached.(ferry.Version), nil
		}
	}
	ver, err := a.Store.GetVersion(ctx, in.Function, in.Version)
	if err != nil {
		return ferry.Version{}, err
	}
	if in.FunctionID != uuid.Nil && ver.FunctionID != in.FunctionID {
		return ferry.Version{}, ferry.Errorf(ferry.ENOTFOUND,
			"function %q was deleted after this invocation was accepted (a function created later under that name is another function)",
			in.Function)
	}
	if a.versionCount.Add(1) > maxCachedVersions {
		a.versions.Clear()
		a.versionCount.Store(1)
	}
	a.versions.Store(versionKey{ver.FunctionID, ver.Version}, ver)
	return ver, nil
}

// Run executes one invocation and records its outcome. It returns an error only
// when Temporal should try again: infrastructure trouble, or a failed function
// that still has retries left.
func (a *Invocations) Run(ctx context.Context, in RunInput) (RunOutput, error) {
	info := activity.GetInfo(ctx)
	log := a.Logger.With("invocation", in.InvocationID, "function", in.Function, "version", in.Version, "attempt", info.Attempt)

	v, err := a.version(ctx, in)
	if errors.Is(err, context.Canceled) {
		return RunOutput{}, err
	}
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		// The function was deleted between accept and run: nothing to retry.
		return a.finish(ctx, in.InvocationID, ferry.Outcome{Status: ferry.StatusFailed,
			Error: &ferry.FunctionError{Type: ferry.ErrTypeFunctionNotFound, Message: ferry.ErrorMessage(err)}})
	}
	if err != nil {
		return RunOutput{}, err
	}
	// The operations of a durable handler's earlier runs, read while the
	// code is prepared (an invocation that never checkpoints reads none).
	var durable *durableRun
	loaded := make(chan error, 1)
	var ops []runtimes.Operation
	if a.Durable != nil {
		durable = &durableRun{a: a, store: a.Durable, id: in.InvocationID, function: v.FunctionID, owner: in.Owner}
		go func() {
			var err error
			ops, err = durable.load(ctx)
			loaded <- err
		}()
	} else {
		loaded <- nil
	}
	event, err := a.event(ctx, in)
	if err != nil {
		return RunOutput{}, err
	}
	codeDir, err := a.Code.Dir(ctx, v)
	if err != nil {
		if ferry.ErrorCode(err) == ferry.EUNPROCESSABLE { // e.g. a Go bundle that does not compile
			return a.finish(ctx, in.InvocationID, ferry.Outcome{Status: ferry.StatusFailed,
				Error: &ferry.FunctionError{Type: ferry.ErrTypeBuild, Message: ferry.ErrorMessage(err)}})
		}
		return RunOutput{}, err
	}
	env, err := a.env(ctx, v)
	if err != nil {
		switch ferry.ErrorCode(err) {
		case ferry.ENOTFOUND, ferry.EUNPROCESSABLE:
			// Deleted, or sealed with a key this worker lacks: no retry helps.
			// The message names the secret, never a value.
			return a.finish(ctx, in.InvocationID, ferry.Outcome{Status: ferry.StatusFailed,
				Error: &ferry.FunctionError{Type: ferry.ErrTypeSecret, Message: ferry.ErrorMessage(err)}})
		}
		return RunOutput{}, err
	}
	// The function starts only after its record is marked running (one more
	// attempt; the code is ready, so attempts counts starts): a record that
	// cannot be marked is retried by Temporal without running anything, and a
	// record already final (a replay re-running a local activity whose result
	// never reached history, a retry after a lost reply) is returned as it is.
	// The record's lease keeps a second attempt of this invocation from
	// running the function at the same time (a workflow task retried while
	// this local activity still runs): it waits, retried by Temporal, until
	// this attempt released the lease or its worker died.
	lease := uuid.New()
	status, err := a.Store.StartInvocation(ctx, in.InvocationID, info.WorkflowExecution.RunID, time.Now(), lease, leaseTTL)
	if err != nil {
		return RunOutput{}, err
	}
	if !status.Final() {
		defer a.release(in.InvocationID, lease)
		stop := a.renew(ctx, log, in.InvocationID, lease)
		defer stop()
	}
	if status.Final() {
		log.Info("invocation already final, not running it again", "status", status)
		inv, err := a.Store.GetInvocation(ctx, in.InvocationID)
		if err != nil {
			return RunOutput{}, err
		}
		return historyOutput(inv), nil
	}

	if !info.IsLocalActivity {
		stop := heartbeat(ctx)
		defer stop()
	}
	limits := v.Limits.WithDefaults()
	if in.TimeoutSeconds > 0 {
		// A chain step may override the version's timeout.
		limits.TimeoutSeconds = in.TimeoutSeconds
	}
	if err := <-loaded; err != nil {
		return RunOutput{}, err
	}
	spec := runtimes.Spec{
		InvocationID: in.InvocationID.String(),
		FunctionID:   v.FunctionID.String(),
		Function:     v.Function,
		Version:      v.Version,
		Runtime:      v.Runtime,
		Handler:      v.Handler,
		Checksum:     v.Checksum,
		CodeDir:      codeDir,
		Limits:       limits,
		Env:          env,
		Event:        event,
		Operations:   ops,
	}
	if durable != nil {
		spec.Checkpoint = durable.checkpoint
	}
	var live *liveLogs
	if a.Logs != nil {
		live = newLiveLogs(ctx, a.Logs, in.InvocationID, log)
		spec.OnLogs = live.add
	}
	began := time.Now()
	res, err := a.Executor.Execute(ctx, spec)
	if live != nil {
		live.stop()
	}
	if err != nil {
		log.Warn("execute failed", "err", err)
		if ferry.ErrorCode(err) == ferry.EINVALID {
			// Limits out of bounds or settings the engine refuses: no retry
			// can succeed, so the invocation fails now, saying why.
			return a.finish(ctx, in.InvocationID, ferry.Outcome{Status: ferry.StatusFailed,
				Error: &ferry.FunctionError{Type: ferry.ErrTypeInvalidConfig, Message: ferry.ErrorMessage(err)}})
		}
		return RunOutput{}, err
	}
	if res.Suspended != "" && durable != nil {
		return a.suspend(ctx, durable, in.InvocationID, res)
	}
	out := outcome(res, limits)
	if out.Status != ferry.StatusCompleted && int(info.Attempt) <= in.Retries {
		log.Info("function failed, retrying", "status", out.Status)
		return RunOutput{}, temporal.NewApplicationError(
			fmt.Sprintf("function %s: %s", out.Status, errorText(historyError(out.Error))), ferry.ErrTypeFunctionFailed)
	}
	m := res.Metrics
	if !in.AcceptedAt.IsZero() {
		// Every wait: until this attempt began, then for a container slot.
		m.QueueMS = ms(began.Sub(in.AcceptedAt)) + res.Metrics.QueueMS
		m.TotalMS = ms(time.Since(in.AcceptedAt))
	}
	out.Metrics = &m
	// The function ran: its outcome is recorded by retrying the write, never
	// by running it again.
	return a.finishRetrying(ctx, log, in.InvocationID, out)
}

// finishRetrying records o, retrying a failed write with back-off (at most
// finishRetryMax apart) until it lands or ctx ends. A regular activity keeps
// heartbeating meanwhile; only a dead worker or an outage that outlasts the
// activity's timeout leaves the outcome unrecorded, and then Temporal runs
// the activity again.
func (a *Invocations) finishRetrying(ctx context.Context, log *slog.Logger, id uuid.UUID, o ferry.Outcome) (RunOutput, error) {
	wait := finishRetryMin
	for try := 1; ; try++ {
		out, err := a.finish(ctx, id, o)
		if err == nil || ctx.Err() != nil || ferry.ErrorCode(err) == ferry.ENOTFOUND || ferry.ErrorCode(err) == ferry.EINVALID {
			if err == nil && try > 1 {
				log.Info("recorded the outcome after retries", "tries", try)
			}
			return out, err
		}
		log.Warn("recording the outcome failed, retrying the write", "try", try, "err", err)
		select {
		case <-ctx.Done():
			return RunOutput{}, err
		case <-time.After(wait):
		}
		wait = min(2*wait, finishRetryMax)
	}
}

// leaseTTL is how long an attempt's lease on its record lasts unless renewed
// (every leaseTTL/3 while the function runs): after a worker died, the next
// attempt waits at most this long.
const leaseTTL = 15 * time.Second

// renew extends the lease on the record until stop is called.
func (a *Invocations) renew(ctx context.Context, log *slog.Logger, id, lease uuid.UUID) (stop func()) {
	return every(ctx, leaseTTL/3, func() {
		if err := a.Store.RenewInvocation(ctx, id, lease, leaseTTL); err != nil {
			log.Warn("renewing the lease on the invocation's record", "err", err)
		}
	})
}

// release gives up the lease, so that a retry need not wait for it to expire
// (a failed release only makes it wait).
func (a *Invocations) release(id, lease uuid.UUID) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.Store.ReleaseInvocation(ctx, id, lease)
}

// Back-off of finishRetrying.
const (
	finishRetryMin = 100 * time.Millisecond
	finishRetryMax = 2 * time.Second
)

// suspend records that a durable handler stopped at a wait or a callback.
func (a *Invocations) suspend(ctx context.Context, d *durableRun, id uuid.UUID, res runtimes.Result) (RunOutput, error) {
	s, err := d.suspension(res.Suspended)
	if err != nil {
		return a.finish(ctx, id, ferry.Outcome{Status: ferry.StatusFailed, Logs: res.Logs,
			Error: &ferry.FunctionError{Type: ferry.ErrTypeProtocol, Message: err.Error()}})
	}
	logs := res.Logs + fmt.Sprintf("[ferry: suspended at %s %q until %s]\n", s.Kind, s.Operation, s.Until.UTC().Format(time.RFC3339Nano))
	inv, err := d.store.SuspendInvocation(ctx, id, logs)
	if err != nil {
		return RunOutput{}, err
	}
	inv.Event, inv.Result = nil, nil
	return RunOutput{Invocation: inv, Suspension: s}, nil
}

// env is the version's environment with its secrets, resolved now: a changed
// value reaches the next invocation without a deploy. The executor keys warm
// containers by their environment, so one with an old value is not reused.
func (a *Invocations) env(ctx context.Context, v ferry.Version) (map[string]string, error) {
	if len(v.Secrets) == 0 {
		return v.Env, nil
	}
	if a.Secrets == nil {
		return nil, ferry.Errorf(ferry.EUNPROCESSABLE, "this worker has no FERRY_SECRETS_KEY: it cannot read the secrets %v", v.Secrets)
	}
	vals, err := a.Secrets.Resolve(ctx, v.Secrets)
	if err != nil {
		return nil, err
	}
	env := make(map[string]string, len(v.Env)+len(vals))
	for k, x := range v.Env {
		env[k] = x
	}
	for k, x := range vals {
		env[k] = x
	}
	return env, nil
}

// event returns the invocation's event: from the input, or from the record
// when it was too large for Temporal's history (the object store for inputs
// recorded before events were kept only in the record).
func (a *Invocations) event(ctx context.Context, in RunInput) (json.RawMessage, error) {
	switch {
	case in.EventInRecord:
		inv, err := a.Store.GetInvocation(ctx, in.InvocationID)
		return inv.Event, err
	case in.EventKey != "":
		return a.Objects.Get(ctx, in.EventKey)
	}
	return in.Event, nil
}

// Finish records a final status decided by the workflow.
func (a *Invocations) Finish(ctx context.Context, in FinishInput) (RunOutput, error) {
	return a.finish(ctx, in.InvocationID, ferry.Outcome{Status: in.Status, Error: in.Error})
}

func (a *Invocations) finish(ctx context.Context, id uuid.UUID, o ferry.Outcome) (RunOutput, error) {
	o.FinishedAt = time.Now()
	inv, updated, err := a.Store.FinishInvocation(ctx, id, o)
	if err != nil {
		return RunOutput{}, err
	}
	if updated && a.Observer != nil {
		a.Observer.ObserveInvocation(inv)
	}
	return historyOutput(inv), nil
}

// historyOutput is a final record as Temporal's history carries it: without
// the event, the result only when small, the error bounded.
func historyOutput(inv ferry.Invocation) RunOutput {
	inv.Event = nil
	out := RunOutput{Invocation: inv}
	if e := historyError(inv.Error); e != inv.Error {
		out.Invocation.Error, out.ErrorTruncated = e, true
	}
	if len(inv.Result) > InlineLimit {
		out.Invocation.Result, out.ResultOmitted = nil, true
	}
	return out
}

// outcome turns the executor's result into what is recorded.
func outcome(res runtimes.Result, l ferry.Limits) ferry.Outcome {
	o := ferry.Outcome{Result: res.Result, Error: res.Error, Logs: res.Logs}
	switch res.Status {
	case runtimes.StatusCompleted:
		o.Status = ferry.StatusCompleted
	case runtimes.StatusTimeout:
		o.Status = ferry.StatusTimeout
		if o.Error == nil {
			o.Error = &ferry.FunctionError{Type: ferry.ErrTypeTimeout, Message: fmt.Sprintf("function did not finish within %d s", l.TimeoutSeconds)}
		}
	case runtimes.StatusOOM:
		// An OOM kill is the function's failure, recorded as such with its own
		// type; the executor's message says when it happened (start-up or the
		// invocation).
		o.Status = ferry.StatusFailed
		if o.Error == nil {
			o.Error = &ferry.FunctionError{Type: ferry.ErrTypeOutOfMemory, Message: fmt.Sprintf("function exceeded its memory limit of %d MB", l.MemoryMB)}
		}
	default:
		o.Status = ferry.StatusFailed
		if o.Error == nil {
			o.Error = &ferry.FunctionError{Type: ferry.ErrTypeError, Message: "function failed"}
		}
	}
	return o
}

func errorText(e *ferry.FunctionError) string {
	if e == nil {
		return ""
	}
	return e.Type + ": " + e.Message
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// heartbeat tells Temporal the activity is alive until stop is called; a
// cancellation requested by the workflow reaches ctx through the heartbeat replies.
func heartbeat(ctx context.Context) (stop func()) {
	return every(ctx, time.Second, func() { activity.RecordHeartbeat(ctx) })
}

// every calls fn every d until stop is called or ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				fn()
			}
		}
	}()
	return func() { close(done) }
}
