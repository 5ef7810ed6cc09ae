package activities

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
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
}

// Suspension says that the handler stopped at a wait or a callback: the
// workflow resumes it at Until (a wait's end, a callback's timeout) or, for a
// callback, when the callback signal arrives.
type Suspension struct {
	Operation string              `json:"operation"`
	Kind      ferry.OperationKind `json:"kind"`
	Until     time.Time           `json:"until"`
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
	d.ops[c.Name] = ferry.Operation{Name: op.Name, Kind: op.Kind, Status: op.Status, WaitUntil: op.WaitUntil}
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

// suspension is the wait or callback the handler stopped at.
func (d *durableRun) suspension(name string) (*Suspension, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	op, ok := d.ops[name]
	if !ok || op.Status != ferry.OperationStarted || op.WaitUntil == nil {
		return nil, fmt.Errorf("the runner suspended at %q, which is no started wait or callback", name)
	}
	return &Suspension{Operation: name, Kind: op.Kind, Until: *op.WaitUntil}, nil
}
