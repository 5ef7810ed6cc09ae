package postgres_test

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/storage/postgres"
	"github.com/ferry-faas/ferry/storage/postgres/pgtest"
)

// open gives each test a fresh migrated database of its own.
func open(t *testing.T) *postgres.DB {
	t.Helper()
	return pgtest.Open(t, pgtest.Name(t, "storage"))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := ferry.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func version(name string, key string) ferry.Version {
	return ferry.Version{
		Function: name, Runtime: ferry.RuntimePython, Handler: "main.handler",
		Checksum: strings.TrimPrefix(key, "code/"), CodeSize: 42, CodeKey: key,
		Limits: ferry.DefaultLimits, Env: map[string]string{"A": "1"}, Description: "d",
	}
}

// deploy stores v as a new version of its function, creating the function
// when there is none, as the API's deploy does.
func deploy(ctx context.Context, db *postgres.DB, v ferry.Version) (ferry.Version, error) {
	f, err := db.GetFunction(ctx, v.Function)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return db.CreateFunction(ctx, v, uuid.Nil)
	}
	if err != nil {
		return ferry.Version{}, err
	}
	v.FunctionID = f.ID
	return db.CreateVersion(ctx, v)
}

func TestOpenErrors(t *testing.T) {
	ctx := ctxT(t)
	_, err := postgres.Open(ctx, "postgres://ferry:s3cret@127.0.0.1:notaport/ferry")
	wantCode(t, err, ferry.EINVALID)
	if msg := ferry.ErrorMessage(err); !strings.Contains(msg, "FERRY_DATABASE_URL") || strings.Contains(msg, "s3cret") {
		t.Errorf("message %q does not name FERRY_DATABASE_URL or shows the password", msg)
	}
	t.Logf("bad URL: %s", ferry.ErrorMessage(err))

	// A port that nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	start := time.Now()
	_, err = postgres.Open(ctx, "postgres://ferry@"+addr+"/ferry?sslmode=disable")
	wantCode(t, err, ferry.EUNAVAILABLE)
	if msg := ferry.ErrorMessage(err); !strings.Contains(msg, addr) {
		t.Errorf("message %q does not name %s", msg, addr)
	}
	t.Logf("closed port: %v after %v", ferry.ErrorMessage(err), time.Since(start))
}

func TestClosedPoolIsUnavailable(t *testing.T) {
	db := open(t)
	db.Close()
	_, err := db.GetFunction(ctxT(t), "x")
	wantCode(t, err, ferry.EUNAVAILABLE)
}

func TestFunctionRoundTrip(t *testing.T) {
	db, ctx := open(t), ctxT(t)
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil { // again: a no-op
		t.Fatal(err)
	}

	_, err := db.GetFunction(ctx, "resize")
	wantCode(t, err, ferry.ENOTFOUND)
	if got, want := ferry.ErrorMessage(err), `function "resize" not found`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	_, err = db.GetVersion(ctx, "resize", 0)
	wantCode(t, err, ferry.ENOTFOUND)

	in := version("resize", "code/aaa")
	in.Limits = ferry.Limits{TimeoutSeconds: 5, MemoryMB: 256, CPUs: 1.5, MaxConcurrency: 3, Network: true, Retries: 2}
	in.Env = map[string]string{"GREETING": "hi", "EMPTY": ""}
	in.Secrets = []string{"DB_PASSWORD", "API_TOKEN"} // names only; kept in order
	v1, err := deploy(ctx, db, in)
	if err != nil {
		t.Fatal(err)
	}
	if v1.Version != 1 || v1.CreatedAt.IsZero() {
		t.Fatalf("first version = %d at %v", v1.Version, v1.CreatedAt)
	}
	want := in
	want.Version, want.CreatedAt, want.FunctionID = 1, v1.CreatedAt, v1.FunctionID
	if !reflect.DeepEqual(v1, want) {
		t.Fatalf("created\n%+v\nwant\n%+v", v1, want)
	}

	in2 := version("resize", "code/bbb")
	in2.Runtime, in2.Description, in2.Env = ferry.RuntimeNode, "second", nil
	v2, err := deploy(ctx, db, in2)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 || v2.Env == nil || len(v2.Env) != 0 {
		t.Fatalf("second version = %+v", v2)
	}

	f, err := db.GetFunction(ctx, "resize")
	if err != nil {
		t.Fatal(err)
	}
	if f.LatestVersion != 2 || f.Description != "second" || f.CreatedAt.After(f.UpdatedAt) || f.CreatedAt != v1.CreatedAt ||
		f.ID != v1.FunctionID || v2.FunctionID != f.ID {
		t.Fatalf("function = %+v", f)
	}

	for _, tc := range []struct{ ask, want int }{{0, 2}, {1, 1}, {2, 2}} {
		got, err := db.GetVersion(ctx, "resize", tc.ask)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != tc.want {
			t.Errorf("GetVersion(%d) = version %d, want %d", tc.ask, got.Version, tc.want)
		}
	}
	got, _ := db.GetVersion(ctx, "resize", 1)
	if !reflect.DeepEqual(got, v1) {
		t.Errorf("GetVersion(1)\n%+v\nwant\n%+v", got, v1)
	}
	_, err = db.GetVersion(ctx, "resize", 3)
	wantCode(t, err, ferry.ENOTFOUND)
	if got, want := ferry.ErrorMessage(err), `function "resize" version 3 not found`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	_, err = db.GetVersion(ctx, "nope", 3)
	if got, want := ferry.ErrorMessage(err), `function "nope" not found`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}

	_, err = db.CreateFunction(ctx, ferry.Version{Function: "x", Runtime: "cobol", CodeKey: "k"}, uuid.Nil)
	wantCode(t, err, ferry.EINVALID)
	_, err = db.CreateFunction(ctx, ferry.Version{Runtime: ferry.RuntimeGo, CodeKey: "k"}, uuid.Nil)
	wantCode(t, err, ferry.EINVALID)
	_, err = db.CreateVersion(ctx, version("resize", "code/no-id"))
	wantCode(t, err, ferry.EINVALID)
	// A rejected deploy leaves no gap.
	v3, err := deploy(ctx, db, version("resize", "code/ccc"))
	if err != nil || v3.Version != 3 {
		t.Fatalf("third version = %d, %v", v3.Version, err)
	}
}

func TestCreateVersionConcurrent(t *testing.T) {
	db, ctx := open(t), ctxT(t)
	first, err := db.CreateFunction(ctx, version("hot", "code/first"), uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	got := make([]int, n)
	errs := make([]error, n)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := version("hot", fmt.Sprintf("code/%02d", i))
			v.FunctionID = first.FunctionID
			v, err := db.CreateVersion(ctx, v)
			got[i], errs[i] = v.Version, err
		}()
	}
	wg.Wait()
	t.Logf("%d concurrent deploys in %v", n, time.Since(start))
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(got)
	for i, v := range got {
		if v != i+2 {
			t.Fatalf("versions %v, want 2..%d each once", got, n+1)
		}
	}
	f, err := db.GetFunction(ctx, "hot")
	if err != nil || f.LatestVersion != n+1 {
		t.Fatalf("latest = %d, %v", f.LatestVersion, err)
	}
	vs, _, err := db.ListVersions(ctx, "hot", ferry.Page{Limit: 100})
	if err != nil || len(vs) != n+1 {
		t.Fatalf("listed %d versions, %v", len(vs), err)
	}
}

// Creating is not updating: of concurrent creates of one name exactly one
// wins, and only its key gets admin on the function.
func TestCreateFunctionRace(t *testing.T) {
	db, ctx := open(t), ctxT(t)
	const n = 8
	keys := make([]ferry.APIKey, n)
	for i := range keys {
		k, err := db.CreateKey(ctx, ferry.APIKey{Name: fmt.Sprint("dev", i), Prefix: fmt.Sprint("fy_", i),
			Role: ferry.RoleDeveloper}, []byte(fmt.Sprint("hash", i)))
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = db.CreateFunction(ctx, version("race", fmt.Sprintf("code/%02d", i)), keys[i].ID)
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Fatalf("creates %d and %d both succeeded", winner, i)
		case ferry.ErrorCode(err) != ferry.ECONFLICT:
			t.Fatalf("create %d: %v, want conflict", i, err)
		case !strings.Contains(ferry.ErrorMessage(err), `function "race" was created by another deploy`):
			t.Fatalf("create %d: message %q", i, ferry.ErrorMessage(err))
		}
	}
	if winner < 0 {
		t.Fatal("no create succeeded")
	}
	for i, k := range keys {
		perms, err := db.Permissions(ctx, k.ID, "race")
		if err != nil {
			t.Fatal(err)
		}
		if want := i == winner; (len(perms) == 1 && perms[0] == ferry.PermAdmin) != want || (!want && len(perms) != 0) {
			t.Fatalf("key %d (winner %d) has %v on race", i, winner, perms)
		}
	}
	f, err := db.GetFunction(ctx, "race")
	if err != nil || f.LatestVersion != 1 {
		t.Fatalf("function after the race: %+v, %v", f, err)
	}
	v, err := db.GetVersion(ctx, "race", 1)
	if err != nil || v.CodeKey != fmt.Sprintf("code/%02d", winner) {
		t.Fatalf("version 1 = %q, %v; want the winner's code", v.CodeKey, err)
	}
}

func TestListFunctionsPagination(t *testing.T) {
	db, ctx := open(t), ctxT(t)
	var names []string
	for i := range 7 {
		name := fmt.Sprintf("fn-%d", 6-i) // created out of order
		names = append(names, name)
		if _, err := deploy(ctx, db, version(name, "code/x")); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(names)

	var listed []string
	cursor, pages := "", 0
	for {
		fns, next, err := db.ListFunctions(ctx, ferry.Viewer{}, ferry.Page{Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, f := range fns {
			listed = append(listed, f.Name)
		}
		if next == "" {
			break
		}
		cursor = next
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if pages != 3 || !slices.Equal(listed, names) {
		t.Fatalf("%d pages: %v, want 3 pages: %v", pages, listed, names)
	}

	// Exactly one full page: no next cursor.
	fns, next, err := db.ListFunctions(ctx, ferry.Viewer{}, ferry.Page{Limit: 7})
	if err != nil || len(fns) != 7 || next != "" {
		t.Fatalf("limit 7: %d functions, next %q, %v", len(fns), next, err)
	}
	fns, _, err = db.ListFunctions(ctx, ferry.Viewer{}, ferry.Page{})
	if err != nil || len(fns) != 7 {
		t.Fatalf("default limit: %d functions, %v", len(fns), err)
	}

	_, _, err = db.ListFunctions(ctx, ferry.Viewer{}, ferry.Page{Limit: postgres.MaxLimit + 1})
	wantCode(t, err, ferry.EINVALID)
	_, _, err = db.ListFunctions(ctx, ferry.Viewer{}, ferry.Page{Cursor: "not a cursor!"})
	wantCode(t, err, ferry.EINVALID)
	// A cursor of another listing is rejected too.
	if _, _, err = db.ListVersions(ctx, "fn-0", ferry.Page{Limit: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := deploy(ctx, db, version("fn-0", "code/y")); err != nil {
		t.Fatal(err)
	}
	_, vcursor, err := db.ListVersions(ctx, "fn-0", ferry.Page{Limit: 1})
	if err != nil || vcursor == "" {
		t.Fatalf("versions cursor %q, %v", vcursor, err)
	}
	_, _, err = db.ListFunctions(ctx, ferry.Viewer{}, ferry.Page{Cursor: vcursor})
	wantCode(t, err, ferry.EINVALID)
}

func TestListVersionsPagination(t *testing.T) {
	db, ctx := open(t), ctxT(t)
	_, _, err := db.ListVersions(ctx, "ghost", ferry.Page{})
	wantCode(t, err, ferry.ENOTFOUND)

	for range 5 {
		if _, err := deploy(ctx, db, version("v", "code/x")); err != nil {
			t.Fatal(err)
		}
	}
	var got []int
	cursor := ""
	for {
		vs, next, err := db.ListVersions(ctx, "v", ferry.Page{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			got = append(got, v.Version)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if want := []int{5, 4, 3, 2, 1}; !slices.Equal(got, want) {
		t.Fatalf("versions %v, want %v", got, want)
	}
}

func TestDeleteFunction(t *testing.T) {
	db, ctx := open(t), ctxT(t)
	_, _, err := db.DeleteFunction(ctx, "ghost")
	wantCode(t, err, ferry.ENOTFOUND)

	// "a" uses code shared with "b" and two keys of its own (one of them twice).
	for _, key := range []string{"code/shared", "code/own1", "code/own2", "code/own1"} {
		if _, err := deploy(ctx, db, version("a", key)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := deploy(ctx, db, version("b", "code/shared")); err != nil {
		t.Fatal(err)
	}
	key, err := db.CreateKey(ctx, ferry.APIKey{Name: "k", Prefix: "fk_1", Role: ferry.RoleInvoker}, []byte("h"))
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []string{"a", "b"} {
		if err := db.Grant(ctx, key.ID, fn, ferry.PermExecute); err != nil {
			t.Fatal(err)
		}
	}
	inv, _, err := db.CreateInvocation(ctx, ferry.Invocation{Function: "a", Version: 1})
	if err != nil {
		t.Fatal(err)
	}

	fa, err := db.GetFunction(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	deletedID, orphans, err := db.DeleteFunction(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if deletedID != fa.ID {
		t.Fatalf("deleted id %v, want %v", deletedID, fa.ID)
	}
	if want := []string{"code/own1", "code/own2"}; !slices.Equal(orphans, want) {
		t.Fatalf("orphans %v, want %v", orphans, want)
	}
	_, err = db.GetFunction(ctx, "a")
	wantCode(t, err, ferry.ENOTFOUND)
	_, err = db.GetVersion(ctx, "a", 1)
	wantCode(t, err, ferry.ENOTFOUND)
	if perms, err := db.Permissions(ctx, key.ID, "a"); err != nil || len(perms) != 0 {
		t.Fatalf("permissions on deleted function: %v, %v", perms, err)
	}
	if perms, err := db.Permissions(ctx, key.ID, "b"); err != nil || len(perms) != 1 {
		t.Fatalf("permissions on b: %v, %v", perms, err)
	}
	if _, err := db.GetVersion(ctx, "b", 1); err != nil {
		t.Fatalf("b lost its version: %v", err)
	}
	if _, err := db.GetInvocation(ctx, inv.ID); err != nil {
		t.Fatalf("invocation history lost: %v", err)
	}
	_, _, err = db.DeleteFunction(ctx, "a")
	wantCode(t, err, ferry.ENOTFOUND)
	// A version for the deleted identity is refused, not added to a new function.
	stale := version("a", "code/stale")
	stale.FunctionID = fa.ID
	_, err = db.CreateVersion(ctx, stale)
	wantCode(t, err, ferry.ECONFLICT)

	// A new deploy of the name is a new function: another identity, version 1.
	v, err := deploy(ctx, db, version("a", "code/new"))
	if err != nil || v.Version != 1 || v.FunctionID == fa.ID {
		t.Fatalf("redeploy: version %d of %v (deleted: %v), %v", v.Version, v.FunctionID, fa.ID, err)
	}
	// An update authorised for the deleted function does not land on the new one.
	_, err = db.CreateVersion(ctx, stale)
	wantCode(t, err, ferry.ECONFLICT)
	_, orphans, err = db.DeleteFunction(ctx, "b")
	if err != nil || !slices.Equal(orphans, []string{"code/shared"}) {
		t.Fatalf("deleting b: orphans %v, %v", orphans, err)
	}
}
