package main

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferry-faas/ferry/internal/testenv"
	"github.com/ferry-faas/ferry/storage/postgres/pgtest"
	"github.com/google/uuid"
)

// testAdminKey is the admin key of every test server.
const testAdminKey = "fy_testadminkey0000000000000000000000"

// testServer is a whole Ferry (API and worker) in this test process, on a fresh
// database and its own Temporal task queue, against the real services of
// `make test`.
type testServer struct {
	*app
	cfg Config
}

// startTestServer starts Ferry for one test; it is closed when the test ends.
// The database is named after db (shared by tests that pass the same name).
func startTestServer(t *testing.T, db string) *testServer {
	t.Helper()
	cfg := testConfig(t, db)
	return startWithConfig(t, cfg, roles{api: true, worker: true})
}

func testConfig(t *testing.T, db string) Config {
	t.Helper()
	cfg, err := LoadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL = pgtest.CreateDatabase(t, "ferry_test_"+db)
	cfg.TemporalAddress = testenv.TemporalAddress
	cfg.S3Endpoint, cfg.S3AccessKey, cfg.S3SecretKey, cfg.S3Bucket = testenv.S3Endpoint, testenv.S3AccessKey, testenv.S3SecretKey, testenv.S3Bucket
	cfg.TaskQueue = "ferry-test-" + strings.ToLower(t.Name()) + "-" + uuid.NewString()[:8]
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.AdminKey = testAdminKey
	// Unix socket paths are limited to about 100 bytes: keep the data dir short.
	dir, err := os.MkdirTemp("", "ferry")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg.DataDir = dir
	return cfg
}

func startWithConfig(t *testing.T, cfg Config, r roles) *testServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := start(ctx, cfg, r, log)
	if err != nil {
		testenv.Unavailable(t, "Ferry's services (PostgreSQL, S3, Temporal, Docker)", err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.serve(sctx) }()
	t.Cleanup(func() {
		stop()
		<-done
		a.close(context.Background())
	})
	return &testServer{app: a, cfg: cfg}
}

// testWriter sends the server's log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
