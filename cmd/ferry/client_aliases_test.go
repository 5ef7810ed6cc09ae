package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClientAliasCommands(t *testing.T) {
	url, admin := apiServer(t)
	file := filepath.Join(t.TempDir(), "alias_cli.py")
	cliMust(t, os.WriteFile(file, []byte("def handler(e, c):\n    return 1\n"), 0o644))
	for i := 0; i < 2; i++ {
		runCLI(t, url, admin, "deploy", file, "--runtime", "python", "--handler", "alias_cli.handler", "--name", "alias-cli").want(t, 0, "deploy")
	}
	r := runCLI(t, url, admin, "alias", "set", "alias-cli", "prod", "1").want(t, 0, "alias set")
	if strings.TrimSpace(r.stdout) != "alias prod of alias-cli -> 1" {
		t.Errorf("alias set: %q", r.stdout)
	}
	r = runCLI(t, url, admin, "alias", "set", "alias-cli", "prod", "1=90,2=10").want(t, 0, "alias set split")
	if strings.TrimSpace(r.stdout) != "alias prod of alias-cli -> 1=90%,2=10% (was 1)" {
		t.Errorf("alias set split: %q", r.stdout)
	}
	runCLI(t, url, admin, "alias", "set", "alias-cli", "prod", "1=90,2=20").want(t, 2, "weights not adding up")
	runCLI(t, url, admin, "alias", "set", "alias-cli", "prod", "3").want(t, 3, "missing version")
	r = runCLI(t, url, admin, "alias", "ls", "alias-cli").want(t, 0, "alias ls")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "1=90%,2=10%") {
		t.Errorf("alias ls: %q", r.stdout)
	}
	r = runCLI(t, url, admin, "rollback", "alias-cli").want(t, 0, "rollback")
	if strings.TrimSpace(r.stdout) != "rolled back: alias prod of alias-cli -> 1 (was 1=90%,2=10%)" {
		t.Errorf("rollback: %q", r.stdout)
	}
	runCLI(t, url, admin, "alias", "set", "alias-cli", "canary", "2").want(t, 0, "second alias")
	r = runCLI(t, url, admin, "rollback", "alias-cli").want(t, 2, "rollback of one of two aliases")
	if !strings.Contains(r.err.Error(), "--alias") {
		t.Errorf("rollback without --alias: %v", r.err)
	}
	runCLI(t, url, admin, "rollback", "alias-cli", "--alias", "canary").want(t, 3, "rollback of an unchanged alias")
	runCLI(t, url, admin, "alias", "rm", "alias-cli", "canary").want(t, 0, "alias rm")
	runCLI(t, url, admin, "alias", "rm", "alias-cli", "canary").want(t, 3, "alias rm again")
}
