// Package cluster runs Ferry's production topology on one machine, for tests:
// PostgreSQL, S3 (versitygw), a Temporal server on that PostgreSQL, and any
// number of Ferry nodes, each a container with its own address on a private
// Docker network. The images are those of scripts/deploy-images.sh; the Ferry
// nodes drive the host's Docker engine (its socket, and a data folder mounted
// at the same path inside as on the host), as in docker-compose.yml.
//
// Every part has a name ("postgres", "s3", "temporal", or a node's name), and
// Stop, Kill, Start, Pause, Unpause, Disconnect and Connect act on a part by
// name, so that fault tests can take any of them away and bring it back.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
	temporalclient "go.temporal.io/sdk/client"
	temporallog "go.temporal.io/sdk/log"
)

// Role is what a Ferry node runs: the `ferry` sub-command.
type Role string

const (
	Server Role = "server" // API and worker in one process
	API    Role = "api"
	Worker Role = "worker"
)

// Node is one Ferry process in its own container.
type Node struct {
	Name string
	Role Role
	// Env adds or overrides FERRY_* settings of this node.
	Env map[string]string
}

// Names of the services every cluster has.
const (
	Postgres = "postgres"
	S3       = "s3"
	Temporal = "temporal"
)

// Options configure a cluster.
type Options struct {
	// Nodes are the Ferry nodes (at least one with the API).
	Nodes []Node
	// DataRoot is a host folder under which each node gets its data folder
	// (mounted at the same path). It must be reachable by the Docker engine.
	DataRoot string
	// Tag of the ferry/* images (default: FERRY_DEPLOY_TAG or "local").
	Tag string
	// RuntimeTag is FERRY_IMAGE_TAG for the nodes (default: the variable's value).
	RuntimeTag string
	// AdminKey is the first admin API key (default: a random one).
	AdminKey string
	// Logf reports progress (default: nothing).
	Logf func(format string, args ...any)
}

const (
	s3Access = "ferry"
	s3Secret = "ferry-cluster-secret"
	pgPass   = "ferry-cluster"
	// label marks everything a cluster creates, so that a crashed test's
	// leftovers can be found: ferry.cluster=<cluster name>.
	label = "ferry.cluster"
)

// Cluster is a running cluster. Its methods are safe for concurrent use.
type Cluster struct {
	Name     string // prefix of its containers and its network
	AdminKey string
	id       string // short: runner sockets live under the data folders (108-byte paths)
	opts     Options
	docker   *client.Client
	netID    string

	mu    sync.Mutex
	parts map[string]*part
	order []string
}

type part struct {
	id    string
	ports map[string]string // container port ("8080/tcp") → host address (127.0.0.1:N)
	node  *Node
}

// Start creates the network and every part, and returns once each Ferry node
// answers /readyz. On error everything it created is removed.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if len(opts.Nodes) == 0 {
		return nil, errors.New("cluster: no nodes")
	}
	if opts.Tag == "" {
		opts.Tag = getenv("FERRY_DEPLOY_TAG", "local")
	}
	if opts.RuntimeTag == "" {
		opts.RuntimeTag = os.Getenv("FERRY_IMAGE_TAG")
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.DataRoot, err = filepath.Abs(opts.DataRoot); err != nil {
		return nil, err
	}
	dc, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	id := randomHex(4)
	c := &Cluster{Name: "ferry-cluster-" + id, id: id, opts: opts, docker: dc, parts: map[string]*part{}}
	c.AdminKey = opts.AdminKey
	if c.AdminKey == "" {
		c.AdminKey = "fy_cluster" + randomHex(16)
	}
	defer func() {
		if err != nil {
			c.Close(context.WithoutCancel(ctx))
		}
	}()
	for _, img := range []string{"ferry", "temporal", "postgres", "s3"} {
		if _, err := dc.ImageInspect(ctx, c.image(img)); err != nil {
			return nil, fmt.Errorf("image %s: %w (build it with scripts/deploy-images.sh)", c.image(img), err)
		}
	}
	nw, err := dc.NetworkCreate(ctx, c.Name, network.CreateOptions{Driver: "bridge", Labels: map[string]string{label: c.Name}})
	if err != nil {
		return nil, fmt.Errorf("create network: %w", err)
	}
	c.netID = nw.ID

	// Throw-away data: PostgreSQL trades durability for speed, as the test stack does.
	if err := c.run(ctx, Postgres, spec{image: "postgres", ports: []string{"5432/tcp"},
		env: map[string]string{"POSTGRES_USER": "ferry", "POSTGRES_PASSWORD": pgPass, "POSTGRES_DB": "ferry",
			"POSTGRES_INITDB_ARGS": "--no-sync"},
		cmd: []string{"postgres", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300"}}); err != nil {
		return nil, err
	}
	if err := c.run(ctx, S3, spec{image: "s3", ports: []string{"9000/tcp"},
		env: map[string]string{"ROOT_ACCESS_KEY_ID": s3Access, "ROOT_SECRET_ACCESS_KEY": s3Secret}}); err != nil {
		return nil, err
	}
	temporalEnv := map[string]string{"DB": "postgres12", "POSTGRES_SEEDS": Postgres, "POSTGRES_USER": "ferry",
		"POSTGRES_PWD": pgPass, "LOG_LEVEL": "warn"}
	opts.Logf("cluster %s: setting up Temporal's schema", c.Name)
	if err := c.runOnce(ctx, "temporal-schema", spec{image: "temporal", env: temporalEnv,
		cmd: []string{"temporal-setup-schema"}}); err != nil {
		return nil, err
	}
	if err := c.run(ctx, Temporal, spec{image: "temporal", env: temporalEnv, ports: []string{"7233/tcp"}}); err != nil {
		return nil, err
	}
	if err := c.WaitTemporal(ctx, 2*time.Minute); err != nil {
		return nil, err
	}
	// The first node registers the namespace and the search attributes; the
	// others start once it is ready, so that they do not all race to do it.
	for i, n := range opts.Nodes {
		if err := c.startNode(ctx, n); err != nil {
			return nil, err
		}
		if i == 0 || i == len(opts.Nodes)-1 {
			if err := c.waitNodes(ctx, 2*time.Minute); err != nil {
				return nil, err
			}
		}
	}
	opts.Logf("cluster %s: up (%d nodes)", c.Name, len(opts.Nodes))
	return c, nil
}

// WaitTemporal waits until the Temporal server's frontend answers its health check.
func (c *Cluster) WaitTemporal(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := func() error {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			tc, err := temporalclient.DialContext(cctx, temporalclient.Options{HostPort: c.Addr(Temporal, "7233/tcp"),
				Logger: temporallog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
			if err != nil {
				return err
			}
			defer tc.Close()
			_, err = tc.CheckHealth(cctx, &temporalclient.CheckHealthRequest{})
			return err
		}()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			logs, _ := c.Logs(ctx, Temporal)
			return fmt.Errorf("temporal not ready after %s: %v\n%s", timeout, err, tail(logs, 4000))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// nodeEnv is the environment of a Ferry node of this cluster.
func (c *Cluster) nodeEnv(n Node) map[string]string {
	env := map[string]string{
		"FERRY_DATABASE_URL":     fmt.Sprintf("postgres://ferry:%s@%s:5432/ferry?sslmode=disable", pgPass, Postgres),
		"FERRY_TEMPORAL_ADDRESS": Temporal + ":7233",
		"FERRY_S3_ENDPOINT":      S3 + ":9000",
		"FERRY_S3_ACCESS_KEY":    s3Access,
		"FERRY_S3_SECRET_KEY":    s3Secret,
		"FERRY_S3_BUCKET":        "ferry",
		"FERRY_ADMIN_KEY":        c.AdminKey,
		"FERRY_DATA_DIR":         c.DataDir(n.Name),
	}
	if c.opts.RuntimeTag != "" {
		env["FERRY_IMAGE_TAG"] = c.opts.RuntimeTag
	}
	for k, v := range n.Env {
		env[k] = v
	}
	return env
}

// DataDir is the node's data folder, the same path on the host and inside.
func (c *Cluster) DataDir(node string) string { return filepath.Join(c.opts.DataRoot, c.id, node) }

func (c *Cluster) startNode(ctx context.Context, n Node) error {
	dir := c.DataDir(n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	s := spec{image: "ferry", env: c.nodeEnv(n), cmd: []string{string(n.Role)}, ports: []string{"9464/tcp"}, node: &n}
	if n.Role != Worker {
		s.ports = append(s.ports, "8080/tcp")
	}
	if n.Role != API {
		// The worker drives the host's engine: its socket, and its data folder at
		// the same path, because the engine resolves the bind mounts it asks for
		// on the host. Root, to use the socket whatever its group.
		s.user = "0:0"
		s.binds = []string{"/var/run/docker.sock:/var/run/docker.sock", dir + ":" + dir}
	}
	return c.run(ctx, n.Name, s)
}

// waitNodes waits until every node answers: /readyz for a node with the API,
// /metrics for a worker.
func (c *Cluster) waitNodes(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, name := range c.NodeNames() {
		url := c.readyURL(name)
		for {
			resp, err := hc.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				err = fmt.Errorf("%s: %s", url, resp.Status)
			}
			if time.Now().After(deadline) {
				logs, _ := c.Logs(ctx, name)
				return fmt.Errorf("node %s not ready after %s: %v\n%s", name, timeout, err, tail(logs, 4000))
			}
			if st, ierr := c.docker.ContainerInspect(ctx, c.part(name).id); ierr == nil && !st.State.Running {
				logs, _ := c.Logs(ctx, name)
				return fmt.Errorf("node %s exited (%d):\n%s", name, st.State.ExitCode, tail(logs, 4000))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(300 * time.Millisecond):
			}
		}
	}
	return nil
}

func (c *Cluster) readyURL(name string) string {
	p := c.part(name)
	if p.node.Role == Worker {
		return "http://" + p.ports["9464/tcp"] + "/metrics"
	}
	return "http://" + p.ports["8080/tcp"] + "/readyz"
}

// WaitReady waits until every running node answers again (after a Start).
func (c *Cluster) WaitReady(ctx context.Context, timeout time.Duration) error {
	return c.waitNodes(ctx, timeout)
}

// NodeNames lists the Ferry nodes in the order they were given.
func (c *Cluster) NodeNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for _, name := range c.order {
		if c.parts[name].node != nil {
			names = append(names, name)
		}
	}
	return names
}

// URL is the base URL of a node's API, on the host's loopback.
func (c *Cluster) URL(node string) string { return "http://" + c.Addr(node, "8080/tcp") }

// Addr is the host address (127.0.0.1:port) published for a part's container
// port, e.g. Addr("postgres", "5432/tcp"), Addr("temporal", "7233/tcp").
func (c *Cluster) Addr(name, port string) string {
	p := c.part(name)
	if p == nil {
		return ""
	}
	return p.ports[port]
}

// DatabaseURL reaches the cluster's PostgreSQL from the host.
func (c *Cluster) DatabaseURL() string {
	return fmt.Sprintf("postgres://ferry:%s@%s/ferry?sslmode=disable", pgPass, c.Addr(Postgres, "5432/tcp"))
}

func (c *Cluster) part(name string) *part {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.parts[name]
}

type spec struct {
	image string
	env   map[string]string
	cmd   []string
	ports []string
	user  string
	binds []string
	node  *Node
}

func (c *Cluster) image(name string) string { return "ferry/" + name + ":" + c.opts.Tag }

func (c *Cluster) create(ctx context.Context, name string, s spec) (string, error) {
	env := make([]string, 0, len(s.env))
	for k, v := range s.env {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	exposed := nat.PortSet{}
	bindings := nat.PortMap{}
	for _, p := range s.ports {
		exposed[nat.Port(p)] = struct{}{}
		// Published on loopback only, on a port the engine picks.
		bindings[nat.Port(p)] = []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: "0"}}
	}
	cfg := &container.Config{Image: c.image(s.image), Env: env, Cmd: s.cmd, User: s.user, Hostname: name,
		ExposedPorts: exposed, Labels: map[string]string{label: c.Name}}
	host := &container.HostConfig{PortBindings: bindings, Binds: s.binds}
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		c.Name: {NetworkID: c.netID, Aliases: []string{name}},
	}}
	created, err := c.docker.ContainerCreate(ctx, cfg, host, nc, nil, c.Name+"-"+name)
	if err != nil {
		return "", fmt.Errorf("create %s: %w", name, err)
	}
	return created.ID, nil
}

// run creates and starts a long-running part.
func (c *Cluster) run(ctx context.Context, name string, s spec) error {
	id, err := c.create(ctx, name, s)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.parts[name] = &part{id: id, node: s.node}
	c.order = append(c.order, name)
	c.mu.Unlock()
	return c.Start(ctx, name)
}

// runOnce runs a container to its end and fails unless it exits 0.
func (c *Cluster) runOnce(ctx context.Context, name string, s spec) error {
	id, err := c.create(ctx, name, s)
	if err != nil {
		return err
	}
	defer c.docker.ContainerRemove(context.WithoutCancel(ctx), id, container.RemoveOptions{Force: true})
	if err := c.docker.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	waitc, errc := c.docker.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case res := <-waitc:
		if res.StatusCode != 0 {
			logs, _ := c.logs(ctx, id)
			return fmt.Errorf("%s exited %d:\n%s", name, res.StatusCode, tail(logs, 4000))
		}
		return nil
	case err := <-errc:
		return fmt.Errorf("wait for %s: %w", name, err)
	}
}

// Start starts a part's container (again) and reads its published ports,
// which the engine may choose anew. It does not wait for readiness (WaitReady).
func (c *Cluster) Start(ctx context.Context, name string) error {
	p, err := c.must(name)
	if err != nil {
		return err
	}
	if err := c.docker.ContainerStart(ctx, p.id, container.StartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	return c.readPorts(ctx, name)
}

func (c *Cluster) readPorts(ctx context.Context, name string) error {
	p, err := c.must(name)
	if err != nil {
		return err
	}
	st, err := c.docker.ContainerInspect(ctx, p.id)
	if err != nil {
		return err
	}
	ports := map[string]string{}
	for port, bs := range st.NetworkSettings.Ports {
		for _, b := range bs {
			if b.HostIP == "127.0.0.1" || b.HostIP == "0.0.0.0" {
				ports[string(port)] = net.JoinHostPort("127.0.0.1", b.HostPort)
			}
		}
	}
	c.mu.Lock()
	p.ports = ports
	c.mu.Unlock()
	return nil
}

func (c *Cluster) must(name string) (*part, error) {
	p := c.part(name)
	if p == nil {
		return nil, fmt.Errorf("cluster %s has no part %q", c.Name, name)
	}
	return p, nil
}

// Stop stops a part gracefully (SIGTERM; SIGKILL after timeout): a Ferry
// node drains its running invocations first.
func (c *Cluster) Stop(ctx context.Context, name string, timeout time.Duration) error {
	p, err := c.must(name)
	if err != nil {
		return err
	}
	secs := int(timeout.Seconds())
	return c.docker.ContainerStop(ctx, p.id, container.StopOptions{Timeout: &secs})
}

// Kill kills a part at once (SIGKILL), as a crash or a power cut would.
func (c *Cluster) Kill(ctx context.Context, name string) error {
	p, err := c.must(name)
	if err != nil {
		return err
	}
	return c.docker.ContainerKill(ctx, p.id, "KILL")
}

// Pause freezes a part's processes (it keeps its connections but answers nothing).
func (c *Cluster) Pause(ctx context.Context, name string) error {
	p, err := c.must(name)
	if err != nil {
		return err
	}
	return c.docker.ContainerPause(ctx, p.id)
}

// Unpause resumes a paused part.
func (c *Cluster) Unpause(ctx context.Context, name string) error {
	p, err := c.must(name)
	if err != nil {
		return err
	}
	return c.docker.ContainerUnpause(ctx, p.id)
}

// Disconnect cuts a part off the cluster's network (a partition): it keeps
// running but reaches no other part, and no other part reaches it. Its
// published ports stop answering too.
func (c *Cluster) Disconnect(ctx context.Context, name string) error {
	p, err := c.must(name)
	if err != nil {
		return err
	}
	return c.docker.NetworkDisconnect(ctx, c.netID, p.id, true)
}

// Connect heals a partition made by Disconnect.
func (c *Cluster) Connect(ctx context.Context, name string) error {
	p, err := c.must(name)
	if err != nil {
		return err
	}
	return c.docker.NetworkConnect(ctx, c.netID, p.id, &network.EndpointSettings{Aliases: []string{name}})
}

// Logs returns a part's output so far.
func (c *Cluster) Logs(ctx context.Context, name string) (string, error) {
	p, err := c.must(name)
	if err != nil {
		return "", err
	}
	return c.logs(ctx, p.id)
}

func (c *Cluster) logs(ctx context.Context, id string) (string, error) {
	rc, err := c.docker.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	var b strings.Builder
	_, err = stdcopy.StdCopy(&b, &b, rc)
	return b.String(), err
}

// Close removes every container of the cluster, the function containers its
// workers left, its network and its data folders.
func (c *Cluster) Close(ctx context.Context) error {
	var errs []error
	list, err := c.docker.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", label+"="+c.Name))})
	errs = append(errs, err)
	for _, ct := range list {
		errs = append(errs, c.docker.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}))
	}
	// Function containers of the nodes' executors mount their data folders.
	dataDir := filepath.Join(c.opts.DataRoot, c.id) + "/"
	fns, err := c.docker.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "ferry.managed=true"))})
	errs = append(errs, err)
	for _, ct := range fns {
		for _, m := range ct.Mounts {
			if strings.HasPrefix(m.Source, dataDir) {
				errs = append(errs, c.docker.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true}))
				break
			}
		}
	}
	if c.netID != "" {
		errs = append(errs, c.docker.NetworkRemove(ctx, c.netID))
	}
	errs = append(errs, os.RemoveAll(filepath.Join(c.opts.DataRoot, c.id)))
	errs = append(errs, c.docker.Close())
	return errors.Join(errs...)
}

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
