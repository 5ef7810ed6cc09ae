package runtimes

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-faas/ferry"
)

// An invocation keeps what it wrote, in order, however it ends
// (runtimes/README.md, "Logs"), and the runtime's last words name the cause.
func TestLogsSurviveTheEnd(t *testing.T) {
	e := newTestExecutor(t, Config{})
	say := []string{"line 1", "line 2"}
	const before = "line 1\nline 2\n"
	wantLogs := func(t *testing.T, res Result, prefix string) {
		t.Helper()
		if !strings.HasPrefix(res.Logs, prefix) {
			t.Errorf("logs %q, want them to begin with %q", clip(res.Logs), prefix)
		}
	}
	for _, c := range runtimeCases(t, e) {
		t.Run(string(c.rt), func(t *testing.T) {
			t.Parallel()
			t.Run("timeout", func(t *testing.T) {
				res := execute(t, e, c.spec("logs-timeout", map[string]any{"op": "sleep", "s": 10, "say": say}, ferry.Limits{TimeoutSeconds: 1}))
				wantStatus(t, res, StatusTimeout)
				eq(t, "logs", res.Logs, before)
			})
			t.Run("out of memory", func(t *testing.T) {
				res := execute(t, e, c.spec("logs-oom", map[string]any{"op": "hog", "say": say}, ferry.Limits{MemoryMB: 128, TimeoutSeconds: 90}))
				wantStatus(t, res, StatusOOM)
				wantLogs(t, res, before)
			})
			t.Run("kill -9 of itself", func(t *testing.T) {
				res := execute(t, e, c.spec("logs-kill", map[string]any{"op": "kill9", "say": say}, ferry.Limits{}))
				wantError(t, res, ferry.ErrTypeExit, "the runtime was killed by SIGKILL (exit code 137) during the invocation")
				eq(t, "logs", res.Logs, before)
			})
			t.Run("error in a background thread", func(t *testing.T) {
				res := execute(t, e, c.spec("logs-bg", map[string]any{"op": "bgerror", "say": say}, ferry.Limits{}))
				wantLogs(t, res, before+"bg line\n")
				switch c.rt {
				case ferry.RuntimePython: // printed by the thread, the invocation goes on
					wantStatus(t, res, StatusCompleted)
					if !strings.Contains(res.Logs, "Traceback (most recent call last):") || !strings.Contains(res.Logs, "ValueError: bg boom") {
						t.Errorf("logs %q lack the thread's traceback", res.Logs)
					}
				case ferry.RuntimeNode: // fails the invocation that started it
					wantError(t, res, "Error", "bg boom")
				case ferry.RuntimeGo: // ends the process
					wantError(t, res, ferry.ErrTypeExit, "the runtime exited with code 2 during the invocation: panic: bg boom")
					if !strings.Contains(res.Error.Stack, "goroutine ") || !strings.Contains(res.Error.Stack, "main.go") {
						t.Errorf("stack %q is not the goroutine's", res.Error.Stack)
					}
					wantLogs(t, res, before+"bg line\npanic: bg boom\n")
				}
			})
			if c.rt == ferry.RuntimePython {
				t.Run("native crash", func(t *testing.T) {
					res := execute(t, e, c.spec("logs-segv", map[string]any{"op": "segv", "say": say}, ferry.Limits{}))
					wantError(t, res, ferry.ErrTypeExit, "the runtime was killed by SIGSEGV (exit code 139) during the invocation: Fatal Python error: Segmentation fault")
					if !strings.Contains(res.Error.Stack, "app.py") {
						t.Errorf("stack %q does not name the function's file", res.Error.Stack)
					}
					wantLogs(t, res, before+"Fatal Python error: Segmentation fault")
				})
			}
		})
	}
}

// Spec.OnLogs receives output while the function still runs: the first line
// before the second is written.
func TestLogsFollow(t *testing.T) {
	e := newTestExecutor(t, Config{})
	for _, c := range runtimeCases(t, e) {
		t.Run(string(c.rt), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var got strings.Builder
			var firstAt, secondAt time.Time
			s := c.spec("follow", map[string]any{"op": "sleep", "s": 1.5, "say": []string{"first"}, "then": []string{"second"}}, ferry.Limits{})
			s.OnLogs = func(text string) {
				mu.Lock()
				defer mu.Unlock()
				got.WriteString(text)
				if firstAt.IsZero() && strings.Contains(got.String(), "first\n") {
					firstAt = time.Now()
				}
				if secondAt.IsZero() && strings.Contains(got.String(), "second\n") {
					secondAt = time.Now()
				}
			}
			res := execute(t, e, s)
			wantStatus(t, res, StatusCompleted)
			eq(t, "logs", res.Logs, "first\nsecond\n")
			mu.Lock()
			defer mu.Unlock()
			eq(t, "followed", got.String(), res.Logs)
			// The second line is written 1.5 s after the first.
			if firstAt.IsZero() || secondAt.Sub(firstAt) < time.Second {
				t.Errorf("the first line arrived %v before the second, want about 1.5 s", secondAt.Sub(firstAt))
			}
		})
	}
}
