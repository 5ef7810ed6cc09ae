// Package pgtest gives integration tests a fresh PostgreSQL database of their own
// on the server named by FERRY_DATABASE_URL.
package pgtest

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferry-faas/ferry/internal/testenv"
	"github.com/ferry-faas/ferry/storage/postgres"
)

var validName = regexp.MustCompile(`^ferry_test_[a-z0-9_]+$`)

// CreateDatabase drops and re-creates the database called name (which must start
// with "ferry_test_") and returns its URL. It is dropped when the test passes and
// left for inspection when it fails (the next run replaces it). When the server
// cannot be reached the test is skipped, or fails under FERRY_REQUIRE_SERVICES.
func CreateDatabase(t testing.TB, name string) string {
	t.Helper()
	if !validName.MatchString(name) {
		t.Fatalf("pgtest: database name %q must match %s", name, validName)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(testenv.DatabaseURL)
	if err != nil {
		t.Fatalf("pgtest: FERRY_DATABASE_URL: %v", err)
	}
	cfg.ConnectTimeout = 5 * time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		t.Fatalf("pgtest: dropping %s: %v", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		t.Fatalf("pgtest: creating %s: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pgtest: database %s kept for inspection", name)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Logf("pgtest: dropping %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: dropping %s: %v", name, err)
		}
	})
	return withDatabase(t, testenv.DatabaseURL, name)
}

// withDatabase returns dsn pointing at database name instead.
func withDatabase(t testing.TB, dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("pgtest: FERRY_DATABASE_URL: %v", err)
		}
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name // keyword/value form: the last value wins
}

// Open returns a migrated, empty database of its own to the test, closed when the
// test ends.
func Open(t testing.TB, name string) *postgres.DB {
	t.Helper()
	dsn := CreateDatabase(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("pgtest: migrating %s: %v", name, err)
	}
	return db
}

// Name turns a test's name into a database name: "ferry_test_" + prefix + the
// test name in lower case, for one database per test.
func Name(t testing.TB, prefix string) string {
	n := strings.ToLower(prefix + "_" + t.Name())
	n = regexp.MustCompile(`[^a-z0-9_]+`).ReplaceAllString(n, "_")
	if len(n) > 50 { // identifiers are capped at 63 bytes; keep long names distinct
		h := fnv.New32a()
		h.Write([]byte(n))
		n = fmt.Sprintf("%s_%08x", n[:41], h.Sum32())
	}
	return "ferry_test_" + n
}
