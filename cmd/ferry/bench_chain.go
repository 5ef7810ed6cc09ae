package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/workflow"
)

// benchChainCommand measures the per-hop overhead of a chain: a warm chain of
// `steps` echo functions against single warm invokes of the same function.
func benchChainCommand() *cobra.Command {
	var n, warmup, steps int
	var skipBaseline bool
	cmd := &cobra.Command{
		Use:   "chain",
		Short: "Per-hop overhead of a warm chain of echo functions over the REST API",
		Long: `Deploys the Python echo function bench-echo and a chain bench-chain of --steps echo steps,
warms both up, then runs N sync invokes of the function and N sync runs of the chain
(FERRY_URL, FERRY_API_KEY). Per-hop overhead = (chain p50 - steps × invoke p50) / (steps - 1).
The Temporal baseline (FERRY_TEMPORAL_ADDRESS) compares the two ways to run steps:
local activities inside one workflow versus one child workflow per step.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := LoadConfig(os.Getenv)
			if err != nil {
				return err
			}
			b := newBenchClient(cfg, &http.Client{Timeout: 120 * time.Second})
			if err := b.deployEcho(ctx, "bench-echo"); err != nil {
				return err
			}
			def := make([]map[string]any, steps)
			for i := range def {
				def[i] = map[string]any{"function": "bench-echo"}
			}
			if _, err := b.do(ctx, http.MethodPost, "/v1/chains", map[string]any{"name": "bench-chain", "steps": def}); err != nil {
				return err
			}
			invoke := func(ctx context.Context) error { return b.invoke(ctx, "bench-echo") }
			chain := func(ctx context.Context) error { return b.runChain(ctx, "bench-chain") }
			one := runLoad(ctx, n, warmup, 1, invoke)
			all := runLoad(ctx, n, warmup, 1, chain)
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "| target | n | p50 ms | p95 ms | p99 ms | errors |\n|---|---|---|---|---|---|\n")
			fmt.Fprintf(out, "| single sync invoke | %d | %.1f | %.1f | %.1f | %d |\n", n, one.p(50), one.p(95), one.p(99), one.errors)
			fmt.Fprintf(out, "| %d-step chain, sync | %d | %.1f | %.1f | %.1f | %d |\n", steps, n, all.p(50), all.p(95), all.p(99), all.errors)
			fmt.Fprintf(out, "\nper-hop overhead (p50): (%.1f - %d × %.1f) / %d = %.1f ms\n", all.p(50), steps, one.p(50), steps-1,
				(all.p(50)-float64(steps)*one.p(50))/float64(steps-1))
			if skipBaseline {
				return nil
			}
			base, err := startBaseline(ctx, cfg, map[string]any{
				"FerryBenchLocalSteps": benchLocalSteps, "FerryBenchChildSteps": benchChildSteps})
			if err != nil {
				return err
			}
			defer base.close()
			single := runLoad(ctx, n, warmup, 1, base.run)
			local := runLoad(ctx, n, warmup, 1, func(ctx context.Context) error { return base.execute(ctx, "FerryBenchLocalSteps", steps) })
			child := runLoad(ctx, n, warmup, 1, func(ctx context.Context) error { return base.execute(ctx, "FerryBenchChildSteps", steps) })
			fmt.Fprintf(out, "\nTemporal alone (no-op steps): | shape | p50 ms | p99 ms | per-hop p50 ms |\n|---|---|---|---|\n")
			fmt.Fprintf(out, "| 1 local activity | %.1f | %.1f | |\n", single.p(50), single.p(99))
			for _, r := range []struct {
				name string
				res  loadResult
			}{{fmt.Sprintf("%d local activities in one workflow", steps), local}, {fmt.Sprintf("%d child workflows", steps), child}} {
				fmt.Fprintf(out, "| %s | %.1f | %.1f | %.1f |\n", r.name, r.res.p(50), r.res.p(99), (r.res.p(50)-single.p(50))/float64(steps-1))
			}
			return nil
		},
	}
	cmd.Flags().IntVarP(&n, "n", "n", 50, "measured runs of each")
	cmd.Flags().IntVar(&warmup, "warmup", 5, "unmeasured runs first")
	cmd.Flags().IntVar(&steps, "steps", 10, "steps of the chain")
	cmd.Flags().BoolVar(&skipBaseline, "no-baseline", false, "skip the bare Temporal comparison")
	return cmd
}

// benchLocalSteps runs steps no-op local activities one after the other (how
// RunChain runs function steps).
func benchLocalSteps(ctx workflow.Context, steps int) error {
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 10 * time.Second})
	for range steps {
		if err := workflow.ExecuteLocalActivity(ctx, func(context.Context) error { return nil }).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// benchChildSteps runs each step as a child workflow with one local activity
// (the alternative: one InvokeFunction child per step).
func benchChildSteps(ctx workflow.Context, steps int) error {
	for range steps {
		if err := workflow.ExecuteChildWorkflow(ctx, "FerryBenchBaseline").Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}
