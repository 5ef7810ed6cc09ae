package bench

import (
	"context"
	"fmt"
	"io"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/client"
)

// EchoFunction is the function the benchmarks deploy: Python, returning its event.
const EchoFunction = "bench-echo"

var benchEvent = []byte(`{"hello": "bench"}`)

// DeployEcho deploys EchoFunction under name.
func DeployEcho(ctx context.Context, c *client.Client, name string) error {
	_, err := c.Deploy(ctx, client.Deploy{Name: name, Runtime: ferry.RuntimePython, Handler: "echo.handler",
		Filename: "echo.py", Code: []byte("def handler(event, context):\n    return event\n"),
		Limits: ferry.Limits{TimeoutSeconds: 10, MaxConcurrency: 16}})
	return err
}

// Invoke sync-invokes the function name once and fails unless it completed.
func Invoke(ctx context.Context, c *client.Client, name string) error {
	inv, err := c.Invoke(ctx, name, benchEvent, client.Invoke{})
	if err == nil && inv.Status != ferry.StatusCompleted {
		err = fmt.Errorf("invocation %s %s: %+v", inv.ID, inv.Status, inv.Error)
	}
	return err
}

// RunChain sync-runs the chain name once and fails unless it completed.
func RunChain(ctx context.Context, c *client.Client, name string) error {
	run, err := c.RunChain(ctx, name, benchEvent, client.Invoke{})
	if err == nil && run.Status != ferry.StatusCompleted {
		err = fmt.Errorf("chain run %s %s: %+v", run.ID, run.Status, run.Error)
	}
	return err
}

// InvokeOptions are the parameters of InvokeTable.
type InvokeOptions struct {
	Function    string // invoked as it is
	N, Warmup   int
	Concurrency []int
	Baseline    *Baseline // nil: no comparison
}

// InvokeTable writes, per concurrency level, the latency and throughput of
// sync invokes of o.Function and, with a baseline, of the bare Temporal
// workflow under the same load, and their ratio (Markdown).
func InvokeTable(ctx context.Context, out io.Writer, c *client.Client, o InvokeOptions) {
	fmt.Fprintf(out, "| target | concurrency | n | p50 ms | p95 ms | p99 ms | req/s | errors |\n|---|---|---|---|---|---|---|---|\n")
	for _, conc := range o.Concurrency {
		ferryRes := Load(ctx, o.N, o.Warmup, conc, func(ctx context.Context) error { return Invoke(ctx, c, o.Function) })
		fmt.Fprintln(out, ferryRes.Row("ferry sync invoke", conc))
		if o.Baseline != nil {
			baseRes := Load(ctx, o.N, o.Warmup, conc, o.Baseline.Run)
			fmt.Fprintln(out, baseRes.Row("temporal baseline", conc))
			fmt.Fprintf(out, "| ratio ferry/baseline | %d | | p50 %.2f× | | p99 %.2f× | throughput %.2f× | |\n", conc,
				ferryRes.P(50)/baseRes.P(50), ferryRes.P(99)/baseRes.P(99), ferryRes.Rate()/baseRes.Rate())
		}
	}
}

// ChainOptions are the parameters of ChainTable.
type ChainOptions struct {
	N, Warmup, Steps int
	Baseline         *Baseline // nil: no comparison
}

// ChainTable deploys EchoFunction and a chain bench-chain of o.Steps echo
// steps, then writes the latency of single invokes, of chain runs and the
// per-hop overhead; with a baseline, also that of the two ways Temporal runs
// steps (local activities in one workflow, one child workflow per step).
func ChainTable(ctx context.Context, out io.Writer, c *client.Client, o ChainOptions) error {
	if err := DeployEcho(ctx, c, EchoFunction); err != nil {
		return err
	}
	steps := make([]ferry.Step, o.Steps)
	for i := range steps {
		steps[i] = ferry.Step{Function: EchoFunction}
	}
	if _, err := c.DeployChain(ctx, "bench-chain", "", steps); err != nil {
		return err
	}
	one := Load(ctx, o.N, o.Warmup, 1, func(ctx context.Context) error { return Invoke(ctx, c, EchoFunction) })
	all := Load(ctx, o.N, o.Warmup, 1, func(ctx context.Context) error { return RunChain(ctx, c, "bench-chain") })
	fmt.Fprintf(out, "| target | n | p50 ms | p95 ms | p99 ms | errors |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(out, "| single sync invoke | %d | %.1f | %.1f | %.1f | %d |\n", o.N, one.P(50), one.P(95), one.P(99), one.Errors)
	fmt.Fprintf(out, "| %d-step chain, sync | %d | %.1f | %.1f | %.1f | %d |\n", o.Steps, o.N, all.P(50), all.P(95), all.P(99), all.Errors)
	fmt.Fprintf(out, "\nper-hop overhead (p50): (%.1f - %d × %.1f) / %d = %.1f ms\n", all.P(50), o.Steps, one.P(50), o.Steps-1,
		(all.P(50)-float64(o.Steps)*one.P(50))/float64(o.Steps-1))
	b := o.Baseline
	if b == nil {
		return nil
	}
	single := Load(ctx, o.N, o.Warmup, 1, b.Run)
	local := Load(ctx, o.N, o.Warmup, 1, func(ctx context.Context) error { return b.execute(ctx, "FerryBenchLocalSteps", o.Steps) })
	child := Load(ctx, o.N, o.Warmup, 1, func(ctx context.Context) error { return b.execute(ctx, "FerryBenchChildSteps", o.Steps) })
	fmt.Fprintf(out, "\nTemporal alone (no-op steps): | shape | p50 ms | p99 ms | per-hop p50 ms |\n|---|---|---|---|\n")
	fmt.Fprintf(out, "| 1 local activity | %.1f | %.1f | |\n", single.P(50), single.P(99))
	for _, r := range []struct {
		name string
		res  Result
	}{{fmt.Sprintf("%d local activities in one workflow", o.Steps), local}, {fmt.Sprintf("%d child workflows", o.Steps), child}} {
		fmt.Fprintf(out, "| %s | %.1f | %.1f | %.1f |\n", r.name, r.res.P(50), r.res.P(99), (r.res.P(50)-single.P(50))/float64(o.Steps-1))
	}
	return nil
}

// Target is one Ferry endpoint of TargetsTable.
type Target struct {
	Name   string
	Client *client.Client
}

// TargetsTable measures several Ferry endpoints (e.g. a node of a cluster and
// a `ferry server` on the dev stack) in one run: at each concurrency level
// every round runs N/rounds invocations on each target in turn, so that a
// change in the machine's load hits every target alike. o.Function "" deploys
// EchoFunction on every target (one that exists already is used as it is).
func TargetsTable(ctx context.Context, out io.Writer, ts []Target, o InvokeOptions, rounds int) error {
	if o.Function == "" {
		for _, t := range ts {
			if err := DeployEcho(ctx, t.Client, EchoFunction); err != nil && ferry.ErrorCode(err) != ferry.ECONFLICT {
				return fmt.Errorf("target %s: %w", t.Name, err)
			}
		}
		o.Function = EchoFunction
	}
	rounds = max(rounds, 1)
	fmt.Fprintf(out, "| target | concurrency | n | p50 ms | p95 ms | p99 ms | req/s | errors |\n|---|---|---|---|---|---|---|---|\n")
	for _, conc := range o.Concurrency {
		res := make([]Result, len(ts))
		for r := range rounds {
			for i, t := range ts {
				w := 0
				if r == 0 {
					w = o.Warmup
				}
				res[i] = res[i].Merge(Load(ctx, max(o.N/rounds, conc), w, conc, func(ctx context.Context) error { return Invoke(ctx, t.Client, o.Function) }))
			}
		}
		for i, t := range ts {
			fmt.Fprintln(out, res[i].Row(t.Name, conc))
		}
		for i := 1; i < len(ts); i++ {
			fmt.Fprintf(out, "| ratio %s/%s | %d | | p50 %.2f× | | p99 %.2f× | throughput %.2f× | |\n", ts[i].Name, ts[0].Name, conc,
				res[i].P(50)/res[0].P(50), res[i].P(99)/res[0].P(99), res[i].Rate()/res[0].Rate())
		}
	}
	return nil
}
