package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/internal/testenv"
)

// consoleFunction prints a line and returns a greeting, or fails when asked.
const consoleFunction = `def handler(event, context):
    print("hello from the console test")
    if event and event.get("fail"):
        raise ValueError("asked to fail")
    return {"greeting": "Hello, " + (event or {}).get("name", "world")}
`

// durableFunction checkpoints one step and reads a secret.
const durableFunction = `import os

def handler(event, context):
    return context.step("add", lambda: {"sum": 40 + 2, "has_secret": bool(os.environ.get("CONSOLE_TOKEN"))})
`

// slowFunction prints a line, and another a few seconds later.
const slowFunction = `import time

def handler(event, context):
    print("first line", flush=True)
    time.sleep(5)
    print("second line")
    return {"ok": True}
`

// browser starts headless Chromium (Debian's chromium-headless-shell or
// chromium, installed by scripts/tools.sh) with a 1280x800 window.
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		testenv.Unavailable(t, "headless Chromium (scripts/tools.sh installs chromium-headless-shell)", exec.ErrNotFound)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1280, 800),
		chromedp.NoSandbox) // tests may run as root, where Chromium's sandbox refuses to start
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancel := chromedp.NewContext(actx)
	// The first action starts the browser for bctx's lifetime; later ones
	// run under the test's time limit.
	if err := chromedp.Do(bctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("starting %s: %v", path, err)
	}
	ctx, cancelTimeout := context.WithTimeout(bctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// stepTimeout bounds one step of a browser test, so that a failure still
// leaves time to show the page.
const stepTimeout = time.Minute

// run runs browser actions and fails the test with what on error.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		fail(t, ctx, what, err)
	}
}

// value runs one browser action that returns a value.
func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		fail(t, ctx, what, err)
	}
	return v
}

func fail(t *testing.T, ctx context.Context, what string, err error) {
	t.Helper()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 2000) : ""`))
	t.Fatalf("%s (at %s): %v\npage text: %s", what, loc, err, body)
}

// textOf returns the text of the element sel.
func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return value(t, ctx, "reading "+sel, chromedp.Text(chromedp.CSS(sel)))
}

func wantContains(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Fatalf("%s: %q does not contain %q", what, got, want)
	}
}

// waitJS waits until a script in the page is true (after a navigation that a
// click started, when the old page would also match a selector).
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			fail(t, ctx, "waiting for "+what, fmt.Errorf("%s is still not true (%v)", expr, err))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fetchStatus runs fetch in the page (with its cookies) and returns the status.
func fetchStatus(t *testing.T, ctx context.Context, script string) int {
	t.Helper()
	return value(t, ctx, "fetch", chromedp.Evaluate[int](script, chromedp.EvalAwaitPromise))
}

// screenshot saves the page as docs/console/NAME.png when
// FERRY_CONSOLE_SCREENSHOTS is set (to refresh the README's pictures).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("FERRY_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := value(t, ctx, "screenshot", chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// seedHistory records a day of finished invocations of a function (for the
// pictures: a fresh test server has no history to chart).
func seedHistory(t *testing.T, s *testServer, name string) {
	t.Helper()
	ctx := context.Background()
	fn, err := s.db.GetFunction(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 24 * 12 {
		at := now.Add(-time.Duration(i) * 5 * time.Minute)
		n := 1 + (i*7)%5 // a few an interval, varying
		for j := range n {
			inv, _, err := s.db.CreateInvocation(ctx, ferry.Invocation{Function: name, FunctionID: fn.ID, Version: 1,
				CreatedAt: at.Add(-time.Duration(j) * time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			status := ferry.StatusCompleted
			if (i+j)%23 == 0 {
				status = ferry.StatusFailed
			}
			ms := 2 + float64((i*13+j*29)%40)
			if (i+j)%31 == 0 {
				ms += 400 // a slow one
			}
			if _, _, err := s.db.FinishInvocation(ctx, inv.ID, ferry.Outcome{Status: status,
				Metrics: &ferry.Metrics{DurationMS: ms, Cold: (i+j)%17 == 0}}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestConsoleE2E drives the console in a real browser against a whole Ferry.
func TestConsoleE2E(t *testing.T) {
	cfg := testConfig(t, "console")
	cfg.SecretsKey = newSecretsKey(t)
	s := startWithConfig(t, cfg, roles{api: true, worker: true})
	s.requireImage(t, "ferry/python")
	ctx := browser(t)
	base := s.URL() + "/console"

	// Deploy through the API; the console shows it.
	s.deploy(t, "hello", "python", "hello.handler", "hello.py", consoleFunction, nil)
	s.deploy(t, "secret", "python", "secret.handler", "secret.py", consoleFunction, nil)
	if r := s.do(t, http.MethodPut, "/v1/functions/hello/aliases/prod", map[string]any{"version": 1}, nil); r.StatusCode >= 300 {
		t.Fatalf("set alias: %s", r.Status)
	}
	secretValue := "tok-" + uuid.NewString()
	if r := s.do(t, http.MethodPut, "/v1/secrets/CONSOLE_TOKEN", map[string]any{"value": secretValue}, nil); r.StatusCode != http.StatusCreated {
		t.Fatalf("set secret: %s", r.Status)
	}
	if r := s.do(t, http.MethodPost, "/v1/functions", map[string]any{"name": "durable", "runtime": "python",
		"handler": "durable.handler", "filename": "durable.py", "code": base64.StdEncoding.EncodeToString([]byte(durableFunction)),
		"secrets": []string{"CONSOLE_TOKEN"}}, nil); r.StatusCode != http.StatusCreated {
		t.Fatalf("deploy durable: %s", r.Status)
	}

	// Signing in: a page asks for the key, a wrong key is refused.
	run(t, ctx, "open the console", chromedp.Navigate(base+"/functions"), chromedp.WaitVisible(chromedp.CSS("#login")))
	run(t, ctx, "sign in with a wrong key", chromedp.SendKeys(chromedp.CSS("#key"), "fy_wrong"),
		chromedp.Submit(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS(".error")))
	wantContains(t, "wrong key", textOf(t, ctx, ".error"), "invalid or revoked")
	screenshot(t, ctx, "login")
	run(t, ctx, "sign in", chromedp.SetValue(chromedp.CSS("#key"), testAdminKey),
		chromedp.Submit(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#functions")))
	wantContains(t, "functions list", textOf(t, ctx, "#functions"), "hello")
	wantContains(t, "functions list", textOf(t, ctx, "#functions"), "python")
	wantContains(t, "functions list", textOf(t, ctx, "#functions"), "prod → v1")

	// The cookie is HttpOnly: the page's scripts cannot read the session.
	cookie := value(t, ctx, "document.cookie", chromedp.Evaluate[string](`document.cookie`))
	if strings.Contains(cookie, "ferry_session") {
		t.Fatalf("the session cookie is readable from scripts: %q", cookie)
	}

	// Invoke from the function page: result and logs.
	run(t, ctx, "open the function", chromedp.Click(chromedp.CSS(`#functions a[href$="/functions/hello"]`)),
		chromedp.WaitVisible(chromedp.CSS("#invoke-form")))
	run(t, ctx, "invoke", chromedp.SetValue(chromedp.CSS("#event"), `{"name": "Ferry"}`),
		chromedp.Click(chromedp.CSS(`#invoke-form button`)), chromedp.WaitVisible(chromedp.CSS("#result")))
	wantContains(t, "result", textOf(t, ctx, "#result"), `"greeting": "Hello, Ferry"`)
	wantContains(t, "logs", textOf(t, ctx, "#invoke-logs"), "hello from the console test")

	// A bad event stays in the form with the API's message.
	run(t, ctx, "invoke with bad JSON", chromedp.SetValue(chromedp.CSS("#event"), `{"name": `),
		chromedp.Click(chromedp.CSS(`#invoke-form button`)), chromedp.WaitVisible(chromedp.CSS("#invoke-result .error")))
	wantContains(t, "bad event", textOf(t, ctx, "#invoke-result .error"), "event")

	// A failing invocation, then its page.
	run(t, ctx, "invoke to fail", chromedp.SetValue(chromedp.CSS("#event"), `{"fail": true}`),
		chromedp.Click(chromedp.CSS(`#invoke-form button`)), chromedp.WaitVisible(chromedp.CSS("#invoke-error")))
	wantContains(t, "error", textOf(t, ctx, "#invoke-error"), "asked to fail")
	failedID := textOf(t, ctx, "#invoked-link")
	run(t, ctx, "reload the function page", chromedp.Navigate(base+"/functions/hello"), chromedp.WaitVisible(chromedp.CSS("#charts svg")))
	if got := value(t, ctx, "chart bars", chromedp.Evaluate[int](`document.querySelectorAll("#charts svg rect.err").length`)); got != 1 {
		t.Errorf("the invocations chart shows %d bars of errors, want 1 (one failed invocation)", got)
	}
	run(t, ctx, "open the failed invocation", chromedp.Navigate(base+"/invocations/"+failedID),
		chromedp.WaitVisible(chromedp.CSS("#error-box")))
	wantContains(t, "invocation error", textOf(t, ctx, "#error-box"), "asked to fail")
	wantContains(t, "invocation logs", textOf(t, ctx, "#logs"), "hello from the console test")
	wantContains(t, "invocation status", textOf(t, ctx, "#inv-status"), "failed")
	wantContains(t, "attempts", textOf(t, ctx, "#attempts"), "1")
	temporal := value(t, ctx, "Temporal link", chromedp.AttributeValue(chromedp.CSS("#temporal-link"), "href"))
	wantContains(t, "Temporal link", temporal.Value, "/workflows/"+failedID)
	screenshot(t, ctx, "invocation")

	// A durable function: the secrets it reads by name (never the value), and its steps.
	run(t, ctx, "open the durable function", chromedp.Navigate(base+"/functions/durable"), chromedp.WaitVisible(chromedp.CSS("#secrets")))
	wantContains(t, "secrets", textOf(t, ctx, "#secrets"), "CONSOLE_TOKEN")
	if page := value(t, ctx, "page", chromedp.Evaluate[string](`document.documentElement.outerHTML`)); strings.Contains(page, secretValue) {
		t.Fatal("the function page shows the secret's value")
	}
	durable, resp := s.invoke(t, "durable", map[string]any{})
	if resp.StatusCode != http.StatusOK || durable.Status != "completed" {
		t.Fatalf("invoke durable: %s %s %s", resp.Status, durable.Status, durable.Result)
	}
	run(t, ctx, "open the durable invocation", chromedp.Navigate(base+"/invocations/"+durable.ID), chromedp.WaitVisible(chromedp.CSS("#steps")))
	step := value(t, ctx, "step row", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#steps tbody tr td")].map(e => e.textContent.trim())`))
	if len(step) != 6 || step[0] != "add" || step[1] != "step" || step[2] != "succeeded" || step[3] != "1" {
		t.Fatalf("steps table: %q, want one row: add, step, succeeded, 1 attempt, duration, result", step)
	}
	wantContains(t, "step result", step[5], `"sum": 42`)
	wantContains(t, "step result", step[5], `"has_secret": true`)

	// A running invocation's logs stream into its page (server-sent events
	// through the console), which reloads when it ends.
	s.deploy(t, "slow", "python", "slow.handler", "slow.py", slowFunction, nil)
	slow, resp := s.invoke(t, "slow", map[string]any{}, "Prefer", "respond-async")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("invoke slow: %s", resp.Status)
	}
	run(t, ctx, "open the running invocation", chromedp.Navigate(base+"/invocations/"+slow.ID), chromedp.WaitVisible(chromedp.CSS("#logs")))
	// Only the script sets data-via, before the page reloads for the end.
	waitJS(t, ctx, "the first line streamed", `document.querySelector("#logs").dataset.via === "stream" &&
		document.querySelector("#logs").textContent.includes("first line")`)
	if got := textOf(t, ctx, "#logs"); strings.Contains(got, "second line") {
		t.Fatalf("logs while running: %q, want only the first line", got)
	}
	waitJS(t, ctx, "the page reloaded when the invocation ended", `!document.querySelector("#logs").dataset.via &&
		document.querySelector("#inv-status").textContent.includes("completed")`)
	wantContains(t, "logs after the end", textOf(t, ctx, "#logs"), "first line\nsecond line")

	// The invocations list, filtered to failed.
	run(t, ctx, "filter failed", chromedp.Navigate(base+"/invocations"), chromedp.WaitVisible(chromedp.CSS("#filters")),
		chromedp.SetValue(chromedp.CSS("#f-status"), "failed"), chromedp.Click(chromedp.CSS("#filter")))
	waitJS(t, ctx, "the filtered list", `location.search.includes("status=failed") && document.readyState === "complete"`)
	run(t, ctx, "the failed invocation listed", chromedp.WaitVisible(chromedp.CSS(`#invocations a[href$="`+failedID+`"]`)))
	statuses := value(t, ctx, "statuses", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#invocations tbody .status")].map(e => e.textContent)`))
	if len(statuses) != 1 || statuses[0] != "failed" {
		t.Fatalf("failed filter shows statuses %v, want the one failed invocation", statuses)
	}
	screenshot(t, ctx, "invocations")

	// A chain run: every step's status.
	s.deployChain(t, map[string]any{"name": "greet", "steps": []any{
		map[string]any{"function": "hello"},
		map[string]any{"parallel": []any{map[string]any{"function": "hello"}, map[string]any{"function": "hello"}}},
	}})
	started, resp := s.runChain(t, "greet", map[string]any{"name": "chain"}, "Prefer", "respond-async")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("run chain: %s", resp.Status)
	}
	done := s.waitRun(t, started.ID, time.Minute)
	if done.Status != "completed" || len(done.Steps) != 3 {
		t.Fatalf("chain run: %+v", done)
	}
	run(t, ctx, "open the chain run", chromedp.Navigate(base+"/chain-runs/"+done.ID), chromedp.WaitVisible(chromedp.CSS("#steps")))
	for _, st := range done.Steps {
		got := value(t, ctx, "step "+st.Path, chromedp.Text(chromedp.CSS(`#steps tr[data-path="`+st.Path+`"] .status`)))
		if got != st.Status {
			t.Errorf("step %s shows %q, the API says %q", st.Path, got, st.Status)
		}
		run(t, ctx, "graph node "+st.Path, chromedp.WaitVisible(chromedp.CSS(`.graph .node[data-path="`+st.Path+`"][data-status="completed"]`)))
	}
	screenshot(t, ctx, "chain-run")
	if os.Getenv("FERRY_CONSOLE_SCREENSHOTS") != "" {
		seedHistory(t, s, "hello")
		run(t, ctx, "function page with history", chromedp.Navigate(base+"/functions/hello"), chromedp.WaitVisible(chromedp.CSS("#charts svg")))
		screenshot(t, ctx, "function")
	}
	run(t, ctx, "open the health page", chromedp.Navigate(base+"/health"), chromedp.WaitVisible(chromedp.CSS("#checks")))
	wantContains(t, "health", textOf(t, ctx, "#checks"), "postgres")
	queue := textOf(t, ctx, "#queue")
	wantContains(t, "task queue", queue, "workflow")
	wantContains(t, "task queue", queue, "activity")
	if strings.Contains(queue, "none") {
		t.Errorf("no worker polls the task queue of a running server: %q", queue)
	}
	screenshot(t, ctx, "health")
	run(t, ctx, "functions", chromedp.Navigate(base+"/functions"), chromedp.WaitVisible(chromedp.CSS("#functions")))
	screenshot(t, ctx, "functions")

	// Schedules: pause from the page.
	sched := s.uniqueName("nightly")
	if r := s.do(t, http.MethodPost, "/v1/schedules", map[string]any{"name": sched, "cron": "0 3 * * *",
		"target": map[string]any{"function": "hello"}, "payload": map[string]any{"name": "night"}}, nil); r.StatusCode != http.StatusCreated {
		t.Fatalf("create schedule: %s", r.Status)
	}
	t.Cleanup(func() { s.do(t, http.MethodDelete, "/v1/schedules/"+sched, nil, nil) })
	row := `#schedules tr[data-name="` + sched + `"]`
	run(t, ctx, "open the schedules", chromedp.Navigate(base+"/schedules"), chromedp.WaitVisible(chromedp.CSS(row)))
	wantContains(t, "schedule", textOf(t, ctx, row), "active")
	run(t, ctx, "pause the schedule", chromedp.Click(chromedp.CSS(row+` button[value="pause"]`)),
		chromedp.WaitVisible(chromedp.CSS(row+` button[value="resume"]`)))
	wantContains(t, "paused schedule", textOf(t, ctx, row), "paused")
	screenshot(t, ctx, "schedules")

	// At a phone's width no page is wider than the screen (wide tables scroll
	// inside their box).
	run(t, ctx, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
	for _, path := range []string{"/functions", "/functions/hello", "/invocations/" + failedID, "/invocations?status=failed",
		"/chain-runs/" + done.ID, "/chains/greet", "/schedules", "/health"} {
		run(t, ctx, "open "+path+" on a phone", chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS("main")))
		if w := value(t, ctx, "page width", chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`)); w > 0 {
			t.Errorf("%s is %d px wider than a 390 px phone screen", path, w)
		}
		if path == "/functions/hello" {
			screenshot(t, ctx, "phone-function")
		}
	}
	run(t, ctx, "desktop viewport", chromedp.EmulateViewport(1280, 800))

	// A form posted without its CSRF token is refused, from the page's own origin.
	csrf := fetchStatus(t, ctx, `fetch("/console/functions/hello/invoke", {method: "POST",
		headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "event=%7B%7D"}).then(r => r.status)`)
	if csrf != http.StatusForbidden {
		t.Fatalf("invoke form without CSRF token: %d, want 403", csrf)
	}

	// Sign out: the console asks for a key again.
	run(t, ctx, "sign out", chromedp.Click(chromedp.CSS("#sign-out")), chromedp.WaitVisible(chromedp.CSS("#login")))
	run(t, ctx, "after sign-out", chromedp.Navigate(base+"/functions"), chromedp.WaitVisible(chromedp.CSS("#login")))
	if st := fetchStatus(t, ctx, `fetch("/console/data/functions/hello").then(r => r.status)`); st != http.StatusUnauthorized {
		t.Fatalf("data request after sign-out: %d, want 401", st)
	}

	// An invoker key sees only what it is granted: page and data both refuse.
	invoker, invokerID := s.newKey(t, ferry.RoleInvoker)
	if r := s.do(t, http.MethodPost, "/v1/functions/hello/permissions", map[string]any{"key_id": invokerID, "permission": "execute"}, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("grant: %s", r.Status)
	}
	run(t, ctx, "sign in as invoker", chromedp.SetValue(chromedp.CSS("#key"), invoker),
		chromedp.Submit(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#functions")))
	list := textOf(t, ctx, "#functions")
	if !strings.Contains(list, "hello") || strings.Contains(list, "secret") {
		t.Fatalf("invoker's functions list: %q, want hello and not secret", list)
	}
	run(t, ctx, "open an ungranted function", chromedp.Navigate(base+"/functions/secret"), chromedp.WaitVisible(chromedp.CSS("#error")))
	wantContains(t, "ungranted function page", textOf(t, ctx, "#error"), "403")
	if st := fetchStatus(t, ctx, `fetch("/console/data/functions/secret").then(r => r.status)`); st != http.StatusForbidden {
		t.Fatalf("invoker's data request on an ungranted function: %d, want 403", st)
	}
	if st := fetchStatus(t, ctx, `fetch("/console/data/functions/hello").then(r => r.status)`); st != http.StatusOK {
		t.Fatalf("invoker's data request on a granted function: %d, want 200", st)
	}
	if st := fetchStatus(t, ctx, `fetch("/console/data/invocations/`+durable.ID+`/logs").then(r => r.status)`); st != http.StatusForbidden {
		t.Fatalf("invoker's log stream of an ungranted function's invocation: %d, want 403", st)
	}
	if st := fetchStatus(t, ctx, `fetch("/console/data/invocations/`+failedID+`/logs").then(r => r.status)`); st != http.StatusOK {
		t.Fatalf("invoker's log stream of a granted function's invocation: %d, want 200", st)
	}
}
