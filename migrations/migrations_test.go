package migrations_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/ferry-faas/ferry/migrations"
	"github.com/ferry-faas/ferry/storage/postgres/pgtest"
)

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { db.Close() })
	return db
}

func appliedVersions(t *testing.T, db *sql.DB) []int64 {
	t.Helper()
	rows, err := db.Query(`SELECT version_id FROM goose_db_version WHERE version_id > 0 ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var vs []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	return vs
}

func TestApplyEmptyThenAgain(t *testing.T) {
	db := open(t, pgtest.CreateDatabase(t, "ferry_test_migrations"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if err := migrations.Apply(ctx, db); err != nil {
		t.Fatalf("first apply: %v", err)
	}
	for _, table := range []string{"functions", "function_versions", "invocations", "api_keys",
		"function_permissions", "chains", "chain_versions", "chain_runs"} {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Errorf("table %s: %v", table, err)
		} else if n != 0 {
			t.Errorf("table %s has %d rows, want 0", table, n)
		}
	}
	first := appliedVersions(t, db)
	if len(first) == 0 {
		t.Fatal("no migration recorded in goose_db_version")
	}

	if err := migrations.Apply(ctx, db); err != nil {
		t.Fatalf("second apply: %v", err)
	}
	if second := appliedVersions(t, db); len(second) != len(first) {
		t.Fatalf("second apply changed recorded versions: %v → %v", first, second)
	}

	// CHECK constraints guard the enums.
	if _, err := db.ExecContext(ctx, `INSERT INTO invocations (id, function, version, status)
		VALUES (gen_random_uuid(), 'f', 1, 'exploded')`); err == nil {
		t.Error("invocation with status 'exploded' was accepted")
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO api_keys (id, name, prefix, hash, role)
		VALUES (gen_random_uuid(), 'k', 'p', '\x01', 'root')`); err == nil {
		t.Error("api key with role 'root' was accepted")
	}
}

// Two processes (an API and a worker) starting against a fresh database at once
// both succeed: goose's advisory lock serialises them.
func TestApplyConcurrently(t *testing.T) {
	dsn := pgtest.CreateDatabase(t, "ferry_test_migrations_concurrent")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		db := open(t, dsn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = migrations.Apply(ctx, db)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("apply %d: %v", i, err)
		}
	}
	vs := appliedVersions(t, open(t, dsn))
	seen := map[int64]bool{}
	for _, v := range vs {
		if seen[v] {
			t.Errorf("version %d applied twice: %v", v, vs)
		}
		seen[v] = true
	}
	if len(vs) == 0 {
		t.Error("no migration recorded")
	}
}

// Upgrading a database with data gives existing functions an identity that their
// versions and invocations share; invocations of functions deleted before keep none.
func TestFunctionIdentityUpgrade(t *testing.T) {
	db := open(t, pgtest.CreateDatabase(t, "ferry_test_migrations_identity"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := migrations.ApplyUpTo(ctx, db, 1); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO functions (name, latest_version) VALUES ('f', 2)`,
		`INSERT INTO function_versions (function, version, runtime, handler, checksum, code_size, code_key, limits)
			VALUES ('f', 1, 'python', 'a.h', 'c', 1, 'code/c', '{}'), ('f', 2, 'python', 'a.h', 'c', 1, 'code/c', '{}')`,
		`INSERT INTO invocations (id, function, version, idempotency_key) VALUES
			('00000000-0000-0000-0000-000000000001', 'f', 1, 'k'),
			('00000000-0000-0000-0000-000000000002', 'gone', 1, 'k')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := migrations.Apply(ctx, db); err != nil {
		t.Fatal(err)
	}
	var id string
	var versions, invs int
	var gone sql.NullString
	err := db.QueryRowContext(ctx, `SELECT f.id,
		(SELECT count(*) FROM function_versions v WHERE v.function_id = f.id),
		(SELECT count(*) FROM invocations i WHERE i.function_id = f.id),
		(SELECT function_id::text FROM invocations WHERE function = 'gone')
		FROM functions f WHERE name = 'f'`).Scan(&id, &versions, &invs, &gone)
	if err != nil {
		t.Fatal(err)
	}
	if id == "" || versions != 2 || invs != 1 || gone.Valid {
		t.Fatalf("after the upgrade: id %q, %d versions and %d invocations with it, deleted function's id %v",
			id, versions, invs, gone)
	}
}
