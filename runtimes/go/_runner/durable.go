package main

// Durable functions (runtimes/README.md, "Durable functions"): a step's result
// is checkpointed by the host before the handler goes on; a later run of the
// handler gets the recorded operations in its invoke frame and returns their
// results without running them again. Go 1.17: no generics, so results are
// decoded into a pointer the caller passes.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// ferryOperation is a recorded operation as the invoke frame carries it.
type ferryOperation struct {
	Name   string          `json:"name"`
	Kind   string          `json:"kind"`
	Status string          `json:"status"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *ferryError     `json:"error,omitempty"`
}

type ferryCheckpointAck struct {
	Type        string          `json:"type"`
	OK          bool            `json:"ok"`
	Error       *ferryError     `json:"error,omitempty"`
	CallbackID  string          `json:"callback_id,omitempty"`
	CallbackURL string          `json:"callback_url,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
}

// FerryStepError is a durable operation's error: a recorded step failure
// replayed, a callback's timeout, or a checkpoint the host refused.
type FerryStepError struct {
	Type    string
	Message string
}

func (e *FerryStepError) Error() string { return e.Type + ": " + e.Message }

// ferryDurable holds the durable state of one run of the handler.
type ferryDurable struct {
	w         *bufio.Writer
	r         *bufio.Reader
	mu        sync.Mutex // one checkpoint at a time on the socket
	ops       map[string]ferryOperation
	used      map[string]bool
	counters  map[string]int
	suspended string
}

type ferryDurableKey struct{}

var ferryConnW *bufio.Writer
var ferryConnR *bufio.Reader

func ferryNewDurable(ops []ferryOperation) *ferryDurable {
	d := &ferryDurable{w: ferryConnW, r: ferryConnR, ops: map[string]ferryOperation{}, used: map[string]bool{}, counters: map[string]int{}}
	for _, op := range ops {
		d.ops[op.Name] = op
	}
	return d
}

func ferryDurableFrom(ctx context.Context) *ferryDurable {
	d, _ := ctx.Value(ferryDurableKey{}).(*ferryDurable)
	if d == nil {
		panic("durable operations need the context of a Ferry invocation")
	}
	return d
}

// stop ends the handler's goroutine: the run is suspended at name.
func (d *ferryDurable) stop(name string) {
	d.mu.Lock()
	if d.suspended == "" {
		d.suspended = name
	}
	d.mu.Unlock()
	runtime.Goexit()
}

func (d *ferryDurable) begin(name, kind string) (string, *ferryOperation, error) {
	d.mu.Lock()
	stopped := d.suspended != ""
	d.mu.Unlock()
	if stopped {
		runtime.Goexit() // the run is suspended: nothing more happens in it
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if name == "" {
		d.counters[kind]++
		name = fmt.Sprintf("%s#%d", kind, d.counters[kind])
	}
	if d.used[name] {
		return name, nil, &FerryStepError{"Durable.DuplicateName",
			fmt.Sprintf("operation name %q is used twice in this invocation: names must be unique", name)}
	}
	d.used[name] = true
	op, ok := d.ops[name]
	if !ok {
		return name, nil, nil
	}
	if op.Kind != kind {
		return name, nil, &FerryStepError{"Durable.NonDeterministic", fmt.Sprintf("operation %q was recorded as a %s, not a %s: "+
			"the handler must reach its operations in the same order on every run", name, op.Kind, kind)}
	}
	return name, &op, nil
}

func (d *ferryDurable) checkpoint(frame map[string]interface{}) (ferryCheckpointAck, error) {
	frame["type"] = "checkpoint"
	d.mu.Lock()
	defer d.mu.Unlock()
	var ack ferryCheckpointAck
	if err := ferryWriteFrame(d.w, frame); err != nil {
		return ack, err
	}
	if err := ferryReadFrame(d.r, &ack); err != nil {
		return ack, err
	}
	if !ack.OK {
		if ack.Error == nil {
			ack.Error = &ferryError{Type: "Durable.CheckpointFailed", Message: "checkpoint refused"}
		}
		return ack, &FerryStepError{ack.Error.Type, ack.Error.Message}
	}
	return ack, nil
}

// FerryStepOptions is a step's own retry policy: Attempts in all (default 1),
// waiting Backoff (default 1 s) times BackoffRate (default 2) per attempt.
type FerryStepOptions struct {
	Attempts    int
	Backoff     time.Duration
	BackoffRate float64
}

// FerryStep runs fn once per invocation (AWS's context.step): its result is
// recorded as JSON before FerryStep returns and decoded into out (a pointer,
// or nil); later runs of the handler decode the recorded result without
// calling fn. A failure after its attempts is recorded and returned, and
// returned again (as *FerryStepError) by later runs.
func FerryStep(ctx context.Context, name string, out interface{}, fn func(ctx context.Context) (interface{}, error), opts ...FerryStepOptions) error {
	d := ferryDurableFrom(ctx)
	name, op, err := d.begin(name, "step")
	if err != nil {
		return err
	}
	if op != nil {
		if op.Status != "succeeded" {
			e := op.Error
			if e == nil {
				e = &ferryError{Type: "Error", Message: "step failed"}
			}
			return &FerryStepError{e.Type, e.Message}
		}
		return ferryDecode(op.Result, out)
	}
	o := FerryStepOptions{Attempts: 1, Backoff: time.Second, BackoffRate: 2}
	if len(opts) > 0 {
		if opts[0].Attempts > 0 {
			o.Attempts = opts[0].Attempts
		}
		if opts[0].Backoff > 0 {
			o.Backoff = opts[0].Backoff
		}
		if opts[0].BackoffRate > 0 {
			o.BackoffRate = opts[0].BackoffRate
		}
	}
	start := time.Now()
	var value interface{}
	attempt := 1
	backoff := o.Backoff
	for ; ; attempt++ {
		value, err = fn(ctx)
		if err == nil {
			break
		}
		if attempt >= o.Attempts {
			if _, cerr := d.checkpoint(map[string]interface{}{"kind": "step", "name": name, "status": "failed",
				"attempts": attempt, "duration_ms": ferryMillis(time.Since(start)),
				"error": &ferryError{Type: fmt.Sprintf("%T", err), Message: err.Error()}}); cerr != nil {
				return cerr
			}
			return err
		}
		time.Sleep(backoff)
		backoff = time.Duration(float64(backoff) * o.BackoffRate)
	}
	b, err := json.Marshal(value)
	if err != nil {
		return &FerryStepError{"Step.MarshalError", fmt.Sprintf("the result of step %q is not JSON: %v", name, err)}
	}
	ack, err := d.checkpoint(map[string]interface{}{"kind": "step", "name": name, "status": "succeeded",
		"attempts": attempt, "duration_ms": ferryMillis(time.Since(start)), "result": json.RawMessage(b)})
	if err != nil {
		return err
	}
	if len(ack.Result) > 0 {
		b = ack.Result // an earlier attempt recorded this step first
	}
	return ferryDecode(b, out)
}

func ferryDecode(b json.RawMessage, out interface{}) error {
	if out == nil || len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, out)
}

// FerryWait is a durable sleep (AWS's context.wait): the handler stops here
// and runs again once d has passed, with no container held meanwhile. An
// empty name is "wait#<n>", by order.
func FerryWait(ctx context.Context, name string, wait time.Duration) error {
	d := ferryDurableFrom(ctx)
	name, op, err := d.begin(name, "wait")
	if err != nil {
		return err
	}
	if op != nil {
		if op.Status == "succeeded" {
			return nil
		}
		d.stop(name)
	}
	if _, err := d.checkpoint(map[string]interface{}{"kind": "wait", "name": name, "status": "started",
		"wait_seconds": wait.Seconds()}); err != nil {
		return err
	}
	d.stop(name)
	return nil
}

// FerryWaitForCallback creates a callback (AWS's waitForCallback), calls
// submitter with its id and URL as the step "<name>.submit", and returns once
// an outside party POSTed JSON to the URL, decoded into out. The handler is
// suspended meanwhile. A timeout of 0 is a day; its expiry returns a
// *FerryStepError of type Callback.Timeout.
func FerryWaitForCallback(ctx context.Context, name string, timeout time.Duration, out interface{},
	submitter func(ctx context.Context, callbackID, url string) error) error {
	d := ferryDurableFrom(ctx)
	name, op, err := d.begin(name, "callback")
	if err != nil {
		return err
	}
	var ack ferryCheckpointAck
	if op == nil {
		if ack, err = d.checkpoint(map[string]interface{}{"kind": "callback", "name": name, "status": "started",
			"timeout_seconds": timeout.Seconds()}); err != nil {
			return err
		}
	}
	if submitter != nil {
		if err := FerryStep(ctx, name+".submit", nil, func(ctx context.Context) (interface{}, error) {
			return nil, submitter(ctx, ack.CallbackID, ack.CallbackURL)
		}); err != nil {
			return err
		}
	}
	if op != nil {
		switch op.Status {
		case "succeeded":
			return ferryDecode(op.Result, out)
		case "failed", "timed_out":
			e := op.Error
			if e == nil {
				e = &ferryError{Type: "Callback.Timeout", Message: "the callback was not completed before its timeout"}
			}
			return &FerryStepError{e.Type, e.Message}
		}
	}
	d.stop(name)
	return nil
}

// FerryInvoke runs another Ferry function (its latest version) with event as
// a checkpointed operation (AWS's context.invoke) and decodes its result into
// out (a pointer, or nil). The handler stops here while the function runs and
// replays once it ended; the function's failure is returned as a
// *FerryStepError. An empty name is "invoke#<n>", by order.
func FerryInvoke(ctx context.Context, name, function string, event interface{}, out interface{}) error {
	d := ferryDurableFrom(ctx)
	name, op, err := d.begin(name, "invoke")
	if err != nil {
		return err
	}
	if op != nil {
		switch op.Status {
		case "succeeded":
			return ferryDecode(op.Result, out)
		case "started":
			d.stop(name)
		}
		e := op.Error
		if e == nil {
			e = &ferryError{Type: "Error", Message: "the invoked function failed"}
		}
		return &FerryStepError{e.Type, e.Message}
	}
	raw, err := json.Marshal(event)
	if err != nil {
		return &FerryStepError{"Invoke.InvalidEvent", fmt.Sprintf("the event of invoke %q is not JSON: %v", name, err)}
	}
	if _, err := d.checkpoint(map[string]interface{}{"kind": "invoke", "name": name, "status": "started",
		"function": function, "event": json.RawMessage(raw)}); err != nil {
		return err
	}
	d.stop(name)
	return nil
}
