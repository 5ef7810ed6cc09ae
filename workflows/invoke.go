// Package workflows holds Ferry's Temporal workflows. Everything here must stay
// deterministic: I/O belongs in activities, changes go behind workflow.GetVersion.
package workflows

import (
	"errors"
	"fmt"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/activities"
	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// InvokeStart starts the workflow of a recorded invocation of version v, over
// the API or as a retry: workflow id = invocation id, eager start (the worker in
// the same process takes the first task without a round trip), and the search
// attributes the UI filters on. An event too large for Temporal's history stays
// in the invocation's record only. owner is the API key it runs for.
func InvokeStart(taskQueue string, inv ferry.Invocation, v ferry.Version, owner uuid.UUID) Start {
	in := InvokeInput{
		InvocationID:   inv.ID,
		Function:       v.Function,
		FunctionID:     v.FunctionID,
		Version:        v.Version,
		Event:          inv.Event,
		AcceptedAt:     inv.CreatedAt,
		TimeoutSeconds: v.Limits.TimeoutSeconds,
		Retries:        v.Limits.Retries,
		Owner:          owner,
	}
	if len(inv.Event) > activities.InlineLimit {
		in.Event, in.EventInRecord = nil, true
	}
	return Start{
		Options: client.StartWorkflowOptions{
			ID:                       inv.ID.String(),
			TaskQueue:                taskQueue,
			EnableEagerStart:         true,
			WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			WorkflowExecutionTimeout: InvokeExecutionTimeout(v.Limits),
			TypedSearchAttributes: temporal.NewSearchAttributes(
				AttrFunction.ValueSet(v.Function),
				AttrRuntime.ValueSet(string(v.Runtime)),
				AttrStatus.ValueSet(string(ferry.StatusPending)),
			),
			Memo: map[string]any{"function": v.Function, "function_id": v.FunctionID.String(), "version": v.Version},
		},
		Workflow: InvokeFunction,
		Input:    in,
	}
}

// InvokeFunction runs one invocation. The activity records the outcome in
// PostgreSQL; the workflow mirrors the status into the FerryStatus search
// attribute and fails when the function did, so that the Temporal UI tells
// failed invocations apart.
func InvokeFunction(ctx workflow.Context, in InvokeInput) (InvokeOutput, error) {
	var a *activities.Invocations
	// Retries of infrastructure failures end in time for the failure to be
	// recorded before the workflow's own execution timeout kills it.
	budget := runBudget(ferry.Limits{TimeoutSeconds: in.TimeoutSeconds, Retries: in.Retries}) - finishMargin
	var out InvokeOutput
	err := functionActivity(ctx, in.TimeoutSeconds, budget, a.Run, in).Get(ctx, &out)
	// A durable handler that stopped at a wait or a callback: sleep on a
	// durable timer (or until the callback's signal), then run it again; it
	// replays its recorded operations. Only new histories get here.
	for err == nil && out.Suspension != nil && !out.Invocation.Status.Final() && ctx.Err() == nil {
		if workflow.GetVersion(ctx, versionDurable, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			break // unreachable: no older history has a suspension
		}
		setStatus(ctx, ferry.StatusWaiting)
		if out.Suspension.Kind == ferry.OperationInvoke {
			if err = invokeOperation(ctx, in, out.Suspension); err != nil {
				break
			}
		} else {
			awaitResume(ctx, out.Suspension)
		}
		if ctx.Err() != nil {
			break
		}
		out = InvokeOutput{}
		err = functionActivity(ctx, in.TimeoutSeconds, budget, a.Run, in).Get(ctx, &out)
	}
	switch {
	case err != nil && temporal.IsCanceledError(err) || ctx.Err() != nil:
		out, err = finish(ctx, activities.FinishInput{InvocationID: in.InvocationID, Status: ferry.StatusCancelled,
			Error: &ferry.FunctionError{Type: ferry.ErrTypeCancelled, Message: "invocation cancelled"}})
		if err != nil {
			return out, err
		}
		setStatus(ctx, ferry.StatusCancelled)
		return out, temporal.NewCanceledError()
	case err != nil:
		// Retries ran out on infrastructure failures: record it so the
		// invocation does not stay "running" forever.
		var appErr *temporal.ApplicationError
		msg := err.Error()
		if errors.As(err, &appErr) {
			msg = appErr.Message()
		}
		typ := ferry.ErrTypeInfrastructure
		if appErr != nil && appErr.Type() == ferry.ErrTypeFunctionFailed {
			typ = ferry.ErrTypeFunctionFailed
		}
		out, ferr := finish(ctx, activities.FinishInput{InvocationID: in.InvocationID, Status: ferry.StatusFailed,
			Error: &ferry.FunctionError{Type: typ, Message: msg}})
		if ferr != nil {
			return out, ferr
		}
	}
	status := out.Invocation.Status
	setStatus(ctx, status)
	if status == ferry.StatusCompleted {
		return out, nil
	}
	typ := ferry.ErrTypeFunctionFailed
	if status == ferry.StatusTimeout {
		typ = ferry.ErrTypeFunctionTimeout
	}
	msg := string(status)
	if e := out.Invocation.Error; e != nil {
		msg = fmt.Sprintf("%s: %s", e.Type, e.Message)
	}
	return out, temporal.NewNonRetryableApplicationError(msg, typ, nil)
}

// versionDurable marks histories that may suspend (durable functions).
const versionDurable = "durable-suspend"

// versionDurableInvoke marks histories with durable invoke operations.
const versionDurableInvoke = "durable-invoke"

// invokeOperation runs the function of a durable invoke operation the way a
// chain runs a function step (an invocation of its own, with a record, logs
// and retries) and records its outcome as the operation's, for the handler to
// replay. A failure of the invoked function is the operation's failure, raised
// in the handler; only a failure to record it fails the invocation.
func invokeOperation(ctx workflow.Context, in InvokeInput, s *activities.Suspension) error {
	workflow.GetVersion(ctx, versionDurableInvoke, workflow.DefaultVersion, 1)
	r := s.Invoke
	var so activities.StepOutput
	err := functionActivity(ctx, r.TimeoutSeconds, 0, chainActs.RunStep, activities.StepInput{Parent: in.InvocationID, Owner: in.Owner,
		Path: s.Operation, Function: r.Function, Version: r.Version, Input: r.Event,
		TimeoutSeconds: r.TimeoutSeconds, Retries: r.Retries}).Get(ctx, &so)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		so = activities.StepOutput{Status: ferry.StatusFailed, Error: errorOf(err, ferry.ErrTypeInfrastructure)}
	}
	var a *activities.Invocations
	return workflow.ExecuteLocalActivity(bookkeeping(ctx), a.CompleteInvoke, activities.CompleteInvokeInput{
		InvocationID: in.InvocationID, FunctionID: in.FunctionID, Operation: s.Operation, Outcome: so}).Get(ctx, nil)
}

// awaitResume blocks until a suspension ends: its time (a wait's end or a
// callback's timeout) or, for a callback, a callback signal. Any callback
// signal resumes the handler, which finds in the records whether its callback
// was completed and else suspends again; a signal that came while the handler
// ran is still buffered, so a POST before the wait resumes it at once.
func awaitResume(ctx workflow.Context, s *activities.Suspension) {
	tctx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	sel := workflow.NewSelector(ctx)
	timer := workflow.NewTimer(tctx, max(s.Until.Sub(workflow.Now(ctx)), time.Millisecond))
	sel.AddFuture(timer, func(workflow.Future) {})
	if s.Kind == ferry.OperationCallback {
		ch := workflow.GetSignalChannel(ctx, activities.SignalCallback)
		sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
			var name string
			c.Receive(ctx, &name)
		})
	}
	sel.Select(ctx)
}

// finish records a status decided by the workflow. It runs on a disconnected
// context so that it also runs after a cancellation.
func finish(ctx workflow.Context, in activities.FinishInput) (InvokeOutput, error) {
	var a *activities.Invocations
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	dctx = bookkeeping(dctx)
	var out InvokeOutput
	err := workflow.ExecuteLocalActivity(dctx, a.Finish, in).Get(dctx, &out)
	return out, err
}

func setStatus(ctx workflow.Context, s ferry.InvocationStatus) {
	// Only fails for unregistered attributes; the invocation must not fail for it.
	if err := workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(string(s))); err != nil {
		workflow.GetLogger(ctx).Warn("upsert FerryStatus", "err", err)
	}
}
