package workflows

import (
	"time"

	"github.com/ferry-faas/ferry/activities"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ScheduledRunInput is the action of a Temporal Schedule.
type ScheduledRunInput = activities.ScheduledRunInput

// ScheduledRun is what a schedule starts on each firing: it records an
// ordinary invocation or chain run and runs it as a child workflow whose id is
// the record's id, so it looks exactly like one started over the API. It waits
// for the child, so the schedule's overlap policy applies to the whole run.
func ScheduledRun(ctx workflow.Context, in ScheduledRunInput) error {
	var rec activities.ScheduledRunRecord
	err := workflow.ExecuteLocalActivity(shortOpts(ctx), chainActs.CreateScheduledRun, in).Get(ctx, &rec)
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
		opts.WorkflowExecutionTimeout = time.Duration(max(rec.Invoke.TimeoutSeconds, 30)*(rec.Invoke.Retries+1))*time.Second + 15*time.Minute
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
