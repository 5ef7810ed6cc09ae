// Package testenv finds the real services that integration tests talk to.
//
// Tests read the same FERRY_* variables as the server. A test may skip when its
// service is unreachable, but only if FERRY_REQUIRE_SERVICES is unset: `make test`
// and CI set it, so a missing service fails the run instead of hiding it.
package testenv

import (
	"os"
	"testing"
)

// Getenv returns the variable's value or def.
func Getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Required reports whether FERRY_REQUIRE_SERVICES is set.
func Required() bool { return os.Getenv("FERRY_REQUIRE_SERVICES") != "" }

// Unavailable fails the test when services are required and skips it otherwise.
// Call it when connecting to service failed with err.
func Unavailable(t testing.TB, service string, err error) {
	t.Helper()
	if Required() {
		t.Fatalf("%s is required (FERRY_REQUIRE_SERVICES is set) but unavailable: %v", service, err)
	}
	t.Skipf("%s unavailable (set FERRY_REQUIRE_SERVICES=1 to fail instead): %v", service, err)
}

// Defaults used by tests when the variables are unset: the dev stack of `make dev`.
var (
	DatabaseURL     = Getenv("FERRY_DATABASE_URL", "postgres://ferry@127.0.0.1:5433/ferry?sslmode=disable")
	TemporalAddress = Getenv("FERRY_TEMPORAL_ADDRESS", "127.0.0.1:7233")
	S3Endpoint      = Getenv("FERRY_S3_ENDPOINT", "127.0.0.1:9000")
	S3AccessKey     = Getenv("FERRY_S3_ACCESS_KEY", "ferry")
	S3SecretKey     = Getenv("FERRY_S3_SECRET_KEY", "ferry-secret")
	S3Bucket        = Getenv("FERRY_S3_BUCKET", "ferry")
)
