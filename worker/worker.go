// Package worker wires Ferry's workflows and activities into a Temporal worker.
package worker

import (
	"time"

	"github.com/ferry-faas/ferry/activities"
	"github.com/ferry-faas/ferry/workflows"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
)

// DrainTimeout is how long Stop waits for running invocations to finish before
// handing them back to Temporal, which retries them on another worker.
const DrainTimeout = 30 * time.Second

// New returns a worker polling taskQueue with every Ferry workflow and activity
// registered once. Start it with Start and stop it with Stop (graceful drain).
func New(c client.Client, taskQueue string, invocations *activities.Invocations, chains *activities.Chains) worker.Worker {
	w := worker.New(c, taskQueue, worker.Options{
		// Cancellations reach a running activity through heartbeat replies;
		// a short throttle makes cancel take about a second, not 30.
		MaxHeartbeatThrottleInterval:     time.Second,
		DefaultHeartbeatThrottleInterval: time.Second,
		WorkerStopTimeout:                DrainTimeout,
	})
	workflows.Register(w)
	w.RegisterActivity(invocations)
	w.RegisterActivity(chains)
	return w
}
