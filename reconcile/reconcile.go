// Package reconcile closes records whose workflow ended without writing them.
//
// Every invocation and chain run is recorded by its own workflow. A workflow
// that Temporal ends from outside — terminated by an operator or by a server
// limit (a blob or history too large), timed out — never gets to write its
// record, which would then stay pending or running forever. The Reconciler
// finds such records and writes the final status from the workflow's close
// event. It only acts on workflows that Temporal reports closed (or does not
// know), so it never races a running one, and every write applies only to
// records that are not final yet, so several workers may run it at once.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/activities"
	"github.com/ferry-faas/ferry/storage/postgres"
	"github.com/ferry-faas/ferry/storage/s3"
)

// Defaults of a Reconciler.
const (
	DefaultEvery  = time.Minute
	DefaultMinAge = time.Minute
	DefaultBatch  = 100
)

// Store is what the reconciler needs from PostgreSQL (*postgres.DB).
type Store interface {
	UnfinishedRecords(ctx context.Context, createdBefore, afterAt time.Time, afterID uuid.UUID, n int) ([]postgres.Unfinished, error)
	CloseWorkflowRecords(ctx context.Context, id uuid.UUID, status ferry.InvocationStatus, e ferry.FunctionError, at time.Time) (int, error)
}

// Objects is what the reconciler needs from the object store (*s3.Store).
type Objects interface {
	DeletePrefix(ctx context.Context, prefix string) error
}

// Temporal is what the reconciler needs from the Temporal client (client.Client).
type Temporal interface {
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
	GetWorkflowHistory(ctx context.Context, workflowID, runID string, isLongPoll bool, filterType enumspb.HistoryEventFilterType) client.HistoryEventIterator
}

var (
	_ Store    = (*postgres.DB)(nil)
	_ Temporal = (client.Client)(nil)
	_ Objects  = (*s3.Store)(nil)
)

// Reconciler sweeps unfinished records. Each sweep looks at no more than
// Batch records, continuing where the previous one stopped, so its cost is
// bounded however many runs are going: one DescribeWorkflowExecution per
// distinct workflow.
type Reconciler struct {
	Store    Store
	Temporal Temporal
	// Objects, when set, deletes the payloads a chain run stored
	// (activities.PayloadPrefix) when its record is closed here: the
	// workflow ended before FinishChain could delete them.
	Objects Objects
	Logger  *slog.Logger
	// Every is the time between sweeps (DefaultEvery).
	Every time.Duration
	// MinAge skips records younger than this (DefaultMinAge): their workflow
	// may still be starting.
	MinAge time.Duration
	// Batch is the most records one sweep looks at (DefaultBatch).
	Batch int

	afterAt time.Time
	afterID uuid.UUID
}

// Run sweeps every Every until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	every := r.Every
	if every <= 0 {
		every = DefaultEvery
	}
	for {
		// Jitter spreads the sweeps of several workers apart.
		wait := every/2 + rand.N(every)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		sctx, cancel := context.WithTimeout(ctx, every)
		if _, err := r.Sweep(sctx); err != nil && ctx.Err() == nil {
			r.logger().Warn("reconciling unfinished records", "err", err)
		}
		cancel()
	}
}

// Sweep looks at the next batch of unfinished records older than MinAge and
// closes those whose workflow has ended. It returns how many records it closed.
func (r *Reconciler) Sweep(ctx context.Context) (int, error) {
	minAge, batch := r.MinAge, r.Batch
	if minAge == 0 {
		minAge = DefaultMinAge
	}
	if batch <= 0 {
		batch = DefaultBatch
	}
	recs, err := r.Store.UnfinishedRecords(ctx, time.Now().Add(-minAge), r.afterAt, r.afterID, batch)
	if err != nil {
		return 0, err
	}
	if len(recs) < batch {
		r.afterAt, r.afterID = time.Time{}, uuid.Nil // the next sweep starts over
	} else {
		last := recs[len(recs)-1]
		r.afterAt, r.afterID = last.CreatedAt, last.ID
	}
	closed := 0
	seen := map[string]bool{}
	for _, rec := range recs {
		if seen[rec.WorkflowID] {
			continue // the step invocations of a chain share its workflow
		}
		seen[rec.WorkflowID] = true
		n, err := r.Reconcile(ctx, rec.WorkflowID)
		if err != nil {
			if ctx.Err() != nil {
				return closed, err
			}
			r.logger().Warn("reconciling a record", "workflow", rec.WorkflowID, "err", err)
			continue
		}
		closed += n
	}
	return closed, nil
}

// Reconcile closes the unfinished records of one workflow (an invocation's or a
// chain run's; its id is the record's) when Temporal reports it closed or does
// not know it. A running workflow is left alone. It returns how many records
// it closed.
func (r *Reconciler) Reconcile(ctx context.Context, workflowID string) (int, error) {
	id, err := uuid.Parse(workflowID)
	if err != nil {
		return 0, fmt.Errorf("workflow id %q is not a record id", workflowID)
	}
	status, fe, err := r.outcome(ctx, workflowID)
	if err != nil || status == "" {
		return 0, err
	}
	// Before the close: a failed delete leaves the record unfinished, so a
	// later sweep tries again. (For an invocation's workflow there is nothing.)
	if r.Objects != nil {
		if err := r.Objects.DeletePrefix(ctx, activities.PayloadPrefix(id)); err != nil {
			return 0, fmt.Errorf("deleting the payloads of workflow %s: %w", workflowID, err)
		}
	}
	n, err := r.Store.CloseWorkflowRecords(ctx, id, status, fe, time.Now())
	if n > 0 {
		r.logger().Warn("closed the records of a workflow that ended without recording them",
			"workflow", workflowID, "records", n, "status", status, "error_type", fe.Type, "message", fe.Message)
	}
	return n, err
}

// outcome is the final status of a closed workflow; status is empty while it runs.
func (r *Reconciler) outcome(ctx context.Context, workflowID string) (ferry.InvocationStatus, ferry.FunctionError, error) {
	desc, err := r.Temporal.DescribeWorkflowExecution(ctx, workflowID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return ferry.StatusFailed, ferry.FunctionError{Type: ferry.ErrTypeWorkflowNotFound,
			Message: "Temporal has no workflow for this record: it never started, or its history was deleted"}, nil
	}
	if err != nil {
		return "", ferry.FunctionError{}, err
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return "", ferry.FunctionError{}, nil
	}
	runID := info.GetExecution().GetRunId()
	it := r.Temporal.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	var closeEvent *historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return "", ferry.FunctionError{}, err
		}
		closeEvent = ev
	}
	return closeOutcome(info.GetStatus(), closeEvent)
}

// closeOutcome maps a workflow's close status (and event, for the reason) to
// the record's final status and error.
func closeOutcome(s enumspb.WorkflowExecutionStatus, ev *historypb.HistoryEvent) (ferry.InvocationStatus, ferry.FunctionError, error) {
	switch s {
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		msg := "the workflow was terminated"
		if reason := ev.GetWorkflowExecutionTerminatedEventAttributes().GetReason(); reason != "" {
			msg += ": " + reason
		}
		return ferry.StatusFailed, ferry.FunctionError{Type: ferry.ErrTypeTerminated, Message: msg}, nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return ferry.StatusTimeout, ferry.FunctionError{Type: ferry.ErrTypeTimeout, Message: "the workflow timed out"}, nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return ferry.StatusCancelled, ferry.FunctionError{Type: ferry.ErrTypeCancelled, Message: "cancelled"}, nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		f := ev.GetWorkflowExecutionFailedEventAttributes().GetFailure()
		typ := f.GetApplicationFailureInfo().GetType()
		if typ == "" {
			typ = ferry.ErrTypeWorkflowFailed
		}
		return ferry.StatusFailed, ferry.FunctionError{Type: typ, Message: "the workflow failed: " + f.GetMessage()}, nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return ferry.StatusFailed, ferry.FunctionError{Type: ferry.ErrTypeUnrecorded,
			Message: "the workflow completed without recording its outcome"}, nil
	}
	// Continued as new: the describe of the latest run says running, so this
	// is a race with the next run's start; look again next sweep.
	return "", ferry.FunctionError{}, nil
}

func (r *Reconciler) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}
