package postgres_test

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
)

func TestInvocationLifecycle(t *testing.T) {
	db, ctx := open(t), ctxT(t)
	// json, not jsonb: the event comes back byte for byte.
	event := json.RawMessage(`{"b": 1,   "a": [1, 2.50], "u": "\u00e9"}`)
	retryOf, chainRun := uuid.New(), uuid.New()
	inv, created, err := db.CreateInvocation(ctx, ferry.Invocation{
		Function: "resize", Version: 3, Event: event, RetryOf: &retryOf, ChainRunID: &chainRun,
		WorkflowID: "invoke-x",
	})
	if err != nil || !created {
		t.Fatalf("create: %v, created=%v", err, created)
	}
	if inv.ID == uuid.Nil || inv.Status != ferry.StatusPending || inv.CreatedAt.IsZero() ||
		inv.StartedAt != nil || inv.FinishedAt != nil {
		t.Fatalf("created %+v", inv)
	}
	got, err := db.GetInvocation(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Event) != string(event) || got.Result != nil || *got.RetryOf != retryOf ||
		*got.ChainRunID != chainRun || got.WorkflowID != "invoke-x" || got.Version != 3 {
		t.Fatalf("got %+v", got)
	}

	started := time.Now().UTC().Truncate(time.Microsecond)
	if got.Attempts != 0 {
		t.Fatalf("attempts before start: %d", got.Attempts)
	}
	first, second := uuid.New(), uuid.New()
	if st, err := db.StartInvocation(ctx, inv.ID, "run-1", started, first, time.Minute); err != nil || st != ferry.StatusRunning {
		t.Fatal(st, err)
	}
	// A second attempt waits while the first holds its lease: nothing changes.
	_, err = db.StartInvocation(ctx, inv.ID, "run-2", started.Add(time.Second), second, time.Minute)
	wantCode(t, err, ferry.ECONFLICT)
	if got, _ := db.GetInvocation(ctx, inv.ID); got.Attempts != 1 {
		t.Fatalf("attempts %d after a refused start, want 1", got.Attempts)
	}
	if err := db.RenewInvocation(ctx, inv.ID, first, time.Minute); err != nil {
		t.Fatal(err)
	}
	// Released, the second attempt starts (a retry, a re-execution): one
	// more attempt, the first start's time and run kept; the first attempt
	// no longer holds the lease.
	if err := db.ReleaseInvocation(ctx, inv.ID, first); err != nil {
		t.Fatal(err)
	}
	if st, err := db.StartInvocation(ctx, inv.ID, "run-2", started.Add(time.Second), second, time.Millisecond); err != nil || st != ferry.StatusRunning {
		t.Fatal(st, err)
	}
	wantCode(t, db.RenewInvocation(ctx, inv.ID, first, time.Minute), ferry.ECONFLICT)
	got, _ = db.GetInvocation(ctx, inv.ID)
	if got.Status != ferry.StatusRunning || got.RunID != "run-1" || !got.StartedAt.Equal(started) || got.Attempts != 2 {
		t.Fatalf("after start: %+v", got)
	}
	// An expired lease (its worker died) does not hold anyone back.
	time.Sleep(20 * time.Millisecond)
	if st, err := db.StartInvocation(ctx, inv.ID, "run-3", time.Now(), uuid.New(), time.Minute); err != nil || st != ferry.StatusRunning {
		t.Fatal(st, err)
	}

	finished := started.Add(150 * time.Millisecond)
	logs := "line 1\nnul:\x00 bad utf8:\xff done\n"
	out, updated, err := db.FinishInvocation(ctx, inv.ID, ferry.Outcome{
		Status:     ferry.StatusCompleted,
		Result:     json.RawMessage(`[1,"two"]`),
		Metrics:    &ferry.Metrics{DurationMS: 12.5, InitMS: 300, Cold: true, MemoryPeak: 1 << 20},
		Logs:       logs,
		FinishedAt: finished,
	})
	if err != nil || !updated {
		t.Fatalf("finish: %v, updated=%v", err, updated)
	}
	if out.Status != ferry.StatusCompleted || string(out.Result) != `[1,"two"]` || out.Metrics == nil ||
		out.Metrics.DurationMS != 12.5 || !out.Metrics.Cold || out.Error != nil || !out.FinishedAt.Equal(finished) {
		t.Fatalf("finished %+v metrics %+v", out, out.Metrics)
	}
	gotLogs, err := db.InvocationLogs(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := "line 1\nnul: bad utf8:\uFFFD done\n"; gotLogs != want {
		t.Fatalf("logs %q, want %q", gotLogs, want)
	}

	// The record is final: a second finish (an activity retry, or a late
	// cancel) returns it unchanged.
	again, updated, err := db.FinishInvocation(ctx, inv.ID, ferry.Outcome{
		Status: ferry.StatusCancelled, Error: &ferry.FunctionError{Type: "Cancelled", Message: "late"},
	})
	if err != nil || updated {
		t.Fatalf("second finish: %v, updated=%v", err, updated)
	}
	if again.Status != ferry.StatusCompleted || again.Error != nil || string(again.Result) != `[1,"two"]` {
		t.Fatalf("second finish changed the record: %+v", again)
	}
	// A start after the final write says so and changes nothing: the caller
	// must not run the function again.
	if st, err := db.StartInvocation(ctx, inv.ID, "run-4", time.Now(), uuid.New(), time.Minute); err != nil || st != ferry.StatusCompleted {
		t.Fatal(st, err)
	}
	if got, _ := db.GetInvocation(ctx, inv.ID); got.Status != ferry.StatusCompleted || got.RunID != "run-1" || got.Attempts != 3 {
		t.Fatalf("start after finish changed the record: %+v", got)
	}

	missing := uuid.New()
	_, err = db.GetInvocation(ctx, missing)
	wantCode(t, err, ferry.ENOTFOUND)
	if got, want := ferry.ErrorMessage(err), "invocation "+missing.String()+" not found"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	_, err = db.StartInvocation(ctx, missing, "r", time.Now(), uuid.New(), time.Minute)
	wantCode(t, err, ferry.ENOTFOUND)
	_, _, err = db.FinishInvocation(ctx, missing, ferry.Outcome{Status: ferry.StatusFailed})
	wantCode(t, err, ferry.ENOTFOUND)
	_, err = db.InvocationLogs(ctx, missing)
	wantCode(t, err, ferry.ENOTFOUND)
	_, _, err = db.FinishInvocation(ctx, inv.ID, ferry.Outcome{Status: ferry.StatusRunning})
	wantCode(t, err, ferry.EINVALID)
}

func TestInvocationFailureRecord(t *testing.T) {
	db, ctx := open(t), ctxT(t)
	inv, _, err := db.CreateInvocation(ctx, ferry.Invocation{Function: "f", Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	if inv.Event != nil {
		t.Fatalf("event of an invocation without one: %q", inv.Event)
	}
	// A user's error text may hold NUL, which jsonb refuses.
	out, _, err := db.FinishInvocation(ctx, inv.ID, ferry.Outcome{
		Status: ferry.StatusFailed,
		Error:  &ferry.FunctionError{Type: "ValueError", Message: "bad\x00value", Stack: "at line 3"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := ferry.FunctionError{Type: "ValueError", Message: "badvalue", Stack: "at line 3"}
	if out.Error == nil || *out.Error != want || out.Result != nil || out.StartedAt != nil || out.FinishedAt == nil {
		t.Fatalf("failed record %+v (error %+v)", out, out.Error)
	}

	_, _, err = db.CreateInvocation(ctx, ferry.Invocation{Function: "f", Event: json.RawMessage(`{not json`)})
	wantCode(t, err, ferry.EINVALID)
	_, _, err = db.CreateInvocation(ctx, ferry.Invocation{Event: json.RawMessage(`{}`)})
	wantCode(t, err, ferry.EINVALID)
	// The same id twice is a conflict.
	_, _, err = db.CreateInvocation(ctx, ferry.Invocation{ID: inv.ID, Function: "f"})
	wantCode(t, err, ferry.ECONFLICT)
}

func TestIdempotencyKey(t *testing.T) {
	db, ctx := open(t), ctxT(t)
	pay, ship := uuid.New(), uuid.New()
	first, created, err := db.CreateInvocation(ctx, ferry.Invocation{Function: "pay", FunctionID: pay,
		Version: 1, IdempotencyKey: "order-17", RequestHash: "h1", Event: json.RawMessage(`1`)})
	if err != nil || !created || first.IdempotencyKey != "order-17" || first.FunctionID != pay {
		t.Fatalf("first: %+v, %v, %v", first, created, err)
	}
	second, created, err := db.CreateInvocation(ctx, ferry.Invocation{Function: "pay", FunctionID: pay,
		Version: 2, IdempotencyKey: "order-17", RequestHash: "h1", Event: json.RawMessage(`1`)})
	if err != nil || created || second.ID != first.ID || string(second.Event) != "1" || second.Version != 1 {
		t.Fatalf("second: %+v, created=%v, %v", second, created, err)
	}
	// The same key for another request: refused, naming the key.
	_, _, err = db.CreateInvocation(ctx, ferry.Invocation{Function: "pay", FunctionID: pay,
		IdempotencyKey: "order-17", RequestHash: "h2", Event: json.RawMessage(`2`)})
	wantCode(t, err, ferry.EUNPROCESSABLE)
	if msg := ferry.ErrorMessage(err); !strings.Contains(msg, `"order-17"`) || !strings.Contains(msg, "24h0m0s") {
		t.Errorf("mismatch message %q", msg)
	}
	// Keys are per function identity: another function, or the same name
	// deleted and created again, never gets the first invocation.
	for _, fn := range []struct {
		name string
		id   uuid.UUID
	}{{"ship", ship}, {"pay", uuid.New()}} {
		other, created, err := db.CreateInvocation(ctx, ferry.Invocation{Function: fn.name, FunctionID: fn.id,
			IdempotencyKey: "order-17", RequestHash: "h1"})
		if err != nil || !created || other.ID == first.ID {
			t.Fatalf("function %s %v: %+v, created=%v, %v", fn.name, fn.id, other, created, err)
		}
	}
	// A key needs the function's identity.
	_, _, err = db.CreateInvocation(ctx, ferry.Invocation{Function: "pay", IdempotencyKey: "k"})
	wantCode(t, err, ferry.EINVALID)
	// Without a key every call is a new invocation.
	a, _, _ := db.CreateInvocation(ctx, ferry.Invocation{Function: "pay"})
	b, _, _ := db.CreateInvocation(ctx, ferry.Invocation{Function: "pay"})
	if a.ID == b.ID || a.ID == uuid.Nil {
		t.Fatalf("keyless invocations share id %v", a.ID)
	}

	// A key older than its lifetime is free again; the old record stays.
	old, _, err := db.CreateInvocation(ctx, ferry.Invocation{Function: "pay", FunctionID: pay, IdempotencyKey: "old",
		RequestHash: "h1", CreatedAt: time.Now().Add(-ferry.IdempotencyKeyLifetime - time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	fresh, created, err := db.CreateInvocation(ctx, ferry.Invocation{Function: "pay", FunctionID: pay,
		IdempotencyKey: "old", RequestHash: "h2"})
	if err != nil || !created || fresh.ID == old.ID {
		t.Fatalf("expired key: %+v, created=%v, %v", fresh, created, err)
	}
	if got, err := db.GetInvocation(ctx, old.ID); err != nil || got.IdempotencyKey != "" {
		t.Fatalf("expired record: key %q, %v", got.IdempotencyKey, err)
	}

	// Concurrent requests with one key: exactly one creates.
	const n = 10
	ids := make([]uuid.UUID, n)
	createdN := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inv, c, err := db.CreateInvocation(ctx, ferry.Invocation{Function: "pay", FunctionID: pay, IdempotencyKey: "race"})
			ids[i], createdN[i], errs[i] = inv.ID, c, err
		}()
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if createdN[i] {
			creators++
		}
		if ids[i] != ids[0] {
			t.Fatalf("concurrent callers got different invocations: %v", ids)
		}
	}
	if creators != 1 {
		t.Fatalf("%d callers created, want 1", creators)
	}
}

func TestListInvocations(t *testing.T) {
	db, ctx := open(t), ctxT(t)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	chainRun := uuid.New()
	type row struct {
		fn     string
		status ferry.InvocationStatus
		at     time.Duration
	}
	// Rows 2-4 share one timestamp so that the id breaks the tie.
	rows := []row{
		{"a", ferry.StatusCompleted, 0}, {"a", ferry.StatusFailed, 1}, {"b", ferry.StatusCompleted, 2},
		{"a", ferry.StatusCompleted, 2}, {"b", ferry.StatusPending, 2}, {"a", ferry.StatusRunning, 3},
		{"a", ferry.StatusCompleted, 4},
	}
	var all []ferry.Invocation
	for i, r := range rows {
		inv := ferry.Invocation{Function: r.fn, Version: 1, Status: r.status,
			CreatedAt: base.Add(r.at * time.Second), Event: json.RawMessage(`{"big":true}`)}
		if i%2 == 0 {
			inv.ChainRunID = &chainRun
		}
		created, _, err := db.CreateInvocation(ctx, inv)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, created)
	}
	// Newest first, then by id descending.
	slices.SortFunc(all, func(x, y ferry.Invocation) int {
		if c := y.CreatedAt.Compare(x.CreatedAt); c != 0 {
			return c
		}
		return -slices.Compare(x.ID[:], y.ID[:])
	})

	collect := func(f ferry.InvocationFilter, limit int) ([]uuid.UUID, int) {
		t.Helper()
		var ids []uuid.UUID
		cursor, pages := "", 0
		for {
			invs, next, err := db.ListInvocations(ctx, f, ferry.Page{Limit: limit, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, inv := range invs {
				if inv.Event != nil {
					t.Fatalf("list row carries its event")
				}
				ids = append(ids, inv.ID)
			}
			if next == "" {
				return ids, pages
			}
			cursor = next
			if pages > 20 {
				t.Fatal("pagination does not end")
			}
		}
	}
	want := func(keep func(ferry.Invocation) bool) []uuid.UUID {
		var ids []uuid.UUID
		for _, inv := range all {
			if keep(inv) {
				ids = append(ids, inv.ID)
			}
		}
		return ids
	}

	for _, tc := range []struct {
		name   string
		filter ferry.InvocationFilter
		keep   func(ferry.Invocation) bool
	}{
		{"all", ferry.InvocationFilter{}, func(ferry.Invocation) bool { return true }},
		{"function", ferry.InvocationFilter{Function: "a"}, func(i ferry.Invocation) bool { return i.Function == "a" }},
		{"status", ferry.InvocationFilter{Status: ferry.StatusCompleted},
			func(i ferry.Invocation) bool { return i.Status == ferry.StatusCompleted }},
		{"function and status", ferry.InvocationFilter{Function: "a", Status: ferry.StatusCompleted},
			func(i ferry.Invocation) bool { return i.Function == "a" && i.Status == ferry.StatusCompleted }},
		{"chain run", ferry.InvocationFilter{ChainRunID: &chainRun},
			func(i ferry.Invocation) bool { return i.ChainRunID != nil }},
		{"time range", ferry.InvocationFilter{Since: base.Add(time.Second), Until: base.Add(3 * time.Second)},
			func(i ferry.Invocation) bool {
				return !i.CreatedAt.Before(base.Add(time.Second)) && i.CreatedAt.Before(base.Add(3*time.Second))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expect := want(tc.keep)
			for _, limit := range []int{1, 2, 3, 50} {
				got, pages := collect(tc.filter, limit)
				if !slices.Equal(got, expect) {
					t.Fatalf("limit %d: got %v\nwant %v", limit, got, expect)
				}
				if wantPages := max(1, (len(expect)+limit-1)/limit); pages != wantPages {
					t.Errorf("limit %d: %d pages, want %d", limit, pages, wantPages)
				}
			}
		})
	}

	_, _, err := db.ListInvocations(ctx, ferry.InvocationFilter{Status: "exploded"}, ferry.Page{})
	wantCode(t, err, ferry.EINVALID)
	_, _, err = db.ListInvocations(ctx, ferry.InvocationFilter{}, ferry.Page{Limit: -1})
	wantCode(t, err, ferry.EINVALID)
	_, _, err = db.ListInvocations(ctx, ferry.InvocationFilter{}, ferry.Page{Cursor: "eyJuIjoiYSJ9"}) // {"n":"a"}
	wantCode(t, err, ferry.EINVALID)
	none, next, err := db.ListInvocations(ctx, ferry.InvocationFilter{Function: "zzz"}, ferry.Page{})
	if err != nil || len(none) != 0 || next != "" {
		t.Fatalf("empty listing: %v, %q, %v", none, next, err)
	}
}

// TestInvocationRecordLatency measures the database part of one invocation's hot
// path (create, start, finish) and logs it.
func TestInvocationRecordLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	db, ctx := open(t), ctxT(t)
	const n = 200
	durs := make([]time.Duration, n)
	for i := range n {
		start := time.Now()
		inv, _, err := db.CreateInvocation(ctx, ferry.Invocation{Function: "bench", Version: 1, Event: json.RawMessage(`{"i":1}`)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.StartInvocation(ctx, inv.ID, "run", time.Now(), uuid.New(), time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.FinishInvocation(ctx, inv.ID, ferry.Outcome{Status: ferry.StatusCompleted, Result: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
		durs[i] = time.Since(start)
	}
	slices.Sort(durs)
	t.Logf("create+start+finish over %d invocations: p50 %v p90 %v p99 %v",
		n, durs[n/2], durs[n*9/10], durs[n*99/100])
}
