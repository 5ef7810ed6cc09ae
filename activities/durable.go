package activities

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/runtimes"
	"github.com/google/uuid"
)

// Durable functions (docs/ARCHITECTURE.md, "Durable functions"): the Run
// activity replays an invocation's recorded operations to the runner and
// records each new one in PostgreSQL before the handler goes on.

// DurableStore is what durable invocations need from PostgreSQL (*postgres.DB).
type DurableStore interface {
	ListOperations(ctx context.Context, id uuid.UUID, now time.Time) ([]ferry.Operation, error)
	RecordOperation(ctx context.Context, id uuid.UUID, op ferry.NewOperation) (bool, error)
	SuspendInvocation(ctx context.Context, id uuid.UUID, logs string) (ferry.Invocation, error)
	CompleteOperation(ctx context.Context, id uuid.UUID, op ferry.NewOperation) error
}

// Suspension says that the handler stopped at a wait or a callback: the
// workflow resumes it at Until (a wait's end, a callback's timeout) or, for a
// callback, when the callback signal arrives.
type Suspension struct {
	Operation string              `json:"operation"`
	Kind      ferry.OperationKind `json:"kind"`
	Until     time.Time           `json:"until"`
	// Invoke is the function an invoke operation runs (kind invoke).
	Invoke *InvokeRequest `json:"invoke,omitempty"`
}

// InvokeRequest is what an invoke operation runs: a version pinned when the
// handler reached it. It is the started operation's stored result until the
// invoked function's own result replaces it.
type InvokeRequest struct {
	Function       string  `json:"function"`
	Version        int     `json:"version"`
	TimeoutSeconds int     `json:"timeout_seconds"`
	Retries        int     `json:"retries"`
	Event          Payload `json:"event"`
}

// SignalCallback is the signal that tells a waiting invocation that one of its
// callbacks was completed; it carries the callback's name (the body is in the record).
const SignalCallback = "callback"

// CallbackTokenBytes is the randomness of a callback token (256 bits).
const CallbackTokenBytes = 32

// defaultCallbackTimeout applies when a handler gives none.
const defaultCallbackTimeout = 24 * time.Hour

// CallbackTokenHash is how a token is stored: only its hash, so that the
// database alone cannot complete a callback.
func CallbackTokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// durableRun holds the operations of one run of a durable handler.
type durableRun struct {
	a        *Invocations
	store    DurableStore
	id       uuid.UUID
	function uuid.UUID
	owner    uuid.UUID
	mu       sync.Mutex
	ops      map[string]ferry.Operation
}

// operationsKey is where a step result over InlineLimit lives: under its
// function's prefix, so that deleting the function deletes it.
func operationsKey(function, id uuid.UUID, name string) string {
	h := sha256.Sum256([]byte(name))
	return fmt.Sprintf("functions/%s/operations/%s/%x", function, id, h[:8])
}

// loadOperations reads the recorded operations and resolves those stored by
// reference, for the invoke frame.
func (d *durableRun) load(ctx context.Context) ([]runtimes.Operation, error) {
	stored, err := d.store.ListOperations(ctx, d.id, time.Now())
	if err != nil {
		return nil, err
	}
	d.ops = make(map[string]ferry.Operation, len(stored))
	out := make([]runtimes.Operation, 0, len(stored))
	for _, op := range stored {
		d.ops[op.Name] = op
		result := op.Result
		if op.ResultRef != "" {
			if result, err = d.a.Objects.Get(ctx, op.ResultRef); err != nil {
				return nil, err
			}
		}
		out = append(out, runtimes.Operation{Name: op.Name, Kind: string(op.Kind), Status: string(op.Status),
			Result: result, Error: op.Error})
	}
	return out, nil
}

func refuse(typ, format string, args ...any) runtimes.CheckpointAck {
	return runtimes.CheckpointAck{Error: &ferry.FunctionError{Type: typ, Message: fmt.Sprintf(format, args...)}}
}

// checkpoint records one operation the runner reached (runtimes.Spec.Checkpoint).
func (d *durableRun) checkpoint(ctx context.Context, c runtimes.Checkpoint) runtimes.CheckpointAck {
	if c.Name == "" || len(c.Name) > ferry.MaxOperationName {
		return refuse("Durable.InvalidName", "an operation needs a name of 1 to %d bytes", ferry.MaxOperationName)
	}
	op := ferry.NewOperation{Name: c.Name, Kind: ferry.OperationKind(c.Kind), Attempts: c.Attempts, DurationMS: c.DurationMS}
	var ack runtimes.CheckpointAck
	now := time.Now()
	switch op.Kind {
	case ferry.OperationStep:
		switch ferry.OperationStatus(c.Status) {
		case ferry.OperationSucceeded:
			if len(c.Result) == 0 {
				c.Result = json.RawMessage("null")
			}
			if !json.Valid(c.Result) {
				return refuse("Step.MarshalError", "the result of step %q is not JSON", c.Name)
			}
			op.Status, op.Result, op.ResultSize = ferry.OperationSucceeded, c.Result, len(c.Result)
			if len(c.Result) > InlineLimit {
				op.ResultRef, op.Result = operationsKey(d.function, d.id, c.Name), nil
				if err := d.a.Objects.Put(ctx, op.ResultRef, c.Result); err != nil {
					return refuse("Step.CheckpointFailed", "storing the result of step %q: %v", c.Name, err)
				}
			}
		case ferry.OperationFailed:
			op.Status, op.Error = ferry.OperationFailed, historyError(c.Error)
			if op.Error == nil {
				op.Error = &ferry.FunctionError{Type: ferry.ErrTypeError, Message: "step failed"}
			}
		default:
			return refuse("Durable.InvalidCheckpoint", "a step checkpoint is succeeded or failed, not %q", c.Status)
		}
	case ferry.OperationWait:
		wait := time.Duration(c.WaitSeconds * float64(time.Second))
		if wait <= 0 || wait > ferry.MaxWait {
			return refuse("Wait.InvalidDuration", "a wait lasts more than 0 s and at most %d days, not %g s",
				int(ferry.MaxWait.Hours()/24), c.WaitSeconds)
		}
		until := now.Add(wait)
		op.Status, op.WaitUntil = ferry.OperationStarted, &until
	case ferry.OperationCallback:
		timeout := time.Duration(c.TimeoutSeconds * float64(time.Second))
		if timeout == 0 {
			timeout = defaultCallbackTimeout
		}
		if timeout < 0 || timeout > ferry.MaxWait {
			return refuse("Callback.InvalidTimeout", "a callback's timeout is more than 0 s and at most %d days, not %g s",
				int(ferry.MaxWait.Hours()/24), c.TimeoutSeconds)
		}
		raw := make([]byte, CallbackTokenBytes)
		if _, err := rand.Read(raw); err != nil {
			return refuse("Callback.CheckpointFailed", "making a token: %v", err)
		}
		token := base64.RawURLEncoding.EncodeToString(raw)
		until := now.Add(timeout)
		op.Status, op.WaitUntil, op.TokenHash = ferry.OperationStarted, &until, CallbackTokenHash(token)
		ack.CallbackID = token
		ack.CallbackURL = d.a.CallbackBaseURL + "/v1/callbacks/" + token
	case ferry.OperationInvoke:
		req, ack := d.invokeRequest(ctx, c)
		if ack != nil {
			return *ack
		}
		op.Status, op.Result = ferry.OperationStarted, req
	default:
		return refuse("Durable.InvalidCheckpoint", "unknown operation kind %q", c.Kind)
	}
	inserted, err := d.store.RecordOperation(ctx, d.id, op)
	switch {
	case ferry.ErrorCode(err) == ferry.ETOOMANY:
		return refuse("Durable.TooManyOperations", "%s", ferry.ErrorMessage(err))
	case err != nil:
		return refuse("Durable.CheckpointFailed", "recording %s %q: %v", c.Kind, c.Name, err)
	}
	if !inserted {
		// An earlier attempt of this invocation recorded it first (two
		// attempts overlapping after a lost worker): the stored one wins.
		return d.replayStored(ctx, c.Name)
	}
	d.mu.Lock()
	d.ops[c.Name] = ferry.Operation{Name: op.Name, Kind: op.Kind, Status: op.Status, WaitUntil: op.WaitUntil, Result: op.Result}
	d.mu.Unlock()
	ack.OK = true
	return ack
}

func (d *durableRun) replayStored(ctx context.Context, name string) runtimes.CheckpointAck {
	ops, err := d.load(ctx)
	if err != nil {
		return refuse("Durable.CheckpointFailed", "reading operation %q: %v", name, err)
	}
	for _, op := range ops {
		if op.Name != name {
			continue
		}
		if op.Status == string(ferry.OperationFailed) {
			return runtimes.CheckpointAck{Error: op.Error}
		}
		return runtimes.CheckpointAck{OK: true, Result: op.Result}
	}
	return refuse("Durable.CheckpointFailed", "operation %q vanished", name)
}

// invokeRequest pins the version an invoke operation runs and stores an
// event over the inline limit in the object store.
func (d *durableRun) invokeRequest(ctx context.Context, c runtimes.Checkpoint) (json.RawMessage, *runtimes.CheckpointAck) {
	fail := func(typ, format string, args ...any) (json.RawMessage, *runtimes.CheckpointAck) {
		ack := refuse(typ, format, args...)
		return nil, &ack
	}
	if c.Function == "" {
		return fail("Invoke.InvalidFunction", "invoke %q names no function", c.Name)
	}
	if len(c.Event) == 0 {
		c.Event = json.RawMessage("null")
	}
	if !json.Valid(c.Event) {
		return fail("Invoke.InvalidEvent", "the event of invoke %q is not JSON", c.Name)
	}
	if ack := d.mayExecute(ctx, c.Function); ack != nil {
		return nil, ack
	}
	v, err := d.a.Store.GetVersion(ctx, c.Function, 0)
	switch {
	case ferry.ErrorCode(err) == ferry.ENOTFOUND:
		return fail(ferry.ErrTypeFunctionNotFound, "invoke %q: %s", c.Name, ferry.ErrorMessage(err))
	case err != nil:
		return fail("Durable.CheckpointFailed", "invoke %q: reading function %q: %v", c.Name, c.Function, err)
	}
	l := v.Limits.WithDefaults()
	req := InvokeRequest{Function: v.Function, Version: v.Version, TimeoutSeconds: l.TimeoutSeconds, Retries: l.Retries,
		Event: Payload{Inline: c.Event}}
	if len(c.Event) > InlineLimit {
		req.Event = Payload{Ref: operationsKey(d.function, d.id, c.Name+"\x00event")}
		if err := d.a.Objects.Put(ctx, req.Event.Ref, c.Event); err != nil {
			return fail("Durable.CheckpointFailed", "storing the event of invoke %q: %v", c.Name, err)
		}
	}
	raw, err := json.Marshal(req)
	if err != nil {
		return fail("Durable.CheckpointFailed", "invoke %q: %v", c.Name, err)
	}
	return raw, nil
}

// KeyStore reads API keys and their grants (*postgres.DB).
type KeyStore interface {
	KeyByID(ctx context.Context, id uuid.UUID) (ferry.APIKey, error)
	Permissions(ctx context.Context, keyID uuid.UUID, function string) ([]ferry.Permission, error)
}

// mayExecute refuses an invoke unless the invocation's owner key, still
// valid, may execute function, as the API would for the key itself.
func (d *durableRun) mayExecute(ctx context.Context, function string) *runtimes.CheckpointAck {
	deny := func(format string, args ...any) *runtimes.CheckpointAck {
		ack := refuse("Invoke.Forbidden", format, args...)
		return &ack
	}
	if d.owner == uuid.Nil || d.a.Keys == nil {
		return deny("invoke of %q: this invocation runs for no API key (a chain step, a schedule's firing, or started before invokes existed), so it may invoke no function", function)
	}
	k, err := d.a.Keys.KeyByID(ctx, d.owner)
	switch {
	case ferry.ErrorCode(err) == ferry.ENOTFOUND:
		return deny("invoke of %q: the API key %s this invocation runs for no longer exists", function, d.owner)
	case err != nil:
		ack := refuse("Durable.CheckpointFailed", "invoke of %q: reading the API key: %v", function, err)
		return &ack
	case k.RevokedAt != nil:
		return deny("invoke of %q: the API key %s (%s) this invocation runs for was revoked", function, k.Prefix, k.ID)
	}
	ok, err := k.Role.Allows(ferry.PermExecute, func() ([]ferry.Permission, error) {
		return d.a.Keys.Permissions(ctx, k.ID, function)
	})
	if err != nil {
		ack := refuse("Durable.CheckpointFailed", "invoke of %q: reading grants: %v", function, err)
		return &ack
	}
	if !ok {
		return deny("invoke of %q: the API key %s (%s) this invocation runs for has no execute permission on it", function, k.Prefix, k.ID)
	}
	return nil
}

// suspension is the wait, callback or invoke the handler stopped at.
func (d *durableRun) suspension(name string) (*Suspension, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	op, ok := d.ops[name]
	if ok && op.Kind == ferry.OperationInvoke && op.Status == ferry.OperationStarted {
		var req InvokeRequest
		if err := json.Unmarshal(op.Result, &req); err != nil {
			return nil, fmt.Errorf("invoke %q: reading its request: %w", name, err)
		}
		return &Suspension{Operation: name, Kind: op.Kind, Invoke: &req}, nil
	}
	if !ok || op.Status != ferry.OperationStarted || op.WaitUntil == nil {
		return nil, fmt.Errorf("the runner suspended at %q, which is no started wait or callback", name)
	}
	return &Suspension{Operation: name, Kind: op.Kind, Until: *op.WaitUntil}, nil
}

// CompleteInvokeInput ends an invoke operation with the invoked function's outcome.
type CompleteInvokeInput struct {
	InvocationID uuid.UUID  `json:"invocation_id"`
	FunctionID   uuid.UUID  `json:"function_id"`
	Operation    string     `json:"operation"`
	Outcome      StepOutput `json:"outcome"`
}

// CompleteInvoke records an invoke operation's outcome: the invoked
// function's result (read from its record when history carries only a
// reference), or its error. Idempotent.
func (a *Invocations) CompleteInvoke(ctx context.Context, in CompleteInvokeInput) error {
	if a.Durable == nil {
		return fmt.Errorf("durable operations are not available on this worker")
	}
	op := ferry.NewOperation{Name: in.Operation, Kind: ferry.OperationInvoke}
	o := in.Outcome
	if o.Status != ferry.StatusCompleted {
		op.Status, op.Error = ferry.OperationFailed, o.Error
		if op.Error == nil {
			op.Error = &ferry.FunctionError{Type: ferry.ErrTypeError, Message: "the invoked function ended " + string(o.Status)}
		}
		return a.Durable.CompleteOperation(ctx, in.InvocationID, op)
	}
	result := o.Output.Inline
	if id, ok := strings.CutPrefix(o.Output.Ref, resultRefPrefix); ok {
		invID, err := uuid.Parse(id)
		if err != nil {
			return err
		}
		inv, err := a.Store.GetInvocation(ctx, invID)
		if err != nil {
			return err
		}
		result = inv.Result
	}
	if len(result) == 0 {
		result = json.RawMessage("null")
	}
	op.Status, op.Result, op.ResultSize = ferry.OperationSucceeded, result, len(result)
	if len(result) > InlineLimit {
		op.ResultRef, op.Result = operationsKey(in.FunctionID, in.InvocationID, in.Operation), nil
		if err := a.Objects.Put(ctx, op.ResultRef, result); err != nil {
			return err
		}
	}
	return a.Durable.CompleteOperation(ctx, in.InvocationID, op)
}
