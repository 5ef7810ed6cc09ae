package composetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/ferry-faas/ferry/internal/testenv"
)

// composeFile is the part of `docker compose config` output that the test checks.
type composeFile struct {
	Services map[string]struct {
		Image       string            `json:"image"`
		Command     []string          `json:"command"`
		Environment map[string]string `json:"environment"`
		Volumes     []volume          `json:"volumes"`
		Build       *struct {
			Context string `json:"context"`
		} `json:"build"`
	} `json:"services"`
}

// volume reads both forms of a service's volume: Compose v2 prints
// {source, target}, Compose v1 prints "source:target[:mode]".
type volume struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

func (v *volume) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		parts := strings.Split(s, ":")
		if len(parts) < 2 {
			return fmt.Errorf("volume %q has no target", s)
		}
		v.Source, v.Target = parts[0], parts[1]
		return nil
	}
	type plain volume
	return json.Unmarshal(b, (*plain)(v))
}

// repoRoot walks up from the package folder to the folder holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := findRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test's folder")
		}
		dir = parent
	}
}

// lookCompose finds the Compose to run: FERRY_TEST_COMPOSE if set (a command
// line, e.g. "docker-compose" for v1.29), else the pinned v2 that `make tools`
// builds into the repository's bin, else `docker compose` (v2 plugin), else
// docker-compose on the PATH.
func lookCompose() ([]string, error) {
	if c := strings.Fields(os.Getenv("FERRY_TEST_COMPOSE")); len(c) > 0 {
		return c, nil
	}
	if root, err := findRoot(); err == nil {
		if bin := filepath.Join(root, "bin", "docker-compose"); exec.Command(bin, "version").Run() == nil {
			return []string{bin}, nil
		}
	}
	if docker, err := exec.LookPath("docker"); err == nil {
		if exec.Command(docker, "compose", "version").Run() == nil {
			return []string{docker, "compose"}, nil
		}
	}
	if dc, err := exec.LookPath("docker-compose"); err == nil {
		return []string{dc}, nil
	}
	return nil, errors.New("neither bin/docker-compose (make tools), `docker compose` nor `docker-compose` found")
}

// composeCommand returns lookCompose's command, logging once which Compose
// version runs.
func composeCommand(t *testing.T) []string {
	t.Helper()
	cmd, err := lookCompose()
	if err != nil {
		testenv.Unavailable(t, "Docker Compose", err)
	}
	logComposeVersion.Do(func() {
		out, err := exec.Command(cmd[0], append(cmd[1:], "version", "--short")...).Output()
		if err != nil {
			t.Logf("compose: %s, version unknown: %v", strings.Join(cmd, " "), err)
			return
		}
		t.Logf("compose: %s, version %s", strings.Join(cmd, " "), strings.TrimSpace(string(out)))
	})
	return cmd
}

var logComposeVersion sync.Once

func execCommand(ctx context.Context, cmdline []string, dir string, env []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, cmdline[0], cmdline[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// runCompose runs Compose on the repository's file with env added to this
// process's environment.
func runCompose(t *testing.T, root string, env []string, args ...string) []byte {
	t.Helper()
	cmdline := append(composeCommand(t), "--project-directory", root, "-f", filepath.Join(root, "docker-compose.yml"))
	cmdline = append(cmdline, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := execCommand(ctx, cmdline, root, env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmdline, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

func TestComposeConfigIsValid(t *testing.T) {
	root := repoRoot(t)
	runCompose(t, root, nil, "config", "-q")

	var cfg composeFile
	if err := yaml.Unmarshal(runCompose(t, root, nil, "config"), &cfg); err != nil {
		t.Fatalf("parsing the resolved compose file: %v", err)
	}
	for _, name := range []string{"postgres", "temporal-schema", "temporal", "temporal-ui", "s3", "ferry"} {
		svc, ok := cfg.Services[name]
		if !ok {
			t.Errorf("service %q missing", name)
			continue
		}
		// Every image is one that scripts/deploy-images.sh builds here.
		img, ok := strings.CutPrefix(svc.Image, "ferry/")
		img, _, _ = strings.Cut(img, ":")
		if !ok || svc.Build != nil {
			t.Errorf("%s: image %q (build %+v), want a ferry/ image of scripts/deploy-images.sh", name, svc.Image, svc.Build)
		} else if _, err := os.Stat(filepath.Join(root, "deploy", img, "Dockerfile")); err != nil {
			t.Errorf("%s: image %s has no deploy/%s/Dockerfile: %v", name, svc.Image, img, err)
		}
	}

	svc := cfg.Services["ferry"]
	if !slices.Equal(svc.Command, []string{"server"}) {
		t.Errorf("ferry command = %q, want [server]", svc.Command)
	}
	for _, key := range []string{"FERRY_DATABASE_URL", "FERRY_TEMPORAL_ADDRESS", "FERRY_S3_ENDPOINT",
		"FERRY_S3_ACCESS_KEY", "FERRY_S3_SECRET_KEY", "FERRY_S3_BUCKET", "FERRY_DATA_DIR"} {
		if svc.Environment[key] == "" {
			t.Errorf("ferry: %s not set", key)
		}
	}
	// The worker drives the host's Docker engine and shares its data folder
	// with function containers at the same path as on the host.
	var socket, sameDataDir bool
	for _, v := range svc.Volumes {
		socket = socket || v.Target == "/var/run/docker.sock"
		sameDataDir = sameDataDir || (v.Target == svc.Environment["FERRY_DATA_DIR"] && v.Source == v.Target)
	}
	if !socket {
		t.Error("ferry does not mount the Docker socket")
	}
	if !sameDataDir {
		t.Errorf("ferry does not mount FERRY_DATA_DIR (%s) at the same path as on the host: %+v",
			svc.Environment["FERRY_DATA_DIR"], svc.Volumes)
	}
}

// scripts/deploy-images.sh must build the command that the ferry service runs.
func TestDeployImagesBuildFerry(t *testing.T) {
	root := repoRoot(t)
	script, err := os.ReadFile(filepath.Join(root, "scripts", "deploy-images.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(script, []byte("./cmd/ferry")) {
		t.Fatal("scripts/deploy-images.sh does not build ./cmd/ferry")
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "ferry")); err != nil {
		t.Fatalf("scripts/deploy-images.sh builds ./cmd/ferry, which does not exist: %v", err)
	}
}
