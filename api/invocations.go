package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/workflows"
)

// Response headers of an invoke.
const (
	headerInvocationID  = "Ferry-Invocation-Id"
	headerFunctionError = "Ferry-Function-Error"
	headerIdempotency   = "Idempotency-Key"
	headerChainRunID    = "Ferry-Chain-Run-Id"
	maxIdempotencyKey   = 255
)

func (s *server) invoke(c echo.Context) error {
	name := c.Param("name")
	if err := s.require(c, name, ferry.PermExecute); err != nil {
		return err
	}
	asked, err := targetParams(c)
	if err != nil {
		return err
	}
	req, err := readInvokeRequest(c, "event")
	if err != nil {
		return err
	}
	runs := s.invocationRuns()
	if err := runs.available(); err != nil {
		return err
	}
	ctx := c.Request().Context()
	v, err := s.resolve(c, name, asked, req.idempotencyKey)
	if err != nil {
		return err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return ferry.Wrap(err, ferry.EINTERNAL, "generating an invocation id: %v", err)
	}
	inv, created, err := s.Store.CreateInvocation(ctx, ferry.Invocation{
		ID: id, Function: v.Function, FunctionID: v.FunctionID, Version: v.Version, Status: ferry.StatusPending,
		Event: req.input, IdempotencyKey: req.idempotencyKey, RequestHash: req.hashTarget(asked),
		WorkflowID: id.String(), CreatedAt: time.Now(),
	})
	if err != nil {
		return err
	}
	if !created && inv.Version != v.Version {
		// Same key, same invocation: it keeps the version it was started with.
		if v, err = s.Store.GetVersion(ctx, name, inv.Version); err != nil {
			return err
		}
	}
	var done <-chan ferry.Invocation
	if !req.async && s.Completions != nil && !inv.Status.Final() {
		// Before the start: the worker in this process may finish it at once.
		var stop func()
		done, stop = s.Completions.Subscribe(inv.ID)
		defer stop()
	}
	if err := runs.launch(ctx, inv, eagerIf(!req.async, workflows.InvokeStart(s.TaskQueue, inv, v, ownerOf(c))), created, req.idempotencyKey != ""); err != nil {
		return err
	}
	if req.async {
		return runs.accepted(c, inv)
	}
	rec, err := runs.wait(ctx, inv, done, invokeResult(inv.ID), syncWait(v.Limits, req.wait))
	// Whichever source told the end (the worker in this process, Temporal's
	// result, which leaves the event out of history, or the store), the answer
	// is the record as stored, with the event it was accepted with.
	rec.Event = inv.Event
	return runs.respond(c, rec, err)
}

// invokeResult reads InvokeFunction's result: the final record, unless it
// ended in error (the function failed, timed out or was cancelled) or history
// carries only part of it (a truncated error, an omitted result).
func invokeResult(id uuid.UUID) result[ferry.Invocation] {
	return func(ctx context.Context, wf client.WorkflowRun) (ferry.Invocation, bool, error) {
		var out workflows.InvokeOutput
		err := wf.Get(ctx, &out)
		ok := err == nil && out.Invocation.ID == id && out.Invocation.Status.Final() && !out.ErrorTruncated &&
			(out.Invocation.Status != ferry.StatusCompleted || len(out.Invocation.Result) > 0)
		return out.Invocation, ok, err
	}
}

// invokeRequest is what an invoke of a function or of a chain reads besides
// the target.
type invokeRequest struct {
	async bool
	// wait is the longest wait asked for with `Prefer: wait=N` (0: none).
	wait           time.Duration
	idempotencyKey string
	input          []byte // nil for an empty body: the handler gets null
}

// hash identifies what an Idempotency-Key asks for: the version asked for (0:
// the latest at the time) and the body.
func (r invokeRequest) hash(version int) string {
	return r.hashOf(strconv.Itoa(version))
}

// hashOf identifies an Idempotency-Key's request: what it asked for and the body.
func (r invokeRequest) hashOf(asked string) string {
	if r.idempotencyKey == "" {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", asked)
	h.Write(r.input)
	return hex.EncodeToString(h.Sum(nil))
}

// hashTarget is hash for a function's target: its version, or its alias.
func (r invokeRequest) hashTarget(t target) string {
	if t.alias == "" {
		return r.hash(t.version)
	}
	return r.hashOf("alias " + t.alias)
}

// readInvokeRequest reads the async preference, the Idempotency-Key header and
// the JSON body, which what ("event", "input") names in errors.
func readInvokeRequest(c echo.Context, what string) (invokeRequest, error) {
	async, err := wantsAsync(c)
	if err != nil {
		return invokeRequest{}, err
	}
	wait, err := preferredWait(c)
	if err != nil {
		return invokeRequest{}, err
	}
	idemKey := c.Request().Header.Get(headerIdempotency)
	if len(idemKey) > maxIdempotencyKey {
		return invokeRequest{}, ferry.Errorf(ferry.EINVALID, "Idempotency-Key: must be at most %d bytes", maxIdempotencyKey)
	}
	if err := checkText(headerIdempotency, idemKey); err != nil {
		return invokeRequest{}, err
	}
	input, err := readBody(c)
	if err != nil {
		return invokeRequest{}, err
	}
	// Duplicate keys are the user's business here: the event reaches the
	// function as sent (every runtime's parser keeps the last one).
	if len(strings.TrimSpace(string(input))) == 0 {
		input = nil
	} else if err := checkJSON(what, input); err != nil {
		return invokeRequest{}, err
	}
	return invokeRequest{async: async, wait: wait, idempotencyKey: idemKey, input: input}, nil
}

// preferredWait reads `Prefer: wait=N` (RFC 7240), N seconds.
func preferredWait(c echo.Context) (time.Duration, error) {
	for _, h := range c.Request().Header.Values("Prefer") {
		for _, p := range strings.Split(h, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(k), "wait") {
				continue
			}
			n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(v), `"`))
			if err != nil || n < 1 {
				return 0, ferry.Errorf(ferry.EINVALID, "Prefer: wait must be a whole number of seconds, at least 1")
			}
			return time.Duration(n) * time.Second, nil
		}
	}
	return 0, nil
}

// SyncWaitMargin is how much longer than its function's own time budget
// (every attempt's timeout) a sync invoke waits before it answers 202 with the
// record's Location: room for queueing, a cold start or a Go build. It also
// bounds the wait while an outage (Temporal, PostgreSQL, S3) holds the
// invocation back; the invocation itself goes on (docs/RELIABILITY.md).
const SyncWaitMargin = 60 * time.Second

// syncWait is the longest wait of a sync invoke of a version with limits l;
// a shorter one asked for (Prefer: wait) wins.
func syncWait(l ferry.Limits, asked time.Duration) time.Duration {
	l = l.WithDefaults()
	d := time.Duration(l.TimeoutSeconds*(l.Retries+1))*time.Second + SyncWaitMargin
	if asked > 0 && asked < d {
		return asked
	}
	return d
}

// wantsAsync reads `Prefer: respond-async` and ?async=true.
func wantsAsync(c echo.Context) (bool, error) {
	for _, h := range c.Request().Header.Values("Prefer") {
		for _, p := range strings.Split(h, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "respond-async") {
				return true, nil
			}
		}
	}
	if q := c.QueryParam("async"); q != "" {
		b, err := strconv.ParseBool(q)
		if err != nil {
			return false, ferry.Errorf(ferry.EINVALID, "async: must be true or false")
		}
		return b, nil
	}
	return false, nil
}

// --- invocation records ---

func (s *server) listInvocations(c echo.Context) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	f := ferry.InvocationFilter{Function: c.QueryParam("function"), Status: ferry.InvocationStatus(c.QueryParam("status"))}
	if f.Status != "" && !f.Status.Valid() {
		return ferry.Errorf(ferry.EINVALID, "status: must be one of pending, running, completed, failed, timeout, cancelled")
	}
	if q := c.QueryParam("chain_run_id"); q != "" {
		id, err := uuid.Parse(q)
		if err != nil {
			return ferry.Errorf(ferry.EINVALID, "chain_run_id: not a valid id")
		}
		f.ChainRunID = &id
	}
	for _, b := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		name, t := b.name, b.t
		if q := c.QueryParam(name); q != "" {
			if *t, err = time.Parse(time.RFC3339Nano, q); err != nil {
				return ferry.Errorf(ferry.EINVALID, "%s: must be a time in RFC 3339 form such as 2026-01-02T15:04:05Z, not %q", name, q)
			}
		}
	}
	// Without a function filter the caller needs read on every function.
	scope := f.Function
	if scope == "" {
		scope = "*"
	}
	if err := s.require(c, scope, ferry.PermRead); err != nil {
		if scope == "*" && ferry.ErrorCode(err) == ferry.EFORBIDDEN {
			return forbidden(principalOf(c), "listing invocations of every function needs read on all functions; filter with ?function=NAME")
		}
		return err
	}
	if scope != "*" {
		current, err := s.currentIdentity(c, f.Function, ferry.PermRead)
		if err != nil {
			return err
		}
		if current != nil && *current == uuid.Nil { // no such function: nothing it may see
			return c.JSON(http.StatusOK, listResponse[ferry.Invocation]("invocations", nil, ""))
		}
		f.FunctionID = current
	}
	invs, next, err := s.Store.ListInvocations(c.Request().Context(), f, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, listResponse("invocations", invs, next))
}

// invocationFor loads the invocation named by :id and checks perm on its function.
func (s *server) invocationFor(c echo.Context, perm ferry.Permission) (ferry.Invocation, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return ferry.Invocation{}, ferry.Errorf(ferry.EINVALID, "id: not a valid invocation id")
	}
	inv, err := s.Store.GetInvocation(c.Request().Context(), id)
	if err != nil {
		return ferry.Invocation{}, err
	}
	if err := s.require(c, inv.Function, perm); err != nil {
		return ferry.Invocation{}, err
	}
	current, err := s.currentIdentity(c, inv.Function, perm)
	if err != nil {
		return ferry.Invocation{}, err
	}
	if current != nil && (*current == uuid.Nil || *current != inv.FunctionID) {
		return ferry.Invocation{}, forbidden(principalOf(c),
			"invocation %s belongs to a function %q that was deleted; only keys with %s on every function may use it",
			inv.ID, inv.Function, perm)
	}
	return inv, nil
}

// currentIdentity returns nil when the caller may do perm on every function,
// and otherwise the identity of the function called name now (uuid.Nil when
// there is none). Grants are by name and end with the function, so a key that
// holds perm only through grants on name holds it on the function of that name
// now, not on a deleted one's records.
func (s *server) currentIdentity(c echo.Context, name string, perm ferry.Permission) (*uuid.UUID, error) {
	if all, err := s.can(c, "*", perm); err != nil || all {
		return nil, err
	}
	id := uuid.Nil
	f, err := s.Store.GetFunction(c.Request().Context(), name)
	switch {
	case err == nil:
		id = f.ID
	case ferry.ErrorCode(err) != ferry.ENOTFOUND:
		return nil, err
	}
	return &id, nil
}

func (s *server) getInvocation(c echo.Context) error {
	inv, err := s.invocationFor(c, ferry.PermRead)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, inv)
}

// cancelInvocation asks Temporal to cancel the workflow; the worker stops the
// container and records cancelled. It waits a little for that record: 200 with
// the final record, or 202 while it is still stopping.
func (s *server) cancelInvocation(c echo.Context) error {
	inv, err := s.invocationFor(c, ferry.PermExecute)
	if err != nil {
		return err
	}
	if inv.Status.Final() {
		return ferry.Errorf(ferry.ECONFLICT, "invocation %s is already %s", inv.ID, inv.Status)
	}
	if inv.ChainRunID != nil {
		// Its workflow is the chain's: cancelling it here would cancel the
		// whole run with only this step's permission.
		return ferry.Errorf(ferry.ECONFLICT, "invocation %s is a step of chain run %s: cancel the chain run instead (POST /v1/chain-runs/%s/cancel)",
			inv.ID, inv.ChainRunID, inv.ChainRunID)
	}
	runs := s.invocationRuns()
	return runs.cancel(c, inv, func(ctx context.Context) (ferry.Invocation, error) {
		return runs.cancelled(ctx, inv.ID)
	})
}

// cancelWorkflow asks Temporal to cancel the workflow of an invocation or a
// chain run (what, for the error; logAttrs, for the log) and waits up to
// CancelWait for it to end. found is false when Temporal has no such workflow
// (it never started, or Temporal forgot it): the caller records the cancel.
func (s *server) cancelWorkflow(ctx context.Context, workflowID, what string, logAttrs ...any) (found bool, err error) {
	err = s.Temporal.CancelWorkflow(ctx, workflowID, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return false, nil
	case err != nil:
		s.Logger.Error("cancelling "+what, append(logAttrs, "err", err)...)
		return true, ferry.Errorf(ferry.EUNAVAILABLE, "could not cancel the %s: Temporal is unavailable", what)
	}
	wctx, cancel := context.WithTimeout(ctx, s.CancelWait)
	defer cancel()
	_ = s.Temporal.GetWorkflow(wctx, workflowID, "").Get(wctx, nil)
	if wctx.Err() == nil {
		// The workflow has ended. Temporal accepts a cancel of a closed
		// workflow, which would otherwise answer 202 forever.
		s.closeIfEnded(ctx, workflowID)
	}
	return true, nil
}

// closeIfEnded closes the records of a workflow that ended without writing
// them (terminated, timed out; see reconcile) and reports whether it did.
func (s *server) closeIfEnded(ctx context.Context, workflowID string) bool {
	if s.Reconcile == nil {
		return false
	}
	n, err := s.Reconcile(ctx, workflowID)
	if err != nil {
		s.Logger.Warn("closing the records of an ended workflow", "workflow", workflowID, "err", err)
	}
	return n > 0
}

// retryInvocation re-runs a failed, timed-out or cancelled invocation as a new
// one linked by retry_of, with the same version and event.
func (s *server) retryInvocation(c echo.Context) error {
	old, err := s.invocationFor(c, ferry.PermExecute)
	if err != nil {
		return err
	}
	switch old.Status {
	case ferry.StatusFailed, ferry.StatusTimeout, ferry.StatusCancelled:
	default:
		return ferry.Errorf(ferry.ECONFLICT, "invocation %s is %s; only failed, timeout or cancelled invocations can be retried", old.ID, old.Status)
	}
	// An event recorded before today's input limits would only fail again in
	// the runner.
	if err := checkJSON("event", old.Event); err != nil {
		return ferry.Errorf(ferry.EUNPROCESSABLE, "invocation %s cannot be retried: %s", old.ID, ferry.ErrorMessage(err))
	}
	runs := s.invocationRuns()
	if err := runs.available(); err != nil {
		return err
	}
	ctx := c.Request().Context()
	v, err := s.Store.GetVersion(ctx, old.Function, old.Version)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND || (err == nil && v.FunctionID != old.FunctionID) {
		return ferry.Errorf(ferry.ECONFLICT, "invocation %s cannot be retried: function %q version %d no longer exists", old.ID, old.Function, old.Version)
	}
	if err != nil {
		return err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return ferry.Wrap(err, ferry.EINTERNAL, "generating an invocation id: %v", err)
	}
	inv, _, err := s.Store.CreateInvocation(ctx, ferry.Invocation{
		ID: id, Function: old.Function, FunctionID: old.FunctionID, Version: old.Version, Status: ferry.StatusPending,
		Event: old.Event, RetryOf: &old.ID, WorkflowID: id.String(), CreatedAt: time.Now(),
	})
	if err != nil {
		return err
	}
	if err := runs.launch(ctx, inv, eagerIf(false, workflows.InvokeStart(s.TaskQueue, inv, v, ownerOf(c))), true, false); err != nil {
		return err
	}
	return runs.accepted(c, inv)
}

// ownerOf is the key on whose behalf an invocation runs: what a durable
// handler's invoke may execute is decided by its grants.
func ownerOf(c echo.Context) uuid.UUID {
	if p := principalOf(c); p != nil {
		return p.Key.ID
	}
	return uuid.Nil
}
