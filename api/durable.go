package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/activities"
)

// Durable functions (docs/ARCHITECTURE.md, "Durable functions"): the steps of
// an invocation, and the callback URLs its handler hands out.

// DurableStore reads and completes durable operations (*postgres.DB).
type DurableStore interface {
	ListOperations(ctx context.Context, id uuid.UUID, now time.Time) ([]ferry.Operation, error)
	CompleteCallback(ctx context.Context, tokenHash []byte, body json.RawMessage, now time.Time) (uuid.UUID, string, error)
}

// Signaler signals a workflow (client.Client is one).
type Signaler interface {
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
}

// maxListedResult caps a step result shown by GET .../steps; larger ones are
// omitted (result_omitted, result_size).
const maxListedResult = 64 << 10

// invocationSteps lists an invocation's durable operations in order.
func (s *server) invocationSteps(c echo.Context) error {
	inv, err := s.invocationFor(c, ferry.PermRead)
	if err != nil {
		return err
	}
	if s.Durable == nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "durable steps are unavailable")
	}
	ops, err := s.Durable.ListOperations(c.Request().Context(), inv.ID, time.Now())
	if err != nil {
		return err
	}
	for i := range ops {
		if ops[i].ResultRef != "" || len(ops[i].Result) > maxListedResult {
			ops[i].Result, ops[i].ResultOmitted = nil, true
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"id": inv.ID, "status": inv.Status, "steps": ops})
}

// completeCallback takes the JSON body POSTed to a callback URL. The token is
// the credential (no API key): unknown → 404, already used or timed out → 409.
func (s *server) completeCallback(c echo.Context) error {
	if s.Durable == nil {
		return ferry.Errorf(ferry.EUNAVAILABLE, "callbacks are unavailable")
	}
	token := c.Param("token")
	if len(token) < 43 || len(token) > 64 {
		return ferry.Errorf(ferry.ENOTFOUND, "no such callback")
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, ferry.MaxCallbackBody+1))
	if err != nil {
		return ferry.Errorf(ferry.EINVALID, "reading the body: %v", err)
	}
	if len(body) > ferry.MaxCallbackBody {
		return ferry.Errorf(ferry.ETOOLARGE, "a callback body is at most %d bytes", ferry.MaxCallbackBody)
	}
	if len(body) == 0 {
		body = []byte("null")
	}
	if !json.Valid(body) {
		return ferry.Errorf(ferry.EINVALID, "the body of a callback is JSON")
	}
	ctx := c.Request().Context()
	id, name, err := s.Durable.CompleteCallback(ctx, activities.CallbackTokenHash(token), body, time.Now())
	if err != nil {
		return err
	}
	// The body is stored: the signal only wakes the workflow sooner. Without
	// it the invocation resumes at the callback's timeout and finds the body.
	if s.Signals != nil {
		if err := s.Signals.SignalWorkflow(ctx, id.String(), "", activities.SignalCallback, name); err != nil {
			s.Logger.Warn("signalling a completed callback", "invocation", id, "callback", name, "err", err)
		}
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/invocations/"+id.String())
	return c.JSON(http.StatusAccepted, map[string]any{"invocation_id": id, "callback": name, "status": "completed"})
}
