package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	temporalclient "go.temporal.io/sdk/client"
	temporalworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// benchCommand measures Ferry's hot path against the bare Temporal baseline on
// the same server, so that the ratio says what Ferry itself costs.
func benchCommand() *cobra.Command {
	bench := &cobra.Command{Use: "bench", Short: "Measure invocation latency and throughput"}
	var (
		n, warmup    int
		concurrency  []int
		function     string
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
			cfg, err := LoadConfig(os.Getenv)
			if err != nil {
				return err
			}
			hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			if len(targets) > 0 {
				return benchTargets(ctx, cmd.OutOrStdout(), hc, targets, function, n, warmup, rounds, concurrency)
			}
			b := newBenchClient(cfg, hc)
			if function == "" {
				function = "bench-echo"
				if err := b.deployEcho(ctx, function); err != nil {
					return err
				}
			}
			var base *baseline
			if !skipBaseline {
				if base, err = startBaseline(ctx, cfg, nil); err != nil {
					return err
				}
				defer base.close()
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "| target | concurrency | n | p50 ms | p95 ms | p99 ms | req/s | errors |\n|---|---|---|---|---|---|---|---|\n")
			for _, c := range concurrency {
				ferryRes := runLoad(ctx, n, warmup, c, func(ctx context.Context) error { return b.invoke(ctx, function) })
				fmt.Fprintln(out, ferryRes.row("ferry sync invoke", c))
				if base != nil {
					baseRes := runLoad(ctx, n, warmup, c, base.run)
					fmt.Fprintln(out, baseRes.row("temporal baseline", c))
					fmt.Fprintf(out, "| ratio ferry/baseline | %d | | p50 %.2f× | | p99 %.2f× | throughput %.2f× | |\n", c,
						ferryRes.p(50)/baseRes.p(50), ferryRes.p(99)/baseRes.p(99), ferryRes.rate()/baseRes.rate())
				}
			}
			return nil
		},
	}
	invoke.Flags().IntVarP(&n, "n", "n", 200, "measured invocations per concurrency level")
	invoke.Flags().IntVar(&warmup, "warmup", 20, "unmeasured invocations first")
	invoke.Flags().IntSliceVarP(&concurrency, "concurrency", "c", []int{1, 16}, "concurrency levels")
	invoke.Flags().StringVar(&function, "function", "", "existing function to invoke (default: deploy bench-echo)")
	invoke.Flags().BoolVar(&skipBaseline, "no-baseline", false, "skip the bare Temporal baseline")
	invoke.Flags().StringArrayVar(&targets, "target", nil, "NAME=URL[,API_KEY]: compare Ferry endpoints instead of the baseline, interleaved (repeat the flag; the key defaults to FERRY_API_KEY)")
	invoke.Flags().IntVar(&rounds, "rounds", 4, "with --target: rounds per concurrency level, each running n/rounds invocations on every target in turn")
	bench.AddCommand(invoke, benchChainCommand())
	return bench
}

// benchTargets measures several Ferry endpoints (e.g. a node of a cluster and a
// `ferry server` on the dev stack) in one run: at each concurrency level every
// round runs n/rounds invocations on each target in turn, so that a change in
// the machine's load hits every target alike.
func benchTargets(ctx context.Context, out io.Writer, hc *http.Client, specs []string, function string, n, warmup, rounds int, concurrency []int) error {
	type target struct {
		name string
		b    *benchClient
	}
	var ts []target
	for _, spec := range specs {
		name, rest, ok := strings.Cut(spec, "=")
		if !ok || name == "" || rest == "" {
			return fmt.Errorf("--target %q: want NAME=URL[,API_KEY]", spec)
		}
		url, key, _ := strings.Cut(rest, ",")
		if key == "" {
			key = os.Getenv("FERRY_API_KEY")
		}
		b := &benchClient{url: strings.TrimRight(url, "/"), key: key, http: hc}
		if function == "" {
			if err := b.deployEcho(ctx, "bench-echo"); err != nil && !strings.Contains(err.Error(), "409") {
				return fmt.Errorf("target %s: %w", name, err)
			}
		}
		ts = append(ts, target{name, b})
	}
	if function == "" {
		function = "bench-echo"
	}
	rounds = max(rounds, 1)
	fmt.Fprintf(out, "| target | concurrency | n | p50 ms | p95 ms | p99 ms | req/s | errors |\n|---|---|---|---|---|---|---|---|\n")
	for _, c := range concurrency {
		res := make([]loadResult, len(ts))
		for r := range rounds {
			for i, t := range ts {
				w := 0
				if r == 0 {
					w = warmup
				}
				res[i] = res[i].merge(runLoad(ctx, max(n/rounds, c), w, c, func(ctx context.Context) error { return t.b.invoke(ctx, function) }))
			}
		}
		for i, t := range ts {
			fmt.Fprintln(out, res[i].row(t.name, c))
		}
		for i := 1; i < len(ts); i++ {
			fmt.Fprintf(out, "| ratio %s/%s | %d | | p50 %.2f× | | p99 %.2f× | throughput %.2f× | |\n", ts[i].name, ts[0].name, c,
				res[i].p(50)/res[0].p(50), res[i].p(99)/res[0].p(99), res[i].rate()/res[0].rate())
		}
	}
	return nil
}

// merge adds another run's measurements (the elapsed times add up, so the
// rate is over the time spent on this target only).
func (r loadResult) merge(o loadResult) loadResult {
	r.lat = append(r.lat, o.lat...)
	slices.Sort(r.lat)
	r.elapsed += o.elapsed
	r.errors += o.errors
	if r.first == nil {
		r.first = o.first
	}
	return r
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

type loadResult struct {
	lat     []time.Duration
	elapsed time.Duration
	errors  int
	first   error
}

func (r loadResult) p(q int) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	i := min(len(r.lat)-1, len(r.lat)*q/100)
	return float64(r.lat[i].Microseconds()) / 1000
}

func (r loadResult) rate() float64 { return float64(len(r.lat)) / r.elapsed.Seconds() }

func (r loadResult) row(name string, c int) string {
	s := fmt.Sprintf("| %s | %d | %d | %.1f | %.1f | %.1f | %.0f | %d |", name, c, len(r.lat)+r.errors, r.p(50), r.p(95), r.p(99), r.rate(), r.errors)
	if r.first != nil {
		s += " first error: " + r.first.Error()
	}
	return s
}

// runLoad calls op n times from c goroutines, after warmup unmeasured calls at
// the same concurrency (so that every warm container the load needs exists).
func runLoad(ctx context.Context, n, warmup, c int, op func(context.Context) error) loadResult {
	if warmup > 0 {
		runLoad(ctx, max(warmup, c), 0, c, op)
	}
	var (
		mu  sync.Mutex
		res loadResult
		wg  sync.WaitGroup
	)
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	began := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				t := time.Now()
				err := op(ctx)
				d := time.Since(t)
				mu.Lock()
				if err != nil {
					res.errors++
					if res.first == nil {
						res.first = err
					}
				} else {
					res.lat = append(res.lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(began)
	slices.Sort(res.lat)
	return res
}

type benchClient struct {
	url, key string
	http     *http.Client
}

// newBenchClient talks to FERRY_URL (default: the configured listen address)
// with FERRY_API_KEY.
func newBenchClient(cfg Config, hc *http.Client) *benchClient {
	return &benchClient{url: strings.TrimRight(envOr("FERRY_URL", "http://"+cfg.Listen), "/"), key: os.Getenv("FERRY_API_KEY"), http: hc}
}

func (b *benchClient) do(ctx context.Context, method, path string, body any) ([]byte, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, b.url+path, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+b.key)
	resp, err := b.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return out, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(out))
	}
	return out, err
}

func (b *benchClient) deployEcho(ctx context.Context, name string) error {
	code := base64.StdEncoding.EncodeToString([]byte("def handler(event, context):\n    return event\n"))
	_, err := b.do(ctx, http.MethodPost, "/v1/functions", map[string]any{
		"name": name, "runtime": "python", "handler": "echo.handler", "filename": "echo.py", "code": code,
		"timeout_seconds": 10, "max_concurrency": 16,
	})
	return err
}

func (b *benchClient) invoke(ctx context.Context, name string) error {
	return b.runCompleted(ctx, "/v1/functions/"+name+"/invoke", "invocation")
}

func (b *benchClient) runChain(ctx context.Context, name string) error {
	return b.runCompleted(ctx, "/v1/chains/"+name+"/invoke", "chain run")
}

// runCompleted posts a sync invoke to path and fails unless the invocation or
// chain run (what) it returns completed.
func (b *benchClient) runCompleted(ctx context.Context, path, what string) error {
	out, err := b.do(ctx, http.MethodPost, path, map[string]any{"hello": "bench"})
	if err != nil {
		return err
	}
	var rec struct{ Status string }
	if err := json.Unmarshal(out, &rec); err != nil {
		return err
	}
	if rec.Status != "completed" {
		return fmt.Errorf("%s %s: %s", what, rec.Status, out)
	}
	return nil
}

// baseline is the smallest useful Temporal workflow: eager start and one no-op
// local activity, with the client and worker in this process.
type baseline struct {
	client temporalclient.Client
	worker temporalworker.Worker
	queue  string
}

// startBaseline starts a worker of FerryBenchBaseline and the extra workflows,
// by name, on a task queue of its own.
func startBaseline(ctx context.Context, cfg Config, extra map[string]any) (*baseline, error) {
	c, err := dialTemporal(ctx, cfg, newLogger())
	if err != nil {
		return nil, err
	}
	b := &baseline{client: c, queue: "ferry-bench-" + uuid.NewString()[:8]}
	b.worker = temporalworker.New(c, b.queue, temporalworker.Options{})
	b.worker.RegisterWorkflowWithOptions(baselineWorkflow, workflow.RegisterOptions{Name: "FerryBenchBaseline"})
	for name, wf := range extra {
		b.worker.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: name})
	}
	if err := b.worker.Start(); err != nil {
		c.Close()
		return nil, err
	}
	return b, nil
}

func baselineWorkflow(ctx workflow.Context) error {
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 10 * time.Second})
	return workflow.ExecuteLocalActivity(ctx, func(context.Context) error { return nil }).Get(ctx, nil)
}

func (b *baseline) run(ctx context.Context) error { return b.execute(ctx, "FerryBenchBaseline") }

// execute runs one workflow of workflowType with eager start and waits for it.
func (b *baseline) execute(ctx context.Context, workflowType string, args ...any) error {
	run, err := b.client.ExecuteWorkflow(ctx, temporalclient.StartWorkflowOptions{
		ID: "bench-" + uuid.NewString(), TaskQueue: b.queue, EnableEagerStart: true,
	}, workflowType, args...)
	if err != nil {
		return err
	}
	return run.Get(ctx, nil)
}

func (b *baseline) close() {
	b.worker.Stop()
	b.client.Close()
}
