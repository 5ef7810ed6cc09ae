package reconcile

import (
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"

	"github.com/ferry-faas/ferry"
)

// TestCloseOutcome maps every close status to the record's final status and
// error type; a running or continued workflow gives none.
func TestCloseOutcome(t *testing.T) {
	failed := &historypb.HistoryEvent{Attributes: &historypb.HistoryEvent_WorkflowExecutionFailedEventAttributes{
		WorkflowExecutionFailedEventAttributes: &historypb.WorkflowExecutionFailedEventAttributes{Failure: &failurepb.Failure{
			Message: "boom", FailureInfo: &failurepb.Failure_ApplicationFailureInfo{
				ApplicationFailureInfo: &failurepb.ApplicationFailureInfo{Type: "StepFailed"}}}}}}
	terminated := &historypb.HistoryEvent{Attributes: &historypb.HistoryEvent_WorkflowExecutionTerminatedEventAttributes{
		WorkflowExecutionTerminatedEventAttributes: &historypb.WorkflowExecutionTerminatedEventAttributes{Reason: "too big"}}}
	for _, c := range []struct {
		s      enumspb.WorkflowExecutionStatus
		ev     *historypb.HistoryEvent
		status ferry.InvocationStatus
		typ    string
		msg    string
	}{
		{enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, terminated, ferry.StatusFailed, ferry.ErrTypeTerminated, "the workflow was terminated: too big"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, nil, ferry.StatusFailed, ferry.ErrTypeTerminated, "the workflow was terminated"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT, nil, ferry.StatusTimeout, ferry.ErrTypeTimeout, "the workflow timed out"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, nil, ferry.StatusCancelled, ferry.ErrTypeCancelled, "cancelled"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, failed, ferry.StatusFailed, "StepFailed", "the workflow failed: boom"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, nil, ferry.StatusFailed, ferry.ErrTypeUnrecorded, "the workflow completed without recording its outcome"},
		{enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW, nil, "", "", ""},
		{enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil, "", "", ""},
	} {
		status, fe, err := closeOutcome(c.s, c.ev)
		if err != nil || status != c.status || fe.Type != c.typ || fe.Message != c.msg {
			t.Errorf("%s: %q %+v %v, want %q %s %q", c.s, status, fe, err, c.status, c.typ, c.msg)
		}
	}
}
