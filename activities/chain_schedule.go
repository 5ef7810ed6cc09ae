package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// Target kinds of a schedule.
const (
	TargetFunction = "function"
	TargetChain    = "chain"
)

// ScheduleIDPrefix prefixes a schedule's name in its Temporal schedule id.
const ScheduleIDPrefix = "ferry-schedule-"

// ScheduleStore is what CreateScheduledRun needs besides ChainStore (*postgres.DB).
type ScheduleStore interface {
	GetChainVersion(ctx context.Context, name string, version int) (ferry.ChainVersion, error)
	CreateChainRun(ctx context.Context, r ferry.ChainRun) (ferry.ChainRun, bool, error)
	GetChainRun(ctx context.Context, id uuid.UUID) (ferry.ChainRun, error)
	KeyByID(ctx context.Context, id uuid.UUID) (ferry.APIKey, error)
}

// SchedulePauser reaches a schedule to pause it (client.ScheduleClient is
// one); nil leaves refused schedules running.
type SchedulePauser interface {
	GetHandle(ctx context.Context, scheduleID string) client.ScheduleHandle
}

// ScheduledRunInput is what a schedule starts: one run of a function or chain.
type ScheduledRunInput struct {
	Schedule string `json:"schedule"`
	Kind     string `json:"kind"` // function or chain
	Target   string `json:"target"`
	Version  int    `json:"version,omitempty"` // 0: latest when the schedule fires
	// Alias, for a function target, picks the version when the schedule fires.
	Alias   string          `json:"alias,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
	// Owner is the API key that created the schedule: a firing after its
	// revocation does not run the target. Nil for schedules older than owners.
	Owner uuid.UUID `json:"owner,omitempty"`
	// FunctionID is the identity of the target function when the schedule was
	// created: a firing never runs another function of the same name. Nil for
	// chain targets and schedules older than function identities.
	FunctionID uuid.UUID `json:"function_id,omitempty"`
}

// ScheduledRunRecord is the record created for one firing.
type ScheduledRunRecord struct {
	ID     uuid.UUID `json:"id"`
	Invoke *RunInput `json:"invoke,omitempty"` // function target
	// Chain target: the stored definition to run.
	Chain        string       `json:"chain,omitempty"`
	ChainVersion int          `json:"chain_version,omitempty"`
	Steps        []ferry.Step `json:"steps,omitempty"`
	// Final is set when the record already finished (a retried firing).
	Final bool `json:"final,omitempty"`
}

// CreateScheduledRun records the invocation or chain run of one schedule
// firing. Its id derives from the firing's workflow id, so a retry finds the
// same record instead of creating a second one. The firing's first attempt
// decides whether the target runs at all (see refusal).
func (a *Chains) CreateScheduledRun(ctx context.Context, in ScheduledRunInput) (ScheduledRunRecord, error) {
	store := a.ScheduleStore
	if store == nil {
		return ScheduledRunRecord{}, temporal.NewNonRetryableApplicationError("schedule firings are unavailable: no schedule store", ferry.ErrTypeInternal, nil)
	}
	wfID := activity.GetInfo(ctx).WorkflowExecution.ID
	id := uuid.NewSHA1(uuid.NameSpaceURL, []byte("ferry-schedule:"+wfID))
	notFound := func(err error) error {
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			return temporal.NewNonRetryableApplicationError(ferry.ErrorMessage(err), ferry.ErrTypeFunctionNotFound, nil)
		}
		return err
	}
	switch in.Kind {
	case TargetFunction:
		inv, err := a.Store.GetInvocation(ctx, id)
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			v, reason, verr := a.refusal(ctx, store, in, id)
			switch {
			case verr != nil:
				return ScheduledRunRecord{}, notFound(verr)
			case reason != "":
				return a.refuse(ctx, in, id, reason)
			}
			inv, _, err = a.Store.CreateInvocation(ctx, ferry.Invocation{ID: id, Function: v.Function,
				FunctionID: v.FunctionID, Version: v.Version,
				Status: ferry.StatusPending, Event: in.Payload, WorkflowID: id.String(), CreatedAt: time.Now()})
		}
		if err != nil || inv.Status.Final() {
			return ScheduledRunRecord{ID: id, Final: true}, err
		}
		// The record pins the function's identity: InvokeFunction refuses another
		// function that took the name since.
		v, err := a.Store.GetVersion(ctx, inv.Function, inv.Version)
		if err != nil {
			return ScheduledRunRecord{}, notFound(err)
		}
		return ScheduledRunRecord{ID: id, Invoke: &RunInput{InvocationID: id, Function: v.Function,
			FunctionID: inv.FunctionID, Version: v.Version, Event: inv.Event, AcceptedAt: inv.CreatedAt, TimeoutSeconds: v.Limits.TimeoutSeconds,
			Retries: v.Limits.Retries}}, nil
	case TargetChain:
		run, err := store.GetChainRun(ctx, id)
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			_, reason, rerr := a.refusal(ctx, store, in, id)
			switch {
			case rerr != nil:
				return ScheduledRunRecord{}, rerr
			case reason != "":
				return a.refuse(ctx, in, id, reason)
			}
			cv, cerr := store.GetChainVersion(ctx, in.Target, in.Version)
			if cerr != nil {
				return ScheduledRunRecord{}, notFound(cerr)
			}
			run, _, err = store.CreateChainRun(ctx, ferry.ChainRun{ID: id, Chain: cv.Chain, ChainID: cv.ChainID, Version: cv.Version,
				Input: in.Payload, WorkflowID: id.String(), IdempotencyKey: "schedule:" + wfID})
		}
		if err != nil || run.Status.Final() {
			return ScheduledRunRecord{ID: id, Final: true}, err
		}
		cv, err := store.GetChainVersion(ctx, run.Chain, run.Version)
		if err != nil {
			return ScheduledRunRecord{}, notFound(err)
		}
		return ScheduledRunRecord{ID: run.ID, Chain: cv.Chain, ChainVersion: cv.Version, Steps: cv.Steps}, nil
	}
	return ScheduledRunRecord{}, temporal.NewNonRetryableApplicationError("unknown schedule target kind "+in.Kind, ferry.ErrTypeInvalidTarget, nil)
}

// refusal says why a firing must not run its target, or "": the key that
// created the schedule is revoked, or the function it was created for was
// deleted (whatever now has its name is another function). For a function
// target it also returns the version to run (an alias's pick for the firing id).
func (a *Chains) refusal(ctx context.Context, store ScheduleStore, in ScheduledRunInput, id uuid.UUID) (ferry.Version, string, error) {
	if in.Owner != uuid.Nil {
		k, err := store.KeyByID(ctx, in.Owner)
		switch {
		case ferry.ErrorCode(err) == ferry.ENOTFOUND:
			return ferry.Version{}, fmt.Sprintf("schedule %q was not run: the API key %s that created it no longer exists; the schedule is paused", in.Schedule, in.Owner), nil
		case err != nil:
			return ferry.Version{}, "", err
		case k.RevokedAt != nil:
			return ferry.Version{}, fmt.Sprintf("schedule %q was not run: the API key %s (%s) that created it was revoked; the schedule is paused", in.Schedule, k.Prefix, k.ID), nil
		}
	}
	if in.Kind != TargetFunction {
		return ferry.Version{}, "", nil
	}
	var v ferry.Version
	var err error
	if in.Alias != "" {
		// Drawn from the firing's record id: a retried firing picks the same.
		v, _, err = a.Store.ResolveAlias(ctx, in.Target, in.Alias, ferry.AliasDraw(id.String()))
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			if f, ferr := a.Store.GetVersion(ctx, in.Target, 0); ferr == nil && (in.FunctionID == uuid.Nil || f.FunctionID == in.FunctionID) {
				return ferry.Version{}, fmt.Sprintf("schedule %q was not run: %s; the schedule is paused", in.Schedule, ferry.ErrorMessage(err)), nil
			}
		}
	} else {
		v, err = a.Store.GetVersion(ctx, in.Target, in.Version)
	}
	if in.FunctionID != uuid.Nil && (ferry.ErrorCode(err) == ferry.ENOTFOUND || err == nil && v.FunctionID != in.FunctionID) {
		return ferry.Version{}, fmt.Sprintf("schedule %q was not run: the function %q (id %s) it was created for was deleted; a function created later under that name is another one; the schedule is paused",
			in.Schedule, in.Target, in.FunctionID), nil
	}
	return v, "", err
}

// refuse records the firing as a failed invocation or chain run that says why
// its target did not run, and pauses the schedule so that it stops firing.
func (a *Chains) refuse(ctx context.Context, in ScheduledRunInput, id uuid.UUID, reason string) (ScheduledRunRecord, error) {
	now := time.Now()
	var err error
	switch in.Kind {
	case TargetFunction:
		_, _, err = a.Store.CreateInvocation(ctx, ferry.Invocation{ID: id, Function: in.Target, FunctionID: in.FunctionID,
			Version: in.Version, Status: ferry.StatusFailed, Event: in.Payload, WorkflowID: id.String(), CreatedAt: now,
			FinishedAt: &now, Error: &ferry.FunctionError{Type: ferry.ErrTypeScheduleRefused, Message: reason}})
	case TargetChain:
		_, _, err = a.ScheduleStore.CreateChainRun(ctx, ferry.ChainRun{ID: id, Chain: in.Target, Version: in.Version,
			Status: ferry.StatusFailed, Input: in.Payload, WorkflowID: id.String(), CreatedAt: now, FinishedAt: &now,
			Error: &ferry.ChainError{Type: ferry.ErrTypeScheduleRefused, Message: reason}})
	}
	if err != nil {
		return ScheduledRunRecord{}, err
	}
	a.Logger.Warn("scheduled run refused", "schedule", in.Schedule, "id", id, "reason", reason)
	if a.Schedules != nil {
		if err := a.Schedules.GetHandle(ctx, ScheduleIDPrefix+in.Schedule).Pause(ctx, client.SchedulePauseOptions{Note: reason}); err != nil {
			a.Logger.Warn("pausing a refused schedule", "schedule", in.Schedule, "err", err)
		}
	}
	return ScheduledRunRecord{ID: id, Final: true}, nil
}
