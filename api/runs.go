package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/workflows"
)

// The lifecycle of a run, one path for function invokes, chain invokes and
// retries: the handler records the run, launch starts its workflow, wait waits
// for its end (sync only), respond answers. A run is an invocation or a chain
// run; runs holds what differs between the two.

// runs is the lifecycle of one kind of run, R: ferry.Invocation or ferry.ChainRun.
type runs[R any] struct {
	s        *server
	what     string // "invocation", "chain run": in messages
	logKey   string // the log attribute naming one
	path     string // URL prefix of its record
	idHeader string // response header naming it
	meta     func(R) runMeta
	view     func(R) any // the body that shows it
	get      func(ctx context.Context, id uuid.UUID) (R, error)
	// finish records a final status that the API decided on (a start that
	// failed, a cancel of a workflow Temporal does not know).
	finish func(ctx context.Context, id uuid.UUID, status ferry.InvocationStatus, errType, message string) (R, error)
}

// runMeta is what the lifecycle reads of a run.
type runMeta struct {
	id         uuid.UUID
	workflowID string
	status     ferry.InvocationStatus
}

func (s *server) invocationRuns() runs[ferry.Invocation] {
	return runs[ferry.Invocation]{
		s: s, what: "invocation", logKey: "invocation", path: "/v1/invocations/", idHeader: headerInvocationID,
		meta: func(inv ferry.Invocation) runMeta { return runMeta{inv.ID, inv.WorkflowID, inv.Status} },
		view: func(inv ferry.Invocation) any { return inv },
		get:  s.Store.GetInvocation,
		finish: func(ctx context.Context, id uuid.UUID, status ferry.InvocationStatus, errType, message string) (ferry.Invocation, error) {
			inv, _, err := s.Store.FinishInvocation(ctx, id, ferry.Outcome{Status: status,
				Error: &ferry.FunctionError{Type: errType, Message: message}})
			return inv, err
		},
	}
}

func (s *server) chainRuns(cs ChainStore) runs[ferry.ChainRun] {
	return runs[ferry.ChainRun]{
		s: s, what: "chain run", logKey: "chain_run", path: "/v1/chain-runs/", idHeader: headerChainRunID,
		meta: func(r ferry.ChainRun) runMeta { return runMeta{r.ID, r.WorkflowID, r.Status} },
		view: func(r ferry.ChainRun) any { return viewOf(r) },
		get:  cs.GetChainRun,
		finish: func(ctx context.Context, id uuid.UUID, status ferry.InvocationStatus, errType, message string) (ferry.ChainRun, error) {
			r, _, err := cs.FinishChainRun(ctx, id, ferry.ChainOutcome{Status: status,
				Error: &ferry.ChainError{Type: errType, Message: message}})
			return r, err
		},
	}
}

// available answers 503 when there is no Temporal client to run workflows.
func (k runs[R]) available() error {
	if k.s.Temporal == nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "%ss are unavailable: no Temporal client", k.what)
	}
	return nil
}

// launch starts the workflow of run r with st. created says that this request
// recorded r; otherwise an earlier request with the same Idempotency-Key
// (keyed) did, and launch re-attaches to its workflow (the start is idempotent
// by workflow id), or starts it if that request died between recording and
// starting. A run this request recorded without a key whose start failed is
// recorded as failed, so that it does not look pending forever.
func (k runs[R]) launch(ctx context.Context, r R, st workflows.Start, created, keyed bool) error {
	m := k.meta(r)
	if !created && m.status.Final() {
		return nil
	}
	_, err := k.s.Temporal.ExecuteWorkflow(ctx, st.Options, st.Workflow, st.Input)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err == nil || errors.As(err, &started) {
		return nil // already started (and maybe finished): the record tells
	}
	if ctx.Err() != nil {
		err = ferry.Errorf(ferry.EUNAVAILABLE, "request cancelled while starting the %s", k.what)
	} else {
		k.s.Logger.Error("starting "+k.what+" workflow", k.logKey, m.id, "err", err)
		err = ferry.Errorf(ferry.EUNAVAILABLE, "could not start the %s: Temporal is unavailable", k.what)
	}
	if created && !keyed {
		k.abandon(m.id, err)
	}
	return err
}

func (k runs[R]) abandon(id uuid.UUID, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := k.finish(ctx, id, ferry.StatusFailed, ferry.ErrTypeStartError, ferry.ErrorMessage(cause)); err != nil {
		k.s.Logger.Warn("recording a "+k.what+" that could not start", k.logKey, id, "err", err)
	}
}

// result reads the end of a run's workflow. ok says that rec is the final
// record as stored, so that wait needs no read of the store; a workflow that
// ended in error, or whose result does not carry the whole record, is not ok.
type result[R any] func(ctx context.Context, wf client.WorkflowRun) (rec R, ok bool, err error)

// wait waits for the workflow of run r to end and returns the final record, or
// the record as it is when waiting failed or took longer than limit (answered
// 202; 0: no limit). done, when not nil, delivers the final record as soon as
// a worker in this process has written it, which is sooner than Temporal
// reports the workflow's end.
func (k runs[R]) wait(ctx context.Context, r R, done <-chan R, res result[R], limit time.Duration) (R, error) {
	m := k.meta(r)
	if m.status.Final() {
		return r, nil
	}
	var expired <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		expired = t.C
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type end struct {
		rec R
		ok  bool
		err error
	}
	got := make(chan end, 1)
	go func() {
		rec, ok, err := res(wctx, k.s.Temporal.GetWorkflow(wctx, m.workflowID, ""))
		got <- end{rec, ok, err}
	}()
	// A durable handler that suspends (waiting) may wait for hours: the
	// record is checked once a second, and a waiting run is answered 202.
	waiting := make(chan R, 1)
	go func() {
		t := time.NewTicker(waitingPoll)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
				if rec, err := k.get(wctx, m.id); err == nil && k.meta(rec).status == ferry.StatusWaiting {
					waiting <- rec
					return
				}
			}
		}
	}()
	var err error
	select {
	case rec := <-done:
		return rec, nil
	case rec := <-waiting:
		return rec, nil
	case e := <-got:
		if e.ok {
			return e.rec, nil
		}
		err = e.err
	case <-expired:
		// The run goes on; the answer is its record as it is now (202 with
		// its Location unless it just ended), or 503 when the store is down.
		return k.get(ctx, m.id)
	}
	var zero R
	if ctx.Err() != nil {
		return zero, ferry.Errorf(ferry.EUNAVAILABLE, "request cancelled while waiting for %s %s", k.what, m.id)
	}
	// Failed, timed out or cancelled runs end the workflow in error; the
	// worker has recorded the outcome before.
	rec, gerr := k.get(ctx, m.id)
	if gerr == nil && !k.meta(rec).status.Final() && err != nil && k.s.closeIfEnded(ctx, m.workflowID) {
		rec, gerr = k.get(ctx, m.id)
	}
	if gerr != nil {
		return zero, gerr
	}
	if !k.meta(rec).status.Final() && err != nil {
		// Temporal could not tell us the outcome: answer 202 with the record.
		k.s.Logger.Warn("waiting for "+k.what, k.logKey, m.id, "err", err)
	}
	return rec, nil
}

// waitingPoll is how often a sync wait reads the record to notice that a
// durable handler suspended (docs/API.md: such an invoke answers 202).
const waitingPoll = time.Second

// endOnly is the result of a workflow whose output is not the record: wait
// reads the record.
func endOnly[R any](ctx context.Context, wf client.WorkflowRun) (R, bool, error) {
	var zero R
	return zero, false, wf.Get(ctx, nil)
}

// respond answers a sync run: 200 with the final record (whose status may be
// failed or timeout, flagged by Ferry-Function-Error), or 202 when it is not
// final yet.
func (k runs[R]) respond(c echo.Context, r R, err error) error {
	if err != nil {
		return err
	}
	m := k.meta(r)
	if !m.status.Final() {
		return k.accepted(c, r)
	}
	h := c.Response().Header()
	h.Set(k.idHeader, m.id.String())
	if m.status != ferry.StatusCompleted {
		h.Set(headerFunctionError, "true")
	}
	return c.JSON(http.StatusOK, k.view(r))
}

// accepted answers 202 with the record and its Location.
func (k runs[R]) accepted(c echo.Context, r R) error {
	id := k.meta(r).id.String()
	h := c.Response().Header()
	h.Set(echo.HeaderLocation, k.path+id)
	h.Set(k.idHeader, id)
	return c.JSON(http.StatusAccepted, k.view(r))
}

// cancel asks Temporal to cancel the workflow of run r, which is not final,
// and waits a little for its end: 200 with the final record, or 202 while it
// is still stopping. A run whose workflow Temporal does not know is closed by
// closeRun, which records it as cancelled.
func (k runs[R]) cancel(c echo.Context, r R, closeRun func(ctx context.Context) (R, error)) error {
	if err := k.available(); err != nil {
		return err
	}
	ctx := c.Request().Context()
	m := k.meta(r)
	found, err := k.s.cancelWorkflow(ctx, m.workflowID, k.what, k.logKey, m.id)
	if err != nil {
		return err
	}
	if !found {
		rec, err := closeRun(ctx)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, k.view(rec))
	}
	rec, err := k.get(ctx, m.id)
	if err != nil {
		return err
	}
	if !k.meta(rec).status.Final() {
		return k.accepted(c, rec)
	}
	return c.JSON(http.StatusOK, k.view(rec))
}

// cancelled records run id as cancelled by request.
func (k runs[R]) cancelled(ctx context.Context, id uuid.UUID) (R, error) {
	return k.finish(ctx, id, ferry.StatusCancelled, ferry.ErrTypeCancelled, "cancelled by request")
}

// eagerIf keeps eager start only for a caller that waits: the worker in this
// process then runs the workflow at once, without a round trip through
// Temporal's matching. Async work goes to the task queue, which every worker of
// a cluster polls, worker-only nodes included (docs/ARCHITECTURE.md,
// "Production topology").
func eagerIf(wait bool, st workflows.Start) workflows.Start {
	st.Options.EnableEagerStart = st.Options.EnableEagerStart && wait
	return st
}
