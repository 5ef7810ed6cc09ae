package workflows

import (
	"time"

	"github.com/ferry-faas/ferry"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// The Temporal policy of every Ferry workflow: retries, the choice between a
// local and a regular activity, and the time budgets. Replay does not compare
// activity options, but it does compare the kind of activity: a change to
// functionActivity's choice goes behind workflow.GetVersion.

// Start is one start of a workflow by a client: its options, the workflow
// function itself (a typed reference, never its name) and its input. The
// builders (InvokeStart, ChainStart) sit beside their workflows.
type Start struct {
	Options  client.StartWorkflowOptions
	Workflow any
	Input    any
}

// LocalActivityMaxSeconds is the longest function timeout that runs as a local
// activity. Local activities save two Temporal round trips per invocation (see
// docs/ARCHITECTURE.md); longer functions run as regular activities that
// heartbeat, so a cancellation or a dead worker is noticed within seconds.
const LocalActivityMaxSeconds = 10

// prepareMargin covers what happens before the handler runs: fetching code,
// building Go, starting a container.
const prepareMargin = 5 * time.Minute

// finishMargin is left of the execution timeout to record a failure.
const finishMargin = 5 * time.Minute

// executionMargin is an invocation's room beyond its attempts' timeouts: cold
// starts, Go builds, infrastructure retries and finishMargin.
const executionMargin = 15 * time.Minute

// heartbeatTimeout is how soon a regular function activity whose worker died
// (or whose cancellation was missed) is noticed.
const heartbeatTimeout = 10 * time.Second

// infraRetry retries infrastructure failures (a dead worker, an unreachable
// store). Function failures are not retried by it: activities decide those and
// return non-retryable errors. The cap bounds how long an invocation trails an
// outage once it is over (it was 30 s: sync invokes were held up to 30 s after
// S3 came back); a retry runs nothing the record does not allow (a final
// record is never run again), so a short cap costs only a few cheap attempts.
var infraRetry = &temporal.RetryPolicy{
	InitialInterval:    200 * time.Millisecond,
	BackoffCoefficient: 2,
	MaximumInterval:    5 * time.Second,
}

// InvokeExecutionTimeout bounds a whole invocation: the budget of one run of
// its handler (runBudget) plus ferry.MaxWait, the longest a durable handler
// may spend suspended. Every start of InvokeFunction uses it, over the API or
// from a schedule. Each run's activity is bounded by runBudget on its own, so
// an invocation that never waits still ends (and records why) within it.
func InvokeExecutionTimeout(l ferry.Limits) time.Duration {
	return runBudget(l) + ferry.MaxWait
}

// runBudget bounds one run of a handler: every attempt's timeout plus executionMargin.
func runBudget(l ferry.Limits) time.Duration {
	l = l.WithDefaults()
	return time.Duration(l.TimeoutSeconds*(l.Retries+1))*time.Second + executionMargin
}

// functionActivity runs a function activity (Run or RunStep) for a function of
// timeoutSeconds: a local activity when the timeout is at most
// LocalActivityMaxSeconds, else a regular activity that heartbeats. A positive
// scheduleToClose bounds all its attempts together.
func functionActivity(ctx workflow.Context, timeoutSeconds int, scheduleToClose time.Duration, fn, arg any) workflow.Future {
	startToClose := time.Duration(max(timeoutSeconds, 1))*time.Second + prepareMargin
	if isLocal(timeoutSeconds) {
		return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout:    startToClose,
			ScheduleToCloseTimeout: scheduleToClose,
			RetryPolicy:            infraRetry,
		}), fn, arg)
	}
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    startToClose,
		ScheduleToCloseTimeout: scheduleToClose,
		HeartbeatTimeout:       heartbeatTimeout,
		WaitForCancellation:    true,
		RetryPolicy:            infraRetry,
	}), fn, arg)
}

// isLocal tells whether a function of timeoutSeconds runs as a local activity.
func isLocal(timeoutSeconds int) bool { return timeoutSeconds <= LocalActivityMaxSeconds }

// bookkeeping sets the options of the short local activities that record and
// move state (Finish, BeginChain, FinishChain, payload storage, ...).
func bookkeeping(ctx workflow.Context) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         infraRetry,
	})
}
