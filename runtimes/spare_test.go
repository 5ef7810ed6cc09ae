package runtimes

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-faas/ferry"
)

// spareCases are the runtimes with spares whose images exist.
func spareCases(t *testing.T, e *Executor) []rtCase {
	t.Helper()
	var out []rtCase
	for _, c := range runtimeCases(t, e) {
		if slices.Contains(spareRuntimes, c.rt) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		t.Skip("no runtime image with spares")
	}
	return out
}

// readySpares returns the container ids of rt's ready spares.
func readySpares(e *Executor, rt ferry.Runtime) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	if st := e.spares[rt]; st != nil {
		for _, in := range st.ready {
			ids = append(ids, in.id)
		}
	}
	return ids
}

// waitSpare waits until rt has a ready spare other than not, and returns it.
func waitSpare(t *testing.T, e *Executor, rt ferry.Runtime, not ...string) string {
	t.Helper()
	var id string
	deadline := time.Now().Add(time.Minute)
	for id == "" {
		for _, s := range readySpares(e, rt) {
			if !slices.Contains(not, s) {
				id = s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ready %s spare after a minute", rt)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return id
}

// containerOfKey returns the id of the one container of the spec's key.
func containerOfKey(t *testing.T, e *Executor, s Spec) string {
	t.Helper()
	s.Limits = s.Limits.WithDefaults()
	key := poolKey(s, e.cfg.Images[s.Runtime])
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for in := range e.all {
		if in.key == key {
			ids = append(ids, in.id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%d containers of %s, want 1", len(ids), s.Function)
	}
	return ids[0]
}

type limitsResult struct {
	Memory, Swap, CPU, Pids string
	Env                     map[string]string
	Files                   []string
}

func TestSpares(t *testing.T) {
	e := newTestExecutor(t, Config{Spares: 1})
	for _, c := range spareCases(t, e) {
		t.Run(string(c.rt), func(t *testing.T) {
			spare := waitSpare(t, e, c.rt)
			info, err := e.docker.ContainerInspect(context.Background(), spare)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "spare label", info.Config.Labels[labelSpare], "true")
			eq(t, "spare network", string(info.HostConfig.NetworkMode), "none")

			// A cold start through the spare: event, context and env of the function.
			assigned := e.spareAssigned.Load()
			s := contextSpec(c, "spare-f")
			res := execute(t, e, s)
			wantStatus(t, res, StatusCompleted)
			if !res.Metrics.Cold || res.Metrics.InitMS <= 0 {
				t.Errorf("metrics %+v, want cold with init time", res.Metrics)
			}
			eq(t, "cold starts through a spare", e.spareAssigned.Load(), assigned+1)
			eq(t, "container of the function", containerOfKey(t, e, s), spare)
			t.Logf("cold start through a spare: init %.1f ms", res.Metrics.InitMS)
			checkContext(t, s, res)

			// The function's limits and environment, seen from inside.
			s.Event = []byte(`{"op":"limits"}`)
			res = execute(t, e, s)
			wantStatus(t, res, StatusCompleted)
			if res.Metrics.Cold {
				t.Errorf("second call was cold")
			}
			l := decode[limitsResult](t, res.Result)
			t.Logf("inside the former spare: %+v", l)
			eq(t, "memory limit", l.Memory, strconv.Itoa(192<<20))
			if l.Swap != "" {
				eq(t, "memory+swap limit", l.Swap, l.Memory)
			}
			eq(t, "CPU quota", l.CPU, "50000")
			eq(t, "pids limit", l.Pids, strconv.Itoa(pidsLimit))
			eq(t, "AWS_LAMBDA_FUNCTION_NAME", l.Env["AWS_LAMBDA_FUNCTION_NAME"], s.Function)
			eq(t, "AWS_LAMBDA_FUNCTION_VERSION", l.Env["AWS_LAMBDA_FUNCTION_VERSION"], "4")
			eq(t, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", l.Env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "192")
			eq(t, "_HANDLER", l.Env["_HANDLER"], c.handler)
			eq(t, "HOME", l.Env["HOME"], "/tmp")
			eq(t, "files", strings.Join(l.Files, ","), map[ferry.Runtime]string{ferry.RuntimePython: "app.py", ferry.RuntimeNode: "index.js"}[c.rt])

			// A replacement was started; another function gets it, never the
			// first function's container.
			spare2 := waitSpare(t, e, c.rt, spare)
			g := c.spec("spare-g", map[string]any{"op": "limits"}, ferry.Limits{MemoryMB: 256, CPUs: 1})
			g.Env = map[string]string{"GREETING": "other"}
			res = execute(t, e, g)
			wantStatus(t, res, StatusCompleted)
			if !res.Metrics.Cold {
				t.Errorf("first call of another function was warm")
			}
			eq(t, "cold starts through a spare", e.spareAssigned.Load(), assigned+2)
			eq(t, "container of the other function", containerOfKey(t, e, g), spare2)
			lg := decode[limitsResult](t, res.Result)
			eq(t, "other's memory limit", lg.Memory, strconv.Itoa(256<<20))
			eq(t, "other's CPU quota", lg.CPU, "100000")
			eq(t, "other's env", lg.Env["GREETING"], "other")
			eq(t, "other's name", lg.Env["AWS_LAMBDA_FUNCTION_NAME"], g.Function)
			// The first function still has its own container, unchanged.
			res = execute(t, e, s)
			wantStatus(t, res, StatusCompleted)
			l = decode[limitsResult](t, res.Result)
			eq(t, "first's env after the other", l.Env["GREETING"], "hi")
			eq(t, "first's memory after the other", l.Memory, strconv.Itoa(192<<20))
			eq(t, "container of the function", containerOfKey(t, e, s), spare)

			// A handler that does not load: init_error through a spare, and
			// the container is discarded.
			spare3 := waitSpare(t, e, c.rt, spare, spare2)
			bad := c.spec("spare-bad", map[string]any{"op": "echo"}, ferry.Limits{})
			bad.Handler = strings.Replace(bad.Handler, ".handler", ".missing", 1)
			res = execute(t, e, bad)
			wantStatus(t, res, StatusFailed)
			if res.Error == nil || !res.Metrics.Cold {
				t.Fatalf("result %+v", res)
			}
			t.Logf("init error through a spare: %s: %s", res.Error.Type, res.Error.Message)
			e.bg.Wait()
			if _, err := e.docker.ContainerInspect(context.Background(), spare3); err == nil {
				t.Errorf("the spare whose handler did not load still exists")
			}

			// network: true and start-up variables take the path without spares.
			waitSpare(t, e, c.rt, spare, spare2, spare3)
			before := e.spareAssigned.Load()
			res = execute(t, e, c.spec("spare-net", map[string]any{"op": "echo"}, ferry.Limits{Network: true}))
			wantStatus(t, res, StatusCompleted)
			sp := c.spec("spare-env", map[string]any{"op": "echo"}, ferry.Limits{})
			sp.Env = map[string]string{"NODE_OPTIONS": "--max-old-space-size=64", "PYTHONDONTWRITEBYTECODE": "1"}
			res = execute(t, e, sp)
			wantStatus(t, res, StatusCompleted)
			eq(t, "spares taken by network and start-up env functions", e.spareAssigned.Load(), before)
		})
	}

	// Close removes the spares too.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	eq(t, "containers after Close", len(managedContainers(t, e)), 0)
	entries, _ := os.ReadDir(e.taskDir)
	eq(t, "code folders after Close", len(entries), 0)
}

// TestSpareOOM runs out of memory in a former spare whose memory limit was
// raised on assignment: the function's limit applies and the OOM is reported.
func TestSpareOOM(t *testing.T) {
	e := newTestExecutor(t, Config{Spares: 1})
	c := spareCases(t, e)[0]
	waitSpare(t, e, c.rt)
	assigned := e.spareAssigned.Load()
	res := execute(t, e, c.spec("spare-oom", map[string]any{"op": "hog"}, ferry.Limits{MemoryMB: 160, TimeoutSeconds: 90}))
	eq(t, "cold starts through a spare", e.spareAssigned.Load(), assigned+1)
	wantStatus(t, res, StatusOOM)
	if !strings.Contains(res.Error.Message, "limit 160 MB") {
		t.Errorf("message %q does not name the function's limit", res.Error.Message)
	}
}

// TestSparesAtCap: spares count against MaxContainers, and a cold start at
// the cap evicts a spare before a warm container.
func TestSparesAtCap(t *testing.T) {
	e := newTestExecutor(t, Config{Spares: 1, MaxContainers: 2})
	c := spareCases(t, e)[0]
	waitSpare(t, e, c.rt)
	waitFor(t, "the cap to be filled", func() bool { return e.Stats().Total == 2 })
	f := c.spec("cap-f", map[string]any{"op": "echo"}, ferry.Limits{Network: true}) // never a spare
	res := execute(t, e, f)
	wantStatus(t, res, StatusCompleted)
	st := e.Stats()
	if st.Total > 2 {
		t.Errorf("%d containers above the cap of 2", st.Total)
	}
	res = execute(t, e, f)
	if res.Metrics.Cold {
		t.Errorf("the warm container was evicted instead of a spare")
	}
}

// TestSpareReaped: a spare whose executor died is removed by another
// executor's reaper, with its code folder.
func TestSpareReaped(t *testing.T) {
	owner := newTestExecutor(t, Config{Spares: 1})
	c := spareCases(t, owner)[0]
	id := waitSpare(t, owner, c.rt)
	owner.mu.Lock()
	var in *instance
	for x := range owner.all {
		if x.id == id {
			in = x
		}
	}
	owner.mu.Unlock()
	// The owner's liveness listener dies, the socket file stays: as after a
	// crash. The spare is young: it goes all the same.
	owner.alive.SetUnlinkOnClose(false)
	_ = owner.alive.Close()
	other := newTestExecutor(t, Config{DataDir: owner.cfg.DataDir})
	// Only the owner's containers: those of tests running at the same time
	// on the engine (other packages, other checkouts) are not orphans.
	other.reapPool = owner.poolID
	other.reap(context.Background())
	if _, err := other.docker.ContainerInspect(context.Background(), id); err == nil {
		t.Errorf("orphaned spare %s still exists", id)
	}
	if _, err := os.Stat(filepath.Join(owner.taskDir, in.name)); !os.IsNotExist(err) {
		t.Errorf("code folder of the reaped spare remains")
	}
}
