package postgres_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
)

func TestKeys(t *testing.T) {
	db, ctx := open(t), ctxT(t)
	if n, err := db.CountActiveKeys(ctx); err != nil || n != 0 {
		t.Fatalf("fresh install: %d keys, %v", n, err)
	}
	_, err := db.KeyByHash(ctx, []byte("nope"))
	wantCode(t, err, ferry.ENOTFOUND)

	admin, err := db.CreateKey(ctx, ferry.APIKey{Name: "admin", Prefix: "fk_adm", Role: ferry.RoleAdmin}, []byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if admin.ID == uuid.Nil || admin.CreatedAt.IsZero() || admin.LastUsedAt != nil || admin.RevokedAt != nil {
		t.Fatalf("created %+v", admin)
	}
	fixedID := uuid.New()
	created := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	dev, err := db.CreateKey(ctx, ferry.APIKey{ID: fixedID, Name: "ci", Prefix: "fk_ci", Role: ferry.RoleDeveloper, CreatedAt: created}, []byte{4, 5, 6})
	if err != nil {
		t.Fatal(err)
	}
	if dev.ID != fixedID || !dev.CreatedAt.Equal(created) {
		t.Fatalf("given id/time not kept: %+v", dev)
	}

	_, err = db.CreateKey(ctx, ferry.APIKey{Name: "dup", Prefix: "fk_d", Role: ferry.RoleInvoker}, []byte{1, 2, 3})
	wantCode(t, err, ferry.ECONFLICT)
	if got, want := ferry.ErrorMessage(err), `API key "dup" already exists`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	_, err = db.CreateKey(ctx, ferry.APIKey{Name: "x", Role: "root"}, []byte{9})
	wantCode(t, err, ferry.EINVALID)
	_, err = db.CreateKey(ctx, ferry.APIKey{Name: "x", Role: ferry.RoleAdmin}, nil)
	wantCode(t, err, ferry.EINVALID)

	got, err := db.KeyByHash(ctx, []byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != admin.ID || got.Role != ferry.RoleAdmin || got.Prefix != "fk_adm" || got.LastUsedAt == nil {
		t.Fatalf("by hash: %+v", got)
	}
	// Use is recorded at most once a minute.
	again, err := db.KeyByHash(ctx, []byte{1, 2, 3})
	if err != nil || !again.LastUsedAt.Equal(*got.LastUsedAt) {
		t.Fatalf("second lookup: %+v, %v", again, err)
	}

	keys, err := db.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != dev.ID || keys[1].ID != admin.ID { // oldest first
		t.Fatalf("listed %+v", keys)
	}
	if n, _ := db.CountActiveKeys(ctx); n != 2 {
		t.Fatalf("active keys %d, want 2", n)
	}

	if _, err := db.RevokeKey(ctx, dev.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RevokeKey(ctx, dev.ID); err != nil { // idempotent
		t.Fatal(err)
	}
	_, err = db.RevokeKey(ctx, uuid.New())
	wantCode(t, err, ferry.ENOTFOUND)
	_, err = db.KeyByHash(ctx, []byte{4, 5, 6})
	wantCode(t, err, ferry.ENOTFOUND)
	if n, _ := db.CountActiveKeys(ctx); n != 1 {
		t.Fatalf("active keys after revoke %d, want 1", n)
	}
	keys, _ = db.ListKeys(ctx)
	if keys[0].RevokedAt == nil || keys[1].RevokedAt != nil {
		t.Fatalf("revocation not listed: %+v", keys)
	}
}

func TestPermissions(t *testing.T) {
	db, ctx := open(t), ctxT(t)
	k, err := db.CreateKey(ctx, ferry.APIKey{Name: "k", Prefix: "fk_k", Role: ferry.RoleInvoker}, []byte("hash"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := db.CreateKey(ctx, ferry.APIKey{Name: "o", Prefix: "fk_o", Role: ferry.RoleInvoker}, []byte("other"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []ferry.Permission{ferry.PermRead, ferry.PermExecute, ferry.PermExecute} { // twice: idempotent
		if err := db.Grant(ctx, k.ID, "resize", p); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Grant(ctx, k.ID, "*", ferry.PermRead); err != nil {
		t.Fatal(err)
	}
	if err := db.Grant(ctx, other.ID, "resize", ferry.PermAdmin); err != nil {
		t.Fatal(err)
	}

	perms, err := db.Permissions(ctx, k.ID, "resize")
	if err != nil {
		t.Fatal(err)
	}
	if want := []ferry.Permission{ferry.PermExecute, ferry.PermRead}; !slices.Equal(perms, want) {
		t.Fatalf("permissions %v, want %v", perms, want)
	}
	// "*" applies to every function.
	if perms, _ := db.Permissions(ctx, k.ID, "thumbnail"); !slices.Equal(perms, []ferry.Permission{ferry.PermRead}) {
		t.Fatalf("wildcard permissions %v", perms)
	}

	if err := db.RevokePermission(ctx, k.ID, "resize", ferry.PermExecute); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokePermission(ctx, k.ID, "resize", ferry.PermExecute); err != nil { // no-op
		t.Fatal(err)
	}
	if perms, _ := db.Permissions(ctx, k.ID, "resize"); !slices.Equal(perms, []ferry.Permission{ferry.PermRead}) {
		t.Fatalf("after revoke: %v", perms)
	}
	if perms, _ := db.Permissions(ctx, other.ID, "resize"); !slices.Equal(perms, []ferry.Permission{ferry.PermAdmin}) {
		t.Fatalf("other key: %v", perms)
	}

	wantCode(t, db.Grant(ctx, k.ID, "resize", "sudo"), ferry.EINVALID)
	err = db.Grant(ctx, uuid.New(), "resize", ferry.PermRead)
	wantCode(t, err, ferry.ENOTFOUND)
	if perms, err := db.Permissions(ctx, uuid.New(), "resize"); err != nil || len(perms) != 0 {
		t.Fatalf("unknown key: %v, %v", perms, err)
	}
}

// TestRevokeLastAdminConcurrently: two admins revoke each other at the same
// time, again and again. Exactly one revocation wins each time and one active
// admin key always remains.
func TestRevokeLastAdminConcurrently(t *testing.T) {
	db, ctx := open(t), ctxT(t)
	survivor, err := db.CreateKey(ctx, ferry.APIKey{Name: "admin 0", Prefix: "fk_a0", Role: ferry.RoleAdmin}, []byte("a0"))
	if err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 20; round++ {
		other, err := db.CreateKey(ctx, ferry.APIKey{Name: fmt.Sprint("admin ", round), Prefix: fmt.Sprint("fk_a", round),
			Role: ferry.RoleAdmin}, []byte(fmt.Sprint("a", round)))
		if err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, id := range []uuid.UUID{survivor.ID, other.ID} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = db.RevokeKey(ctx, id)
			}()
		}
		close(start)
		wg.Wait()
		switch {
		case errs[0] == nil && ferry.ErrorCode(errs[1]) == ferry.ECONFLICT:
			survivor = other
		case errs[1] == nil && ferry.ErrorCode(errs[0]) == ferry.ECONFLICT:
		default:
			t.Fatalf("round %d: revocations returned %v and %v; want one success and one conflict", round, errs[0], errs[1])
		}
		if !strings.Contains(ferry.ErrorMessage(errors.Join(errs...)), "last active admin key") {
			t.Errorf("round %d: conflict message %v", round, errs)
		}
		keys, err := db.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var active []uuid.UUID
		for _, k := range keys {
			if k.RevokedAt == nil {
				active = append(active, k.ID)
			}
		}
		if len(active) != 1 || active[0] != survivor.ID {
			t.Fatalf("round %d: active admin keys %v, want only %s", round, active, survivor.ID)
		}
	}
}
