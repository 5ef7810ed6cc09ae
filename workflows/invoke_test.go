package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/activities"
	"github.com/google/uuid"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// invocationActs names the invocation activities for mocks, by typed
// reference as the workflows call them (chainActs does for chains).
var invocationActs *activities.Invocations

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(InvokeFunction)
	env.RegisterActivity(&activities.Invocations{})
	return env
}

// expectFinish mocks the Finish activity once; the returned func tells
// what it was asked to record.
func expectFinish(env *testsuite.TestWorkflowEnvironment, id uuid.UUID) func() activities.FinishInput {
	var finished activities.FinishInput
	env.OnActivity(invocationActs.Finish, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FinishInput) (activities.RunOutput, error) {
			finished = in
			return record(id, in.Status), nil
		}).Once()
	return func() activities.FinishInput { return finished }
}

func record(id uuid.UUID, status ferry.InvocationStatus) activities.RunOutput {
	return activities.RunOutput{Invocation: ferry.Invocation{ID: id, Function: "f", Version: 1, Status: status}}
}

func TestInvokeCompletedUsesLocalActivityForShortFunctions(t *testing.T) {
	env := newEnv(t)
	id := uuid.New()
	env.OnActivity(invocationActs.Run, mock.Anything, mock.Anything).Return(record(id, ferry.StatusCompleted), nil).Once()
	env.ExecuteWorkflow(InvokeFunction, InvokeInput{InvocationID: id, Function: "f", Version: 1, TimeoutSeconds: 5})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out InvokeOutput
	if err := env.GetWorkflowResult(&out); err != nil || out.Invocation.Status != ferry.StatusCompleted {
		t.Fatalf("result %+v, %v", out, err)
	}
	env.AssertExpectations(t)
}

func TestInvokeLongFunctionRunsRegularActivity(t *testing.T) {
	env := newEnv(t)
	id := uuid.New()
	regular := false
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		regular = !info.IsLocalActivity
	})
	env.OnActivity(invocationActs.Run, mock.Anything, mock.Anything).Return(record(id, ferry.StatusCompleted), nil).Once()
	env.ExecuteWorkflow(InvokeFunction, InvokeInput{InvocationID: id, TimeoutSeconds: 60})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if !regular {
		t.Fatal("a 60 s function should run as a regular (heartbeating) activity")
	}
}

func TestInvokeFunctionFailureFailsWorkflowWithType(t *testing.T) {
	for status, typ := range map[ferry.InvocationStatus]string{
		ferry.StatusFailed:  ferry.ErrTypeFunctionFailed,
		ferry.StatusTimeout: ferry.ErrTypeFunctionTimeout,
	} {
		env := newEnv(t)
		id := uuid.New()
		env.OnActivity(invocationActs.Run, mock.Anything, mock.Anything).Return(record(id, status), nil).Once()
		env.ExecuteWorkflow(InvokeFunction, InvokeInput{InvocationID: id, TimeoutSeconds: 5})
		var appErr *temporal.ApplicationError
		if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != typ || !appErr.NonRetryable() {
			t.Fatalf("%s: want non-retryable %s, got %v", status, typ, err)
		}
	}
}

func TestInvokeInfrastructureFailureIsRecorded(t *testing.T) {
	env := newEnv(t)
	id := uuid.New()
	env.OnActivity(invocationActs.Run, mock.Anything, mock.Anything).
		Return(activities.RunOutput{}, temporal.NewNonRetryableApplicationError("docker down", "Unavailable", nil))
	recorded := expectFinish(env, id)
	env.ExecuteWorkflow(InvokeFunction, InvokeInput{InvocationID: id, TimeoutSeconds: 5})
	if env.GetWorkflowError() == nil {
		t.Fatal("want the workflow to fail")
	}
	finished := recorded()
	if finished.Status != ferry.StatusFailed || finished.Error == nil || finished.Error.Type != "InfrastructureError" {
		t.Fatalf("finish got %+v", finished)
	}
}

func TestInvokeCancelRecordsCancelled(t *testing.T) {
	env := newEnv(t)
	id := uuid.New()
	env.OnActivity(invocationActs.Run, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, _ activities.RunInput) (activities.RunOutput, error) {
			<-ctx.Done()
			return activities.RunOutput{}, ctx.Err()
		})
	recorded := expectFinish(env, id)
	env.RegisterDelayedCallback(env.CancelWorkflow, 0)
	env.ExecuteWorkflow(InvokeFunction, InvokeInput{InvocationID: id, TimeoutSeconds: 60})
	if err := env.GetWorkflowError(); !temporal.IsCanceledError(err) {
		t.Fatalf("want cancelled, got %v", err)
	}
	finished := recorded()
	if finished.Status != ferry.StatusCancelled {
		t.Fatalf("finish got %+v", finished)
	}
}

func TestInvokeRetriesInfrastructureThenRecordsFailure(t *testing.T) {
	env := newEnv(t)
	id := uuid.New()
	attempts := 0
	env.OnActivity(invocationActs.Run, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.RunInput) (activities.RunOutput, error) {
			attempts++
			return activities.RunOutput{}, errors.New("S3 unreachable") // retryable
		})
	recorded := expectFinish(env, id)
	env.ExecuteWorkflow(InvokeFunction, InvokeInput{InvocationID: id, TimeoutSeconds: 5})
	if env.GetWorkflowError() == nil {
		t.Fatal("want the workflow to fail once retries are exhausted")
	}
	if attempts < 2 {
		t.Errorf("infrastructure failure tried %d times, want retries", attempts)
	}
	finished := recorded()
	if finished.Status != ferry.StatusFailed || finished.Error == nil || finished.Error.Type != "InfrastructureError" {
		t.Fatalf("finish got %+v: the failure must be recorded before the execution timeout", finished)
	}
}

// A scheduled invocation gets the execution timeout of the same invocation
// started over the API (it used to floor the timeout at 30 s: 16m here).
func TestScheduledInvocationGetsInvokeExecutionTimeout(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(ScheduledRun)
	env.RegisterWorkflow(InvokeFunction)
	env.RegisterActivity(&activities.Chains{})
	id := uuid.New()
	in := InvokeInput{InvocationID: id, Function: "f", Version: 1, TimeoutSeconds: 5, Retries: 1}
	env.OnActivity(chainActs.CreateScheduledRun, mock.Anything, mock.Anything).Return(
		activities.ScheduledRunRecord{ID: id, Invoke: &in}, nil).Once()
	var got time.Duration
	env.OnWorkflow(InvokeFunction, mock.Anything, mock.Anything).Return(
		func(ctx workflow.Context, _ InvokeInput) (InvokeOutput, error) {
			got = workflow.GetInfo(ctx).WorkflowExecutionTimeout
			return record(id, ferry.StatusCompleted), nil
		}).Once()
	env.ExecuteWorkflow(ScheduledRun, ScheduledRunInput{})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	want := InvokeExecutionTimeout(ferry.Limits{TimeoutSeconds: 5, Retries: 1})
	if want != 10*time.Second+executionMargin+ferry.MaxWait || got != want {
		t.Fatalf("scheduled invocation's execution timeout = %v, want %v", got, want)
	}
	env.AssertExpectations(t)
}
