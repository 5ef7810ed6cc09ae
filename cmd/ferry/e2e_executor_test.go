package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestE2EUnstartableVersionFailsAtOnce: a version whose limits the engine
// cannot enforce (stored before the API refused them) ends its invocation as
// failed with a clear error at once. Before, every start failed and Temporal
// retried it as an infrastructure error for 15 minutes.
func TestE2EUnstartableVersionFailsAtOnce(t *testing.T) {
	s := startTestServer(t, "e2e_limits")
	s.deploy(t, "tiny-cpu", "python", "hello.handler", "hello.py", pyHello, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `UPDATE function_versions SET limits = jsonb_set(limits, '{cpus}', '0.0001') WHERE function = 'tiny-cpu'`); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	inv, resp := s.invoke(t, "tiny-cpu", map[string]any{"name": "x"})
	took := time.Since(start)
	if resp.StatusCode != http.StatusOK || inv.Status != "failed" || inv.Error == nil {
		t.Fatalf("invoke: %s %+v", resp.Status, inv)
	}
	if inv.Error.Type != "InvalidConfiguration" || !strings.HasPrefix(inv.Error.Message, "cpus: must be between 0.01 and 4") {
		t.Errorf("error %+v, want InvalidConfiguration naming cpus", *inv.Error)
	}
	if took > 10*time.Second {
		t.Errorf("failed after %v, want at once", took)
	}
	t.Logf("failed after %v: %s: %s", took, inv.Error.Type, inv.Error.Message)
}

const pySleepFor = `import time
def handler(event, context):
    time.sleep(event["s"])
    return "slept"
`

// TestE2EQueueIncludesTheSlotWait: an invocation that waits for a container
// of its function (max_concurrency 1) reports that wait in queue_ms. Before,
// queue_ms only counted the time until the activity began, not the wait in
// the executor.
func TestE2EQueueIncludesTheSlotWait(t *testing.T) {
	s := startTestServer(t, "e2e_queue")
	s.deploy(t, "one-at-a-time", "python", "sleep.handler", "sleep.py", pySleepFor, map[string]any{"max_concurrency": 1})
	type metrics struct {
		QueueMS    float64 `json:"queue_ms"`
		InitMS     float64 `json:"init_ms"`
		DurationMS float64 `json:"duration_ms"`
		TotalMS    float64 `json:"total_ms"`
	}
	type record struct {
		ID      string   `json:"id"`
		Status  string   `json:"status"`
		Metrics *metrics `json:"metrics"`
	}
	var ids []string
	for i := 0; i < 2; i++ {
		var rec record
		resp := s.do(t, http.MethodPost, "/v1/functions/one-at-a-time/invoke", map[string]any{"s": 1.5}, &rec, "Prefer", "respond-async")
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("invoke: %s", resp.Status)
		}
		ids = append(ids, rec.ID)
	}
	var queues []float64
	for _, id := range ids {
		rec := waitFinalRecord(t, s, "/v1/invocations/"+id, "invocation "+id, time.Minute, 100*time.Millisecond,
			func(r record) string { return r.Status })
		if rec.Status != "completed" || rec.Metrics == nil {
			t.Fatalf("invocation %+v", rec)
		}
		m := *rec.Metrics
		t.Logf("%s: %+v", id, m)
		if m.QueueMS+m.InitMS+m.DurationMS > m.TotalMS+1 {
			t.Errorf("queue %v + init %v + duration %v exceed total %v", m.QueueMS, m.InitMS, m.DurationMS, m.TotalMS)
		}
		queues = append(queues, m.QueueMS)
	}
	// One ran while the other waited for the only container: at least its 1.5 s.
	if waited := max(queues[0], queues[1]); waited < 1400 {
		t.Errorf("queue_ms %v, want one of them to show the wait of at least 1.5 s for the container", queues)
	}
}
