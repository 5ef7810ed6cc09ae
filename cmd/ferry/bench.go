package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	apiclient "github.com/ferry-faas/ferry/client"
	"github.com/ferry-faas/ferry/internal/bench"
)

// benchCommand is `ferry bench`: the flags and the wiring of internal/bench.
func benchCommand() *cobra.Command {
	root := &cobra.Command{Use: "bench", Short: "Measure invocation latency and throughput"}
	var (
		o            bench.InvokeOptions
		skipBaseline bool
		targets      []string
		rounds       int
	)
	invoke := &cobra.Command{
		Use:   "invoke",
		Short: "Sync-invoke a warm echo function over the REST API and compare with a bare Temporal workflow",
		Long: `Deploys a Python echo function (unless --function names an existing one), then for each
concurrency level sends N synchronous invocations through the REST API (FERRY_URL, FERRY_API_KEY)
after a warm-up, and runs the same load as a bare Temporal workflow with eager start and one
no-op local activity against FERRY_TEMPORAL_ADDRESS. Reports p50/p95/p99 latency and throughput.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, cfg, err := benchClient(60 * time.Second)
			if err != nil {
				return err
			}
			if len(targets) > 0 {
				ts, err := benchTargets(c.HTTP, targets)
				if err != nil {
					return err
				}
				return bench.TargetsTable(ctx, cmd.OutOrStdout(), ts, o, rounds)
			}
			if o.Function == "" {
				o.Function = bench.EchoFunction
				if err := bench.DeployEcho(ctx, c, o.Function); err != nil {
					return err
				}
			}
			if !skipBaseline {
				base, stop, err := startBaseline(ctx, cfg)
				if err != nil {
					return err
				}
				defer stop()
				o.Baseline = base
			}
			bench.InvokeTable(ctx, cmd.OutOrStdout(), c, o)
			return nil
		},
	}
	invoke.Flags().IntVarP(&o.N, "n", "n", 200, "measured invocations per concurrency level")
	invoke.Flags().IntVar(&o.Warmup, "warmup", 20, "unmeasured invocations first")
	invoke.Flags().IntSliceVarP(&o.Concurrency, "concurrency", "c", []int{1, 16}, "concurrency levels")
	invoke.Flags().StringVar(&o.Function, "function", "", "existing function to invoke (default: deploy bench-echo)")
	invoke.Flags().BoolVar(&skipBaseline, "no-baseline", false, "skip the bare Temporal baseline")
	invoke.Flags().StringArrayVar(&targets, "target", nil, "NAME=URL[,API_KEY]: compare Ferry endpoints instead of the baseline, interleaved (repeat the flag; the key defaults to FERRY_API_KEY)")
	invoke.Flags().IntVar(&rounds, "rounds", 4, "with --target: rounds per concurrency level, each running n/rounds invocations on every target in turn")
	root.AddCommand(invoke, benchChainCommand())
	return root
}

// benchChainCommand measures the per-hop overhead of a chain: a warm chain of
// `steps` echo functions against single warm invokes of the same function.
func benchChainCommand() *cobra.Command {
	var o bench.ChainOptions
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
			c, cfg, err := benchClient(120 * time.Second)
			if err != nil {
				return err
			}
			if !skipBaseline {
				base, stop, err := startBaseline(ctx, cfg)
				if err != nil {
					return err
				}
				defer stop()
				o.Baseline = base
			}
			return bench.ChainTable(ctx, cmd.OutOrStdout(), c, o)
		},
	}
	cmd.Flags().IntVarP(&o.N, "n", "n", 50, "measured runs of each")
	cmd.Flags().IntVar(&o.Warmup, "warmup", 5, "unmeasured runs first")
	cmd.Flags().IntVar(&o.Steps, "steps", 10, "steps of the chain")
	cmd.Flags().BoolVar(&skipBaseline, "no-baseline", false, "skip the bare Temporal comparison")
	return cmd
}

// benchClient is an API client of FERRY_URL (default: the configured listen
// address) with FERRY_API_KEY, whose requests time out after timeout.
func benchClient(timeout time.Duration) (*apiclient.Client, Config, error) {
	cfg, err := LoadConfig(os.Getenv)
	if err != nil {
		return nil, cfg, err
	}
	url := os.Getenv("FERRY_URL")
	if url == "" {
		url = "http://" + cfg.Listen
	}
	c := apiclient.New(strings.TrimRight(url, "/"), os.Getenv("FERRY_API_KEY"))
	c.HTTP = &http.Client{Timeout: timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	return c, cfg, nil
}

// benchTargets reads the --target flags: NAME=URL[,API_KEY].
func benchTargets(hc *http.Client, specs []string) ([]bench.Target, error) {
	var ts []bench.Target
	for _, spec := range specs {
		name, rest, ok := strings.Cut(spec, "=")
		if !ok || name == "" || rest == "" {
			return nil, fmt.Errorf("--target %q: want NAME=URL[,API_KEY]", spec)
		}
		url, key, _ := strings.Cut(rest, ",")
		if key == "" {
			key = os.Getenv("FERRY_API_KEY")
		}
		c := apiclient.New(strings.TrimRight(url, "/"), key)
		c.HTTP = hc
		ts = append(ts, bench.Target{Name: name, Client: c})
	}
	return ts, nil
}

// startBaseline dials Temporal and starts the bare-Temporal baseline.
func startBaseline(ctx context.Context, cfg Config) (*bench.Baseline, func(), error) {
	tc, err := dialTemporal(ctx, cfg, newLogger())
	if err != nil {
		return nil, nil, err
	}
	b, err := bench.StartBaseline(tc)
	if err != nil {
		tc.Close()
		return nil, nil, err
	}
	return b, func() { b.Close(); tc.Close() }, nil
}
