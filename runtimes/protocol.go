package runtimes

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"

	"github.com/ferry-faas/ferry"
)

// The runner protocol (runtimes/README.md): every frame is a 4-byte big-endian
// length followed by a JSON object of that length, over a Unix socket that is
// separate from the function's stdout/stderr.

// frame is the union of every message type; fields unused by a type stay zero.
type frame struct {
	Type string `json:"type"`

	// ready
	InitMS float64 `json:"init_ms,omitempty"`

	// result (and init_error: Error). Logs are not in frames: they travel
	// through the log FIFO (logpipe.go).
	OK         bool                 `json:"ok,omitempty"`
	Result     json.RawMessage      `json:"result,omitempty"`
	Error      *ferry.FunctionError `json:"error,omitempty"`
	DurationMS float64              `json:"duration_ms,omitempty"`
	MemoryPeak int64                `json:"memory_peak,omitempty"`
	CPUMS      float64              `json:"cpu_ms,omitempty"`
	// Suspended names the wait or callback a durable handler stopped at
	// (result frames only); the host resumes the invocation later.
	Suspended string `json:"suspended,omitempty"`

	// checkpoint (also Result, Error, DurationMS)
	Checkpoint
}

// Checkpoint is a durable operation the runner asks the host to record, in a
// "checkpoint" frame that the host answers with a "checkpoint_ack" frame
// before the handler goes on (runtimes/README.md, "Durable functions").
type Checkpoint struct {
	Name   string `json:"name,omitempty"`
	Kind   string `json:"kind,omitempty"`   // step, wait, callback, invoke
	Status string `json:"status,omitempty"` // succeeded, failed; started for wait and callback
	// Attempts of a step (its own retries).
	Attempts int `json:"attempts,omitempty"`
	// WaitSeconds of a wait; TimeoutSeconds of a callback.
	WaitSeconds    float64 `json:"wait_seconds,omitempty"`
	TimeoutSeconds float64 `json:"timeout_seconds,omitempty"`
	// Function and Event of an invoke.
	Function string          `json:"function,omitempty"`
	Event    json.RawMessage `json:"event,omitempty"`
	// Filled from the frame by the executor: the step's result or error and run time.
	Result     json.RawMessage      `json:"-"`
	Error      *ferry.FunctionError `json:"-"`
	DurationMS float64              `json:"-"`
}

// CheckpointAck answers a checkpoint: OK, or the error the operation raises
// in the handler. A callback's ack carries its id (the token) and URL.
type CheckpointAck struct {
	Type        string               `json:"type"` // always "checkpoint_ack"
	OK          bool                 `json:"ok"`
	Error       *ferry.FunctionError `json:"error,omitempty"`
	CallbackID  string               `json:"callback_id,omitempty"`
	CallbackURL string               `json:"callback_url,omitempty"`
	// Result replaces the step's own when an earlier attempt recorded the
	// same operation first (the stored one wins).
	Result json.RawMessage `json:"result,omitempty"`
}

// Operation is a recorded operation as the invoke frame replays it to the
// runner: completed ones return Result (or raise Error) without running again.
type Operation struct {
	Name   string               `json:"name"`
	Kind   string               `json:"kind"`
	Status string               `json:"status"`
	Result json.RawMessage      `json:"result,omitempty"`
	Error  *ferry.FunctionError `json:"error,omitempty"`
}

// invokeFrame is the only frame the host sends.
type invokeFrame struct {
	Type       string          `json:"type"` // always "invoke"
	ID         string          `json:"id"`
	Event      json.RawMessage `json:"event"`
	DeadlineMS int64           `json:"deadline_ms"` // unix epoch ms
	// Operations the invocation recorded in earlier runs (durable functions).
	Operations []Operation `json:"operations,omitempty"`
}

// initFrame assigns a spare to a function (runtimes/README.md, "Spares"):
// the runner sets Env, then loads Handler and answers ready or init_error.
type initFrame struct {
	Type     string            `json:"type"` // always "init"
	Handler  string            `json:"handler"`
	Function string            `json:"function_name"`
	Version  string            `json:"function_version"`
	MemoryMB int               `json:"memory_limit_mb"`
	Env      map[string]string `json:"env"`
}

const (
	frameWaiting   = "waiting" // a spare's first frame
	frameInit      = "init"
	frameReady     = "ready"
	frameInitError = "init_error"
	frameInvoke    = "invoke"
	frameResult    = "result"
	// Durable functions: runner → host checkpoint, host → runner its ack.
	frameCheckpoint    = "checkpoint"
	frameCheckpointAck = "checkpoint_ack"
)

// errFrameTooLarge is returned by readFrame when a frame exceeds the limit; the
// frame's bytes have been consumed, so the stream is still in sync.
type errFrameTooLarge struct{ size, limit int }

func (e errFrameTooLarge) Error() string {
	return fmt.Sprintf("frame of %d bytes exceeds the limit of %d bytes", e.size, e.limit)
}

// writeFrame writes v as one frame in a single write call.
func writeFrame(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	_, err = w.Write(buf)
	return err
}

// readFrame reads one frame. A frame larger than limit is skipped and reported
// as errFrameTooLarge; any other error leaves the stream unusable.
func readFrame(r *bufio.Reader, limit int) (frame, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return frame{}, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n > limit {
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return frame{}, err
		}
		return frame{}, errFrameTooLarge{size: n, limit: limit}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(body, &f); err != nil {
		return frame{}, fmt.Errorf("malformed frame: %w", err)
	}
	return f, nil
}
