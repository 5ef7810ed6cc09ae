// Package api is Ferry's REST API (Echo v4): functions, invocations, API keys,
// health and readiness. routes.go lists every route; errors become HTTP
// in one place, httpError in errors.go.
package api

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/metrics"
)

// Store is what the API keeps: functions, invocations and API keys (*postgres.DB).
type Store interface {
	KeyStore
	CreateFunction(ctx context.Context, v ferry.Version, admin uuid.UUID) (ferry.Version, error)
	CreateVersion(ctx context.Context, v ferry.Version) (ferry.Version, error)
	GetFunction(ctx context.Context, name string) (ferry.Function, error)
	ListFunctions(ctx context.Context, v ferry.Viewer, p ferry.Page) ([]ferry.Function, string, error)
	GetVersion(ctx context.Context, name string, version int) (ferry.Version, error)
	ListVersions(ctx context.Context, name string, p ferry.Page) ([]ferry.Version, string, error)
	DeleteFunction(ctx context.Context, name string) (uuid.UUID, []string, error)
	SetAlias(ctx context.Context, function, name string, t ferry.AliasTarget, description string) (ferry.Alias, bool, error)
	GetAlias(ctx context.Context, function, name string) (ferry.Alias, error)
	ListAliases(ctx context.Context, function string) ([]ferry.Alias, error)
	DeleteAlias(ctx context.Context, function, name string) error
	RollbackAlias(ctx context.Context, function, name string) (ferry.Alias, error)
	ResolveAlias(ctx context.Context, function, name string, u float64) (ferry.Version, ferry.Alias, error)
	GetSecret(ctx context.Context, name string) (ferry.Secret, error)
	ListSecrets(ctx context.Context) ([]ferry.Secret, error)
	DeleteSecret(ctx context.Context, name string) error
	CreateInvocation(ctx context.Context, inv ferry.Invocation) (ferry.Invocation, bool, error)
	GetInvocation(ctx context.Context, id uuid.UUID) (ferry.Invocation, error)
	ListInvocations(ctx context.Context, f ferry.InvocationFilter, p ferry.Page) ([]ferry.Invocation, string, error)
	InvocationLogs(ctx context.Context, id uuid.UUID) (string, error)
	FollowLogs(ctx context.Context, id uuid.UUID, after int64) (ferry.InvocationStatus, string, []ferry.LogChunk, error)
	FinishInvocation(ctx context.Context, id uuid.UUID, o ferry.Outcome) (ferry.Invocation, bool, error)
	KeyByHash(ctx context.Context, hash []byte) (ferry.APIKey, error)
	ListKeys(ctx context.Context) ([]ferry.APIKey, error)
	RevokeKey(ctx context.Context, id uuid.UUID) (ferry.APIKey, error)
	Grant(ctx context.Context, keyID uuid.UUID, function string, p ferry.Permission) error
	RevokePermission(ctx context.Context, keyID uuid.UUID, function string, p ferry.Permission) error
	Permissions(ctx context.Context, keyID uuid.UUID, function string) ([]ferry.Permission, error)
}

// CodeStore is the object store of code bundles, and of the chain run payloads
// that the API deletes (*s3.Store).
type CodeStore interface {
	PutCode(ctx context.Context, functionID uuid.UUID, data []byte) (key, checksum string, uploaded bool, err error)
	Delete(ctx context.Context, key string) error
	DeletePrefix(ctx context.Context, prefix string) error
}

// Temporal is the part of the Temporal client the API uses (client.Client).
type Temporal interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
	GetWorkflow(ctx context.Context, workflowID, runID string) client.WorkflowRun
	CancelWorkflow(ctx context.Context, workflowID, runID string) error
}

// Querier asks a running workflow (client.Client is one).
type Querier interface {
	QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (converter.EncodedValue, error)
}

var (
	_ Temporal = (client.Client)(nil)
	_ Querier  = (client.Client)(nil)
)

// Deps are the API's dependencies, filled in by main. An optional dependency
// that is nil is not available: the routes that need it answer 503 (or do
// without it, where that is said).
type Deps struct {
	Store Store
	// Chains keeps chains and their runs. nil: the chain routes, and
	// schedules of chains, answer 503.
	Chains   ChainStore
	Code     CodeStore
	Temporal Temporal // nil: invoke, cancel and retry answer 503
	// Schedules is Temporal's schedule client (client.Client.ScheduleClient).
	// nil: the schedule routes answer 503.
	Schedules client.ScheduleClient
	// Durable reads durable steps and completes callbacks. nil: the steps
	// and callback routes answer 503.
	Durable DurableStore
	// Signals delivers callbacks to waiting invocations (client.Client). nil:
	// a waiting invocation finds its callback's body at the callback's timeout.
	Signals Signaler
	// Queries asks a running chain run's workflow for its progress. nil: a
	// running chain run shows the steps its record has.
	Queries Querier
	// TaskQueue is the Temporal task queue of the workers.
	TaskQueue string
	// Vault seals secret values (nil: setting secrets answers 503).
	Vault Vault
	// Ready are the readiness checks of /readyz by name (postgres, temporal, s3, docker).
	Ready   map[string]func(ctx context.Context) error
	Metrics *metrics.Metrics // served apart from the API, see metrics.Handler
	Logger  *slog.Logger
	// MaxBodyBytes bounds every request body except deploys (default 6 MiB).
	MaxBodyBytes int64
	// MaxCodeBytes bounds a code bundle (default 50 MiB); a JSON deploy may be
	// a third larger for base64.
	MaxCodeBytes int64
	// KeyCacheTTL is how long an API key lookup and a key's permissions are
	// cached (default 10 s): the time a revocation made on another API
	// instance takes to apply.
	KeyCacheTTL time.Duration
	// CancelWait is how long cancel waits for the invocation to end before
	// answering 202 (default 10 s).
	CancelWait time.Duration
	// Completions, when the worker runs in this process, tells sync invokes
	// that their record is final before Temporal reports the workflow's end.
	Completions Completions
	// Reconcile closes the records of a workflow that ended without writing
	// them (reconcile.Reconciler.Reconcile); cancel uses it so that it never
	// answers 202 for a workflow that is gone. nil: not checked.
	Reconcile func(ctx context.Context, workflowID string) (int, error)
}

// Completions is activities.Completions as the API uses it.
type Completions interface {
	Subscribe(id uuid.UUID) (<-chan ferry.Invocation, func())
}

// Defaults for Deps.
const (
	DefaultMaxBodyBytes = 6 << 20
	DefaultMaxCodeBytes = 50 << 20
	DefaultKeyCacheTTL  = 10 * time.Second
	DefaultCancelWait   = 10 * time.Second
)

// server holds the dependencies for the handlers.
type server struct {
	Deps
	auth *authenticator
}

// New returns the API's HTTP handler.
func New(d Deps) *echo.Echo {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if d.MaxCodeBytes <= 0 {
		d.MaxCodeBytes = DefaultMaxCodeBytes
	}
	if d.KeyCacheTTL == 0 {
		d.KeyCacheTTL = DefaultKeyCacheTTL
	}
	if d.CancelWait == 0 {
		d.CancelWait = DefaultCancelWait
	}
	if d.TaskQueue == "" {
		d.TaskQueue = "ferry"
	}
	s := &server{Deps: d, auth: newAuthenticator(d.Store, d.KeyCacheTTL)}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	// A panic in a handler answers 500 (logged with its stack) instead of
	// dropping the connection.
	e.Use(s.requestID, s.accessLog, middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.Logger.Error("handler panicked", "err", err, "stack", string(stack), "request_id", requestIDOf(c))
			return err
		},
	}), checkParams)
	s.routes(e)
	return e
}
