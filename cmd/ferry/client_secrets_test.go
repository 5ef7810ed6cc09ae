package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/api"
	"github.com/ferry-faas/ferry/internal/testenv"
	"github.com/ferry-faas/ferry/secrets"
	"github.com/ferry-faas/ferry/storage/postgres/pgtest"
	"github.com/ferry-faas/ferry/storage/s3"
)

func TestClientSecretCommands(t *testing.T) {
	db := pgtest.Open(t, "ferry_test_client_secrets")
	ctx := context.Background()
	code, err := s3.New(ctx, s3.Config{Endpoint: testenv.S3Endpoint, AccessKey: testenv.S3AccessKey,
		SecretKey: testenv.S3SecretKey, Bucket: testenv.S3Bucket})
	if ferry.ErrorCode(err) == ferry.EUNAVAILABLE {
		testenv.Unavailable(t, "S3", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	admin, err := api.EnsureAdminKey(ctx, db, "")
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := secrets.NewKeyring([]byte(strings.Repeat("k", secrets.KeySize)))
	srv := httptest.NewServer(api.New(api.Deps{Store: db, Code: code,
		Vault: &secrets.Vault{Store: db, Keys: keys}}))
	t.Cleanup(srv.Close)
	url := srv.URL

	// runCLI's stdin is {"from": "stdin"}.
	r := runCLI(t, url, admin, "secret", "set", "API_TOKEN").want(t, 0, "secret set from stdin")
	if strings.TrimSpace(r.stdout) != `Created secret API_TOKEN (17 bytes)` {
		t.Errorf("secret set: %q", r.stdout)
	}
	file := filepath.Join(t.TempDir(), "token")
	cliMust(t, os.WriteFile(file, []byte("from-file\n"), 0o600))
	r = runCLI(t, url, admin, "secret", "set", "API_TOKEN", "--from-file", file).want(t, 0, "secret set from file")
	if strings.TrimSpace(r.stdout) != `Changed secret API_TOKEN (9 bytes)` {
		t.Errorf("secret set --from-file: %q", r.stdout)
	}
	runCLI(t, url, admin, "secret", "set", "bad-name").want(t, 3, "invalid name")
	r = runCLI(t, url, admin, "secret", "ls", "-o", "json").want(t, 0, "secret ls")
	if strings.Contains(r.stdout, "from-file") || !strings.Contains(r.stdout, `"name": "API_TOKEN"`) {
		t.Errorf("secret ls: %s", r.stdout)
	}

	fn := filepath.Join(t.TempDir(), "uses_token.py")
	cliMust(t, os.WriteFile(fn, []byte("import os\ndef handler(e, c):\n    return len(os.environ['API_TOKEN'])\n"), 0o644))
	runCLI(t, url, admin, "deploy", fn, "--runtime", "python", "--handler", "uses_token.handler", "--name", "uses-token",
		"--secret", "API_TOKEN").want(t, 0, "deploy with a secret")
	r = runCLI(t, url, admin, "get", "uses-token", "-o", "json").want(t, 0, "get")
	var v ferry.Version
	cliMust(t, json.Unmarshal([]byte(r.stdout), &v))
	if len(v.Secrets) != 1 || v.Secrets[0] != "API_TOKEN" {
		t.Errorf("secrets of the version: %v", v.Secrets)
	}
	runCLI(t, url, admin, "deploy", fn, "--runtime", "python", "--handler", "uses_token.handler", "--name", "uses-token",
		"--secret", "MISSING").want(t, 3, "deploy with a missing secret")
	runCLI(t, url, admin, "secret", "rm", "API_TOKEN").want(t, 3, "rm while used")
	runCLI(t, url, admin, "deploy", fn, "--runtime", "python", "--handler", "uses_token.handler", "--name", "uses-token").want(t, 0, "deploy without it")
	runCLI(t, url, admin, "secret", "rm", "API_TOKEN").want(t, 0, "rm")
}
