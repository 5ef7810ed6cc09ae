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
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's folder")
		}
		dir = parent
	}
}

// composeCommand finds Compose v2 (`docker compose`) or v1 (`docker-compose`).
func composeCommand(t *testing.T) []string {
	t.Helper()
	if docker, err := exec.LookPath("docker"); err == nil {
		if exec.Command(docker, "compose", "version").Run() == nil {
			return []string{docker, "compose"}
		}
	}
	if dc, err := exec.LookPath("docker-compose"); err == nil {
		return []string{dc}
	}
	testenv.Unavailable(t, "Docker Compose", errors.New("neither `docker compose` nor `docker-compose` found"))
	return nil
}

func runCompose(t *testing.T, root string, args ...string) []byte {
	t.Helper()
	cmdline := append(composeCommand(t), "--project-directory", root, "-f", filepath.Join(root, "docker-compose.yml"))
	cmdline = append(cmdline, args...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cmdline[0], cmdline[1:]...)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmdline, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

func TestComposeConfigIsValid(t *testing.T) {
	root := repoRoot(t)
	runCompose(t, root, "config", "-q")

	var cfg composeFile
	if err := yaml.Unmarshal(runCompose(t, root, "config"), &cfg); err != nil {
		t.Fatalf("parsing the resolved compose file: %v", err)
	}
	for _, name := range []string{"postgres", "temporal", "temporal-ui", "minio", "ferry-api", "ferry-worker"} {
		if _, ok := cfg.Services[name]; !ok {
			t.Errorf("service %q missing", name)
		}
	}

	for name, want := range map[string]string{"ferry-api": "api", "ferry-worker": "worker"} {
		svc := cfg.Services[name]
		if !slices.Equal(svc.Command, []string{want}) {
			t.Errorf("%s command = %q, want [%s]", name, svc.Command, want)
		}
		if svc.Build == nil || svc.Build.Context != root {
			t.Errorf("%s is not built from the repository's Dockerfile: %+v", name, svc.Build)
		}
		for _, key := range []string{"FERRY_DATABASE_URL", "FERRY_TEMPORAL_ADDRESS", "FERRY_S3_ENDPOINT",
			"FERRY_S3_ACCESS_KEY", "FERRY_S3_SECRET_KEY", "FERRY_S3_BUCKET", "FERRY_DATA_DIR"} {
			if svc.Environment[key] == "" {
				t.Errorf("%s: %s not set", name, key)
			}
		}
	}

	// The worker drives the host's Docker engine and shares its data folder
	// with function containers at the same path as on the host.
	worker := cfg.Services["ferry-worker"]
	var socket, sameDataDir bool
	for _, v := range worker.Volumes {
		socket = socket || v.Target == "/var/run/docker.sock"
		sameDataDir = sameDataDir || (v.Target == worker.Environment["FERRY_DATA_DIR"] && v.Source == v.Target)
	}
	if !socket {
		t.Error("ferry-worker does not mount the Docker socket")
	}
	if !sameDataDir {
		t.Errorf("ferry-worker does not mount FERRY_DATA_DIR (%s) at the same path as on the host: %+v",
			worker.Environment["FERRY_DATA_DIR"], worker.Volumes)
	}
}

// The Dockerfile must build the command that the compose services run.
func TestDockerfileBuildsFerry(t *testing.T) {
	root := repoRoot(t)
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(df, []byte("./cmd/ferry")) {
		t.Fatal("Dockerfile does not build ./cmd/ferry")
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "ferry")); err != nil {
		t.Fatalf("Dockerfile builds ./cmd/ferry, which does not exist: %v", err)
	}
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	// .data holds database files only the postgres user may read: a build
	// context that includes it fails.
	if !slices.Contains(strings.Fields(string(ignore)), ".data") {
		t.Error(".dockerignore does not exclude .data")
	}
}
