package composetest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	dockerclient "github.com/docker/docker/client"

	"github.com/ferry-faas/ferry/internal/testenv"
)

// TestComposeUp runs `docker compose up` (or docker-compose) on the repository's
// file as the README says, on ports of its own, and invokes a Python function
// through the stack: the Ferry container drives the host's Docker engine.
func TestComposeUp(t *testing.T) {
	if testing.Short() {
		t.Skip("brings the compose stack up")
	}
	root := repoRoot(t)
	dc, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		testenv.Unavailable(t, "Docker", err)
	}
	defer dc.Close()
	runtimeTag := testenv.Getenv("FERRY_IMAGE_TAG", "latest")
	for _, img := range []string{"ferry/ferry:local", "ferry/temporal:local", "ferry/temporal-ui:local",
		"ferry/postgres:local", "ferry/s3:local", "ferry/python:" + runtimeTag} {
		if _, err := dc.ImageInspect(context.Background(), img); err != nil {
			testenv.Unavailable(t, "image "+img+" (make deploy-images)", err)
		}
	}
	// Short: runner sockets live below it, and a socket's path has at most 107 bytes.
	dataDir, err := os.MkdirTemp("", "fcu")
	if err != nil {
		t.Fatal(err)
	}
	project := "ferrycompose" + strings.TrimPrefix(dataDir, os.TempDir()+"/fcu")
	ports := freePorts(t, 4)
	key := "fy_compose" + project
	env := []string{"COMPOSE_PROJECT_NAME=" + project, "FERRY_HOST_DATA_DIR=" + dataDir, "FERRY_ADMIN_KEY=" + key,
		"FERRY_IMAGE_TAG=" + runtimeTag,
		"FERRY_HTTP_PORT=" + ports[0], "FERRY_METRICS_PORT=" + ports[1], "FERRY_TEMPORAL_PORT=" + ports[2], "FERRY_TEMPORAL_UI_PORT=" + ports[3]}
	t.Cleanup(func() {
		if t.Failed() {
			out := runComposeAllowFail(root, env, "logs", "--no-color", "--tail", "40")
			t.Logf("compose logs:\n%s", out)
		}
		runComposeAllowFail(root, env, "down", "-v", "--remove-orphans")
		removeFunctionContainers(dc, dataDir)
		os.RemoveAll(dataDir)
	})
	start := time.Now()
	runCompose(t, root, env, "up", "-d")

	api := "http://127.0.0.1:" + ports[0]
	waitOK(t, api+"/readyz", 3*time.Minute)
	t.Logf("compose stack ready in %s", time.Since(start).Round(time.Second))
	waitOK(t, "http://127.0.0.1:"+ports[3]+"/", time.Minute)

	code := base64.StdEncoding.EncodeToString([]byte("def handler(event, context):\n    return {'echo': event}\n"))
	post(t, api+"/v1/functions", key, map[string]any{"name": "echo", "runtime": "python", "handler": "echo.handler",
		"filename": "echo.py", "code": code}, http.StatusCreated, nil)
	var rec struct {
		Status string          `json:"status"`
		Result json.RawMessage `json:"result"`
	}
	post(t, api+"/v1/functions/echo/invoke", key, map[string]any{"hello": "compose"}, http.StatusOK, &rec)
	var got map[string]map[string]string
	if err := json.Unmarshal(rec.Result, &got); rec.Status != "completed" || err != nil || got["echo"]["hello"] != "compose" {
		t.Fatalf("invoke through the compose stack: status %s result %s (%v)", rec.Status, rec.Result, err)
	}
}

func runComposeAllowFail(root string, env []string, args ...string) string {
	var cmdline []string
	if exec, err := lookCompose(); err == nil {
		cmdline = exec
	} else {
		return err.Error()
	}
	cmdline = append(cmdline, "--project-directory", root, "-f", root+"/docker-compose.yml")
	cmdline = append(cmdline, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := execCommand(ctx, cmdline, root, env)
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// removeFunctionContainers removes what the stack's worker left on the host's
// engine: containers that mount its data folder.
func removeFunctionContainers(dc *dockerclient.Client, dataDir string) {
	ctx := context.Background()
	list, err := dc.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "ferry.managed=true"))})
	if err != nil {
		return
	}
	for _, c := range list {
		for _, m := range c.Mounts {
			if strings.HasPrefix(m.Source, dataDir+"/") {
				dc.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
				break
			}
		}
	}
}

func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var ports []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func waitOK(t *testing.T, url string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	hc := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := hc.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within %s: %v", url, within, err)
		}
		time.Sleep(time.Second)
	}
}

func post(t *testing.T, url, key string, body any, want int, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("POST %s: %s, want %d: %s", url, resp.Status, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("POST %s: %v: %s", url, err, data)
		}
	}
}
