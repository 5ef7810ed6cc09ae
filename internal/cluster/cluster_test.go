package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	dockerclient "github.com/docker/docker/client"
	"github.com/ferry-faas/ferry/internal/cluster"
	"github.com/ferry-faas/ferry/internal/testenv"
)

// TestCluster brings up the production topology (three `ferry server` nodes
// and one `ferry worker` node, each a container with its own address, one
// Temporal server on PostgreSQL, S3) and uses it as a client would: deploy
// through one node, invoke through each, sync and async, run a chain, and
// check that the worker-only node took work.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of containers")
	}
	requireImages(t)
	ctx := context.Background()
	var c *cluster.Cluster
	// Short: runner sockets live below it, and a socket's path has at most 107 bytes.
	dataRoot, err := os.MkdirTemp("", "fc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dataRoot) })
	c, err = cluster.Start(ctx, cluster.Options{
		DataRoot: dataRoot,
		Nodes: []cluster.Node{
			{Name: "node1", Role: cluster.Server},
			{Name: "node2", Role: cluster.Server},
			{Name: "node3", Role: cluster.Server},
			{Name: "worker1", Role: cluster.Worker},
		},
		Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range append([]string{cluster.Temporal}, c.NodeNames()...) {
				logs, _ := c.Logs(context.Background(), name)
				t.Logf("--- logs of %s (last 3000 bytes)\n%s", name, last(logs, 3000))
			}
		}
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("close cluster: %v", err)
		}
	})
	servers := []string{"node1", "node2", "node3"}
	api := func(node string) *client { return &client{url: c.URL(node), key: c.AdminKey, t: t} }

	// Deployed through one node, visible through every other.
	api("node1").deploy("echo", 10)
	for _, n := range servers {
		api(n).mustGet("/v1/functions/echo")
	}

	t.Run("sync invoke through each node", func(t *testing.T) {
		for _, n := range servers {
			rec := api(n).invoke("echo", map[string]any{"via": n}, false)
			if rec.Status != "completed" || !strings.Contains(string(rec.Result), `"via": "`+n+`"`) && !strings.Contains(string(rec.Result), `"via":"`+n+`"`) {
				t.Errorf("sync invoke through %s: %+v", n, rec)
			}
		}
	})

	t.Run("async invoke through each node, read through another", func(t *testing.T) {
		for i, n := range servers {
			rec := api(n).invoke("echo", map[string]any{"async": n}, true)
			other := servers[(i+1)%len(servers)]
			final := api(other).waitInvocation(rec.ID, time.Minute)
			if final.Status != "completed" {
				t.Errorf("async invoke through %s, read through %s: %+v", n, other, final)
			}
		}
	})

	t.Run("chain deployed on one node, run through the others", func(t *testing.T) {
		api("node2").post("/v1/chains", map[string]any{"name": "echo3", "steps": []any{
			map[string]any{"function": "echo"},
			map[string]any{"parallel": []any{map[string]any{"function": "echo"}, map[string]any{"function": "echo"}}},
			map[string]any{"function": "echo"},
		}}, http.StatusCreated, nil)
		var run chainRun
		api("node3").post("/v1/chains/echo3/invoke", map[string]any{"n": 1}, http.StatusOK, &run)
		if run.Status != "completed" {
			t.Fatalf("sync chain run through node3: %+v", run)
		}
		var async chainRun
		api("node1").post("/v1/chains/echo3/invoke?async=true", map[string]any{"n": 2}, http.StatusAccepted, &async)
		deadline := time.Now().Add(time.Minute)
		for async.Status != "completed" {
			if time.Now().After(deadline) || async.Status == "failed" {
				t.Fatalf("async chain run through node1, read through node2: %+v", async)
			}
			time.Sleep(200 * time.Millisecond)
			api("node2").get("/v1/chain-runs/"+async.ID, &async)
		}
		if want := `[{"n":2},{"n":2}]`; compact(async.Output) != want {
			t.Errorf("chain output %s, want %s", async.Output, want)
		}
	})

	t.Run("worker-only node takes work", func(t *testing.T) {
		// Async invocations are not started eagerly: every worker of the
		// cluster polls for them, the worker-only node as much as the others.
		const n = 24
		var ids []string
		for i := range n {
			ids = append(ids, api(servers[i%len(servers)]).invoke("echo", map[string]any{"i": i}, true).ID)
		}
		for _, id := range ids {
			if rec := api("node1").waitInvocation(id, time.Minute); rec.Status != "completed" {
				t.Fatalf("invocation %s: %+v", id, rec)
			}
		}
		ran := map[string]float64{}
		var total float64
		for _, name := range c.NodeNames() {
			ran[name] = completed(t, "http://"+c.Addr(name, "9464/tcp")+"/metrics", "echo")
			total += ran[name]
		}
		t.Logf("completed echo invocations by node: %v", ran)
		if ran["worker1"] == 0 {
			t.Errorf("the worker-only node ran none of %v echo invocations: %v", total, ran)
		}
	})
}

// requireImages skips (or fails under FERRY_REQUIRE_SERVICES) when Docker or the
// images of scripts/deploy-images.sh and the Python runtime are missing.
func requireImages(t *testing.T) {
	t.Helper()
	dc, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		testenv.Unavailable(t, "Docker", err)
	}
	defer dc.Close()
	tag := testenv.Getenv("FERRY_DEPLOY_TAG", "local")
	images := []string{"ferry/python:" + testenv.Getenv("FERRY_IMAGE_TAG", "latest")}
	for _, name := range []string{"ferry", "temporal", "postgres", "s3"} {
		images = append(images, "ferry/"+name+":"+tag)
	}
	for _, img := range images {
		if _, err := dc.ImageInspect(context.Background(), img); err != nil {
			testenv.Unavailable(t, "image "+img+" (scripts/deploy-images.sh, scripts/images.sh)", err)
		}
	}
}

type invocation struct {
	ID     string          `json:"id"`
	Status string          `json:"status"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

type chainRun struct {
	ID     string          `json:"id"`
	Status string          `json:"status"`
	Output json.RawMessage `json:"output"`
	Error  json.RawMessage `json:"error"`
}

// client is the smallest Ferry API client the test needs.
type client struct {
	url, key string
	t        *testing.T
}

var httpClient = &http.Client{Timeout: time.Minute}

func (c *client) do(method, path string, body any, header http.Header) (*http.Response, []byte) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.url+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s%s: %v", method, c.url, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, out
}

func (c *client) post(path string, body any, want int, out any) {
	c.t.Helper()
	resp, b := c.do(http.MethodPost, path, body, nil)
	if resp.StatusCode != want {
		c.t.Fatalf("POST %s: %s, want %d: %s", path, resp.Status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("POST %s: %v: %s", path, err, b)
		}
	}
}

func (c *client) get(path string, out any) {
	c.t.Helper()
	resp, b := c.do(http.MethodGet, path, nil, nil)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s%s: %s: %s", c.url, path, resp.Status, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		c.t.Fatalf("GET %s: %v: %s", path, err, b)
	}
}

func (c *client) mustGet(path string) {
	c.t.Helper()
	var v map[string]any
	c.get(path, &v)
}

// deploy creates a Python echo function.
func (c *client) deploy(name string, timeout int) {
	c.t.Helper()
	code := base64.StdEncoding.EncodeToString([]byte("def handler(event, context):\n    return event\n"))
	c.post("/v1/functions", map[string]any{"name": name, "runtime": "python", "handler": "echo.handler",
		"filename": "echo.py", "code": code, "timeout_seconds": timeout}, http.StatusCreated, nil)
}

func (c *client) invoke(name string, event any, async bool) invocation {
	c.t.Helper()
	path, want := "/v1/functions/"+name+"/invoke", http.StatusOK
	if async {
		path, want = path+"?async=true", http.StatusAccepted
	}
	var rec invocation
	c.post(path, event, want, &rec)
	return rec
}

func (c *client) waitInvocation(id string, within time.Duration) invocation {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var rec invocation
		c.get("/v1/invocations/"+id, &rec)
		switch rec.Status {
		case "pending", "running":
		default:
			return rec
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("invocation %s still %s after %s", id, rec.Status, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// completed reads ferry_invocations_total{function, status="completed"} from
// a node's /metrics: the invocations that node's worker ran.
func completed(t *testing.T, url, function string) float64 {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	prefix := fmt.Sprintf(`ferry_invocations_total{function=%q,status="completed"} `, function)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

func compact(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	return buf.String()
}

func last(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
