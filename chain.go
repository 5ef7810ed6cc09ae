package ferry

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
)

// Step is one step of a chain: exactly one of Function, Parallel or Map is set.
type Step struct {
	// Function runs one function; its input is the previous step's output.
	Function string `json:"function,omitempty"`
	// Version pins the function's version; 0 means the latest at chain start.
	Version int `json:"version,omitempty"`
	// Alias names the function's alias instead (not with Version): it picks
	// the version when the run starts, by the alias's weights.
	Alias string `json:"alias,omitempty"`
	// Parallel runs branches concurrently on the same input; the output is the
	// array of their outputs, in order.
	Parallel []Step `json:"parallel,omitempty"`
	// Map runs its step once per element of the input array, at most
	// MaxConcurrency at a time; the output is the array of results, in order.
	Map            *Step `json:"map,omitempty"`
	MaxConcurrency int   `json:"max_concurrency,omitempty"`
	// WaitSeconds is a durable sleep (a Temporal timer, nothing held while it
	// lasts) of 1 s up to MaxWait; its output is its input.
	WaitSeconds int64 `json:"wait_seconds,omitempty"`

	// Retries and TimeoutSeconds override the function version's limits.
	Retries        int `json:"retries,omitempty"`
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	// OnError is "fail" (default) or "continue": the step's output is then
	// {"error": {type, message}} and the chain goes on.
	OnError string `json:"on_error,omitempty"`
	// Compensate names a function that undoes this (function) step when a later
	// step fails. It gets {"input": ..., "output": ...} of the step.
	Compensate string `json:"compensate,omitempty"`
	// CompensateVersion pins the compensation's version (0: latest at chain start).
	CompensateVersion int `json:"compensate_version,omitempty"`
}

// Step kinds.
const (
	StepFunction = "function"
	StepParallel = "parallel"
	StepMap      = "map"
	StepWait     = "wait"
)

// On-error policies.
const (
	OnErrorFail     = "fail"
	OnErrorContinue = "continue"
)

// Kind returns the step's kind.
func (s Step) Kind() string {
	switch {
	case s.Parallel != nil:
		return StepParallel
	case s.Map != nil:
		return StepMap
	case s.WaitSeconds != 0:
		return StepWait
	default:
		return StepFunction
	}
}

// Bounds of a chain definition.
const (
	MaxChainSteps      = 100 // steps in total, nested ones included
	MaxChainDepth      = 4
	MaxMapConcurrency  = 100
	DefaultMapParallel = 10
	// MaxMapItems bounds the elements that the map steps of one chain run
	// process together, nested maps included: through maps, a run starts at
	// most this many invocations. A map past it fails with MapTooLarge.
	MaxMapItems = 10000
)

var chainFunctionName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// ValidateSteps checks a chain definition. Its errors name the offending step by
// path: steps[1].parallel[0].map.
func ValidateSteps(steps []Step) error {
	if len(steps) == 0 {
		return Errorf(EINVALID, "steps: a chain needs at least one step")
	}
	n := 0
	for i, s := range steps {
		if err := validateStep(s, fmt.Sprintf("steps[%d]", i), 1, &n); err != nil {
			return err
		}
	}
	if n > MaxChainSteps {
		return Errorf(EINVALID, "steps: at most %d steps in total (got %d)", MaxChainSteps, n)
	}
	return nil
}

func validateStep(s Step, path string, depth int, n *int) error {
	*n++
	if depth > MaxChainDepth {
		return Errorf(EINVALID, "%s: steps nest at most %d deep", path, MaxChainDepth)
	}
	kinds := 0
	if s.Function != "" {
		kinds++
	}
	if s.Parallel != nil {
		kinds++
	}
	if s.Map != nil {
		kinds++
	}
	if s.WaitSeconds != 0 {
		kinds++
	}
	if kinds != 1 {
		return Errorf(EINVALID, "%s: a step sets exactly one of function, parallel, map or wait_seconds", path)
	}
	switch s.OnError {
	case "", OnErrorFail, OnErrorContinue:
	default:
		return Errorf(EINVALID, "%s.on_error: must be fail or continue (got %q)", path, s.OnError)
	}
	if s.Retries < 0 || s.Retries > MaxLimits.Retries {
		return Errorf(EINVALID, "%s.retries: must be between 0 and %d", path, MaxLimits.Retries)
	}
	if s.TimeoutSeconds < 0 || s.TimeoutSeconds > MaxLimits.TimeoutSeconds {
		return Errorf(EINVALID, "%s.timeout_seconds: must be between 1 and %d", path, MaxLimits.TimeoutSeconds)
	}
	if s.Kind() != StepFunction {
		switch {
		case s.Version != 0:
			return Errorf(EINVALID, "%s.version: only function steps have a version", path)
		case s.Alias != "":
			return Errorf(EINVALID, "%s.alias: only function steps have an alias", path)
		case s.Compensate != "":
			return Errorf(EINVALID, "%s.compensate: only function steps can be compensated", path)
		case s.Retries != 0 || s.TimeoutSeconds != 0:
			return Errorf(EINVALID, "%s: retries and timeout_seconds belong on function steps", path)
		}
	}
	if s.Kind() != StepMap && s.MaxConcurrency != 0 {
		return Errorf(EINVALID, "%s.max_concurrency: only map steps have max_concurrency", path)
	}
	switch s.Kind() {
	case StepFunction:
		if !chainFunctionName.MatchString(s.Function) {
			return Errorf(EINVALID, "%s.function: not a valid function name (%q)", path, s.Function)
		}
		if s.Version < 0 || s.Version > MaxVersion {
			return Errorf(EINVALID, "%s.version: must be between 1 and %d (0 or none for the latest)", path, MaxVersion)
		}
		if s.Alias != "" {
			if s.Version != 0 {
				return Errorf(EINVALID, "%s: set version or alias, not both", path)
			}
			if err := ValidateAliasName(path+".alias", s.Alias); err != nil {
				return err
			}
		}
		if s.Compensate != "" && !chainFunctionName.MatchString(s.Compensate) {
			return Errorf(EINVALID, "%s.compensate: not a valid function name (%q)", path, s.Compensate)
		}
		if s.CompensateVersion != 0 && (s.Compensate == "" || s.CompensateVersion < 0 || s.CompensateVersion > MaxVersion) {
			return Errorf(EINVALID, "%s.compensate_version: needs compensate and a version between 1 and %d", path, MaxVersion)
		}
	case StepParallel:
		if len(s.Parallel) == 0 {
			return Errorf(EINVALID, "%s.parallel: needs at least one branch", path)
		}
		for i, b := range s.Parallel {
			if err := validateStep(b, fmt.Sprintf("%s.parallel[%d]", path, i), depth+1, n); err != nil {
				return err
			}
		}
	case StepWait:
		if s.WaitSeconds < 1 || s.WaitSeconds > int64(MaxWait/time.Second) {
			return Errorf(EINVALID, "%s.wait_seconds: must be between 1 and %d (%d days)", path, int64(MaxWait/time.Second), int(MaxWait.Hours()/24))
		}
		if s.OnError != "" {
			return Errorf(EINVALID, "%s.on_error: a wait step cannot fail", path)
		}
	case StepMap:
		if s.MaxConcurrency < 0 || s.MaxConcurrency > MaxMapConcurrency {
			return Errorf(EINVALID, "%s.max_concurrency: must be between 1 and %d", path, MaxMapConcurrency)
		}
		if err := validateStep(*s.Map, path+".map", depth+1, n); err != nil {
			return err
		}
	}
	return nil
}

// Chain is a named, versioned chain of steps.
type Chain struct {
	// ID is the chain's identity: new on every create, never reused (see Function.ID).
	ID            uuid.UUID `json:"id"`
	Name          string    `json:"name"`
	LatestVersion int       `json:"latest_version"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// ChainVersion is one immutable definition of a chain.
type ChainVersion struct {
	ChainID     uuid.UUID `json:"chain_id"` // Chain.ID
	Chain       string    `json:"name"`
	Version     int       `json:"version"`
	Steps       []Step    `json:"steps"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// StepStatus is the progress of one function run inside a chain run. Path
// names the step (0, 1.parallel[0], 2.map[17]); the invocation id is derived
// from the chain run id and the path, so every step has at most one record.
type StepStatus struct {
	Path         string           `json:"path"`
	Function     string           `json:"function"`
	Version      int              `json:"version"`
	Status       InvocationStatus `json:"status"`
	InvocationID uuid.UUID        `json:"invocation_id"`
	Compensation bool             `json:"compensation,omitempty"`
	Error        *FunctionError   `json:"error,omitempty"`
}

// ChainError is why a chain run failed, with the report of its compensations.
type ChainError struct {
	Type          string               `json:"type"`
	Message       string               `json:"message"`
	Step          string               `json:"step,omitempty"`
	Compensations []CompensationReport `json:"compensations,omitempty"`
}

// CompensationReport is the outcome of one compensation, in the order they ran.
type CompensationReport struct {
	Step         string           `json:"step"`
	Function     string           `json:"function"`
	InvocationID uuid.UUID        `json:"invocation_id"`
	Status       InvocationStatus `json:"status"`
	Error        *FunctionError   `json:"error,omitempty"`
}

// ChainRun is one run of a chain version.
type ChainRun struct {
	ID    uuid.UUID `json:"id"`
	Chain string    `json:"chain"`
	// ChainID is the identity of the chain run (Chain.ID); nil for runs older
	// than chain identities.
	ChainID        uuid.UUID        `json:"chain_id"`
	Version        int              `json:"version"`
	Status         InvocationStatus `json:"status"`
	Input          json.RawMessage  `json:"input,omitempty"`
	Output         json.RawMessage  `json:"output,omitempty"`
	Error          *ChainError      `json:"error,omitempty"`
	Steps          []StepStatus     `json:"steps"`
	IdempotencyKey string           `json:"idempotency_key,omitempty"`
	// RequestHash identifies what was asked with IdempotencyKey (see Invocation).
	RequestHash string     `json:"-"`
	WorkflowID  string     `json:"workflow_id"`
	RunID       string     `json:"run_id,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
}

// StepInvocationID is the id of the invocation that runs the step at path of
// a chain run: deterministic, so a replayed or retried step finds its record.
func StepInvocationID(chainRunID uuid.UUID, path string) uuid.UUID {
	return uuid.NewSHA1(chainRunID, []byte(path))
}

// ChainRunFilter narrows a listing of a chain's runs.
type ChainRunFilter struct {
	Chain  string
	Status InvocationStatus
	// Viewer keeps only runs of versions it may read (and no run whose
	// chain version is gone, unless it reads everything).
	Viewer Viewer
}

// ChainOutcome is the final state of a chain run, as its record keeps it.
type ChainOutcome struct {
	Status     InvocationStatus
	Output     json.RawMessage
	Error      *ChainError
	Steps      []StepStatus
	FinishedAt time.Time
}
