package workflows

import (
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/activities"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ScheduledRunInput is the action of a Temporal Schedule.
type ScheduledRunInput = activities.ScheduledRunInput

// versionScheduledTimeout marks firings whose invocation gets the same
// execution timeout as one started over the API (InvokeExecutionTimeout).
const versionScheduledTimeout = "scheduled-invoke-timeout"

// ScheduledRun is what a schedule starts on each firing: it records an
// ordinary invocation or chain run and runs it as a child workflow whose id is
// the record's id, so it looks exactly like one started over the API. It waits
// for the child, so the schedule's overlap policy applies to the whole run.
func ScheduledRun(ctx workflow.Context, in ScheduledRunInput) error {
	var rec activities.ScheduledRunRecord
	err := workflow.ExecuteLocalActivity(bookkeeping(ctx), chainActs.CreateScheduledRun, in).Get(ctx, &rec)
	if err != nil {
		return err
	}
	if rec.Final {
		return nil
	}
	opts := workflow.ChildWorkflowOptions{
		WorkflowID:            rec.ID.String(),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
	}
	var child workflow.ChildWorkflowFuture
	if rec.Invoke != nil {
		limits := ferry.Limits{TimeoutSeconds: rec.Invoke.TimeoutSeconds, Retries: rec.Invoke.Retries}
		opts.WorkflowExecutionTimeout = InvokeExecutionTimeout(limits)
		if workflow.GetVersion(ctx, versionScheduledTimeout, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			// Firings recorded before: their own formula, which floored the timeout at 30 s.
			opts.WorkflowExecutionTimeout = time.Duration(max(rec.Invoke.TimeoutSeconds, 30)*(rec.Invoke.Retries+1))*time.Second + 15*time.Minute
		}
		opts.TypedSearchAttributes = temporal.NewSearchAttributes(AttrFunction.ValueSet(rec.Invoke.Function))
		child = workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), InvokeFunction, *rec.Invoke)
	} else {
		child = workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), RunChain, ChainInput{
			ChainRunID: rec.ID, Chain: rec.Chain, Version: rec.ChainVersion, Steps: rec.Steps,
			Input: Payload{Inline: in.Payload}})
	}
	// The run's own record tells its outcome; the firing itself succeeded.
	if err := child.Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Info("scheduled run ended in error", "id", rec.ID, "err", err)
	}
	return nil
}
