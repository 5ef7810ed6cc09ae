package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	dockerclient "github.com/docker/docker/client"
	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/activities"
	"github.com/ferry-faas/ferry/api"
	"github.com/ferry-faas/ferry/bundle"
	"github.com/ferry-faas/ferry/console"
	"github.com/ferry-faas/ferry/internal/temporalsetup"
	"github.com/ferry-faas/ferry/metrics"
	"github.com/ferry-faas/ferry/reconcile"
	"github.com/ferry-faas/ferry/runtimes"
	"github.com/ferry-faas/ferry/secrets"
	"github.com/ferry-faas/ferry/storage/postgres"
	"github.com/ferry-faas/ferry/storage/s3"
	"github.com/ferry-faas/ferry/worker"
	"github.com/ferry-faas/ferry/workflows"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	temporalclient "go.temporal.io/sdk/client"
	temporallog "go.temporal.io/sdk/log"
	temporalworker "go.temporal.io/sdk/worker"
)

// roles says which halves of Ferry a process runs: `ferry server` runs both
// (and then gets eager workflow start), `ferry api` and `ferry worker` one each.
type roles struct{ api, worker bool }

// app is one running Ferry process with everything it owns.
type app struct {
	cfg      Config
	log      *slog.Logger
	db       *postgres.DB
	objects  *s3.Store
	temporal temporalclient.Client
	executor *runtimes.Executor
	worker   temporalworker.Worker
	// reconciler closes records whose workflow ended without writing them;
	// stopReconcile ends its sweeps and waits for them (worker role).
	reconciler    *reconcile.Reconciler
	stopReconcile func()
	http          *echo.Echo
	listener      net.Listener
	// metrics serves /metrics on its own listener, for API and worker processes.
	metrics         prometheus.Gatherer
	metricsListener net.Listener
	// AdminKey is set when this start created the first admin key.
	AdminKey string
}

// start connects to every dependency, applies migrations and starts the
// worker; serve then answers HTTP. On error, what was started is closed.
func start(ctx context.Context, cfg Config, r roles, log *slog.Logger) (_ *app, err error) {
	a := &app{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.close(context.WithoutCancel(ctx))
		}
	}()
	if a.db, err = postgres.Open(ctx, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	if err = a.db.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	keys, err := cfg.keyring()
	if err != nil {
		return nil, err
	}
	vault := &secrets.Vault{Store: a.db, Keys: keys}
	// A missing or wrong key is found now, not by the first invocation.
	if err = vault.Check(ctx); err != nil {
		return nil, err
	}
	if n, err := vault.Rotate(ctx); err != nil {
		return nil, fmt.Errorf("re-encrypting secrets with the new FERRY_SECRETS_KEY: %w", err)
	} else if n > 0 {
		log.Info("secrets re-encrypted with the current key: the old keys may be removed from FERRY_SECRETS_OLD_KEYS", "secrets", n, "key_id", keys.CurrentID())
	}
	a.objects, err = s3.New(ctx, s3.Config{Endpoint: cfg.S3Endpoint, AccessKey: cfg.S3AccessKey,
		SecretKey: cfg.S3SecretKey, Bucket: cfg.S3Bucket, Secure: cfg.S3Secure, MaxCodeSize: int64(cfg.MaxCodeMB) << 20})
	if err != nil {
		return nil, err
	}
	if a.temporal, err = dialTemporal(ctx, cfg, log); err != nil {
		return nil, err
	}
	// A fresh Temporal server (docker compose, a cluster) needs no setup job.
	if err = temporalsetup.Ensure(ctx, a.temporal, cfg.TemporalNamespace, time.Minute, log,
		workflows.AttrFunction, workflows.AttrRuntime, workflows.AttrStatus); err != nil {
		return nil, ferry.Wrap(err, ferry.EUNAVAILABLE, "Temporal at %s: %v", cfg.TemporalAddress, err)
	}
	reg := metrics.NewRegistry()
	m := metrics.New(reg)
	a.metrics = reg
	if a.metricsListener, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
		return nil, ferry.Wrap(err, ferry.EINVALID, "FERRY_METRICS_LISTEN=%s: %v", cfg.MetricsListen, err)
	}
	var completions *activities.Completions
	a.reconciler = &reconcile.Reconciler{Store: a.db, Temporal: a.temporal, Objects: a.objects, Logger: log}

	ready := map[string]func(context.Context) error{
		"postgres": a.db.Ping,
		"s3":       a.objects.Ping,
		"temporal": func(ctx context.Context) error {
			_, err := a.temporal.CheckHealth(ctx, &temporalclient.CheckHealthRequest{})
			return err
		},
	}
	if r.worker {
		completions = &activities.Completions{}
		docker, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
		if err != nil {
			return nil, ferry.Wrap(err, ferry.EUNAVAILABLE, "docker: %v", err)
		}
		a.executor, err = runtimes.NewExecutor(ctx, docker, runtimes.Config{DataDir: cfg.DataDir,
			IdleTimeout: cfg.IdleTimeout, MaxContainers: cfg.MaxContainers, MaxBuilds: cfg.MaxBuilds, Logger: log})
		if err != nil {
			return nil, err
		}
		ready["docker"] = a.executor.Ping
		m.RegisterPool(func() (int, int) { s := a.executor.Stats(); return s.Total, s.Busy })
		codeRoot, err := filepath.Abs(filepath.Join(cfg.DataDir, "code"))
		if err != nil {
			return nil, err
		}
		invocations := &activities.Invocations{
			Store:    a.db,
			Objects:  a.objects,
			Executor: a.executor,
			Code: &activities.CodeCache{Root: codeRoot, Objects: a.objects, Builder: a.executor, Unpack: bundle.UnpackFor,
				MaxBytes: int64(cfg.CodeCacheMB) << 20, Logger: log,
				// A folder stays while a warm container or a running invocation may mount it.
				KeepFor: cfg.IdleTimeout + time.Duration(ferry.MaxLimits.TimeoutSeconds)*time.Second + 5*time.Minute},
			Observer:        activities.Observers{m, completions},
			Secrets:         vault,
			Logs:            a.db,
			Logger:          log,
			Durable:         a.db,
			Keys:            a.db,
			CallbackBaseURL: cfg.PublicURL,
		}
		chains := &activities.Chains{Store: a.db, ScheduleStore: a.db, Objects: a.objects, Invocations: invocations, Logger: log,
			Schedules: a.temporal.ScheduleClient()}
		a.worker = worker.New(a.temporal, cfg.TaskQueue, invocations, chains)
		if err = a.worker.Start(); err != nil {
			return nil, ferry.Wrap(err, ferry.EUNAVAILABLE, "start Temporal worker: %v", err)
		}
		rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		a.stopReconcile = func() { stop(); <-done } // no sweep may outlive the database pool
		go func() { defer close(done); a.reconciler.Run(rctx) }()
	}
	if r.api {
		if a.AdminKey, err = api.EnsureAdminKey(ctx, a.db, cfg.AdminKey); err != nil {
			return nil, err
		}
		deps := api.Deps{
			Store:        a.db,
			Chains:       a.db,
			Code:         a.objects,
			Temporal:     a.temporal,
			Schedules:    a.temporal.ScheduleClient(),
			Queries:      a.temporal,
			Durable:      a.db,
			Signals:      a.temporal,
			TaskQueue:    cfg.TaskQueue,
			Ready:        ready,
			Metrics:      m,
			Logger:       log,
			MaxBodyBytes: int64(cfg.MaxBodyMB) << 20,
			MaxCodeBytes: int64(cfg.MaxCodeMB) << 20,
			Reconcile:    a.reconciler.Reconcile,
		}
		if keys.Configured() {
			deps.Vault = vault
		}
		if completions != nil { // not a nil pointer in a non-nil interface
			deps.Completions = completions
		}
		a.http = api.New(deps)
		// The console calls the API in-process; it is routed beside the API,
		// not through any middleware of an invocation's route.
		var pool func() (int, int)
		if a.executor != nil {
			pool = func() (int, int) { s := a.executor.Stats(); return s.Total, s.Busy }
		}
		cons := echo.WrapHandler(console.New(console.Deps{API: a.http, Stats: a.db, TemporalUI: cfg.TemporalUIURL,
			TemporalNamespace: cfg.TemporalNamespace, Pool: pool, Queue: a.describeQueue, Logger: log}))
		a.http.Any(console.Prefix, cons)
		a.http.Any(console.Prefix+"/*", cons)
		if a.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, ferry.Wrap(err, ferry.EINVALID, "FERRY_LISTEN=%s: %v", cfg.Listen, err)
		}
	}
	return a, nil
}

// describeQueue reports the task queue's backlog and polling workers per
// kind of task, for the console's health page.
func (a *app) describeQueue(ctx context.Context) (console.TaskQueue, error) {
	q := console.TaskQueue{Name: a.cfg.TaskQueue}
	for _, kind := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
		res, err := a.temporal.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
			Namespace: a.cfg.TemporalNamespace, TaskQueue: &taskqueuepb.TaskQueue{Name: a.cfg.TaskQueue},
			TaskQueueType: kind, ReportStats: true})
		if err != nil {
			return q, err
		}
		k := console.TaskQueueKind{Kind: strings.ToLower(strings.TrimPrefix(kind.String(), "TASK_QUEUE_TYPE_"))}
		if st := res.GetStats(); st != nil {
			k.Backlog, k.BacklogAge = st.GetApproximateBacklogCount(), st.GetApproximateBacklogAge().AsDuration()
		}
		for _, p := range res.GetPollers() {
			k.Workers = append(k.Workers, console.Worker{Identity: p.GetIdentity(), LastSeen: p.GetLastAccessTime().AsTime()})
		}
		q.Kinds = append(q.Kinds, k)
	}
	return q, nil
}

// dialTemporal connects, waiting a little for a Temporal that is still starting.
func dialTemporal(ctx context.Context, cfg Config, log *slog.Logger) (temporalclient.Client, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := temporalclient.DialContext(ctx, temporalclient.Options{
			HostPort:  cfg.TemporalAddress,
			Namespace: cfg.TemporalNamespace,
			Logger:    temporallog.NewStructuredLogger(log.With("component", "temporal")),
		})
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, ferry.Wrap(err, ferry.EUNAVAILABLE, "Temporal at %s (FERRY_TEMPORAL_ADDRESS): %v", cfg.TemporalAddress, err)
		}
		log.Info("waiting for Temporal", "address", cfg.TemporalAddress, "err", err)
		time.Sleep(time.Second)
	}
}

// URL is the API's base URL once start has listened.
func (a *app) URL() string { return "http://" + a.listener.Addr().String() }

// MetricsURL is the address of /metrics once start has listened.
func (a *app) MetricsURL() string { return "http://" + a.metricsListener.Addr().String() + "/metrics" }

// serve answers HTTP (the API for the api role, /metrics always) until ctx is
// done, then shuts down gracefully.
func (a *app) serve(ctx context.Context) error {
	type server struct {
		*http.Server
		l net.Listener
	}
	servers := []server{{&http.Server{Handler: metrics.Handler(a.metrics), ReadHeaderTimeout: 10 * time.Second}, a.metricsListener}}
	if a.http != nil {
		servers = append(servers, server{&http.Server{Handler: a.http, ReadHeaderTimeout: 10 * time.Second}, a.listener})
	}
	errc := make(chan error, len(servers))
	for _, s := range servers {
		go func() { errc <- s.Serve(s.l) }()
	}
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), worker.DrainTimeout)
	defer cancel()
	for _, s := range servers {
		if serr := s.Shutdown(sctx); serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}
	return err
}

// close stops the worker (draining running invocations) and releases everything.
func (a *app) close(ctx context.Context) {
	if a.stopReconcile != nil {
		a.stopReconcile()
	}
	if a.worker != nil {
		a.worker.Stop()
	}
	if a.executor != nil {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := a.executor.Close(cctx); err != nil {
			a.log.Warn("close executor", "err", err)
		}
		cancel()
	}
	if a.temporal != nil {
		a.temporal.Close()
	}
	if a.db != nil {
		a.db.Close()
	}
	if a.listener != nil && a.http == nil {
		a.listener.Close()
	}
	if a.metricsListener != nil {
		a.metricsListener.Close() // already closed once served
	}
}

// newLogger is the process logger: JSON on a pipe, text on a terminal.
func newLogger() *slog.Logger {
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, nil))
}
