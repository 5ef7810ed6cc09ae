package activities

import (
	"context"
	"encoding/json"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// Target kinds of a schedule.
const (
	TargetFunction = "function"
	TargetChain    = "chain"
)

// ScheduleStore is what CreateScheduledRun needs besides ChainStore.
type ScheduleStore interface {
	GetChainVersion(ctx context.Context, name string, version int) (ferry.ChainVersion, error)
	CreateChainRun(ctx context.Context, r ferry.ChainRun) (ferry.ChainRun, bool, error)
}

// ScheduledRunInput is what a schedule starts: one run of a function or chain.
type ScheduledRunInput struct {
	Schedule string          `json:"schedule"`
	Kind     string          `json:"kind"` // function or chain
	Target   string          `json:"target"`
	Version  int             `json:"version,omitempty"` // 0: latest when the schedule fires
	Payload  json.RawMessage `json:"payload,omitempty"`
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
// same record instead of creating a second one.
func (a *Chains) CreateScheduledRun(ctx context.Context, in ScheduledRunInput) (ScheduledRunRecord, error) {
	store, ok := a.Store.(ScheduleStore)
	if !ok {
		return ScheduledRunRecord{}, temporal.NewNonRetryableApplicationError("store cannot record chain runs", "Internal", nil)
	}
	wfID := activity.GetInfo(ctx).WorkflowExecution.ID
	id := uuid.NewSHA1(uuid.NameSpaceURL, []byte("ferry-schedule:"+wfID))
	notFound := func(err error) error {
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			return temporal.NewNonRetryableApplicationError(ferry.ErrorMessage(err), ErrTypeStepNotFound, nil)
		}
		return err
	}
	switch in.Kind {
	case TargetFunction:
		v, err := a.Store.GetVersion(ctx, in.Target, in.Version)
		if err != nil {
			return ScheduledRunRecord{}, notFound(err)
		}
		inv, err := a.Store.GetInvocation(ctx, id)
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			inv, _, err = a.Store.CreateInvocation(ctx, ferry.Invocation{ID: id, Function: v.Function,
				FunctionID: v.FunctionID, Version: v.Version,
				Status: ferry.StatusPending, Event: in.Payload, WorkflowID: id.String(), CreatedAt: time.Now()})
		}
		if err != nil {
			return ScheduledRunRecord{}, err
		}
		if inv.Version != v.Version {
			if v, err = a.Store.GetVersion(ctx, inv.Function, inv.Version); err != nil {
				return ScheduledRunRecord{}, notFound(err)
			}
		}
		return ScheduledRunRecord{ID: id, Final: inv.Status.Final(), Invoke: &RunInput{InvocationID: id, Function: v.Function,
			FunctionID: inv.FunctionID, Version: v.Version, Event: inv.Event, AcceptedAt: inv.CreatedAt, TimeoutSeconds: v.Limits.TimeoutSeconds,
			Retries: v.Limits.Retries}}, nil
	case TargetChain:
		cv, err := store.GetChainVersion(ctx, in.Target, in.Version)
		if err != nil {
			return ScheduledRunRecord{}, notFound(err)
		}
		run, _, err := store.CreateChainRun(ctx, ferry.ChainRun{ID: id, Chain: cv.Chain, Version: cv.Version,
			Input: in.Payload, WorkflowID: id.String(), IdempotencyKey: "schedule:" + wfID})
		if err != nil {
			return ScheduledRunRecord{}, err
		}
		if run.Version != cv.Version {
			if cv, err = store.GetChainVersion(ctx, run.Chain, run.Version); err != nil {
				return ScheduledRunRecord{}, notFound(err)
			}
		}
		return ScheduledRunRecord{ID: run.ID, Final: run.Status.Final(), Chain: cv.Chain, ChainVersion: cv.Version, Steps: cv.Steps}, nil
	}
	return ScheduledRunRecord{}, temporal.NewNonRetryableApplicationError("unknown schedule target kind "+in.Kind, "InvalidTarget", nil)
}
