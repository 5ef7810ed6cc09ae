package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/activities"
	"github.com/ferry-faas/ferry/workflows"
)

// ChainStore keeps chains and their runs (*postgres.DB).
type ChainStore interface {
	CreateChainVersion(ctx context.Context, v ferry.ChainVersion) (ferry.ChainVersion, error)
	GetChain(ctx context.Context, name string) (ferry.Chain, error)
	ListChains(ctx context.Context, v ferry.Viewer, p ferry.Page) ([]ferry.Chain, string, error)
	GetChainVersion(ctx context.Context, name string, version int) (ferry.ChainVersion, error)
	ListChainVersions(ctx context.Context, name string, v ferry.Viewer, p ferry.Page) ([]ferry.ChainVersion, string, error)
	DeleteChain(ctx context.Context, name string) error
	CreateChainRun(ctx context.Context, r ferry.ChainRun) (ferry.ChainRun, bool, error)
	GetChainRun(ctx context.Context, id uuid.UUID) (ferry.ChainRun, error)
	ListChainRuns(ctx context.Context, f ferry.ChainRunFilter, p ferry.Page) ([]ferry.ChainRun, string, error)
	FinishChainRun(ctx context.Context, id uuid.UUID, o ferry.ChainOutcome) (ferry.ChainRun, bool, error)
}

func (s *server) chainStore() (ChainStore, error) {
	if s.Chains == nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "chains are unavailable: no chain store")
	}
	return s.Chains, nil
}

// stepFunctions lists the distinct functions (and compensations) of steps.
func stepFunctions(steps []ferry.Step) []string {
	seen := map[string]bool{}
	var out []string
	var walk func([]ferry.Step)
	walk = func(ss []ferry.Step) {
		for _, st := range ss {
			for _, f := range []string{st.Function, st.Compensate} {
				if f != "" && !seen[f] {
					seen[f] = true
					out = append(out, f)
				}
			}
			walk(st.Parallel)
			if st.Map != nil {
				walk([]ferry.Step{*st.Map})
			}
		}
	}
	walk(steps)
	return out
}

// requireChain checks perm on every function a chain runs: a chain gives no
// more access than its functions do.
func (s *server) requireChain(c echo.Context, steps []ferry.Step, perm ferry.Permission) error {
	for _, f := range stepFunctions(steps) {
		if err := s.require(c, f, perm); err != nil {
			return err
		}
	}
	return nil
}

type chainRequest struct {
	Name        string       `json:"name"`
	Steps       []ferry.Step `json:"steps"`
	Description string       `json:"description"`
}

func (s *server) deployChain(c echo.Context) error {
	cs, err := s.chainStore()
	if err != nil {
		return err
	}
	var req chainRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := validateName(req.Name); err != nil {
		return err
	}
	if len(req.Description) > maxDescription {
		return ferry.Errorf(ferry.EINVALID, "description: at most %d bytes", maxDescription)
	}
	if err := ferry.ValidateSteps(req.Steps); err != nil {
		return err
	}
	p := principalOf(c)
	if p.Key.Role != ferry.RoleAdmin && p.Key.Role != ferry.RoleDeveloper {
		return forbidden(p, "deploying chains needs a developer or admin key")
	}
	if err := s.requireChain(c, req.Steps, ferry.PermExecute); err != nil {
		return err
	}
	ctx := c.Request().Context()
	// Replacing a chain that others may call needs write on what it runs now.
	if cur, err := cs.GetChainVersion(ctx, req.Name, 0); err == nil {
		if err := s.requireChain(c, cur.Steps, ferry.PermWrite); err != nil {
			return err
		}
	} else if ferry.ErrorCode(err) != ferry.ENOTFOUND {
		return err
	}
	if err := s.checkStepFunctions(ctx, req.Steps, "steps"); err != nil {
		return err
	}
	v, err := cs.CreateChainVersion(ctx, ferry.ChainVersion{Chain: req.Name, Steps: req.Steps, Description: req.Description})
	if err != nil {
		return err
	}
	s.Logger.Info("chain deployed", "chain", v.Chain, "version", v.Version, "request_id", requestIDOf(c))
	c.Response().Header().Set(echo.HeaderLocation, "/v1/chains/"+v.Chain)
	return c.JSON(http.StatusCreated, v)
}

// checkStepFunctions makes sure every named function (and pinned version) exists,
// naming the offending step.
func (s *server) checkStepFunctions(ctx context.Context, steps []ferry.Step, prefix string) error {
	for i, st := range steps {
		if err := s.checkStep(ctx, st, fmt.Sprintf("%s[%d]", prefix, i)); err != nil {
			return err
		}
	}
	return nil
}

func (s *server) checkStep(ctx context.Context, st ferry.Step, path string) error {
	check := func(field, name string, version int) error {
		if name == "" {
			return nil
		}
		_, err := s.Store.GetVersion(ctx, name, version)
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			return ferry.Errorf(ferry.EINVALID, "%s.%s: %s", path, field, ferry.ErrorMessage(err))
		}
		return err
	}
	if err := check("function", st.Function, st.Version); err != nil {
		return err
	}
	if st.Alias != "" {
		_, err := s.Store.GetAlias(ctx, st.Function, st.Alias)
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			return ferry.Errorf(ferry.EINVALID, "%s.alias: %s", path, ferry.ErrorMessage(err))
		}
		if err != nil {
			return err
		}
	}
	if err := check("compensate", st.Compensate, st.CompensateVersion); err != nil {
		return err
	}
	if err := s.checkStepFunctions(ctx, st.Parallel, path+".parallel"); err != nil {
		return err
	}
	if st.Map != nil {
		return s.checkStep(ctx, *st.Map, path+".map")
	}
	return nil
}

// chainVersionFor loads the chain version named by :name and ?version and
// checks perm on its functions.
func (s *server) chainVersionFor(c echo.Context, perm ferry.Permission) (ChainStore, ferry.ChainVersion, error) {
	cs, err := s.chainStore()
	if err != nil {
		return nil, ferry.ChainVersion{}, err
	}
	version, err := versionParam(c)
	if err != nil {
		return nil, ferry.ChainVersion{}, err
	}
	v, err := cs.GetChainVersion(c.Request().Context(), c.Param("name"), version)
	if err != nil {
		return nil, ferry.ChainVersion{}, err
	}
	return cs, v, s.requireChain(c, v.Steps, perm)
}

func (s *server) listChains(c echo.Context) error {
	cs, err := s.chainStore()
	if err != nil {
		return err
	}
	v, err := s.viewer(c)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	chains, next, err := cs.ListChains(c.Request().Context(), v, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, listResponse("chains", chains, next))
}

func (s *server) getChain(c echo.Context) error {
	_, v, err := s.chainVersionFor(c, ferry.PermRead)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *server) listChainVersions(c echo.Context) error {
	cs, v, err := s.chainVersionFor(c, ferry.PermRead)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	viewer, err := s.viewer(c)
	if err != nil {
		return err
	}
	vs, next, err := cs.ListChainVersions(c.Request().Context(), v.Chain, viewer, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, listResponse("versions", vs, next))
}

func (s *server) deleteChain(c echo.Context) error {
	// Delete removes every version: the check is on the latest, whatever
	// ?version says.
	cs, err := s.chainStore()
	if err != nil {
		return err
	}
	v, err := cs.GetChainVersion(c.Request().Context(), c.Param("name"), 0)
	if err != nil {
		return err
	}
	if err := s.requireChain(c, v.Steps, ferry.PermWrite); err != nil {
		return err
	}
	if err := cs.DeleteChain(c.Request().Context(), v.Chain); err != nil {
		return err
	}
	s.Logger.Info("chain deleted", "chain", v.Chain, "request_id", requestIDOf(c))
	return c.NoContent(http.StatusNoContent)
}

// --- runs ---

func (s *server) invokeChain(c echo.Context) error {
	cs, v, err := s.chainVersionFor(c, ferry.PermExecute)
	if err != nil {
		return err
	}
	req, err := readInvokeRequest(c, "input")
	if err != nil {
		return err
	}
	runs := s.chainRuns(cs)
	if err := runs.available(); err != nil {
		return err
	}
	ctx := c.Request().Context()
	id, err := uuid.NewV7()
	if err != nil {
		return ferry.Wrap(err, ferry.EINTERNAL, "generating a chain run id: %v", err)
	}
	asked, _ := versionParam(c) // valid: chainVersionFor read it
	run, created, err := cs.CreateChainRun(ctx, ferry.ChainRun{ID: id, Chain: v.Chain, ChainID: v.ChainID, Version: v.Version,
		Status: ferry.StatusPending, Input: req.input, IdempotencyKey: req.idempotencyKey, RequestHash: req.hash(asked),
		WorkflowID: id.String(), CreatedAt: time.Now()})
	if err != nil {
		return err
	}
	if !created && run.Version != v.Version {
		if v, err = cs.GetChainVersion(ctx, run.Chain, run.Version); err != nil {
			return err
		}
	}
	if err := runs.launch(ctx, run, eagerIf(!req.async, workflows.ChainStart(s.TaskQueue, run, v)), created, req.idempotencyKey != ""); err != nil {
		return err
	}
	if req.async {
		return runs.accepted(c, run)
	}
	// A chain's duration has no bound to derive a wait from: it waits until
	// the end, or as long as asked (Prefer: wait).
	rec, err := runs.wait(ctx, run, nil, endOnly[ferry.ChainRun], req.wait)
	return runs.respond(c, rec, err)
}

// stepView is a step's status with a link to its invocation.
type stepView struct {
	ferry.StepStatus
	Invocation string `json:"invocation"`
}

// runView is a chain run as the API shows it.
type runView struct {
	ferry.ChainRun
	Steps []stepView `json:"steps"`
}

func viewOf(r ferry.ChainRun) runView {
	v := runView{ChainRun: r, Steps: make([]stepView, len(r.Steps))}
	for i, st := range r.Steps {
		v.Steps[i] = stepView{StepStatus: st, Invocation: "/v1/invocations/" + st.InvocationID.String()}
	}
	return v
}

func (s *server) listChainRuns(c echo.Context) error {
	cs, v, err := s.chainVersionFor(c, ferry.PermRead)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	f := ferry.ChainRunFilter{Chain: v.Chain, Status: ferry.InvocationStatus(c.QueryParam("status"))}
	if f.Status != "" && !f.Status.Valid() {
		return ferry.Errorf(ferry.EINVALID, "status: must be one of pending, running, completed, failed, timeout, cancelled")
	}
	if f.Viewer, err = s.viewer(c); err != nil {
		return err
	}
	runs, next, err := cs.ListChainRuns(c.Request().Context(), f, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, listResponse("runs", runs, next))
}

// chainRunFor loads the run named by :id and checks perm on its chain's functions.
func (s *server) chainRunFor(c echo.Context, perm ferry.Permission) (ChainStore, ferry.ChainRun, error) {
	cs, err := s.chainStore()
	if err != nil {
		return nil, ferry.ChainRun{}, err
	}
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return nil, ferry.ChainRun{}, ferry.Errorf(ferry.EINVALID, "id: not a valid chain run id")
	}
	ctx := c.Request().Context()
	run, err := cs.GetChainRun(ctx, id)
	if err != nil {
		return nil, ferry.ChainRun{}, err
	}
	v, err := cs.GetChainVersion(ctx, run.Chain, run.Version)
	switch {
	case err == nil && v.ChainID == run.ChainID:
		err = s.requireChain(c, v.Steps, perm)
	case err == nil || ferry.ErrorCode(err) == ferry.ENOTFOUND:
		// The chain was deleted (and maybe created again: another chain); its
		// runs remain readable by those who read everything.
		err = s.require(c, "*", perm)
	}
	return cs, run, err
}

func (s *server) getChainRun(c echo.Context) error {
	_, run, err := s.chainRunFor(c, ferry.PermRead)
	if err != nil {
		return err
	}
	if !run.Status.Final() {
		run.Steps = s.progress(c.Request().Context(), run)
	}
	return c.JSON(http.StatusOK, viewOf(run))
}

// progress asks the running workflow for per-step progress (best effort).
func (s *server) progress(ctx context.Context, run ferry.ChainRun) []ferry.StepStatus {
	if s.Queries == nil {
		return run.Steps
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := s.Queries.QueryWorkflow(qctx, run.WorkflowID, "", workflows.ProgressQuery)
	if err != nil {
		s.Logger.Debug("querying chain progress", "chain_run", run.ID, "err", err)
		return run.Steps
	}
	var p workflows.ChainProgress
	if err := v.Get(&p); err != nil {
		return run.Steps
	}
	return p.Steps
}

func (s *server) cancelChainRun(c echo.Context) error {
	cs, run, err := s.chainRunFor(c, ferry.PermExecute)
	if err != nil {
		return err
	}
	if run.Status.Final() {
		return ferry.Errorf(ferry.ECONFLICT, "chain run %s is already %s", run.ID, run.Status)
	}
	runs := s.chainRuns(cs)
	return runs.cancel(c, run, func(ctx context.Context) (ferry.ChainRun, error) {
		// No workflow will finish the run (its history may be gone): its
		// payloads go first, so that a failed delete leaves the run to retry.
		if err := s.Code.DeletePrefix(ctx, activities.PayloadPrefix(run.ID)); err != nil {
			return ferry.ChainRun{}, err
		}
		return runs.cancelled(ctx, run.ID)
	})
}

// chainRoutes adds the chain routes (listed in routes.go).
func (s *server) chainRoutes(e *echo.Echo, auth, body echo.MiddlewareFunc) {
	e.POST("/v1/chains", s.deployChain, auth, body)
	e.GET("/v1/chains", s.listChains, auth)
	e.GET("/v1/chains/:name", s.getChain, auth)
	e.DELETE("/v1/chains/:name", s.deleteChain, auth)
	e.GET("/v1/chains/:name/versions", s.listChainVersions, auth)
	e.POST("/v1/chains/:name/invoke", s.invokeChain, auth, body)
	e.GET("/v1/chains/:name/runs", s.listChainRuns, auth)
	e.GET("/v1/chain-runs/:id", s.getChainRun, auth)
	e.POST("/v1/chain-runs/:id/cancel", s.cancelChainRun, auth, body)
}
