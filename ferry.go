// Package ferry holds Ferry's domain types. Every other package depends on it;
// it depends on nothing of Ferry's.
package ferry

import (
	"encoding/json"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Runtime names a language runtime.
type Runtime string

const (
	RuntimePython Runtime = "python"
	RuntimeNode   Runtime = "nodejs"
	RuntimeGo     Runtime = "go"
)

// Runtimes lists the supported runtimes, in the order docs show them.
var Runtimes = []Runtime{RuntimePython, RuntimeNode, RuntimeGo}

// Valid reports whether r is a supported runtime.
func (r Runtime) Valid() bool {
	for _, x := range Runtimes {
		if r == x {
			return true
		}
	}
	return false
}

// Limits are the resources and behaviour a function version runs with.
type Limits struct {
	TimeoutSeconds int     `json:"timeout_seconds"`
	MemoryMB       int     `json:"memory_mb"`
	CPUs           float64 `json:"cpus"`
	MaxConcurrency int     `json:"max_concurrency"`
	Network        bool    `json:"network"`
	Retries        int     `json:"retries"`
}

// Defaults and bounds for Limits (docs/API.md lists them); Validate checks
// against them.
var (
	DefaultLimits = Limits{TimeoutSeconds: 30, MemoryMB: 128, CPUs: 0.5, MaxConcurrency: 10}
	MinLimits     = Limits{TimeoutSeconds: 1, MemoryMB: 32, CPUs: 0.01, MaxConcurrency: 1}
	MaxLimits     = Limits{TimeoutSeconds: 900, MemoryMB: 4096, CPUs: 4, MaxConcurrency: 100, Retries: 10}
)

// Validate checks every limit against MinLimits and MaxLimits; a zero field
// stands for its default. The lower bounds are what the engine can enforce:
// Docker turns cpus into a CFS quota per 100 ms period, Linux refuses a quota
// under 1 ms (cpus 0.01) and one that rounds to 0 means no limit at all; the
// runtimes need more memory than Docker's minimum of 6 MB to start.
func (l Limits) Validate() error {
	lo, hi, def := MinLimits, MaxLimits, DefaultLimits
	switch {
	case l.TimeoutSeconds != 0 && (l.TimeoutSeconds < lo.TimeoutSeconds || l.TimeoutSeconds > hi.TimeoutSeconds):
		return Errorf(EINVALID, "timeout_seconds: must be between %d and %d (0 for the default %d), not %d",
			lo.TimeoutSeconds, hi.TimeoutSeconds, def.TimeoutSeconds, l.TimeoutSeconds)
	case l.MemoryMB != 0 && (l.MemoryMB < lo.MemoryMB || l.MemoryMB > hi.MemoryMB):
		return Errorf(EINVALID, "memory_mb: must be between %d and %d (0 for the default %d), not %d",
			lo.MemoryMB, hi.MemoryMB, def.MemoryMB, l.MemoryMB)
	case math.IsNaN(l.CPUs) || math.IsInf(l.CPUs, 0):
		return Errorf(EINVALID, "cpus: must be a finite number, not %v", l.CPUs)
	case l.CPUs != 0 && (l.CPUs < lo.CPUs || l.CPUs > hi.CPUs):
		return Errorf(EINVALID, "cpus: must be between %g and %g (0 for the default %g), not %g",
			lo.CPUs, hi.CPUs, def.CPUs, l.CPUs)
	case l.MaxConcurrency != 0 && (l.MaxConcurrency < lo.MaxConcurrency || l.MaxConcurrency > hi.MaxConcurrency):
		return Errorf(EINVALID, "max_concurrency: must be between %d and %d (0 for the default %d), not %d",
			lo.MaxConcurrency, hi.MaxConcurrency, def.MaxConcurrency, l.MaxConcurrency)
	case l.Retries < 0 || l.Retries > hi.Retries:
		return Errorf(EINVALID, "retries: must be between 0 and %d, not %d", hi.Retries, l.Retries)
	}
	return nil
}

// WithDefaults returns l with zero fields set to DefaultLimits.
func (l Limits) WithDefaults() Limits {
	if l.TimeoutSeconds == 0 {
		l.TimeoutSeconds = DefaultLimits.TimeoutSeconds
	}
	if l.MemoryMB == 0 {
		l.MemoryMB = DefaultLimits.MemoryMB
	}
	if l.CPUs == 0 {
		l.CPUs = DefaultLimits.CPUs
	}
	if l.MaxConcurrency == 0 {
		l.MaxConcurrency = DefaultLimits.MaxConcurrency
	}
	return l
}

// MaxJSONDepth is how deep any JSON Ferry accepts may nest: request bodies and
// events at the API, events and results in every runner. Depth counts the
// arrays and objects open at once: a scalar is 0, [] is 1, {"a":[1]} is 2.
const MaxJSONDepth = 512

// MaxVersion is the largest version number of a function or a chain (a
// PostgreSQL integer); inputs naming a larger one are refused at the edge.
const MaxVersion = 1<<31 - 1

// Function is a named, versioned function. Its versions are immutable.
type Function struct {
	// ID is the function's identity: new on every create, never reused. A
	// function deleted and created again under its name is another function.
	ID            uuid.UUID `json:"id"`
	Name          string    `json:"name"`
	Description   string    `json:"description"`
	LatestVersion int       `json:"latest_version"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Version is one immutable deployment of a function.
type Version struct {
	FunctionID  uuid.UUID         `json:"function_id"` // Function.ID
	Function    string            `json:"name"`
	Version     int               `json:"version"`
	Runtime     Runtime           `json:"runtime"`
	Handler     string            `json:"handler"`
	Checksum    string            `json:"checksum"` // sha256 hex of the code bundle
	CodeSize    int64             `json:"code_size"`
	CodeKey     string            `json:"-"` // object key in the code store
	Limits      Limits            `json:"limits"`
	Env         map[string]string `json:"env"`
	Description string            `json:"description"`
	CreatedAt   time.Time         `json:"created_at"`
	Secrets     []string          `json:"secrets"` // names of the secrets it reads, as env vars of those names
}

// InvocationStatus is the lifecycle state of an invocation.
type InvocationStatus string

const (
	StatusPending   InvocationStatus = "pending"
	StatusRunning   InvocationStatus = "running"
	StatusWaiting   InvocationStatus = "waiting" // durable: suspended in a wait or callback, no container held
	StatusCompleted InvocationStatus = "completed"
	StatusFailed    InvocationStatus = "failed"
	StatusTimeout   InvocationStatus = "timeout"
	StatusCancelled InvocationStatus = "cancelled"
)

// Final reports whether s is a terminal status.
func (s InvocationStatus) Final() bool {
	return s != StatusPending && s != StatusRunning && s != StatusWaiting && s != ""
}

// Valid reports whether s is a known status.
func (s InvocationStatus) Valid() bool {
	switch s {
	case StatusPending, StatusRunning, StatusWaiting, StatusCompleted, StatusFailed, StatusTimeout, StatusCancelled:
		return true
	}
	return false
}

// FunctionError describes a failure of the user's code (or of its run).
type FunctionError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
}

// Metrics are measured by the executor for one invocation.
type Metrics struct {
	DurationMS float64 `json:"duration_ms"` // handler execution
	InitMS     float64 `json:"init_ms"`     // container start + handler load (cold only)
	QueueMS    float64 `json:"queue_ms"`    // accepted until execution began
	TotalMS    float64 `json:"total_ms"`    // accepted until recorded
	Cold       bool    `json:"cold"`
	MemoryPeak int64   `json:"memory_peak"` // bytes
	CPUTimeMS  float64 `json:"cpu_time_ms"`
}

// Invocation is one run of a function version.
type Invocation struct {
	ID       uuid.UUID `json:"id"`
	Function string    `json:"function"`
	// FunctionID is the identity of the function invoked (Function.ID); nil for
	// records older than function identities.
	FunctionID     uuid.UUID        `json:"function_id"`
	Version        int              `json:"version"`
	Status         InvocationStatus `json:"status"`
	Event          json.RawMessage  `json:"event,omitempty"`
	Result         json.RawMessage  `json:"result,omitempty"`
	Error          *FunctionError   `json:"error,omitempty"`
	Metrics        *Metrics         `json:"metrics,omitempty"`
	IdempotencyKey string           `json:"idempotency_key,omitempty"`
	// RequestHash identifies what was asked with IdempotencyKey (target version
	// and event), so that a key reused for another request is refused.
	RequestHash string     `json:"-"`
	RetryOf     *uuid.UUID `json:"retry_of,omitempty"`
	ChainRunID  *uuid.UUID `json:"chain_run_id,omitempty"`
	WorkflowID  string     `json:"workflow_id"`
	RunID       string     `json:"run_id,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	// Attempts counts the starts of the function: 1 normally, more after a
	// retry the function asked for or a re-execution after its worker died.
	Attempts int `json:"attempts"`
}

// Outcome is the final state of an invocation, as its record keeps it.
type Outcome struct {
	Status     InvocationStatus
	Result     json.RawMessage
	Error      *FunctionError
	Metrics    *Metrics
	Logs       string
	FinishedAt time.Time
}

// LogChunk is a piece of a running invocation's output, stored by the worker
// as it comes so that followers of its logs see it.
type LogChunk struct {
	Seq    int64     // order of storage, over all streams
	Stream uuid.UUID // one run of the function (an attempt)
	Offset int       // bytes of the stream's output before Text
	Text   string
}

// InvocationFilter narrows a listing of invocations; zero fields match everything.
type InvocationFilter struct {
	Function string
	// FunctionID, when set, keeps only invocations of that function identity
	// (not those of a function deleted before it under the same name).
	FunctionID *uuid.UUID
	Status     InvocationStatus
	ChainRunID *uuid.UUID
	// Since and Until keep invocations created at or after Since and before
	// Until; zero times do not bound.
	Since, Until time.Time
}

// IdempotencyKeyLifetime is how long an Idempotency-Key names one invocation or
// chain run; after it the key may be used again for a new one.
const IdempotencyKeyLifetime = 24 * time.Hour

// Role is an API key's role.
type Role string

const (
	RoleAdmin     Role = "admin"     // everything, including keys
	RoleDeveloper Role = "developer" // deploy, read, invoke
	RoleInvoker   Role = "invoker"   // read and invoke only
)

// Permission is a per-function grant to a key.
type Permission string

const (
	PermRead    Permission = "read"
	PermWrite   Permission = "write"
	PermExecute Permission = "execute"
	PermAdmin   Permission = "admin"
)

// Allows says whether a key of role r holds perm on a function, given its
// grants on that function (read only when the role alone does not decide).
// Admins may do everything and developers read everything; otherwise a grant
// of perm or admin is needed, and an invoker's write and admin grants count
// for nothing.
func (r Role) Allows(perm Permission, grants func() ([]Permission, error)) (bool, error) {
	switch r {
	case RoleAdmin:
		return true, nil
	case RoleDeveloper:
		if perm == PermRead {
			return true, nil
		}
	case RoleInvoker:
		if perm != PermRead && perm != PermExecute {
			return false, nil
		}
	default:
		return false, nil
	}
	perms, err := grants()
	if err != nil {
		return false, err
	}
	held := func(x Permission) bool {
		return slices.Contains(perms, x) && (r != RoleInvoker || x == PermRead || x == PermExecute)
	}
	return held(perm) || held(PermAdmin) || perm == PermRead && slices.ContainsFunc(perms, held), nil
}

// APIKey is a stored key; the secret itself is never stored, only its hash.
type APIKey struct {
	ID         uuid.UUID  `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"` // first characters of the key, shown to identify it
	Role       Role       `json:"role"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// Page asks for one page of a listing. Cursor is opaque, from a previous page.
type Page struct {
	Limit  int
	Cursor string
}

// Viewer limits a listing to what one API key may read, in the query itself, so
// that pages are full and a cursor never names a row the key may not see. The
// zero Viewer reads everything (admin and developer keys, grants on "*").
type Viewer struct {
	// KeyID, when set, restricts the listing to functions on which this key
	// holds one of Grants, directly or through "*".
	KeyID  uuid.UUID
	Grants []Permission
}
