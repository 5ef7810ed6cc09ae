package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ferry-faas/ferry"
)

func TestObserveInvocation(t *testing.T) {
	reg := NewRegistry()
	m := New(reg)
	now := time.Now()
	m.ObserveInvocation(ferry.Invocation{Function: "hello", Status: ferry.StatusCompleted,
		Metrics: &ferry.Metrics{TotalMS: 40, QueueMS: 5, InitMS: 300, DurationMS: 3, Cold: true}})
	m.ObserveInvocation(ferry.Invocation{Function: "hello", Status: ferry.StatusCompleted,
		Metrics: &ferry.Metrics{TotalMS: 12, QueueMS: 2, DurationMS: 2}})
	m.ObserveInvocation(ferry.Invocation{Function: "hello", Status: ferry.StatusCancelled,
		CreatedAt: now.Add(-time.Second), FinishedAt: &now})
	m.ObserveInvocation(ferry.Invocation{Function: "hello", Status: ferry.StatusRunning}) // ignored

	if got := testutil.ToFloat64(m.invocations.WithLabelValues("hello", "completed")); got != 2 {
		t.Errorf("completed = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.invocations.WithLabelValues("hello", "cancelled")); got != 1 {
		t.Errorf("cancelled = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.starts.WithLabelValues("hello", "cold")); got != 1 {
		t.Errorf("cold starts = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.starts.WithLabelValues("hello", "warm")); got != 1 {
		t.Errorf("warm starts = %v, want 1", got)
	}
	// total: 2 with metrics + 1 cancelled; init only for the cold start.
	if n := testutil.CollectAndCount(m.duration); n != 4 {
		t.Errorf("duration series = %d, want 4 (total, queue, execution, init)", n)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP ferry_invocations_total Finished invocations by function and final status.
# TYPE ferry_invocations_total counter
ferry_invocations_total{function="hello",status="cancelled"} 1
ferry_invocations_total{function="hello",status="completed"} 2
`), "ferry_invocations_total"); err != nil {
		t.Error(err)
	}
}

func TestPoolAndHTTP(t *testing.T) {
	reg := NewRegistry()
	m := New(reg)
	if n := testutil.CollectAndCount(m.pool); n != 0 {
		t.Errorf("pool series before RegisterPool = %d, want 0", n)
	}
	m.RegisterPool(func() (int, int) { return 5, 2 })
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP ferry_warm_pool_containers Containers in the worker's warm pool, by state (total, busy).
# TYPE ferry_warm_pool_containers gauge
ferry_warm_pool_containers{state="busy"} 2
ferry_warm_pool_containers{state="total"} 5
`), "ferry_warm_pool_containers"); err != nil {
		t.Error(err)
	}
	m.ObserveHTTP("GET", "/v1/functions", 200, 3*time.Millisecond)
	if n := testutil.CollectAndCount(m.http, "ferry_http_request_duration_seconds"); n != 1 {
		t.Errorf("http series = %d, want 1", n)
	}
	var nilM *Metrics // a nil *Metrics must be safe to use
	nilM.ObserveHTTP("GET", "/", 200, time.Millisecond)
	nilM.ObserveInvocation(ferry.Invocation{Status: ferry.StatusCompleted})
	nilM.RegisterPool(nil)
}
