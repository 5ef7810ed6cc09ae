package ferry

import (
	"encoding/json"
	"time"
)

// Operation is one checkpointed operation of a durable invocation (AWS's
// name for them): a step, a wait, a callback or a chained invoke, recorded
// the first time the handler reaches it and replayed from here on every later
// run of the handler (docs/ARCHITECTURE.md, "Durable functions").
type Operation struct {
	Name   string          `json:"name"`
	Kind   OperationKind   `json:"kind"`
	Status OperationStatus `json:"status"`
	// Result is the step's JSON result; omitted when larger than the listing's
	// cap (ResultOmitted) and, in the record, when it lives in the object store.
	Result        json.RawMessage `json:"result,omitempty"`
	ResultOmitted bool            `json:"result_omitted,omitempty"`
	ResultSize    int             `json:"result_size"`
	Error         *FunctionError  `json:"error,omitempty"`
	Attempts      int             `json:"attempts"`
	DurationMS    float64         `json:"duration_ms"`
	CreatedAt     time.Time       `json:"created_at"`
	FinishedAt    *time.Time      `json:"finished_at,omitempty"`
	// WaitUntil is when a wait ends, or when a callback times out.
	WaitUntil *time.Time `json:"wait_until,omitempty"`
	// ResultRef is the object store key of a result over the inline limit
	// (Result is empty in the record then).
	ResultRef string `json:"-"`
}

// NewOperation is a checkpoint to record. TokenHash is set for callbacks.
type NewOperation struct {
	Name       string
	Kind       OperationKind
	Status     OperationStatus
	Result     json.RawMessage
	ResultRef  string
	ResultSize int
	Error      *FunctionError
	Attempts   int
	DurationMS float64
	WaitUntil  *time.Time
	TokenHash  []byte
}

// OperationKind names what an operation does.
type OperationKind string

const (
	OperationStep     OperationKind = "step"
	OperationWait     OperationKind = "wait"
	OperationCallback OperationKind = "callback"
	OperationInvoke   OperationKind = "invoke"
)

// OperationStatus is an operation's state: a wait or callback is started until
// it ends; a step is recorded once it ended (succeeded or failed after its attempts).
type OperationStatus string

const (
	OperationStarted   OperationStatus = "started"
	OperationSucceeded OperationStatus = "succeeded"
	OperationFailed    OperationStatus = "failed"
	OperationTimedOut  OperationStatus = "timed_out"
)

// Limits of durable invocations.
const (
	// MaxOperations is the most operations one invocation may record.
	MaxOperations = 1000
	// MaxOperationName is the longest operation name, in bytes.
	MaxOperationName = 256
	// MaxWait is the longest single wait or callback timeout.
	MaxWait = 365 * 24 * time.Hour
	// MaxCallbackBody is the largest body a callback POST may carry.
	MaxCallbackBody = 256 << 10
)
