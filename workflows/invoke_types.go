package workflows

import (
	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/activities"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// Search attributes registered on the Temporal namespace (scripts/stack.sh does it
// for the local stack) so that every invocation is easy to find in the UI.
var (
	AttrFunction = temporal.NewSearchAttributeKeyKeyword("FerryFunction")
	AttrRuntime  = temporal.NewSearchAttributeKeyKeyword("FerryRuntime")
	AttrStatus   = temporal.NewSearchAttributeKeyKeyword("FerryStatus")
)

// InvokeInput starts one invocation. The version is pinned by the caller, which
// has already created the pending invocation record. It is the Run activity's input.
type InvokeInput = activities.RunInput

// InvokeOutput is the final invocation record as stored in PostgreSQL.
type InvokeOutput = activities.RunOutput

// InvokeStartOptions are the options every InvokeFunction start uses: workflow id
// = invocation id, eager start (the worker in the same process takes the first
// task without a round trip), and the search attributes the UI filters on.
func InvokeStartOptions(taskQueue string, inv ferry.Invocation, v ferry.Version) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
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
	}
}

// InvokeInputFor builds the workflow input for a pending invocation.
func InvokeInputFor(inv ferry.Invocation, v ferry.Version) InvokeInput {
	return InvokeInput{
		InvocationID:   inv.ID,
		Function:       v.Function,
		FunctionID:     v.FunctionID,
		Version:        v.Version,
		Event:          inv.Event,
		AcceptedAt:     inv.CreatedAt,
		TimeoutSeconds: v.Limits.TimeoutSeconds,
		Retries:        v.Limits.Retries,
	}
}
