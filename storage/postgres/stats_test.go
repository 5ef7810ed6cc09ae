package postgres_test

import (
	"testing"
	"time"

	"github.com/ferry-faas/ferry"
)

func TestFunctionStats(t *testing.T) {
	db, ctx := open(t), ctxT(t)
	a, err := db.CreateFunction(ctx, version("a", "k-a"), [16]byte{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := db.CreateFunction(ctx, version("b", "k-b"), [16]byte{})
	if err != nil {
		t.Fatal(err)
	}
	fa, _ := db.GetFunction(ctx, "a")
	fb, _ := db.GetFunction(ctx, "b")
	now := time.Now()
	// a: 4 finished in the last hour (durations 10, 20, 30, 1000 ms; one
	// failed, one timeout, one cold), one running, one two hours old.
	record := func(v ferry.Version, status ferry.InvocationStatus, ago time.Duration, ms float64, cold bool) {
		t.Helper()
		inv, _, err := db.CreateInvocation(ctx, ferry.Invocation{Function: v.Function, FunctionID: v.FunctionID,
			Version: 1, CreatedAt: now.Add(-ago)})
		if err != nil {
			t.Fatal(err)
		}
		if status.Final() {
			_, _, err = db.FinishInvocation(ctx, inv.ID, ferry.Outcome{Status: status,
				Metrics: &ferry.Metrics{DurationMS: ms, Cold: cold}})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	record(a, ferry.StatusCompleted, 50*time.Minute, 10, true)
	record(a, ferry.StatusCompleted, 30*time.Minute, 20, false)
	record(a, ferry.StatusFailed, 10*time.Minute, 30, false)
	record(a, ferry.StatusTimeout, 5*time.Minute, 1000, false)
	record(a, ferry.StatusRunning, time.Minute, 0, false)
	record(a, ferry.StatusCompleted, 2*time.Hour, 5000, false)
	record(b, ferry.StatusCompleted, 3*time.Hour, 1, false)

	got, err := db.FunctionStats(ctx, []ferry.Function{fa, fb}, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	s := got[fa.ID]
	if s.Invocations != 5 || s.Errors != 2 || s.Finished != 4 || s.Cold != 1 {
		t.Fatalf("stats of a = %+v, want 5 invocations, 2 errors, 4 finished, 1 cold", s)
	}
	if s.P50MS != 25 || s.P99MS < 900 || s.P99MS > 1000 || s.ErrorRate() != 0.5 {
		t.Fatalf("stats of a = %+v (error rate %v), want p50 25, p99 in [900, 1000], error rate 0.5", s, s.ErrorRate())
	}
	if _, ok := got[fb.ID]; ok {
		t.Fatalf("b has no invocation in the window but has stats %+v", got[fb.ID])
	}

	series, err := db.InvocationSeries(ctx, fa, now.Add(-3*time.Hour), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(series); n < 12 || n > 13 {
		t.Fatalf("%d buckets of 15 minutes over 3 hours", n)
	}
	total, errs := 0, 0
	for i, bk := range series {
		if i > 0 && !bk.Start.Equal(series[i-1].Start.Add(15*time.Minute)) {
			t.Fatalf("bucket %d starts at %v, after %v", i, bk.Start, series[i-1].Start)
		}
		total += bk.Invocations
		errs += bk.Errors
	}
	if total != 6 || errs != 2 {
		t.Fatalf("series sums to %d invocations and %d errors, want 6 and 2", total, errs)
	}
	_, err = db.InvocationSeries(ctx, fa, now.Add(-time.Hour), 0)
	wantCode(t, err, ferry.EINVALID)
}
