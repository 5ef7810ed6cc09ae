package workflows

import "go.temporal.io/sdk/workflow"

// Registry is where workflows get registered: a worker or a replayer.
type Registry interface {
	RegisterWorkflow(w any)
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}

// Register registers every Ferry workflow with r; the worker and the replay
// test share it so that neither forgets one.
func Register(r Registry) {
	r.RegisterWorkflow(InvokeFunction)
	r.RegisterWorkflow(RunChain)
	r.RegisterWorkflow(ScheduledRun)
}
