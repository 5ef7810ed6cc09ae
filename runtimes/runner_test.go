package runtimes

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-faas/ferry"
)

// Tests of the runners' own behaviour (runtimes/README.md), against the real
// images: what a handler sees, what is captured, what is refused.

// jsonDepth is the nesting depth of arrays and objects in a JSON text.
func jsonDepth(text []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// wantError checks a failed result's error type and that its message says want.
func wantError(t *testing.T, res Result, typ, want string) {
	t.Helper()
	wantStatus(t, res, StatusFailed)
	if res.Error == nil || res.Error.Type != typ || !strings.Contains(res.Error.Message, want) {
		t.Fatalf("error %+v, want type %s with %q in the message", res.Error, typ, want)
	}
}

// wantWarm runs a normal invocation and checks that the same warm container
// served it.
func wantWarm(t *testing.T, e *Executor, c rtCase, fn string) {
	t.Helper()
	res := execute(t, e, c.spec(fn, map[string]any{"op": "echo", "name": "after"}, ferry.Limits{}))
	wantStatus(t, res, StatusCompleted)
	if res.Metrics.Cold {
		t.Errorf("the next invocation was cold: the warm container was lost")
	}
	eq(t, "containers", containersOf(e, c.spec(fn, nil, ferry.Limits{})), 1)
}

func TestRunnerJSONDepth(t *testing.T) {
	e := newTestExecutor(t, Config{})
	limit := ferry.MaxJSONDepth
	// An event nested depth levels: {"op":"echo","nested":{"a":{"a":...{}}}}.
	event := func(depth int) json.RawMessage {
		return json.RawMessage(`{"op":"echo","nested":` + strings.Repeat(`{"a":`, depth-2) + `{}` + strings.Repeat(`}`, depth-2) + `}`)
	}
	for _, c := range runtimeCases(t, e) {
		t.Run(string(c.rt), func(t *testing.T) {
			res := execute(t, e, c.spec("deep", event(limit), ferry.Limits{}))
			wantStatus(t, res, StatusCompleted)
			eq(t, "depth of the echoed event", jsonDepth(res.Result), limit)
			for _, depth := range []int{limit + 1, 3000} {
				s := c.spec("deep", event(depth), ferry.Limits{})
				eq(t, "depth of the event sent", jsonDepth(s.Event), depth)
				res := execute(t, e, s)
				wantError(t, res, "Runtime.UnmarshalError", "the event is nested deeper than the limit of 512 levels")
				wantWarm(t, e, c, "deep")
			}

			res = execute(t, e, c.spec("deep", map[string]any{"op": "deep", "n": limit}, ferry.Limits{}))
			wantStatus(t, res, StatusCompleted)
			eq(t, "depth of the result", jsonDepth(res.Result), limit)
			for _, n := range []int{limit + 1, 3000} {
				res := execute(t, e, c.spec("deep", map[string]any{"op": "deep", "n": n}, ferry.Limits{}))
				wantError(t, res, "Runtime.MarshalError", "Unable to marshal the result: it is nested deeper than the limit of 512 levels")
				wantWarm(t, e, c, "deep")
			}
		})
	}
}

// Writes to file descriptors 1 and 2, by the handler itself and by a child
// process, are captured whole and in order, in every runtime.
func TestRunnerFdOutput(t *testing.T) {
	e := newTestExecutor(t, Config{})
	want := strings.Repeat("a", 200000) + "\nerr line\nprint\nchild out\nchild err\n"
	for _, c := range runtimeCases(t, e) {
		t.Run(string(c.rt), func(t *testing.T) {
			for i := 0; i < 2; i++ { // cold, then warm
				res := execute(t, e, c.spec("fd", map[string]any{"op": "fdwrite"}, ferry.Limits{}))
				wantStatus(t, res, StatusCompleted)
				eq(t, "bytes written to fd 1", string(res.Result), "200001")
				if res.Logs != want {
					t.Errorf("logs are %d bytes ending in %q, want %d bytes ending in %q", len(res.Logs), res.Logs[max(0, len(res.Logs)-60):], len(want), want[len(want)-60:])
				}
			}
		})
	}
}

// Work a handler leaves running (runtimes/README.md, "Work left running").
func TestRunnerWorkLeftRunning(t *testing.T) {
	e := newTestExecutor(t, Config{})
	for _, c := range runtimeCases(t, e) {
		t.Run(string(c.rt), func(t *testing.T) {
			t.Run("processes end with the invocation", func(t *testing.T) {
				res := execute(t, e, c.spec("procs", map[string]any{"op": "procs"}, ferry.Limits{}))
				wantStatus(t, res, StatusCompleted)
				for i := 0; i < 2; i++ {
					res = execute(t, e, c.spec("procs", map[string]any{"op": "pids"}, ferry.Limits{}))
					wantStatus(t, res, StatusCompleted)
					eq(t, "processes left besides init and the runner", string(res.Result), "[]")
				}
			})
			if c.rt == ferry.RuntimeGo {
				return // goroutines cannot be told apart: documented
			}
			t.Run("late output and errors stay out of the next invocation", func(t *testing.T) {
				res := execute(t, e, c.spec("late", map[string]any{"op": "late"}, ferry.Limits{}))
				wantStatus(t, res, StatusCompleted)
				eq(t, "logs of the invocation that returned", res.Logs, "")
				res = execute(t, e, c.spec("late", map[string]any{"op": "sleep", "s": 0.8}, ferry.Limits{}))
				wantStatus(t, res, StatusCompleted)
				eq(t, "result", string(res.Result), `"slept"`)
				eq(t, "logs of the next invocation", res.Logs, "")
				if res.Metrics.Cold {
					t.Errorf("the next invocation was cold")
				}
			})
			if c.rt != ferry.RuntimeNode {
				return
			}
			t.Run("a rejection nobody awaited fails the invocation", func(t *testing.T) {
				res := execute(t, e, c.spec("late", map[string]any{"op": "unawaited"}, ferry.Limits{}))
				wantError(t, res, "Runtime.UnhandledPromiseRejection", "Error: nobody awaited")
				wantWarm(t, e, c, "late")
			})
			t.Run("callbackWaitsForEmptyEventLoop", func(t *testing.T) {
				for _, nowait := range []bool{false, true} {
					s := c.spec("callback", map[string]any{"nowait": nowait}, ferry.Limits{})
					s.Handler = "index.callback"
					res := execute(t, e, s)
					wantStatus(t, res, StatusCompleted)
					eq(t, "result", string(res.Result), `"cb"`)
					if nowait {
						eq(t, "logs without waiting", res.Logs, "")
						if res.Metrics.DurationMS >= 300 {
							t.Errorf("duration %.0f ms: waited for the timer", res.Metrics.DurationMS)
						}
					} else {
						eq(t, "logs after waiting for the timer", res.Logs, "timer ran\n")
						if res.Metrics.DurationMS < 300 {
							t.Errorf("duration %.0f ms: did not wait for the timer", res.Metrics.DurationMS)
						}
					}
				}
			})
		})
	}
}

// Loading a function (its module's top-level code; Go: its packages'
// initialisation, which runs before the runner connects) is bounded by the
// function's own timeout, with and without a spare.
func TestRunnerInitBoundedByTimeout(t *testing.T) {
	code := map[ferry.Runtime]struct{ handler, file, src string }{
		ferry.RuntimePython: {"app.handler", "app.py", "import time\ntime.sleep(30)\n\ndef handler(e, c):\n    return 1\n"},
		ferry.RuntimeNode:   {"index.handler", "index.js", "Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30000);\nexports.handler = async () => 1;\n"},
		ferry.RuntimeGo:     {"Handle", "main.go", "package main\n\nimport \"time\"\n\nfunc init() { time.Sleep(30 * time.Second) }\n\nfunc Handle() (int, error) { return 1, nil }\n"},
	}
	for _, spares := range []int{-1, 1} {
		e := newTestExecutor(t, Config{Spares: spares})
		for _, c := range runtimeCases(t, e) {
			fn := code[c.rt]
			if spares > 0 && c.rt == ferry.RuntimeGo {
				continue // Go has no spares
			}
			t.Run(fmt.Sprintf("%s spares=%d", c.rt, spares), func(t *testing.T) {
				if spares > 0 {
					waitSpare(t, e, c.rt)
				}
				dir := t.TempDir()
				if err := os.Chmod(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, fn.file), []byte(fn.src), 0o644); err != nil {
					t.Fatal(err)
				}
				if c.rt == ferry.RuntimeGo {
					src := dir
					dir = filepath.Join(t.TempDir(), "out")
					if err := e.BuildGo(context.Background(), src, fn.handler, dir); err != nil {
						t.Fatalf("BuildGo: %v", err)
					}
				}
				s := c.spec("slowinit", nil, ferry.Limits{TimeoutSeconds: 3})
				s.Handler, s.CodeDir = fn.handler, dir
				start := time.Now()
				res := execute(t, e, s)
				took := time.Since(start)
				t.Logf("a 30 s load under a 3 s timeout ended after %v (init_ms %.0f)", took, res.Metrics.InitMS)
				wantStatus(t, res, StatusTimeout)
				eq(t, "error", res.Error.Type+": "+res.Error.Message, ferry.ErrTypeRuntimeTimeout+": the function did not finish loading within its timeout of 3 s")
				if !res.Metrics.Cold || took < 3*time.Second || took > 10*time.Second {
					t.Errorf("ended after %v, cold %v; want cold, after the 3 s timeout plus the container's start", took, res.Metrics.Cold)
				}
			})
		}
	}
}

// A function's PATH is its own, as on Lambda: the runtime's command looks
// nothing up in it (before: PATH=/nowhere failed every start with "exec
// python3 failed"), and the handler sees the value set.
func TestRunnerUserPATH(t *testing.T) {
	e := newTestExecutor(t, Config{})
	for _, c := range runtimeCases(t, e) {
		t.Run(string(c.rt), func(t *testing.T) {
			s := c.spec("path", map[string]any{"op": "getenv", "name": "PATH"}, ferry.Limits{})
			s.Env = map[string]string{"PATH": "/nowhere"}
			for i := 0; i < 2; i++ { // cold, then warm
				res := execute(t, e, s)
				wantStatus(t, res, StatusCompleted)
				eq(t, "PATH the handler sees", string(res.Result), `"/nowhere"`)
			}
		})
	}
}
