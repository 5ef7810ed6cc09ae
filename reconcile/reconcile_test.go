package reconcile_test

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/activities"
	"github.com/ferry-faas/ferry/internal/testenv"
	"github.com/ferry-faas/ferry/reconcile"
	"github.com/ferry-faas/ferry/storage/postgres/pgtest"
)

// TestSweepClosesRecordsOfEndedWorkflows runs workflows on a task queue that
// no worker polls, ends them from outside as Temporal would (terminate, an
// execution timeout) and checks that a sweep closes their records — the chain
// run's step invocation too — while the record of a running workflow stays.
func TestSweepClosesRecordsOfEndedWorkflows(t *testing.T) {
	db := pgtest.Open(t, pgtest.Name(t, "reconcile"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tc, err := client.DialContext(ctx, client.Options{HostPort: testenv.TemporalAddress,
		Namespace: testenv.Getenv("FERRY_TEMPORAL_NAMESPACE", "default")})
	if err != nil {
		testenv.Unavailable(t, "Temporal", err)
	}
	defer tc.Close()
	queue := "reconcile-test-" + uuid.NewString()
	start := func(id uuid.UUID, typ string, timeout time.Duration) {
		t.Helper()
		_, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id.String(), TaskQueue: queue,
			WorkflowExecutionTimeout: timeout}, typ)
		if err != nil {
			t.Fatal(err)
		}
	}
	invocation := func(id uuid.UUID, wf uuid.UUID, chainRun *uuid.UUID) {
		t.Helper()
		_, _, err := db.CreateInvocation(ctx, ferry.Invocation{ID: id, Function: "f", Version: 1, Status: ferry.StatusPending,
			ChainRunID: chainRun, WorkflowID: wf.String(), CreatedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.StartInvocation(ctx, id, "run", time.Now(), uuid.New(), time.Minute); err != nil {
			t.Fatal(err)
		}
	}

	// A chain run and its running step; its workflow gets terminated.
	chainRun, step := uuid.New(), uuid.New()
	if _, _, err := db.CreateChainRun(ctx, ferry.ChainRun{ID: chainRun, Chain: "c", Version: 1}); err != nil {
		t.Fatal(err)
	}
	invocation(step, chainRun, &chainRun)
	start(chainRun, "RunChain", 0)
	if err := tc.TerminateWorkflow(ctx, chainRun.String(), "", "RecordMarkerCommandAttributes.Details exceeds size limit."); err != nil {
		t.Fatal(err)
	}
	// An invocation whose workflow times out.
	timedOut := uuid.New()
	invocation(timedOut, timedOut, nil)
	start(timedOut, "InvokeFunction", time.Second)
	// An invocation whose workflow never started.
	missing := uuid.New()
	invocation(missing, missing, nil)
	// An invocation whose workflow is still running: it must stay as it is.
	running := uuid.New()
	invocation(running, running, nil)
	start(running, "InvokeFunction", 0)
	defer tc.TerminateWorkflow(context.Background(), running.String(), "", "test done")

	for {
		d, err := tc.DescribeWorkflow(ctx, timedOut.String(), "")
		if err != nil {
			t.Fatal(err)
		}
		if d.RawResponse.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Batch 2 makes the sweeps page through the five records.
	objs := &deletes{}
	r := &reconcile.Reconciler{Store: db, Temporal: tc, Objects: objs, MinAge: time.Nanosecond, Batch: 2}
	closed := 0
	for i := 0; i < 4; i++ {
		n, err := r.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		closed += n
	}
	if closed != 4 {
		t.Errorf("closed %d records, want 4 (chain run, its step, timed out, missing)", closed)
	}

	// The payloads of each closed workflow are deleted; the running one's stay.
	want := map[string]bool{activities.PayloadPrefix(chainRun): true, activities.PayloadPrefix(timedOut): true,
		activities.PayloadPrefix(missing): true}
	got := map[string]bool{}
	for _, p := range objs.prefixes {
		got[p] = true
	}
	if !maps.Equal(got, want) {
		t.Errorf("deleted %v, want %v", objs.prefixes, want)
	}

	run, err := db.GetChainRun(ctx, chainRun)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != ferry.StatusFailed || run.Error == nil || run.Error.Type != ferry.ErrTypeTerminated ||
		!strings.Contains(run.Error.Message, "exceeds size limit") || run.FinishedAt == nil {
		t.Errorf("chain run: %s %+v", run.Status, run.Error)
	}
	for id, want := range map[uuid.UUID]struct {
		status ferry.InvocationStatus
		typ    string
	}{
		step:     {ferry.StatusFailed, ferry.ErrTypeTerminated},
		timedOut: {ferry.StatusTimeout, ferry.ErrTypeTimeout},
		missing:  {ferry.StatusFailed, ferry.ErrTypeWorkflowNotFound},
		running:  {ferry.StatusRunning, ""},
	} {
		inv, err := db.GetInvocation(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		typ := ""
		if inv.Error != nil {
			typ = inv.Error.Type
		}
		if inv.Status != want.status || typ != want.typ || (want.status.Final() != (inv.FinishedAt != nil)) {
			t.Errorf("invocation %s: %s %+v, want %s %s", id, inv.Status, inv.Error, want.status, want.typ)
		}
	}
}

// deletes records the prefixes a Reconciler deletes.
type deletes struct{ prefixes []string }

func (d *deletes) DeletePrefix(_ context.Context, prefix string) error {
	d.prefixes = append(d.prefixes, prefix)
	return nil
}
