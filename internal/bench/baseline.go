package bench

import (
	"context"
	"time"

	"github.com/google/uuid"
	temporalclient "go.temporal.io/sdk/client"
	temporalworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Baseline is the smallest useful Temporal workflow: eager start and one
// no-op local activity, with the client and worker in this process.
type Baseline struct {
	client temporalclient.Client
	worker temporalworker.Worker
	queue  string
}

// StartBaseline starts a worker of the baseline workflows on a task queue of
// its own; Close stops it (not the client, which stays the caller's).
func StartBaseline(c temporalclient.Client) (*Baseline, error) {
	b := &Baseline{client: c, queue: "ferry-bench-" + uuid.NewString()[:8]}
	b.worker = temporalworker.New(c, b.queue, temporalworker.Options{})
	for name, wf := range map[string]any{
		"FerryBenchBaseline": baselineWorkflow, "FerryBenchLocalSteps": localSteps, "FerryBenchChildSteps": childSteps,
	} {
		b.worker.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: name})
	}
	if err := b.worker.Start(); err != nil {
		return nil, err
	}
	return b, nil
}

func baselineWorkflow(ctx workflow.Context) error {
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 10 * time.Second})
	return workflow.ExecuteLocalActivity(ctx, func(context.Context) error { return nil }).Get(ctx, nil)
}

// localSteps runs steps no-op local activities one after the other (how
// RunChain runs function steps).
func localSteps(ctx workflow.Context, steps int) error {
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 10 * time.Second})
	for range steps {
		if err := workflow.ExecuteLocalActivity(ctx, func(context.Context) error { return nil }).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// childSteps runs each step as a child workflow with one local activity
// (the alternative: one InvokeFunction child per step).
func childSteps(ctx workflow.Context, steps int) error {
	for range steps {
		if err := workflow.ExecuteChildWorkflow(ctx, "FerryBenchBaseline").Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// Run runs one baseline workflow and waits for it.
func (b *Baseline) Run(ctx context.Context) error { return b.execute(ctx, "FerryBenchBaseline") }

// execute runs one workflow of workflowType with eager start and waits for it.
func (b *Baseline) execute(ctx context.Context, workflowType string, args ...any) error {
	run, err := b.client.ExecuteWorkflow(ctx, temporalclient.StartWorkflowOptions{
		ID: "bench-" + uuid.NewString(), TaskQueue: b.queue, EnableEagerStart: true,
	}, workflowType, args...)
	if err != nil {
		return err
	}
	return run.Get(ctx, nil)
}

// Close stops the baseline's worker.
func (b *Baseline) Close() { b.worker.Stop() }
