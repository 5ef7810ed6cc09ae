package postgres_test

import (
	"testing"

	"github.com/ferry-faas/ferry"
)

func TestAliasesSetRollbackDelete(t *testing.T) {
	db, ctx := open(t), ctxT(t)
	_, _, err := db.SetAlias(ctx, "api", "prod", ferry.AliasTarget{Version: 1}, "")
	wantCode(t, err, ferry.ENOTFOUND) // no function
	for i := 0; i < 3; i++ {
		if _, err := deploy(ctx, db, version("api", "code/a")); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err = db.SetAlias(ctx, "api", "prod", ferry.AliasTarget{Version: 4}, "")
	wantCode(t, err, ferry.ENOTFOUND) // no version 4
	_, _, err = db.SetAlias(ctx, "api", "prod", ferry.AliasTarget{Version: 1, AdditionalVersion: 2, AdditionalWeight: 1}, "")
	wantCode(t, err, ferry.EINVALID)
	_, err = db.RollbackAlias(ctx, "api", "prod")
	wantCode(t, err, ferry.ENOTFOUND)

	a, created, err := db.SetAlias(ctx, "api", "prod", ferry.AliasTarget{Version: 1}, "stable")
	if err != nil || !created || a.Version != 1 || a.Previous != nil || a.Function != "api" || a.Description != "stable" {
		t.Fatalf("create: %+v %v %v", a, created, err)
	}
	_, err = db.RollbackAlias(ctx, "api", "prod")
	wantCode(t, err, ferry.ECONFLICT) // never changed
	split := ferry.AliasTarget{Version: 2, AdditionalVersion: 3, AdditionalWeight: 0.25}
	a, created, err = db.SetAlias(ctx, "api", "prod", split, "stable")
	if err != nil || created || a.AliasTarget != split || a.Previous == nil || *a.Previous != (ferry.AliasTarget{Version: 1}) {
		t.Fatalf("move: %+v %v %v", a, created, err)
	}
	// Setting the same target again keeps the previous one.
	if a, _, err = db.SetAlias(ctx, "api", "prod", split, "stable"); err != nil || *a.Previous != (ferry.AliasTarget{Version: 1}) {
		t.Fatalf("same target: %+v %v", a, err)
	}
	a, err = db.RollbackAlias(ctx, "api", "prod")
	if err != nil || a.AliasTarget != (ferry.AliasTarget{Version: 1}) || a.Previous == nil || *a.Previous != split {
		t.Fatalf("rollback: %+v %v", a, err)
	}
	if a, err = db.RollbackAlias(ctx, "api", "prod"); err != nil || a.AliasTarget != split {
		t.Fatalf("second rollback: %+v %v", a, err)
	}
	for u, want := range map[float64]int{0: 3, 0.2499: 3, 0.25: 2, 0.99: 2} {
		v, _, err := db.ResolveAlias(ctx, "api", "prod", u)
		if err != nil || v.Version != want || v.Function != "api" {
			t.Fatalf("resolve at %v: version %d (%v), want %d", u, v.Version, err, want)
		}
	}
	if _, _, err := db.SetAlias(ctx, "api", "canary", ferry.AliasTarget{Version: 3}, ""); err != nil {
		t.Fatal(err)
	}
	as, err := db.ListAliases(ctx, "api")
	if err != nil || len(as) != 2 || as[0].Name != "canary" || as[1].Name != "prod" {
		t.Fatalf("list: %+v %v", as, err)
	}
	wantCode(t, db.DeleteAlias(ctx, "api", "nope"), ferry.ENOTFOUND)
	if err := db.DeleteAlias(ctx, "api", "canary"); err != nil {
		t.Fatal(err)
	}
	_, err = db.GetAlias(ctx, "api", "canary")
	wantCode(t, err, ferry.ENOTFOUND)

	// Aliases go with their function: a function created again has none.
	if _, _, err := db.DeleteFunction(ctx, "api"); err != nil {
		t.Fatal(err)
	}
	if _, err := deploy(ctx, db, version("api", "code/a")); err != nil {
		t.Fatal(err)
	}
	if as, err := db.ListAliases(ctx, "api"); err != nil || len(as) != 0 {
		t.Fatalf("aliases of the new function: %+v %v", as, err)
	}
	_, _, err = db.ResolveAlias(ctx, "api", "prod", 0)
	wantCode(t, err, ferry.ENOTFOUND)
}
