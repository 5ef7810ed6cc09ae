package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/activities"
	"github.com/ferry-faas/ferry/workflows"
)

// Schedules live in Temporal (Schedules API), not in PostgreSQL: Temporal owns
// when they fire; the API's definition travels in the schedule's memo.
const (
	schedulePrefix  = activities.ScheduleIDPrefix
	scheduleMemoKey = "ferry"
	maxSchedulePay  = 256 << 10
	minEvery        = time.Second
)

// ScheduleTarget names what a schedule runs: a function or a chain.
type ScheduleTarget struct {
	Function string `json:"function,omitempty"`
	Chain    string `json:"chain,omitempty"`
	Version  int    `json:"version,omitempty"` // 0: the latest when it fires
	// Alias names a function's alias instead of a version: each firing runs
	// the version it picks then.
	Alias string `json:"alias,omitempty"`
	// FunctionID is the target function's identity when the schedule was
	// created (set by the server): firings never run another function that
	// took its name after a delete.
	FunctionID *uuid.UUID `json:"function_id,omitempty"`
}

// Schedule is a schedule as the API shows it.
type Schedule struct {
	Name    string          `json:"name"`
	Cron    string          `json:"cron,omitempty"`
	Every   string          `json:"every,omitempty"`
	Target  ScheduleTarget  `json:"target"`
	Payload json.RawMessage `json:"payload,omitempty"`
	Overlap string          `json:"overlap"`
	Paused  bool            `json:"paused"`
	// OwnerKeyID is the API key that created the schedule (set by the server):
	// once it is revoked, firings do not run the target and pause the schedule.
	OwnerKeyID *uuid.UUID `json:"owner_key_id,omitempty"`
	// Filled from Temporal on reads.
	Note       string        `json:"note,omitempty"` // why it was last paused or resumed
	NumRuns    int           `json:"num_runs"`
	RecentRuns []scheduleRun `json:"recent_runs,omitempty"`
	NextRuns   []time.Time   `json:"next_runs,omitempty"`
	CreatedAt  *time.Time    `json:"created_at,omitempty"`
}

// scheduleRun is one firing and the record it created.
type scheduleRun struct {
	ScheduledAt time.Time `json:"scheduled_at"`
	StartedAt   time.Time `json:"started_at"`
	ID          uuid.UUID `json:"id"`
	Link        string    `json:"link"`
}

var overlapPolicies = map[string]enumspb.ScheduleOverlapPolicy{
	"skip":   enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
	"buffer": enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE,
	"allow":  enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL,
}

func (s *server) schedules() (client.ScheduleClient, error) {
	if s.Schedules != nil {
		return s.Schedules, nil
	}
	return nil, ferry.Errorf(ferry.EUNAVAILABLE, "schedules are unavailable: no Temporal client")
}

func (t ScheduleTarget) kind() (string, string) {
	if t.Function != "" {
		return activities.TargetFunction, t.Function
	}
	return activities.TargetChain, t.Chain
}

// requireTarget checks perm on the target's function(s).
func (s *server) requireTarget(c echo.Context, t ScheduleTarget, perm ferry.Permission) error {
	if t.Function != "" {
		return s.require(c, t.Function, perm)
	}
	cs, err := s.chainStore()
	if err != nil {
		return err
	}
	v, err := cs.GetChainVersion(c.Request().Context(), t.Chain, t.Version)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return s.require(c, "*", perm) // the chain is gone: only for those who may everything
	}
	if err != nil {
		return err
	}
	return s.requireChain(c, v.Steps, perm)
}

func (s *server) validateSchedule(c echo.Context, sch *Schedule) error {
	if err := validateName(sch.Name); err != nil {
		return err
	}
	if (sch.Cron == "") == (sch.Every == "") {
		return ferry.Errorf(ferry.EINVALID, "cron, every: set exactly one of them")
	}
	if sch.Every != "" {
		d, err := time.ParseDuration(sch.Every)
		if err != nil || d < minEvery {
			return ferry.Errorf(ferry.EINVALID, "every: must be a duration of at least 1s, like 30s or 1h (got %q)", sch.Every)
		}
	}
	if sch.Cron != "" && len(strings.Fields(sch.Cron)) < 5 && !strings.HasPrefix(sch.Cron, "@") {
		return ferry.Errorf(ferry.EINVALID, "cron: needs five fields (minute hour day month weekday) or a macro like @hourly (got %q)", sch.Cron)
	}
	if (sch.Target.Function == "") == (sch.Target.Chain == "") {
		return ferry.Errorf(ferry.EINVALID, "target: set exactly one of function or chain")
	}
	if sch.Target.Version < 0 || sch.Target.Version > ferry.MaxVersion {
		return ferry.Errorf(ferry.EINVALID, "target.version: must be between 1 and %d (0 or none for the latest)", ferry.MaxVersion)
	}
	if sch.Target.Alias != "" {
		switch {
		case sch.Target.Function == "":
			return ferry.Errorf(ferry.EINVALID, "target.alias: only functions have aliases")
		case sch.Target.Version != 0:
			return ferry.Errorf(ferry.EINVALID, "target: set version or alias, not both")
		}
		if err := ferry.ValidateAliasName("target.alias", sch.Target.Alias); err != nil {
			return err
		}
	}
	if sch.Overlap == "" {
		sch.Overlap = "skip"
	}
	if _, ok := overlapPolicies[sch.Overlap]; !ok {
		return ferry.Errorf(ferry.EINVALID, "overlap: must be skip, buffer or allow (got %q)", sch.Overlap)
	}
	if len(sch.Payload) > maxSchedulePay {
		return ferry.Errorf(ferry.ETOOLARGE, "payload: at most %d bytes", maxSchedulePay)
	}
	ctx := c.Request().Context()
	if sch.Target.Function != "" {
		v, err := s.Store.GetVersion(ctx, sch.Target.Function, sch.Target.Version)
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			return ferry.Errorf(ferry.EINVALID, "target.function: %s", ferry.ErrorMessage(err))
		}
		if err != nil {
			return err
		}
		sch.Target.FunctionID = &v.FunctionID
		if sch.Target.Alias != "" {
			_, err = s.Store.GetAlias(ctx, sch.Target.Function, sch.Target.Alias)
			if ferry.ErrorCode(err) == ferry.ENOTFOUND {
				return ferry.Errorf(ferry.EINVALID, "target.alias: %s", ferry.ErrorMessage(err))
			}
		}
		return err
	}
	cs, err := s.chainStore()
	if err != nil {
		return err
	}
	if _, err := cs.GetChainVersion(ctx, sch.Target.Chain, sch.Target.Version); err != nil {
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			return ferry.Errorf(ferry.EINVALID, "target.chain: %s", ferry.ErrorMessage(err))
		}
		return err
	}
	return nil
}

func (s *server) createSchedule(c echo.Context) error {
	var sch Schedule
	if err := decodeJSON(c, &sch); err != nil {
		return err
	}
	if len(sch.Payload) > 0 && !json.Valid(sch.Payload) {
		return ferry.Errorf(ferry.EINVALID, "payload: must be valid JSON")
	}
	if sch.OwnerKeyID != nil {
		return ferry.Errorf(ferry.EINVALID, "owner_key_id: set by the server (the key that creates the schedule)")
	}
	if sch.Target.FunctionID != nil {
		return ferry.Errorf(ferry.EINVALID, "target.function_id: set by the server (the function's identity)")
	}
	if err := s.validateSchedule(c, &sch); err != nil {
		return err
	}
	sc, err := s.schedules()
	if err != nil {
		return err
	}
	if err := requireScheduleManager(c); err != nil {
		return err
	}
	if err := s.requireTarget(c, sch.Target, ferry.PermExecute); err != nil {
		return err
	}
	kind, target := sch.Target.kind()
	spec := client.ScheduleSpec{}
	if sch.Cron != "" {
		spec.CronExpressions = []string{sch.Cron}
	} else {
		d, _ := time.ParseDuration(sch.Every)
		spec.Intervals = []client.ScheduleIntervalSpec{{Every: d}}
	}
	owner := principalOf(c).Key.ID
	var functionID uuid.UUID
	if sch.Target.FunctionID != nil {
		functionID = *sch.Target.FunctionID
	}
	stored := Schedule{Name: sch.Name, Cron: sch.Cron, Every: sch.Every, Target: sch.Target, Payload: sch.Payload,
		Overlap: sch.Overlap, OwnerKeyID: &owner}
	ctx := c.Request().Context()
	_, err = sc.Create(ctx, client.ScheduleOptions{
		ID:      schedulePrefix + sch.Name,
		Spec:    spec,
		Overlap: overlapPolicies[sch.Overlap],
		Paused:  sch.Paused,
		Memo:    map[string]any{scheduleMemoKey: stored},
		Action: &client.ScheduleWorkflowAction{
			ID:        schedulePrefix + sch.Name,
			Workflow:  workflows.ScheduledRun,
			TaskQueue: s.TaskQueue,
			Args: []any{activities.ScheduledRunInput{Schedule: sch.Name, Kind: kind, Target: target,
				Version: sch.Target.Version, Alias: sch.Target.Alias, Payload: sch.Payload, Owner: owner, FunctionID: functionID}},
		},
	})
	var exists *serviceerror.AlreadyExists
	if errors.As(err, &exists) || errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return ferry.Errorf(ferry.ECONFLICT, "schedule %q exists; delete it first", sch.Name)
	}
	if err != nil {
		return s.temporalErr(err, "creating schedule "+sch.Name)
	}
	s.Logger.Info("schedule created", "schedule", sch.Name, "target", target, "request_id", requestIDOf(c))
	out, err := s.describe(ctx, sc, sch.Name)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/schedules/"+sch.Name)
	return c.JSON(http.StatusCreated, out)
}

func (s *server) temporalErr(err error, what string) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return ferry.Errorf(ferry.ENOTFOUND, "%s not found", what)
	}
	var inv *serviceerror.InvalidArgument
	if errors.As(err, &inv) {
		return ferry.Errorf(ferry.EINVALID, "%s: %s", what, inv.Message)
	}
	s.Logger.Error("Temporal schedule call", "what", what, "err", err)
	return ferry.Errorf(ferry.EUNAVAILABLE, "%s: Temporal is unavailable", what)
}

// describe reads a schedule back from Temporal.
func (s *server) describe(ctx context.Context, sc client.ScheduleClient, name string) (Schedule, error) {
	d, err := sc.GetHandle(ctx, schedulePrefix+name).Describe(ctx)
	if err != nil {
		return Schedule{}, s.temporalErr(err, "schedule "+name)
	}
	var sch Schedule
	if d.Memo != nil {
		if p, ok := d.Memo.Fields[scheduleMemoKey]; ok {
			if err := converter.GetDefaultDataConverter().FromPayload(p, &sch); err != nil {
				return Schedule{}, ferry.Wrap(err, ferry.EINTERNAL, "schedule %s: unreadable memo: %v", name, err)
			}
		}
	}
	sch.Name = name
	if d.Schedule.State != nil {
		sch.Paused, sch.Note = d.Schedule.State.Paused, d.Schedule.State.Note
	}
	sch.NumRuns = d.Info.NumActions
	sch.NextRuns = d.Info.NextActionTimes
	created := d.Info.CreatedAt.UTC()
	sch.CreatedAt = &created
	for _, a := range d.Info.RecentActions {
		if a.StartWorkflowResult == nil {
			continue
		}
		sch.RecentRuns = append(sch.RecentRuns, runOfFiring(sch.Target, a.ScheduleTime, a.ActualTime, a.StartWorkflowResult.WorkflowID))
	}
	return sch, nil
}

// runOfFiring links a firing to the record ScheduledRun created for it (the
// id is derived from the firing's workflow id, see CreateScheduledRun).
func runOfFiring(t ScheduleTarget, scheduled, actual time.Time, workflowID string) scheduleRun {
	id := uuid.NewSHA1(uuid.NameSpaceURL, []byte("ferry-schedule:"+workflowID))
	link := "/v1/invocations/" + id.String()
	if t.Chain != "" {
		link = "/v1/chain-runs/" + id.String()
	}
	return scheduleRun{ScheduledAt: scheduled.UTC(), StartedAt: actual.UTC(), ID: id, Link: link}
}

// scheduleFor reads :name and checks perm on its target.
// requireScheduleManager: creating, deleting, pausing, resuming and
// backfilling schedules needs a developer or admin key; an invoker may only
// read them and trigger a run, as it may invoke.
func requireScheduleManager(c echo.Context) error {
	if p := principalOf(c); p.Key.Role != ferry.RoleAdmin && p.Key.Role != ferry.RoleDeveloper {
		return forbidden(p, "managing schedules needs a developer or admin key")
	}
	return nil
}

// manageSchedule is scheduleFor for the changes requireScheduleManager guards.
func (s *server) manageSchedule(c echo.Context) (client.ScheduleClient, Schedule, error) {
	if err := requireScheduleManager(c); err != nil {
		return nil, Schedule{}, err
	}
	return s.scheduleFor(c, ferry.PermExecute)
}

func (s *server) scheduleFor(c echo.Context, perm ferry.Permission) (client.ScheduleClient, Schedule, error) {
	sc, err := s.schedules()
	if err != nil {
		return nil, Schedule{}, err
	}
	sch, err := s.describe(c.Request().Context(), sc, c.Param("name"))
	if err != nil {
		return nil, Schedule{}, err
	}
	return sc, sch, s.requireTarget(c, sch.Target, perm)
}

func (s *server) getSchedule(c echo.Context) error {
	_, sch, err := s.scheduleFor(c, ferry.PermRead)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sch)
}

func (s *server) listSchedules(c echo.Context) error {
	sc, err := s.schedules()
	if err != nil {
		return err
	}
	if err := s.require(c, "*", ferry.PermRead); err != nil {
		return err
	}
	out, err := s.allSchedules(c.Request().Context(), sc)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"schedules": out, "next_cursor": ""})
}

// allSchedules lists Ferry's schedules as Temporal's list shows them.
func (s *server) allSchedules(ctx context.Context, sc client.ScheduleClient) ([]Schedule, error) {
	it, err := sc.List(ctx, client.ScheduleListOptions{PageSize: 100})
	if err != nil {
		return nil, s.temporalErr(err, "schedules")
	}
	out := []Schedule{}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, s.temporalErr(err, "schedules")
		}
		if !strings.HasPrefix(e.ID, schedulePrefix) {
			continue
		}
		var sch Schedule
		if e.Memo != nil {
			if p, ok := e.Memo.Fields[scheduleMemoKey]; ok {
				_ = converter.GetDefaultDataConverter().FromPayload(p, &sch)
			}
		}
		sch.Name, sch.Paused, sch.NextRuns = strings.TrimPrefix(e.ID, schedulePrefix), e.Paused, e.NextActionTimes
		out = append(out, sch)
	}
	return out, nil
}

// deleteSchedulesOf deletes the schedules of a deleted function (and of no
// other function that took its name since). Firings check the function's
// identity as well, so a schedule this misses (Temporal's list lags, or the
// process died first) refuses to run and pauses itself.
func (s *server) deleteSchedulesOf(ctx context.Context, function string, id uuid.UUID) {
	sc, err := s.schedules()
	if err != nil {
		return
	}
	all, err := s.allSchedules(ctx, sc)
	if err != nil {
		s.Logger.Warn("listing the schedules of a deleted function", "function", function, "err", err)
		return
	}
	for _, sch := range all {
		t := sch.Target
		if t.Function != function || t.FunctionID != nil && *t.FunctionID != id {
			continue
		}
		if err := sc.GetHandle(ctx, schedulePrefix+sch.Name).Delete(ctx); err != nil {
			s.Logger.Warn("deleting a schedule of a deleted function", "function", function, "schedule", sch.Name, "err", err)
			continue
		}
		s.Logger.Info("schedule of a deleted function deleted", "function", function, "schedule", sch.Name)
	}
}

func (s *server) deleteSchedule(c echo.Context) error {
	sc, sch, err := s.manageSchedule(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := sc.GetHandle(ctx, schedulePrefix+sch.Name).Delete(ctx); err != nil {
		return s.temporalErr(err, "schedule "+sch.Name)
	}
	s.Logger.Info("schedule deleted", "schedule", sch.Name, "request_id", requestIDOf(c))
	return c.NoContent(http.StatusNoContent)
}

func (s *server) pauseSchedule(c echo.Context) error  { return s.setPaused(c, true) }
func (s *server) resumeSchedule(c echo.Context) error { return s.setPaused(c, false) }
func (s *server) setPaused(c echo.Context, paused bool) error {
	sc, sch, err := s.manageSchedule(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	h := sc.GetHandle(ctx, schedulePrefix+sch.Name)
	note := "resumed over the API"
	if paused {
		note = "paused over the API"
		err = h.Pause(ctx, client.SchedulePauseOptions{Note: note})
	} else {
		err = h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: note})
	}
	if err != nil {
		return s.temporalErr(err, "schedule "+sch.Name)
	}
	out, err := s.describe(ctx, sc, sch.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// triggerSchedule runs the schedule's target now (the overlap policy applies).
func (s *server) triggerSchedule(c echo.Context) error {
	sc, sch, err := s.scheduleFor(c, ferry.PermExecute)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := sc.GetHandle(ctx, schedulePrefix+sch.Name).Trigger(ctx, client.ScheduleTriggerOptions{
		Overlap: overlapPolicies[sch.Overlap]}); err != nil {
		return s.temporalErr(err, "schedule "+sch.Name)
	}
	return c.JSON(http.StatusAccepted, map[string]any{"name": sch.Name, "triggered": true})
}

type backfillRequest struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// backfillSchedule runs the firings the schedule would have had in [start, end).
func (s *server) backfillSchedule(c echo.Context) error {
	var req backfillRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Start.IsZero() || req.End.IsZero() || !req.End.After(req.Start) {
		return ferry.Errorf(ferry.EINVALID, "start, end: need RFC 3339 times with start before end")
	}
	sc, sch, err := s.manageSchedule(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	err = sc.GetHandle(ctx, schedulePrefix+sch.Name).Backfill(ctx, client.ScheduleBackfillOptions{
		Backfill: []client.ScheduleBackfill{{Start: req.Start, End: req.End, Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL}}})
	if err != nil {
		return s.temporalErr(err, "schedule "+sch.Name)
	}
	return c.JSON(http.StatusAccepted, map[string]any{"name": sch.Name, "start": req.Start, "end": req.End})
}

// scheduleRoutes adds the schedule routes (listed in routes.go).
func (s *server) scheduleRoutes(e *echo.Echo, auth, body echo.MiddlewareFunc) {
	e.POST("/v1/schedules", s.createSchedule, auth, body)
	e.GET("/v1/schedules", s.listSchedules, auth)
	e.GET("/v1/schedules/:name", s.getSchedule, auth)
	e.DELETE("/v1/schedules/:name", s.deleteSchedule, auth)
	e.POST("/v1/schedules/:name/pause", s.pauseSchedule, auth, body)
	e.POST("/v1/schedules/:name/resume", s.resumeSchedule, auth, body)
	e.POST("/v1/schedules/:name/trigger", s.triggerSchedule, auth, body)
	e.POST("/v1/schedules/:name/backfill", s.backfillSchedule, auth, body)
}
