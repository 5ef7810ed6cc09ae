package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	dockerclient "github.com/docker/docker/client"
	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	temporalclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/internal/testenv"
	"github.com/ferry-faas/ferry/storage/postgres"
)

// The fault suite (docs/RELIABILITY.md): a bounded mixed load on one Ferry (the
// API in this process, the worker in a child process), one fault at a time,
// then counts from PostgreSQL, from Temporal's visibility and from a counter
// that every function calls when it starts and when it ends. Ferry reaches
// PostgreSQL and S3 through proxies this test can cut, and runs on a Temporal
// dev server of its own that this test restarts.

// faultFunction reports its start and end to the test's counter (at the
// host's address on the functions' network), sleeps event.ms and returns its
// event. A chain's last step gets the map's array and reads the counter's
// address from its first element.
const faultFunction = `import time, urllib.request
def handler(event, context):
    e = event[0] if isinstance(event, list) else event
    base = "http://%s:%d/" % (e["host"], e["port"])
    def report(what):
        urllib.request.urlopen(base + what + "/" + context.aws_request_id, data=b"", timeout=10).read()
    report("start")
    time.sleep(e.get("ms", 10) / 1000.0)
    report("end")
    return event
`

// Durations of the functions and the faults.
const (
	quickMS  = 10
	longMS   = 11000 // over LocalActivityMaxSeconds: runs as a regular activity
	settleIn = 1500 * time.Millisecond
	// clientTimeout is the longest an API answer may take; longer is a hang.
	clientTimeout = 90 * time.Second
	// recoverWithin bounds the wait for every accepted invocation to be final.
	recoverWithin = 3 * time.Minute
)

func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault suite takes about two minutes")
	}
	h := newFaultHarness(t)
	h.deployAll(t)
	h.warmUp(t)
	var rows []faultRow
	for _, f := range []struct {
		name, what string
		inject     func(t *testing.T) time.Time
	}{
		{"temporal-restart", "Temporal dev server stopped (SIGTERM) with invocations in flight, started again 10 s later", func(t *testing.T) time.Time {
			h.temporal.stop(t)
			time.Sleep(10 * time.Second)
			h.temporal.start(t)
			return time.Now()
		}},
		{"postgres-restart", "every PostgreSQL connection cut and refused for 5 s", func(t *testing.T) time.Time {
			return h.pg.outage(5 * time.Second)
		}},
		{"s3-outage", "S3 unreachable for 15 s; the invokes during the outage are of a function deployed just before, whose code is not on the worker yet", func(t *testing.T) time.Time {
			return h.s3.outage(15 * time.Second)
		}},
		{"worker-sigterm", "a rolling restart: a new worker started, 3 s later the old one drained (SIGTERM) while it runs 11 s functions", func(t *testing.T) time.Time {
			old := h.worker
			h.startWorker(t)
			time.Sleep(3 * time.Second)
			if err := old.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			_ = old.Wait()
			return time.Now()
		}},
		{"worker-sigkill", "the worker process killed (SIGKILL) mid-run, started again 2 s later", func(t *testing.T) time.Time {
			h.killWorker(t)
			time.Sleep(2 * time.Second)
			h.startWorker(t)
			return time.Now()
		}},
	} {
		during := "fault-short"
		if f.name == "s3-outage" {
			// Its code is fetched from S3 by the first invoke, during the outage.
			during = "fault-s3"
			h.api.deploy(t, during, "python", "fault.handler", "fault.py", faultFunction,
				map[string]any{"timeout_seconds": 10, "max_concurrency": 4, "network": true})
		}
		row := h.phase(t, f.name, f.what, during, f.inject)
		rows = append(rows, row)
		t.Logf("%s", row.line())
	}
	t.Logf("fault table (docs/RELIABILITY.md):\n%s\n%s", faultHeader, joinRows(rows))
	if path := os.Getenv("FERRY_FAULTS_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(faultHeader+"\n"+joinRows(rows)+"\n"), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// faultHarness is one Ferry with its services behind switches.
type faultHarness struct {
	cfg      Config
	api      *testServer
	db       *postgres.DB // direct, for the counts
	temporal *devTemporal
	pg, s3   *tcpProxy
	counter  *runCounter
	host     string // the counter's address as functions see it
	port     int

	worker *exec.Cmd
	logs   *lockedBuffer
	seq    atomic.Int64
}

func newFaultHarness(t *testing.T) *faultHarness {
	t.Helper()
	h := &faultHarness{temporal: newDevTemporal(t)}
	cfg := testConfig(t, "faults")
	h.cfg = cfg
	db, err := postgres.Open(context.Background(), cfg.DatabaseURL)
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(db.Close)
	h.db = db
	pgURL, err := url.Parse(cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	h.pg = newTCPProxy(t, pgURL.Host)
	pgURL.Host = h.pg.addr
	h.cfg.DatabaseURL = pgURL.String()
	h.s3 = newTCPProxy(t, strings.TrimPrefix(strings.TrimPrefix(cfg.S3Endpoint, "http://"), "https://"))
	h.cfg.S3Endpoint = h.s3.addr
	h.cfg.TemporalAddress = h.temporal.addr
	h.cfg.MaxContainers = 40
	h.api = startWithConfig(t, h.cfg, roles{api: true})
	h.startWorker(t)
	h.api.requireImage(t, "ferry/python:"+imageTagForTest())

	// The counter listens on the functions' network gateway: the host as a
	// container with network: true sees it (runtimes/network_test.go).
	docker, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	var gateway string
	deadline := time.Now().Add(time.Minute)
	for gateway == "" {
		// The worker creates the network when it starts.
		n, err := docker.NetworkInspect(context.Background(), "ferry-functions", network.InspectOptions{})
		if err == nil && len(n.IPAM.Config) > 0 {
			gateway = n.IPAM.Config[0].Gateway
		}
		if gateway == "" && time.Now().After(deadline) {
			t.Fatalf("network ferry-functions has no gateway: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.counter = newRunCounter(t, gateway)
	h.host, h.port = gateway, h.counter.port
	return h
}

func imageTagForTest() string {
	if tag := os.Getenv("FERRY_IMAGE_TAG"); tag != "" {
		return tag
	}
	return "latest"
}

func (h *faultHarness) startWorker(t *testing.T) {
	t.Helper()
	w, logs := startWorkerProcess(t, h.cfg)
	h.worker, h.logs = w, logs
	// Drained at the end (before startWorkerProcess's kill), so that its
	// executor removes its containers: once the data folder is gone, no
	// reaper can tell that they are orphans.
	t.Cleanup(func() {
		if w.ProcessState != nil || w.Process.Signal(syscall.SIGTERM) != nil {
			return // waited for already, or gone
		}
		exited := make(chan struct{})
		go func() { _ = w.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(time.Minute):
		}
	})
}

func (h *faultHarness) killWorker(t *testing.T) {
	t.Helper()
	if err := h.worker.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = h.worker.Wait()
}

// deployAll deploys the quick and medium functions, which
// run as local activities, and the long one, a regular activity, and the
// chain: a map over quick and medium events, then one step over the array.
func (h *faultHarness) deployAll(t *testing.T) {
	t.Helper()
	for name, timeout := range map[string]int{"fault-short": 10, "fault-long": 30} {
		h.api.deploy(t, name, "python", "fault.handler", "fault.py", faultFunction,
			map[string]any{"timeout_seconds": timeout, "max_concurrency": 4, "network": true})
	}
	h.api.deployChain(t, map[string]any{"name": "fault-chain", "steps": []any{
		map[string]any{"map": map[string]any{"function": "fault-short"}, "max_concurrency": 4},
		map[string]any{"function": "fault-short"},
	}})
}

// warmUp starts the functions' containers before the first fault, so that
// the first phase does not measure a burst of cold starts on a busy machine.
func (h *faultHarness) warmUp(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for i := range 10 {
			fn := "fault-short"
			if i >= 8 {
				fn = "fault-long"
			}
			wg.Go(func() {
				a := h.send("warm-up", "/v1/functions/"+fn+"/invoke", h.event(300), false)
				mu.Lock()
				defer mu.Unlock()
				if a.status == http.StatusOK {
					ok++
				}
			})
		}
		wg.Wait()
		if ok == 10 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("warm-up: %d of 10 invocations completed", ok)
		}
	}
}

func (h *faultHarness) event(ms int) map[string]any {
	return map[string]any{"host": h.host, "port": h.port, "ms": ms, "i": h.seq.Add(1)}
}

// answer is one API request of the load and what became of it.
type answer struct {
	kind   string // invoke-sync, invoke-async, chain
	status int    // 0: no answer within clientTimeout (a hang) or no connection
	err    string
	clear  bool // a final answer or an error body with a code
	id     string
	sent   time.Time
	took   time.Duration
}

// accepted tells whether the answer accepted work: Ferry must finish it.
func (a answer) accepted() bool {
	return (a.status == http.StatusOK || a.status == http.StatusAccepted) && a.id != ""
}

var faultClient = &http.Client{Timeout: clientTimeout}

// send makes one request of the load.
func (h *faultHarness) send(kind, path string, body any, async bool) answer {
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, h.api.URL()+path, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	if async {
		req.Header.Set("Prefer", "respond-async")
	}
	began := time.Now()
	resp, err := faultClient.Do(req)
	a := answer{kind: kind, sent: began, took: time.Since(began)}
	if err != nil {
		a.err = err.Error()
		return a
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a.status = resp.StatusCode
	var rec struct {
		ID    string `json:"id"`
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &rec)
	a.id = rec.ID
	switch {
	case a.accepted():
		a.clear = true
	case resp.StatusCode >= 400 && rec.Error != nil && rec.Error.Code != "" && rec.Error.Message != "":
		a.clear = resp.StatusCode != http.StatusInternalServerError
		a.err = fmt.Sprintf("%d %s: %s", resp.StatusCode, rec.Error.Code, rec.Error.Message)
	default:
		a.err = fmt.Sprintf("%d %.200s", resp.StatusCode, raw)
	}
	return a
}

// load sends the phase's opening load and returns when every request is answered.
func (h *faultHarness) load(record func(answer)) {
	var wg sync.WaitGroup
	fire := func(kind, path string, body any, async bool) {
		wg.Go(func() { record(h.send(kind, path, body, async)) })
	}
	for i := range 12 {
		fire("invoke-async", "/v1/functions/fault-short/invoke", h.event(quickMS), true)
		if i < 6 {
			fire("invoke-async", "/v1/functions/fault-short/invoke", h.event(1000+400*i), true)
		}
		if i < 4 {
			fire("invoke-sync", "/v1/functions/fault-short/invoke", h.event([]int{quickMS, 1500, quickMS, 3000}[i]), false)
		}
		if i < 2 {
			fire("invoke-async", "/v1/functions/fault-long/invoke", h.event(longMS), true)
			fire("chain", "/v1/chains/fault-chain/invoke",
				[]any{h.event(quickMS), h.event(1000), h.event(quickMS), h.event(2000)}, true)
		}
	}
	wg.Wait()
}

// faultRow is one fault's counts: a row of docs/RELIABILITY.md's table.
type faultRow struct {
	name, what        string
	load              string
	accepted, final   int
	completed         int
	reExecuted        []string // invocation: starts (attempts in the record)
	doubled           []string // functions that ran to their end more than once
	afterFinal        []string // starts after the record was final (chain steps included)
	disagreements     []string
	answers           map[string]int
	hung, unclear     int
	maxAnswer         time.Duration
	recovery          time.Duration
	faultFor          time.Duration
	disallowedReExecs []string
	disallowedDoubles []string
}

const faultHeader = "| fault | load | accepted | final | completed | re-executed | lost | doubled | steps or runs after final | Temporal ≠ PostgreSQL | API answers during the fault | slowest answer | fault | recovery |\n" +
	"| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"

func (r faultRow) line() string {
	var answers []string
	for k, v := range r.answers {
		answers = append(answers, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(answers)
	if r.hung > 0 {
		answers = append(answers, fmt.Sprintf("hung %d", r.hung))
	}
	return fmt.Sprintf("| %s | %s | %d | %d | %d | %d | %d | %d | %d | %d | %s | %.1f s | %.1f s | %.1f s |",
		r.name, r.load, r.accepted, r.final, r.completed, len(r.reExecuted), r.accepted-r.completed, len(r.doubled),
		len(r.afterFinal), len(r.disagreements), strings.Join(answers, ", "), r.maxAnswer.Seconds(),
		r.faultFor.Seconds(), r.recovery.Seconds())
}

func joinRows(rows []faultRow) string {
	lines := make([]string, len(rows))
	for i, r := range rows {
		lines[i] = r.line()
	}
	return strings.Join(lines, "\n")
}

// phase runs one fault under load and checks the counts.
// Invokes sent during the fault go to the function named during.
func (h *faultHarness) phase(t *testing.T, name, what, during string, inject func(*testing.T) time.Time) faultRow {
	t.Helper()
	row := faultRow{name: name, what: what, answers: map[string]int{}}
	var mu sync.Mutex
	var answers []answer
	record := func(a answer) {
		mu.Lock()
		defer mu.Unlock()
		answers = append(answers, a)
	}
	began := time.Now()
	h.counter.reset()
	h.load(record)
	time.Sleep(settleIn)

	// The fault, with a trickle of sync and async invokes meanwhile.
	faultStart := time.Now()
	ended := make(chan time.Time, 1)
	go func() { ended <- inject(t) }()
	var trickle sync.WaitGroup
	tick := time.NewTicker(time.Second)
	var faultEnd time.Time
loop:
	for {
		select {
		case faultEnd = <-ended:
			break loop
		case <-tick.C:
			trickle.Go(func() { record(h.send("invoke-sync", "/v1/functions/"+during+"/invoke", h.event(quickMS), false)) })
			trickle.Go(func() {
				record(h.send("invoke-async", "/v1/functions/"+during+"/invoke", h.event(1000), true))
			})
		}
	}
	tick.Stop()
	row.faultFor = faultEnd.Sub(faultStart)
	trickle.Wait()

	mu.Lock()
	all := slices.Clone(answers)
	mu.Unlock()
	kinds := map[string]int{}
	var invocations, runs []uuid.UUID
	for _, a := range all {
		kinds[a.kind]++
		row.maxAnswer = max(row.maxAnswer, a.took)
		// During the fault: sent while it lasted, or waiting for its answer then.
		if a.sent.Before(faultEnd) && a.sent.Add(a.took).After(faultStart) {
			switch {
			case a.status == 0:
				row.hung++
				t.Errorf("%s: %s request got no answer after %s: %s", name, a.kind, a.took.Round(time.Millisecond), a.err)
			default:
				row.answers[strings.TrimPrefix(a.kind, "invoke-")+" "+fmt.Sprint(a.status)]++
			}
		} else if a.status == 0 || !a.accepted() {
			t.Errorf("%s: %s request outside the fault not accepted: %s", name, a.kind, a.err)
		}
		if a.status != 0 && !a.clear {
			row.unclear++
			t.Errorf("%s: %s request answered without a clear error: %s", name, a.kind, a.err)
		}
		if !a.accepted() {
			continue
		}
		row.accepted++
		if a.kind == "chain" {
			runs = append(runs, uuid.MustParse(a.id))
		} else {
			invocations = append(invocations, uuid.MustParse(a.id))
		}
	}
	row.load = fmt.Sprintf("%d sync + %d async invokes, %d chain runs (map of 4, then 1 step)",
		kinds["invoke-sync"], kinds["invoke-async"], kinds["chain"])

	// Recovery: every accepted invocation and chain run final.
	ctx := context.Background()
	deadline := faultEnd.Add(recoverWithin)
	for {
		final, completed := 0, 0
		for _, id := range invocations {
			if inv, err := h.db.GetInvocation(ctx, id); err == nil && inv.Status.Final() {
				final++
				if inv.Status == ferry.StatusCompleted {
					completed++
				}
			}
		}
		for _, id := range runs {
			if run, err := h.db.GetChainRun(ctx, id); err == nil && run.Status.Final() {
				final++
				if run.Status == ferry.StatusCompleted {
					completed++
				}
			}
		}
		row.final, row.completed = final, completed
		if final == row.accepted || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	row.recovery = max(time.Since(faultEnd), 0)
	if row.final != row.accepted {
		t.Errorf("%s: %d of %d accepted invocations and chain runs not final %s after the fault", name,
			row.accepted-row.final, row.accepted, recoverWithin)
	}
	// Quiet: every workflow closed, so nothing can run any more; then compare.
	row.disagreements = h.compareWithTemporal(t, invocations, runs)

	// Runs of every function, chain steps included.
	records := map[uuid.UUID]ferry.Invocation{}
	for _, id := range invocations {
		if inv, err := h.db.GetInvocation(ctx, id); err == nil {
			records[id] = inv
		}
	}
	for _, id := range runs {
		steps, _, err := h.db.ListInvocations(ctx, ferry.InvocationFilter{ChainRunID: &id}, ferry.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range steps {
			records[s.ID] = s
		}
	}
	for id, c := range h.counter.snapshot() {
		inv, ok := records[id]
		what := id.String()
		if ok && inv.ChainRunID != nil {
			what = "chain step " + id.String()
		}
		// Only a run cut off by the killed worker may run again, once: a
		// function that ends in the dead worker's container before anything
		// can stop it (within seconds of the kill) also ends twice.
		allowed := name == "worker-sigkill" && len(c.starts) <= 2 && len(c.starts) > 0 && c.starts[0].Before(faultStart)
		if len(c.starts) > 1 {
			row.reExecuted = append(row.reExecuted, fmt.Sprintf("%s: %d starts, attempts %d", what, len(c.starts), inv.Attempts))
			if !allowed {
				row.disallowedReExecs = append(row.disallowedReExecs, what)
			}
		}
		if len(c.ends) > 1 {
			row.doubled = append(row.doubled, fmt.Sprintf("%s: ran to its end %d times", what, len(c.ends)))
			if !allowed {
				row.disallowedDoubles = append(row.disallowedDoubles, what)
			}
		}
		if ok && inv.FinishedAt != nil {
			for _, s := range c.starts {
				if s.After(*inv.FinishedAt) {
					row.afterFinal = append(row.afterFinal, fmt.Sprintf("%s: started %s after its record was final",
						what, s.Sub(*inv.FinishedAt).Round(time.Millisecond)))
				}
			}
		}
		if ok && inv.Attempts < len(c.starts) {
			t.Errorf("%s: %s started %d times, its record counts %d attempts", name, what, len(c.starts), inv.Attempts)
		}
	}
	for _, list := range [][]string{row.reExecuted, row.doubled, row.afterFinal, row.disagreements} {
		sort.Strings(list)
	}
	if len(row.reExecuted) > 0 {
		t.Logf("%s: re-executed: %s", name, strings.Join(row.reExecuted, "; "))
	}
	check := func(what string, list []string) {
		if len(list) > 0 {
			t.Errorf("%s: %s: %s", name, what, strings.Join(list, "; "))
		}
	}
	check("re-executed without a dead worker (or more than once)", row.disallowedReExecs)
	check("ran to completion more than once without a dead worker", row.disallowedDoubles)
	check("ran after the record was final", row.afterFinal)
	check("Temporal and PostgreSQL disagree", row.disagreements)
	if row.completed != row.accepted {
		t.Errorf("%s: %d accepted, %d completed", name, row.accepted, row.completed)
	}
	t.Logf("%s: phase took %s", name, time.Since(began).Round(time.Second))
	return row
}

// compareWithTemporal waits until Temporal's visibility shows every workflow
// closed and lists those whose status disagrees with the record.
func (h *faultHarness) compareWithTemporal(t *testing.T, invocations, runs []uuid.UUID) []string {
	t.Helper()
	ctx := context.Background()
	want := map[string]ferry.InvocationStatus{}
	for _, id := range invocations {
		inv, err := h.db.GetInvocation(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want[id.String()] = inv.Status
	}
	for _, id := range runs {
		run, err := h.db.GetChainRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want[id.String()] = run.Status
	}
	var diffs []string
	deadline := time.Now().Add(time.Minute)
	for {
		diffs = diffs[:0]
		seen := map[string]bool{}
		var token []byte
		for {
			resp, err := h.api.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Query: fmt.Sprintf("TaskQueue = '%s'", h.cfg.TaskQueue), NextPageToken: token, PageSize: 1000})
			if err != nil {
				t.Fatalf("list workflows: %v", err)
			}
			for _, e := range resp.Executions {
				id := e.GetExecution().GetWorkflowId()
				status, ok := want[id]
				if !ok {
					continue
				}
				seen[id] = true
				got := workflowStatusName(e.GetStatus())
				if exp := recordWorkflowStatus(status); got != exp {
					diffs = append(diffs, fmt.Sprintf("%s: record %s, workflow %s", id, status, got))
					continue
				}
				var sa string
				if p := e.GetSearchAttributes().GetIndexedFields()["FerryStatus"]; p != nil {
					_ = converter.GetDefaultDataConverter().FromPayload(p, &sa)
				}
				if slices.Contains(invocations, uuid.MustParse(id)) && sa != string(status) {
					diffs = append(diffs, fmt.Sprintf("%s: record %s, FerryStatus %q", id, status, sa))
				}
			}
			if token = resp.NextPageToken; len(token) == 0 {
				break
			}
		}
		for id := range want {
			if !seen[id] {
				diffs = append(diffs, id+": no workflow in Temporal's visibility")
			}
		}
		if len(diffs) == 0 || time.Now().After(deadline) {
			return slices.Clone(diffs)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func workflowStatusName(s enumspb.WorkflowExecutionStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "WorkflowExecutionStatus"))
}

// recordWorkflowStatus is the workflow status that goes with a final record.
func recordWorkflowStatus(s ferry.InvocationStatus) string {
	switch s {
	case ferry.StatusCompleted:
		return workflowStatusName(enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED)
	case ferry.StatusCancelled:
		return workflowStatusName(enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED)
	case ferry.StatusFailed, ferry.StatusTimeout:
		return workflowStatusName(enumspb.WORKFLOW_EXECUTION_STATUS_FAILED)
	}
	return "open (record " + string(s) + ")"
}

// runCounter counts the starts and ends the functions report.
type runCounter struct {
	mu   sync.Mutex
	runs map[uuid.UUID]*runTimes
	port int
}

type runTimes struct{ starts, ends []time.Time }

func newRunCounter(t *testing.T, host string) *runCounter {
	t.Helper()
	c := &runCounter{runs: map[uuid.UUID]*runTimes{}}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	c.port = ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		what, id, _ := strings.Cut(strings.Trim(r.URL.Path, "/"), "/")
		uid, err := uuid.Parse(id)
		if err != nil || what != "start" && what != "end" {
			http.Error(w, "want /start/<id> or /end/<id>", http.StatusBadRequest)
			return
		}
		now := time.Now()
		c.mu.Lock()
		rt := c.runs[uid]
		if rt == nil {
			rt = &runTimes{}
			c.runs[uid] = rt
		}
		if what == "start" {
			rt.starts = append(rt.starts, now)
		} else {
			rt.ends = append(rt.ends, now)
		}
		c.mu.Unlock()
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return c
}

func (c *runCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs = map[uuid.UUID]*runTimes{}
}

func (c *runCounter) snapshot() map[uuid.UUID]runTimes {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[uuid.UUID]runTimes, len(c.runs))
	for id, rt := range c.runs {
		out[id] = runTimes{slices.Clone(rt.starts), slices.Clone(rt.ends)}
	}
	return out
}

// tcpProxy forwards connections to a service; outage cuts every connection
// and refuses new ones for a while, as a restart of the service or a network
// partition does to its clients.
type tcpProxy struct {
	target, addr string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]struct{}
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.down() })
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *tcpProxy) forward(c net.Conn) {
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // went down meanwhile
		p.mu.Unlock()
		_ = c.Close()
		_ = s.Close()
		return
	}
	p.conns[c], p.conns[s] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, s); done <- struct{}{} }()
	<-done
	_ = c.Close()
	_ = s.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
}

// outage takes the service away for d and returns when it is back.
func (p *tcpProxy) outage(d time.Duration) time.Time {
	p.down()
	time.Sleep(d)
	for {
		ln, err := net.Listen("tcp", p.addr)
		if err == nil {
			p.serve(ln)
			return time.Now()
		}
		time.Sleep(50 * time.Millisecond) // the port lingers a moment
	}
}

// devTemporal is a Temporal dev server of this test's own (the one Temporal
// this test may restart), on SQLite in a temporary folder.
type devTemporal struct {
	bin, addr, db string
	cmd           *exec.Cmd
	logs          *lockedBuffer
}

func newDevTemporal(t *testing.T) *devTemporal {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("..", "..", "bin", "temporal"))
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		testenv.Unavailable(t, "the Temporal CLI in bin/ (make tools)", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &devTemporal{bin: bin, addr: ln.Addr().String(), db: filepath.Join(t.TempDir(), "temporal.db")}
	_ = ln.Close()
	d.start(t)
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			t.Logf("temporal dev server log:\n%.20000s", d.logs.String())
		}
	})
	return d
}

func (d *devTemporal) start(t *testing.T) {
	t.Helper()
	_, port, _ := net.SplitHostPort(d.addr)
	// The flags of scripts/stack.sh: eager start, Ferry's search attributes.
	d.cmd = exec.Command(d.bin, "server", "start-dev", "--ip", "127.0.0.1", "--port", port, "--headless",
		"--db-filename", d.db, "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
		"--dynamic-config-value", "system.enableEagerWorkflowStart=true",
		"--dynamic-config-value", "system.enableActivityEagerExecution=true",
		"--search-attribute", "FerryFunction=Keyword", "--search-attribute", "FerryRuntime=Keyword",
		"--search-attribute", "FerryStatus=Keyword", "--log-format", "json", "--log-level", "warn")
	d.logs = &lockedBuffer{}
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, err := temporalclient.Dial(temporalclient.Options{HostPort: d.addr})
		if err == nil {
			_, err = c.DescribeTaskQueue(context.Background(), "ready", enumspb.TASK_QUEUE_TYPE_WORKFLOW)
			c.Close()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("temporal dev server not ready: %v\n%s", err, d.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (d *devTemporal) stop(t *testing.T) {
	t.Helper()
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- d.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-exited
	}
	d.cmd = nil
}
