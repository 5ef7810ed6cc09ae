package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/storage/postgres"
)

// envRunWorker makes the test binary run `ferry worker` instead of the tests,
// so that a test can kill a real worker process with SIGKILL.
const envRunWorker = "FERRY_TEST_RUN_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(envRunWorker) != "" {
		root := serveCommand("worker", "test worker", roles{worker: true})
		root.SetArgs(nil)
		if err := root.Execute(); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// environ is cfg as the FERRY_* variables LoadConfig reads.
func (c Config) environ() []string {
	return []string{
		"FERRY_DATABASE_URL=" + c.DatabaseURL,
		"FERRY_TEMPORAL_ADDRESS=" + c.TemporalAddress,
		"FERRY_TEMPORAL_NAMESPACE=" + c.TemporalNamespace,
		"FERRY_TASK_QUEUE=" + c.TaskQueue,
		"FERRY_S3_ENDPOINT=" + c.S3Endpoint,
		"FERRY_S3_ACCESS_KEY=" + c.S3AccessKey,
		"FERRY_S3_SECRET_KEY=" + c.S3SecretKey,
		"FERRY_S3_BUCKET=" + c.S3Bucket,
		"FERRY_S3_SECURE=" + strconv.FormatBool(c.S3Secure),
		"FERRY_DATA_DIR=" + c.DataDir,
		"FERRY_IDLE_TIMEOUT=" + c.IdleTimeout.String(),
		"FERRY_MAX_CONTAINERS=" + strconv.Itoa(c.MaxContainers),
		"FERRY_METRICS_LISTEN=" + c.MetricsListen,
		"FERRY_SECRETS_KEY=" + c.SecretsKey,
		"FERRY_SECRETS_KEY_FILE=" + c.SecretsKeyFile,
		"FERRY_SECRETS_OLD_KEYS=" + c.SecretsOldKeys,
	}
}

// lockedBuffer collects a worker process's log while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startWorkerProcess runs `ferry worker` as a child process with cfg and keeps
// its log; the log is shown when the test fails (the worker is chatty).
func startWorkerProcess(t *testing.T, cfg Config) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), envRunWorker+"=1"), cfg.environ()...)
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("worker process log:\n%s", logs.String())
		}
	})
	return cmd, logs
}

// TestWorkerKilledMidFlight: a worker is killed with SIGKILL while 20
// invocations run; after a restart all 20 end completed, each recorded once.
func TestWorkerKilledMidFlight(t *testing.T) {
	cfg := testConfig(t, "e2e_crash")
	cfg.MaxContainers = 24
	s := startWithConfig(t, cfg, roles{api: true})
	worker, _ := startWorkerProcess(t, cfg)

	s.deploy(t, "slow", "python", "slow.handler", "slow.py",
		"import time\ndef handler(event, context):\n    time.sleep(4)\n    return event\n",
		map[string]any{"timeout_seconds": 10, "max_concurrency": 20})
	ids := make([]string, 20)
	for i := range ids {
		inv, resp := s.invoke(t, "slow", map[string]int{"i": i}, "Prefer", "respond-async")
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("invoke %d: %s", i, resp.Status)
		}
		ids[i] = inv.ID
	}
	// Kill once most are running, i.e. in containers started by that worker.
	waitRunning(t, s, ids, 10, 60*time.Second)
	if err := worker.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = worker.Wait()
	startWorkerProcess(t, cfg)

	for i, id := range ids {
		if inv := s.waitFinal(t, id, 2*time.Minute); inv.Status != "completed" || string(inv.Result) != fmt.Sprintf(`{"i": %d}`, i) && string(inv.Result) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Errorf("invocation %d: %s %s %+v", i, inv.Status, inv.Result, inv.Error)
		}
	}
	// Recorded once: exactly 20 records, all completed, none left running.
	ctx := context.Background()
	db, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	list, _, err := db.ListInvocations(ctx, ferry.InvocationFilter{Function: "slow"}, ferry.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 20 {
		t.Fatalf("want 20 invocation records, got %d", len(list))
	}
	for _, inv := range list {
		if inv.Status != ferry.StatusCompleted || inv.FinishedAt == nil {
			t.Errorf("record %s: %s", inv.ID, inv.Status)
		}
	}
}

func waitRunning(t *testing.T, s *testServer, ids []string, atLeast int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		running := 0
		for _, id := range ids {
			var inv invocationJSON
			s.do(t, http.MethodGet, "/v1/invocations/"+id, nil, &inv)
			if inv.Status == "running" {
				running++
			}
		}
		if running >= atLeast {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("fewer than %d of %d invocations running after %s", atLeast, len(ids), within)
}
