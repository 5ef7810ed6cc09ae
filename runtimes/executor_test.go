package runtimes

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/bundle"
	"github.com/ferry-faas/ferry/internal/testenv"
)

// rtCase is one runtime under test: its test function (testdata/<runtime>)
// unpacked or built into codeDir.
type rtCase struct {
	rt      ferry.Runtime
	handler string
	codeDir string
}

// dockerClient connects to the engine or skips/fails via testenv.
func dockerClient(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		testenv.Unavailable(t, "Docker", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		testenv.Unavailable(t, "Docker", err)
	}
	return cli
}

// newTestExecutor starts an executor with its data under a short temporary
// folder (Unix socket paths are short) and closes it when the test ends.
// Spares are off unless cfg.Spares asks for them.
func newTestExecutor(t testing.TB, cfg Config) *Executor {
	t.Helper()
	cli := dockerClient(t)
	dir := cfg.DataDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "ferry-rt"); err != nil {
			t.Fatal(err)
		}
		cfg.DataDir = dir
	}
	if cfg.Spares == 0 {
		// These tests pin down containers created for a function, and count
		// containers; spare_test.go covers spares.
		cfg.Spares = -1
	}
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: testLogLevel()}))
	e, err := NewExecutor(context.Background(), cli, cfg)
	if err != nil {
		t.Fatalf("NewExecutor: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		_ = os.RemoveAll(dir)
	})
	return e
}

// testLogLevel is Info, or Debug when FERRY_TEST_DEBUG is set.
func testLogLevel() slog.Level {
	if os.Getenv("FERRY_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

var goBuild struct {
	once sync.Once
	dir  string
	err  error
}

// runtimeCases returns the runtimes whose images exist; a missing image
// skips (or, under FERRY_REQUIRE_SERVICES, fails) that runtime's subtest.
func runtimeCases(t *testing.T, e *Executor) []rtCase {
	t.Helper()
	cases, missing := availableRuntimes(t, e)
	for _, rt := range ferry.Runtimes {
		if err, ok := missing[rt]; ok {
			t.Run(string(rt), func(t *testing.T) { testenv.Unavailable(t, "runtime image", err) })
		}
	}
	return cases
}

// pythonCase is the Python test function, for tests that need one runtime; a
// missing image fails the test under FERRY_REQUIRE_SERVICES.
func pythonCase(t *testing.T, e *Executor) rtCase {
	t.Helper()
	cases, missing := availableRuntimes(t, e)
	for _, c := range cases {
		if c.rt == ferry.RuntimePython {
			return c
		}
	}
	testenv.Unavailable(t, "runtime image", missing[ferry.RuntimePython])
	return rtCase{}
}

// availableRuntimes prepares the test function of every runtime whose images
// exist and reports the others.
func availableRuntimes(tb testing.TB, e *Executor) ([]rtCase, map[ferry.Runtime]error) {
	tb.Helper()
	var out []rtCase
	missing := map[ferry.Runtime]error{}
	for _, rt := range ferry.Runtimes {
		imgs := []string{e.cfg.Images[rt]}
		if rt == ferry.RuntimeGo {
			imgs = append(imgs, e.cfg.Images[goBuilderRuntime])
		}
		for _, img := range imgs {
			if _, err := e.docker.ImageInspect(context.Background(), img); err != nil {
				missing[rt] = fmt.Errorf("%s: %w", img, err)
				break
			}
		}
		if missing[rt] == nil {
			out = append(out, codeFor(tb, e, rt))
		}
	}
	return out, missing
}

// zipFolder zips the files of a folder (not its sub-folders) as a bundle.
func zipFolder(t testing.TB, dir string) []byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, de := range entries {
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(de.Name())
		if err == nil {
			_, err = w.Write(b)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// codeFor prepares the test function of a runtime: unpacked from a zip of
// testdata/<runtime>, and for Go built with the builder image once per run.
func codeFor(t testing.TB, e *Executor, rt ferry.Runtime) rtCase {
	t.Helper()
	src := filepath.Join("testdata", string(rt))
	code := zipFolder(t, src)
	handler := map[ferry.Runtime]string{ferry.RuntimePython: "app.handler", ferry.RuntimeNode: "index.handler", ferry.RuntimeGo: "Handle"}[rt]
	if err := bundle.Validate(rt, handler, code, "test.zip"); err != nil {
		t.Fatalf("bundle.Validate(%s): %v", rt, err)
	}
	dir := filepath.Join(e.cfg.DataDir, "code", string(rt))
	if err := bundle.Unpack(code, "", dir); err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if rt != ferry.RuntimeGo {
		return rtCase{rt: rt, handler: handler, codeDir: dir}
	}
	goBuild.once.Do(func() {
		goBuild.dir, goBuild.err = os.MkdirTemp("", "ferry-go")
		if goBuild.err == nil {
			goBuild.err = e.BuildGo(context.Background(), dir, handler, goBuild.dir)
		}
	})
	if goBuild.err != nil {
		t.Fatalf("BuildGo: %v", goBuild.err)
	}
	return rtCase{rt: rt, handler: handler, codeDir: goBuild.dir}
}

// spec is an invocation of the test function; fn names the function (and so
// its warm pool).
func (c rtCase) spec(fn string, event any, lim ferry.Limits) Spec {
	ev, _ := json.Marshal(event)
	return Spec{
		InvocationID: fmt.Sprintf("inv-%d", time.Now().UnixNano()),
		Function:     fn + "-" + string(c.rt), Version: 1, Runtime: c.rt, Handler: c.handler,
		Checksum: "test", CodeDir: c.codeDir, Limits: lim, Event: ev,
		Env: map[string]string{"GREETING": "hi"},
	}
}

func execute(t *testing.T, e *Executor, s Spec) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := e.Execute(ctx, s)
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	return res
}

func wantStatus(t *testing.T, res Result, st Status) {
	t.Helper()
	if res.Status != st {
		t.Fatalf("status %s, want %s; error %+v; logs %q", res.Status, st, res.Error, clip(res.Logs))
	}
}

func clip(s string) string {
	if len(s) > 500 {
		return s[:500] + "..."
	}
	return s
}

func decode[T any](t *testing.T, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("result %s: %v", raw, err)
	}
	return v
}

// waitFor polls cond until it holds or a few seconds passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExecuteBasics(t *testing.T) {
	e := newTestExecutor(t, Config{})
	for _, c := range runtimeCases(t, e) {
		t.Run(string(c.rt), func(t *testing.T) {
			t.Run("hello, then warm with /tmp state", func(t *testing.T) {
				res := execute(t, e, c.spec("hello", map[string]any{"op": "hello", "name": "ferry"}, ferry.Limits{}))
				wantStatus(t, res, StatusCompleted)
				if got := decode[map[string]string](t, res.Result)["hello"]; got != "ferry" {
					t.Errorf("result %s", res.Result)
				}
				if !strings.Contains(res.Logs, "hello from") {
					t.Errorf("logs %q lack the print", res.Logs)
				}
				if !res.Metrics.Cold || res.Metrics.InitMS <= 0 {
					t.Errorf("first call metrics %+v, want cold with init time", res.Metrics)
				}
				if res.Metrics.MemoryPeak <= 0 {
					t.Errorf("memory peak %d", res.Metrics.MemoryPeak)
				}
				var counts []int
				for i := 0; i < 3; i++ {
					res := execute(t, e, c.spec("hello", map[string]any{"op": "counter"}, ferry.Limits{}))
					wantStatus(t, res, StatusCompleted)
					if res.Metrics.Cold {
						t.Errorf("call %d was cold; the warm container was not reused", i+2)
					}
					counts = append(counts, decode[int](t, res.Result))
				}
				if !slices.Equal(counts, []int{1, 2, 3}) {
					t.Errorf("/tmp counter %v, want [1 2 3] (same container, /tmp kept)", counts)
				}
				eq(t, "containers", containersOf(e, c.spec("hello", nil, ferry.Limits{})), 1)
			})
			t.Run("event and context", func(t *testing.T) {
				s := contextSpec(c, "ctx")
				res := execute(t, e, s)
				wantStatus(t, res, StatusCompleted)
				checkContext(t, s, res)
			})
			t.Run("exception", func(t *testing.T) {
				res := execute(t, e, c.spec("hello", map[string]any{"op": "raise", "n": 7}, ferry.Limits{}))
				wantStatus(t, res, StatusFailed)
				wantType := map[ferry.Runtime]string{ferry.RuntimePython: "ValueError", ferry.RuntimeNode: "TypeError", ferry.RuntimeGo: "*errors.errorString"}[c.rt]
				if res.Error == nil || res.Error.Message == "" || !strings.Contains(res.Error.Message, "bad input: 7") {
					t.Fatalf("error %+v", res.Error)
				}
				if c.rt != ferry.RuntimeGo {
					eq(t, "error type", res.Error.Type, wantType)
					if !strings.Contains(res.Error.Stack, "app.py") && !strings.Contains(res.Error.Stack, "index.js") {
						t.Errorf("stack %q does not name the function's file", res.Error.Stack)
					}
				}
				// A user error does not cost the warm container.
				res = execute(t, e, c.spec("hello", map[string]any{"op": "echo"}, ferry.Limits{}))
				wantStatus(t, res, StatusCompleted)
				if res.Metrics.Cold {
					t.Errorf("container discarded after a handled error")
				}
			})
			t.Run("non-JSON result", func(t *testing.T) {
				res := execute(t, e, c.spec("hello", map[string]any{"op": "nonjson"}, ferry.Limits{}))
				wantStatus(t, res, StatusFailed)
				if res.Error == nil || res.Error.Message == "" {
					t.Fatalf("error %+v", res.Error)
				}
				t.Logf("non-JSON result error: %s: %s", res.Error.Type, res.Error.Message)
			})
			t.Run("write outside /tmp fails", func(t *testing.T) {
				res := execute(t, e, c.spec("hello", map[string]any{"op": "write"}, ferry.Limits{}))
				wantStatus(t, res, StatusCompleted)
				got := decode[map[string]string](t, res.Result)
				eq(t, "/tmp", got["/tmp/x"], "ok")
				for _, p := range []string{"/var/task/x", "/etc/x", "/x"} {
					if got[p] == "ok" || got[p] == "" {
						t.Errorf("write to %s: %q, want an error", p, got[p])
					}
				}
			})
			t.Run("no network but loopback", func(t *testing.T) {
				res := execute(t, e, c.spec("hello", map[string]any{"op": "net"}, ferry.Limits{}))
				wantStatus(t, res, StatusCompleted)
				got := decode[map[string][]string](t, res.Result)
				eq(t, "/sys/class/net", strings.Join(got["sys"], ","), "lo")
				eq(t, "/proc/net/dev", strings.Join(got["proc"], ","), "lo")
			})
			t.Run("network on", func(t *testing.T) {
				res := execute(t, e, c.spec("net-on", map[string]any{"op": "net"}, ferry.Limits{Network: true}))
				wantStatus(t, res, StatusCompleted)
				got := decode[map[string][]string](t, res.Result)
				if !slices.Contains(got["sys"], "eth0") || !slices.Contains(got["sys"], "lo") {
					t.Errorf("interfaces %v, want lo and eth0", got["sys"])
				}
			})
			t.Run("10 MB of prints capped", func(t *testing.T) {
				res := execute(t, e, c.spec("hello", map[string]any{"op": "spam", "lines": 100_000}, ferry.Limits{}))
				wantStatus(t, res, StatusCompleted)
				limit := e.cfg.LogLimit
				if len(res.Logs) < limit || len(res.Logs) > limit+200 {
					t.Errorf("logs are %d bytes, want the %d-byte limit plus a marker", len(res.Logs), limit)
				}
				if !strings.HasSuffix(res.Logs, fmt.Sprintf("[ferry: logs truncated after %d bytes]\n", limit)) {
					t.Errorf("no truncation marker: %q", res.Logs[max(0, len(res.Logs)-100):])
				}
				eq(t, "result", string(res.Result), `"spammed"`)
			})
			t.Run("crash", func(t *testing.T) {
				before := e.Stats().Total
				res := execute(t, e, c.spec("crash", map[string]any{"op": "exit", "code": 3}, ferry.Limits{}))
				wantStatus(t, res, StatusFailed)
				eq(t, "error type", res.Error.Type, ferry.ErrTypeExit)
				if !strings.Contains(res.Error.Message, "code 3") {
					t.Errorf("message %q lacks the exit code", res.Error.Message)
				}
				e.bg.Wait()
				eq(t, "containers after the crash", e.Stats().Total, before)
				eq(t, "containers in Docker", len(managedContainers(t, e)), before)
			})
			if c.rt != ferry.RuntimeGo { // a Go handler is checked when it is built (TestBuildGoCompileError)
				t.Run("handler that does not load", func(t *testing.T) {
					s := c.spec("noload", map[string]any{"op": "echo"}, ferry.Limits{})
					s.Handler = strings.Replace(s.Handler, ".handler", ".missing", 1)
					res := execute(t, e, s)
					wantStatus(t, res, StatusFailed)
					if res.Error == nil || !res.Metrics.Cold {
						t.Fatalf("result %+v", res)
					}
					t.Logf("init error: %s: %s", res.Error.Type, res.Error.Message)
				})
			}
		})
	}
}

func TestExecuteLimits(t *testing.T) {
	e := newTestExecutor(t, Config{})
	// How long after the deadline each timed-out container actually exited,
	// by function name: when the kernel reported its init process gone (the
	// pidfd), else from the engine's record of the exit, which lags under load.
	var killMu sync.Mutex
	lateness := map[string][]time.Duration{}
	e.afterKill = func(id string, deadline, exited time.Time) {
		info, err := e.docker.ContainerInspect(context.Background(), id)
		if err != nil {
			return
		}
		fin := exited
		if fin.IsZero() {
			if fin, err = time.Parse(time.RFC3339Nano, info.State.FinishedAt); err != nil {
				return
			}
		}
		killMu.Lock()
		defer killMu.Unlock()
		fn := info.Config.Labels[labelFunction]
		lateness[fn] = append(lateness[fn], fin.Sub(deadline))
	}
	for _, c := range runtimeCases(t, e) {
		t.Run(string(c.rt), func(t *testing.T) {
			t.Parallel()
			t.Run("timeout", func(t *testing.T) {
				lim := ferry.Limits{TimeoutSeconds: 1}
				execute(t, e, c.spec("timeout", map[string]any{"op": "echo"}, lim)) // warm up
				for _, op := range []string{"sleep", "spin"} {
					start := time.Now()
					res := execute(t, e, c.spec("timeout", map[string]any{"op": op, "s": 10}, lim))
					took := time.Since(start)
					wantStatus(t, res, StatusTimeout)
					eq(t, "error type", res.Error.Type, ferry.ErrTypeRuntimeTimeout)
					fn := c.spec("timeout", nil, lim).Function
					var late time.Duration
					waitFor(t, "the kill", func() bool {
						killMu.Lock()
						defer killMu.Unlock()
						if n := len(lateness[fn]); n > 0 {
							late = lateness[fn][n-1]
							lateness[fn] = nil
							return true
						}
						return false
					})
					t.Logf("%s: timeout of 1 s reported after %v; the container exited %v after the deadline", op, took, late)
					// The bound says "killed at the deadline", not how precisely: on
					// 2 loaded cores a kill lands up to ~150 ms late (docs/BENCHMARKS.md
					// has the precision measured on a quiet machine).
					const slack = 500 * time.Millisecond
					if took > time.Second+slack {
						t.Errorf("%s: timeout reported after %v, want at most timeout + %v", op, took, slack)
					}
					if late > slack {
						t.Errorf("%s: container exited %v after the deadline, want at most %v", op, late, slack)
					}
					// The killed container is never reused.
					res = execute(t, e, c.spec("timeout", map[string]any{"op": "echo"}, lim))
					wantStatus(t, res, StatusCompleted)
					if !res.Metrics.Cold {
						t.Errorf("a timed-out container was reused")
					}
				}
			})
			t.Run("out of memory", func(t *testing.T) {
				// Near the limit the kernel first evicts the interpreter's own
				// file pages (slow to fault back in through fuse-overlayfs), so
				// the OOM kill can take many seconds: allow for it.
				start := time.Now()
				res := execute(t, e, c.spec("oom", map[string]any{"op": "hog"}, ferry.Limits{MemoryMB: 128, TimeoutSeconds: 90}))
				t.Logf("out of memory reported after %v", time.Since(start))
				wantStatus(t, res, StatusOOM)
				eq(t, "error type", res.Error.Type, ferry.ErrTypeOutOfMemory)
			})
			t.Run("fork bomb contained", func(t *testing.T) {
				res := execute(t, e, c.spec("fork", map[string]any{"op": "forkbomb"}, ferry.Limits{TimeoutSeconds: 20}))
				t.Logf("fork bomb: status %s result %s error %+v", res.Status, res.Result, res.Error)
				if res.Status == StatusCompleted {
					got := decode[struct {
						Forked int
						Error  string
					}](t, res.Result)
					if got.Forked >= pidsLimit || got.Error == "" {
						t.Errorf("forked %d processes (limit %d), error %q", got.Forked, pidsLimit, got.Error)
					}
				}
				// The host (and the executor) carry on.
				res = execute(t, e, c.spec("fork", map[string]any{"op": "echo"}, ferry.Limits{}))
				wantStatus(t, res, StatusCompleted)
			})
		})
	}
}

func TestExecuteConcurrency(t *testing.T) {
	e := newTestExecutor(t, Config{})
	for _, c := range runtimeCases(t, e) {
		t.Run(string(c.rt), func(t *testing.T) {
			const maxConc = 3
			lim := ferry.Limits{MaxConcurrency: maxConc}
			var peak atomic.Int64
			stop := make(chan struct{})
			var watch sync.WaitGroup
			watch.Go(func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
					if n := int64(containersOf(e, c.spec("conc", nil, lim))); n > peak.Load() {
						peak.Store(n)
					}
				}
			})
			run := func(n int) map[string]int {
				hosts := map[string]int{}
				var mu sync.Mutex
				var wg sync.WaitGroup
				for i := 0; i < n; i++ {
					wg.Go(func() {
						res := execute(t, e, c.spec("conc", map[string]any{"op": "host", "s": 0.4}, lim))
						wantStatus(t, res, StatusCompleted)
						mu.Lock()
						hosts[decode[string](t, res.Result)]++
						mu.Unlock()
					})
				}
				wg.Wait()
				return hosts
			}
			hosts := run(2)
			eq(t, "containers for 2 concurrent invocations", len(hosts), 2)
			hosts = run(7)
			close(stop)
			watch.Wait()
			t.Logf("7 invocations over containers %v; peak %d containers", hosts, peak.Load())
			eq(t, "containers for 7 concurrent invocations", len(hosts), maxConc)
			if peak.Load() > maxConc {
				t.Errorf("peak of %d containers exceeds max_concurrency %d", peak.Load(), maxConc)
			}
		})
	}
}

func TestWaitForSlotBoundedByContext(t *testing.T) {
	e := newTestExecutor(t, Config{})
	cases := runtimeCases(t, e)
	if len(cases) == 0 {
		t.Skip("no runtime image")
	}
	c := cases[0]
	lim := ferry.Limits{MaxConcurrency: 1}
	execute(t, e, c.spec("slot", map[string]any{"op": "echo"}, lim))
	done := make(chan Result)
	go func() { done <- execute(t, e, c.spec("slot", map[string]any{"op": "sleep", "s": 1.5}, lim)) }()
	waitFor(t, "the first invocation to take the container", func() bool { return e.Stats().Busy == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := e.Execute(ctx, c.spec("slot", map[string]any{"op": "echo"}, lim))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second invocation = %v, want to wait and give up with the context", err)
	}
	eq(t, "containers", containersOf(e, c.spec("slot", nil, lim)), 1)
	// A waiting invocation gets the container as soon as it is free.
	start := time.Now()
	res := execute(t, e, c.spec("slot", map[string]any{"op": "echo"}, lim))
	wantStatus(t, res, StatusCompleted)
	if res.Metrics.Cold || res.Metrics.QueueMS <= 0 {
		t.Errorf("metrics %+v: want warm after waiting", res.Metrics)
	}
	t.Logf("waited %v for the busy container", time.Since(start))
	wantStatus(t, <-done, StatusCompleted)
}

func TestResultLimit(t *testing.T) {
	e := newTestExecutor(t, Config{ResultLimit: 1000})
	for _, c := range runtimeCases(t, e) {
		t.Run(string(c.rt), func(t *testing.T) {
			res := execute(t, e, c.spec("big", map[string]any{"op": "echo", "name": strings.Repeat("x", 2000)}, ferry.Limits{}))
			wantStatus(t, res, StatusFailed)
			eq(t, "error type", res.Error.Type, ferry.ErrTypeResultTooLarge)
			res = execute(t, e, c.spec("big", map[string]any{"op": "echo"}, ferry.Limits{}))
			wantStatus(t, res, StatusCompleted)
			if res.Metrics.Cold {
				t.Errorf("container discarded after a too large result")
			}
		})
	}
}

func TestGlobalCapEvictsLRU(t *testing.T) {
	e := newTestExecutor(t, Config{MaxContainers: 2})
	cases := runtimeCases(t, e)
	if len(cases) == 0 {
		t.Skip("no runtime image")
	}
	c := cases[0]
	ev := map[string]any{"op": "echo"}
	for _, fn := range []string{"f1", "f2", "f3"} {
		res := execute(t, e, c.spec(fn, ev, ferry.Limits{}))
		wantStatus(t, res, StatusCompleted)
		if !res.Metrics.Cold {
			t.Errorf("%s: first call not cold", fn)
		}
		if st := e.Stats(); st.Total > 2 {
			t.Errorf("%d containers above the global cap of 2", st.Total)
		}
	}
	// f1 was least recently used and evicted; f2 and f3 are still warm.
	for fn, cold := range map[string]bool{"f2": false, "f3": false} {
		res := execute(t, e, c.spec(fn, ev, ferry.Limits{}))
		if res.Metrics.Cold != cold {
			t.Errorf("%s: cold %v, want %v", fn, res.Metrics.Cold, cold)
		}
	}
	res := execute(t, e, c.spec("f1", ev, ferry.Limits{}))
	if !res.Metrics.Cold {
		t.Errorf("f1 was not evicted")
	}
}

func TestCancelKillsContainer(t *testing.T) {
	e := newTestExecutor(t, Config{})
	cases := runtimeCases(t, e)
	if len(cases) == 0 {
		t.Skip("no runtime image")
	}
	c := cases[0]
	execute(t, e, c.spec("cancel", map[string]any{"op": "echo"}, ferry.Limits{}))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.Execute(ctx, c.spec("cancel", map[string]any{"op": "sleep", "s": 10}, ferry.Limits{}))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Execute = %v, want the context's error", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("cancellation took %v", took)
	}
	e.bg.Wait()
	eq(t, "containers", e.Stats().Total, 0)
	eq(t, "containers in Docker", len(managedContainers(t, e)), 0)
}

func TestIdleExpiry(t *testing.T) {
	e := newTestExecutor(t, Config{IdleTimeout: time.Second})
	cases := runtimeCases(t, e)
	if len(cases) == 0 {
		t.Skip("no runtime image")
	}
	c := cases[0]
	execute(t, e, c.spec("idle", map[string]any{"op": "echo"}, ferry.Limits{}))
	eq(t, "idle after call", e.Stats().Idle, 1)
	// A container created for a function never has more than its CPU quota.
	for _, id := range managedContainers(t, e) {
		info, err := e.docker.ContainerInspect(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "CPU quota", info.HostConfig.NanoCPUs, int64(ferry.DefaultLimits.CPUs*1e9))
	}
	waitFor(t, "idle container expiry", func() bool { return e.Stats().Total == 0 })
	e.bg.Wait()
	list := managedContainers(t, e)
	if len(list) != 0 {
		t.Errorf("expired container still exists: %v", list)
	}
}

// containersOf counts the containers (starting, busy or idle) of the spec's
// warm-pool key.
func containersOf(e *Executor, s Spec) int {
	s.Limits = s.Limits.WithDefaults()
	key := poolKey(s, e.cfg.Images[s.Runtime])
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.pools[key]; p != nil {
		return p.count
	}
	return 0
}

// managedContainers lists the ids of the executor's containers in Docker.
func managedContainers(t *testing.T, e *Executor) []string {
	t.Helper()
	ids, err := e.listPool(context.Background(), e.poolID)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestReaper(t *testing.T) {
	owner := newTestExecutor(t, Config{})
	cases := runtimeCases(t, owner)
	if len(cases) == 0 {
		t.Skip("no runtime image")
	}
	c := cases[0]
	// Three warm containers of the same owner.
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Go(func() {
			execute(t, owner, c.spec("reap", map[string]any{"op": "host", "s": 0.3}, ferry.Limits{}))
		})
	}
	wg.Wait()
	owner.mu.Lock()
	var ins []*instance
	for in := range owner.all {
		ins = append(ins, in)
	}
	owner.mu.Unlock()
	if len(ins) != 3 {
		t.Fatalf("%d containers, want 3", len(ins))
	}
	// The first container's runner sees its connection drop and exits.
	_ = ins[0].conn.Close()

	// Another executor on the same host, sharing the data folder.
	other := newTestExecutor(t, Config{DataDir: owner.cfg.DataDir})
	// Only the owner's containers: those of tests running at the same time
	// on the engine (other packages, other checkouts) are not orphans.
	other.reapPool = owner.poolID
	waitFor(t, "the first runner's exit", func() bool {
		info, err := other.docker.ContainerInspect(context.Background(), ins[0].id)
		return err == nil && !info.State.Running
	})
	left := func() []string {
		t.Helper()
		ids, err := other.listPool(context.Background(), owner.poolID)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		return ids
	}
	ids := func(ins ...*instance) []string {
		var out []string
		for _, in := range ins {
			out = append(out, in.id)
		}
		slices.Sort(out)
		return out
	}
	// While the owner lives, nothing of it goes (the stopped one is young).
	other.reap(context.Background())
	if got := left(); !slices.Equal(got, ids(ins...)) {
		t.Fatalf("owner alive: its containers are %v, want all three", got)
	}
	// The owner dies: its liveness listener closes, the socket file stays, as
	// when its process is killed. Its running containers go at once, whatever
	// their age (their invocations may soon run on another worker); the
	// stopped one only after orphanAfter.
	owner.alive.SetUnlinkOnClose(false)
	_ = owner.alive.Close()
	other.reap(context.Background())
	if got := left(); !slices.Equal(got, ids(ins[0])) {
		t.Fatalf("owner dead: its containers are %v, want only the stopped %s", got, ins[0].id)
	}
	other.orphanAfter = time.Millisecond
	other.reap(context.Background())
	if got := left(); len(got) != 0 {
		t.Fatalf("after orphanAfter: the owner's containers are %v, want none", got)
	}
	for _, in := range ins {
		if _, err := os.Stat(in.runDir); !os.IsNotExist(err) {
			t.Errorf("run folder %s of a reaped container remains", in.runDir)
		}
	}
	if _, err := os.Stat(aliveSocket(owner.runDir, owner.poolID)); !os.IsNotExist(err) {
		t.Errorf("the dead owner's liveness socket remains")
	}
}

func TestPing(t *testing.T) {
	e := newTestExecutor(t, Config{})
	if err := e.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	// An unreachable engine is EUNAVAILABLE.
	cli, err := client.NewClientWithOpts(client.WithHost("unix:///nonexistent/docker.sock"), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewExecutor(context.Background(), cli, Config{DataDir: e.cfg.DataDir})
	eq(t, "code", ferry.ErrorCode(err), ferry.EUNAVAILABLE)
}

func TestBuildGoCompileError(t *testing.T) {
	e := newTestExecutor(t, Config{})
	if _, err := e.docker.ImageInspect(context.Background(), e.cfg.Images[goBuilderRuntime]); err != nil {
		testenv.Unavailable(t, "image "+e.cfg.Images[goBuilderRuntime], err)
	}
	src := filepath.Join(e.cfg.DataDir, "badsrc")
	code := "package main\n\nimport \"context\"\n\nfunc Handle(ctx context.Context, e int) (int, error) { return e + \"x\", nil }\n"
	if err := bundle.Unpack([]byte(code), "main.go", src); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(e.cfg.DataDir, "badout")
	err := e.BuildGo(context.Background(), src, "Handle", out)
	if ferry.ErrorCode(err) != ferry.EUNPROCESSABLE || !strings.Contains(err.Error(), "main.go:5") {
		t.Fatalf("BuildGo = %v, want EUNPROCESSABLE with the compiler's message", err)
	}
	t.Logf("compile error: %v", err)
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("output folder mode %v, %v", fi.Mode(), err)
	}
}

// contextSpec is a version-4 function with 192 MB and a 7 s timeout whose
// handler returns its event, context fields and environment.
func contextSpec(c rtCase, function string) Spec {
	s := c.spec(function, map[string]any{"op": "context", "nested": map[string]any{"a": []int{1, 2}}}, ferry.Limits{MemoryMB: 192, TimeoutSeconds: 7})
	s.Version = 4
	return s
}

// checkContext checks what the handler of contextSpec returned.
func checkContext(t *testing.T, s Spec, res Result) {
	t.Helper()
	got := decode[struct {
		Event     map[string]any
		ID        string
		Name      string
		Version   string
		Memory    string
		Remaining int64
		Env       string
		UID       int
	}](t, res.Result)
	eq(t, "id", got.ID, s.InvocationID)
	eq(t, "name", got.Name, s.Function)
	eq(t, "version", got.Version, "4")
	eq(t, "memory", got.Memory, "192")
	eq(t, "env", got.Env, "hi")
	eq(t, "uid", got.UID, 1000)
	if got.Remaining < 5000 || got.Remaining > 7000 {
		t.Errorf("remaining time %d ms, want about 7000", got.Remaining)
	}
	if fmt.Sprint(got.Event["nested"]) != "map[a:[1 2]]" {
		t.Errorf("event %v", got.Event)
	}
}

// TestLimitsTheEngineEnforces: a CPU quota the engine cannot enforce fails at
// once with EINVALID (before: 1e-9 CPUs ran without any quota, 0.0001 failed
// every start as an infrastructure error that was retried), a quota above the
// engine's CPUs runs with all of them (before: Docker refused every start
// with "Range of CPUs"), and settings the engine refuses are EINVALID, final.
func TestLimitsTheEngineEnforces(t *testing.T) {
	// A runner loads at the function's quota here (no spare): at 0.01 CPUs a
	// loaded machine can take over the default 30 s, and the time is not what
	// this test checks.
	e := newTestExecutor(t, Config{InitTimeout: 2 * time.Minute})
	cases := runtimeCases(t, e)
	if len(cases) == 0 {
		t.Skip("no runtime image")
	}
	c := cases[0]
	for _, cpus := range []float64{1e-9, 0.0001, 0.009} {
		start := time.Now()
		_, err := e.Execute(context.Background(), c.spec("cpus", map[string]any{"op": "echo"}, ferry.Limits{CPUs: cpus}))
		eq(t, fmt.Sprintf("code for cpus %g", cpus), ferry.ErrorCode(err), ferry.EINVALID)
		if msg := ferry.ErrorMessage(err); !strings.HasPrefix(msg, "cpus: must be between 0.01 and 4") {
			t.Errorf("cpus %g: message %q", cpus, msg)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("cpus %g: refused after %v, want at once", cpus, took)
		}
	}
	eq(t, "containers after refused specs", len(managedContainers(t, e)), 0)

	quota := func(cpus float64) string {
		res := execute(t, e, c.spec("cpus", map[string]any{"op": "limits"}, ferry.Limits{CPUs: cpus}))
		wantStatus(t, res, StatusCompleted)
		return decode[limitsResult](t, res.Result).CPU
	}
	eq(t, "quota of 0.01 CPUs (µs per 100 ms)", quota(0.01), "1000")
	eq(t, "quota of 0.3 CPUs", quota(0.3), "30000")
	t.Logf("engine CPUs: %g", e.engineCPUs)
	eq(t, "quota of the maximum CPUs", quota(ferry.MaxLimits.CPUs), strconv.Itoa(int(min(ferry.MaxLimits.CPUs, e.engineCPUs)*100000)))

	// What the engine refuses is EINVALID (final), not an infrastructure error.
	cfg, host := containerConfig(c.spec("refused", nil, ferry.Limits{}), containerParams{Image: e.cfg.Images[c.rt], RunDir: e.runDir, PoolID: e.poolID})
	host.NanoCPUs = int64(e.engineCPUs+1) * 1e9
	created, err := e.docker.ContainerCreate(context.Background(), cfg, host, nil, nil, "")
	if err == nil {
		_ = e.docker.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
		t.Fatal("the engine accepted more CPUs than it has")
	}
	derr := dockerError("create container", err)
	eq(t, "code of the engine's refusal", ferry.ErrorCode(derr), ferry.EINVALID)
	t.Logf("engine's refusal: %v", derr)
}

// TestBurstKeepsOthersWarm: a burst of one function with a high
// max_concurrency neither evicts another function's warm container nor takes
// more than its share of the pool, and its invocations that waited for a
// container say so in QueueMS. Before, the burst evicted the other function's
// container, whose next invocation waited for a slot and started cold.
func TestBurstKeepsOthersWarm(t *testing.T) {
	e := newTestExecutor(t, Config{MaxContainers: 4})
	cases := runtimeCases(t, e)
	if len(cases) == 0 {
		t.Skip("no runtime image")
	}
	c := cases[0]
	eq(t, "share of a pool of 4", e.share(), 3)
	quiet := c.spec("quiet", map[string]any{"op": "echo"}, ferry.Limits{})
	execute(t, e, quiet)
	wantStatus(t, execute(t, e, quiet), StatusCompleted)

	lim := ferry.Limits{MaxConcurrency: 10}
	const burst, sleep = 8, 1.0
	results := make(chan Result, burst)
	for i := 0; i < burst; i++ {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := e.Execute(ctx, c.spec("burst", map[string]any{"op": "sleep", "s": sleep}, lim))
			if err != nil {
				t.Errorf("burst: %v", err)
			}
			results <- res
		}()
	}
	waitFor(t, "the burst to fill its share", func() bool { return containersOf(e, c.spec("burst", nil, lim)) == e.share() })
	eq(t, "containers at the cap", e.Stats().Total, 4)

	start := time.Now()
	res := execute(t, e, quiet)
	wantStatus(t, res, StatusCompleted)
	t.Logf("the quiet function during the burst: %v, metrics %+v", time.Since(start), res.Metrics)
	if res.Metrics.Cold {
		t.Errorf("the burst evicted the quiet function's warm container")
	}
	if res.Metrics.QueueMS > 100 {
		t.Errorf("the quiet function waited %v ms for a container during the burst, want none", res.Metrics.QueueMS)
	}
	eq(t, "burst containers after the quiet call", containersOf(e, c.spec("burst", nil, lim)), e.share())

	waited := 0
	for i := 0; i < burst; i++ {
		r := <-results
		wantStatus(t, r, StatusCompleted)
		if r.Metrics.QueueMS >= sleep*1000*0.9 {
			waited++
		}
	}
	// 8 invocations of 1 s on 3 containers: 5 waited for a container.
	eq(t, "burst invocations whose queue_ms shows the wait", waited, burst-e.share())
}

// TestMountinfoShowsDataPaths pins what runtimes/README.md says a function
// sees of the host's paths in /proc/self/mountinfo: its code folder and run
// folder (their paths on the source file system), the engine's files of the
// container (/etc/hosts, /etc/hostname, /etc/resolv.conf under the engine's
// data root), the init binary, and nothing else.
func TestMountinfoShowsDataPaths(t *testing.T) {
	e := newTestExecutor(t, Config{})
	c := pythonCase(t, e)
	s := c.spec("mounts", map[string]any{"op": "mounts"}, ferry.Limits{})
	res := execute(t, e, s)
	wantStatus(t, res, StatusCompleted)
	id := containerOfKey(t, e, s)
	roots := decode[map[string]string](t, res.Result)
	t.Logf("mount roots: %v", roots)
	if r := roots["/var/task"]; r == "" || !strings.HasSuffix(c.codeDir, r) {
		t.Errorf("/var/task shows root %q, want the tail of the code folder %s", r, c.codeDir)
	}
	if r := roots["/run/ferry"]; r == "" || !strings.HasPrefix(filepath.Base(r), "ferry-"+e.poolID) || !strings.HasSuffix(filepath.Join(e.runDir, filepath.Base(r)), r) {
		t.Errorf("/run/ferry shows root %q, want the tail of a run folder under %s", r, e.runDir)
	}
	for mp, r := range roots {
		switch {
		case mp == "/var/task", mp == "/run/ferry", r == "/":
		case strings.HasPrefix(mp, "/proc/"), strings.HasPrefix(mp, "/sys/"): // the kernel's own
		case mp == "/etc/hosts" || mp == "/etc/hostname" || mp == "/etc/resolv.conf":
			if !strings.HasSuffix(r, "/containers/"+id+mp[strings.LastIndex(mp, "/"):]) {
				t.Errorf("%s shows root %q, want the engine's file of container %s", mp, r, id)
			}
		case mp == "/usr/sbin/docker-init":
		default:
			t.Errorf("mount %s shows host path %q, which runtimes/README.md does not mention", mp, r)
		}
	}
}
