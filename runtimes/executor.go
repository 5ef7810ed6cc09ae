// Package runtimes runs function code in hardened Docker containers: a warm pool
// of runner containers per function version, the runner protocol, a reaper for
// containers no live pool owns, safe bundle unpacking and the Go builder.
package runtimes

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-faas/ferry"
)

// Spec is one invocation of one function version.
type Spec struct {
	InvocationID string
	// FunctionID is the function's identity (ferry.Function.ID). Containers
	// are never shared between identities, so a function deleted and created
	// again under its name never gets the old one's warm containers.
	FunctionID string
	Function   string
	Version    int
	Runtime    ferry.Runtime
	Handler    string
	Checksum   string
	// CodeDir is the host folder with the unpacked bundle (for Go: the folder
	// holding the built bootstrap binary). It is part of the warm-pool key and
	// must keep its content while containers use it: a folder per version
	// that is never rewritten lets invocations reuse warm containers.
	CodeDir string
	Limits  ferry.Limits
	Env     map[string]string
	Event   json.RawMessage
	// Operations are the checkpoints of earlier runs of a durable invocation,
	// replayed to the handler; Checkpoint records a new one and answers the
	// runner (nil: durable operations fail with Runtime.DurableUnavailable).
	Operations []Operation
	Checkpoint func(context.Context, Checkpoint) CheckpointAck
	// OnLogs, when set, receives the invocation's output as the worker reads
	// it, in order, within the log limit (the same text as Result.Logs
	// without the truncation marker). It is called from the goroutine that
	// reads the container's output, which waits for it: it must not block.
	OnLogs func(text string)
}

// timeout is the function's time limit (its default when unset).
func (s Spec) timeout() time.Duration {
	return time.Duration(s.Limits.WithDefaults().TimeoutSeconds) * time.Second
}

// Status is the outcome of one execution.
type Status string

const (
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusTimeout   Status = "timeout"
	StatusOOM       Status = "oom"
)

// Result is what one execution produced. Metrics.QueueMS is the time spent
// waiting for a free container; TotalMS is left to the caller.
type Result struct {
	Status  Status
	Result  json.RawMessage
	Error   *ferry.FunctionError
	Logs    string
	Metrics ferry.Metrics
	// Suspended names the wait or callback a durable handler stopped at
	// (Status is completed then, with no result).
	Suspended string
}

// Config configures an Executor. Zero fields take the documented defaults.
type Config struct {
	DataDir       string        // sockets under DataDir/run; default .data/dev
	IdleTimeout   time.Duration // keep-alive of an idle container; default 10m
	MaxContainers int           // global cap; default 32
	MaxBuilds     int           // Go builds at once; default DefaultMaxBuilds
	LogLimit      int           // bytes of logs kept per invocation; default 256 KiB
	ResultLimit   int           // bytes of a result; default 6 MiB
	InitTimeout   time.Duration // container start + handler load; default 30s
	// InitCPUs is the CPU quota of a spare while its interpreter starts
	// (several times faster with a full CPU than with the usual 0.5); no user
	// code runs then, and assignment applies the function's own quota. A
	// container created for a function runs with the function's quota from
	// the start, since its handler's module code runs while it loads.
	// Default: all CPUs of the host.
	InitCPUs float64
	Images   map[ferry.Runtime]string // per runtime, and "go-builder"; defaults DefaultImages
	// Spares is the number of pre-started containers per runtime (python and
	// nodejs) that cold starts take instead of creating a container (see
	// spare.go). 0 means DefaultSpares; a negative number disables them.
	Spares int
	Logger *slog.Logger
}

// DefaultImages are the locally built runtime images (scripts/images.sh),
// tagged with FERRY_IMAGE_TAG (default "latest"), which scripts/images.sh
// reads too: an operator pins the runtime images of one Ferry release with it.
var DefaultImages = map[ferry.Runtime]string{
	ferry.RuntimePython: "ferry/python:" + imageTag,
	ferry.RuntimeNode:   "ferry/nodejs:" + imageTag,
	ferry.RuntimeGo:     "ferry/go:" + imageTag,
	goBuilderRuntime:    GoBuilderImage,
}

// GoBuilderImage compiles Go bundles (BuildGo).
var GoBuilderImage = "ferry/go-builder:" + imageTag

var imageTag = func() string {
	if t := os.Getenv("FERRY_IMAGE_TAG"); t != "" {
		return t
	}
	return "latest"
}()

func (c Config) withDefaults() Config {
	if c.DataDir == "" {
		c.DataDir = ".data/dev"
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.MaxContainers <= 0 {
		c.MaxContainers = 32
	}
	if c.MaxBuilds <= 0 {
		c.MaxBuilds = DefaultMaxBuilds
	}
	if c.LogLimit <= 0 {
		c.LogLimit = 256 << 10
	}
	if c.ResultLimit <= 0 {
		c.ResultLimit = 6 << 20
	}
	if c.InitTimeout <= 0 {
		c.InitTimeout = 30 * time.Second
	}
	if c.InitCPUs <= 0 {
		c.InitCPUs = float64(runtime.NumCPU())
	}
	images := make(map[ferry.Runtime]string, len(DefaultImages))
	for rt, img := range DefaultImages {
		images[rt] = img
	}
	for rt, img := range c.Images {
		if img != "" {
			images[rt] = img
		}
	}
	c.Images = images
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// dockerAPI is the part of the Docker client the executor uses.
type dockerAPI interface {
	Ping(ctx context.Context) (types.Ping, error)
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, containerName string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, containerID string, options container.StartOptions) error
	ContainerKill(ctx context.Context, containerID, signal string) error
	ContainerRemove(ctx context.Context, containerID string, options container.RemoveOptions) error
	ContainerInspect(ctx context.Context, containerID string) (container.InspectResponse, error)
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerLogs(ctx context.Context, containerID string, options container.LogsOptions) (io.ReadCloser, error)
	ContainerUpdate(ctx context.Context, containerID string, updateConfig container.UpdateConfig) (container.UpdateResponse, error)
	ContainerWait(ctx context.Context, containerID string, condition container.WaitCondition) (<-chan container.WaitResponse, <-chan error)
	ImageInspect(ctx context.Context, imageID string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
	Info(ctx context.Context) (system.Info, error)
	NetworkCreate(ctx context.Context, name string, options network.CreateOptions) (network.CreateResponse, error)
	NetworkInspect(ctx context.Context, networkID string, options network.InspectOptions) (network.Inspect, error)
}

var _ dockerAPI = (*client.Client)(nil)

// PoolStats counts the executor's containers, for metrics.
type PoolStats struct {
	Total    int `json:"total"`    // started or starting
	Busy     int `json:"busy"`     // running an invocation (or starting for one)
	Idle     int `json:"idle"`     // warm, waiting for an invocation
	Versions int `json:"versions"` // distinct warm-pool keys
	Spares   int `json:"spares"`   // ready spares, of no function yet (part of Total)
}

// Executor runs invocations in a warm pool of runner containers. It is safe
// for concurrent use.
type Executor struct {
	docker dockerAPI
	cfg    Config
	log    *slog.Logger
	poolID string // this executor's id, in every container's ferry.pool label
	runDir string // absolute DataDir/run
	// taskDir (absolute DataDir/task) holds the spares' code folders.
	taskDir string
	spareN  int // spares per runtime; 0: none
	// engineCPUs is the engine's CPU count: Docker refuses a larger quota,
	// and a function asking for more runs with all of them.
	engineCPUs float64

	mu       sync.Mutex
	pools    map[string]*keyPool
	all      map[*instance]struct{} // every started container, idle or busy
	building map[string]struct{}    // ids of running Go builder containers
	builds   chan struct{}          // one token per running Go build (MaxBuilds)
	total    int                    // containers including reserved slots being started
	busy     int
	changed  chan struct{} // closed and replaced when a slot or container frees up
	closed   bool
	spares   map[ferry.Runtime]*spareState

	spareWG       sync.WaitGroup // spares being started
	spareAssigned atomic.Int64   // cold starts served by a spare, for tests

	orphanAfter time.Duration // minimum age of another pool's container before it may be reaped
	// reapPool, when set (tests that shorten orphanAfter), limits the reaper
	// to that pool's containers, so that it never touches the fresh
	// containers of other executors sharing the engine.
	reapPool string
	// afterKill, when set (tests), is called once a timed-out or cancelled
	// container was killed, before its removal.
	afterKill func(id string, deadline, exited time.Time)

	// alive listens on runDir/pool-<poolID>.sock while the executor lives:
	// other executors' reapers probe it (reaper.go).
	alive *net.UnixListener

	bg         sync.WaitGroup // background removals
	stopReaper context.CancelFunc
	reaperDone chan struct{}
}

// keyPool holds the containers of one warm-pool key (one function version
// with one set of settings).
type keyPool struct {
	idle  []*instance // most recently used last
	count int         // containers of this key: idle, busy and starting
}

// NewExecutor checks the configuration, removes orphaned containers and starts
// the periodic reaper.
func NewExecutor(ctx context.Context, docker *client.Client, cfg Config) (*Executor, error) {
	if docker == nil {
		return nil, ferry.Errorf(ferry.EINVALID, "runtimes: no Docker client")
	}
	return newExecutor(ctx, docker, cfg)
}

func newExecutor(ctx context.Context, docker dockerAPI, cfg Config) (*Executor, error) {
	cfg = cfg.withDefaults()
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, ferry.Wrap(err, ferry.EINVALID, "runtimes: data dir %q: %v", cfg.DataDir, err)
	}
	cfg.DataDir = dataDir
	runDir := filepath.Join(dataDir, "run")
	// A Unix socket path holds at most 107 bytes: run/<container name>/ferry.sock.
	if n := len(runDir) + 1 + containerNameLen + 1 + len(socketName); n > 107 {
		return nil, ferry.Errorf(ferry.EINVALID, "runtimes: data dir %q is too long for Unix socket paths (%d > 107 bytes)", dataDir, n)
	}
	taskDir := filepath.Join(dataDir, "task")
	for _, d := range []string{runDir, taskDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, ferry.Wrap(err, ferry.EINTERNAL, "runtimes: create %s: %v", d, err)
		}
	}
	e := &Executor{
		docker:   docker,
		cfg:      cfg,
		poolID:   randomHex(8),
		runDir:   runDir,
		taskDir:  taskDir,
		spareN:   cfg.Spares,
		spares:   make(map[ferry.Runtime]*spareState),
		pools:    make(map[string]*keyPool),
		all:      make(map[*instance]struct{}),
		building: make(map[string]struct{}),
		builds:   make(chan struct{}, cfg.MaxBuilds),
		changed:  make(chan struct{}),
		// Longer than any start-up, so that a container another executor is
		// still starting is never taken for an orphan.
		orphanAfter: cfg.InitTimeout + time.Minute,
	}
	switch {
	case e.spareN == 0:
		e.spareN = DefaultSpares
	case e.spareN < 0:
		e.spareN = 0
	}
	e.log = cfg.Logger.With("component", "executor", "pool", e.poolID)
	if err := e.Ping(ctx); err != nil {
		return nil, err
	}
	info, err := e.docker.Info(ctx)
	if err != nil {
		return nil, dockerError("info", err)
	}
	e.engineCPUs = float64(info.NCPU)
	if e.engineCPUs <= 0 {
		e.engineCPUs = float64(runtime.NumCPU())
	}
	if err := e.ensureNetwork(ctx); err != nil {
		return nil, err
	}
	if e.alive, err = listenAlive(runDir, e.poolID); err != nil {
		return nil, err
	}
	e.reap(ctx)
	e.fillSpares()
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.stopReaper = cancel
	e.reaperDone = make(chan struct{})
	go e.reapLoop(rctx)
	return e, nil
}

// PoolID is the executor's instance id (label ferry.pool of its containers).
func (e *Executor) PoolID() string { return e.poolID }

// Ping reports whether the Docker engine answers.
func (e *Executor) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := e.docker.Ping(ctx); err != nil {
		return ferry.Wrap(err, ferry.EUNAVAILABLE, "docker engine unreachable: %v", err)
	}
	return nil
}

// Stats returns the current container counts.
func (e *Executor) Stats() PoolStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := PoolStats{Total: e.total, Busy: e.busy, Versions: len(e.pools)}
	for _, p := range e.pools {
		st.Idle += len(p.idle)
	}
	for _, sp := range e.spares {
		st.Spares += len(sp.ready)
	}
	return st
}

// Close removes every container of the pool, busy ones included (their
// invocations fail with EUNAVAILABLE), and stops the reaper. It is idempotent.
func (e *Executor) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.bg.Wait()
		return nil
	}
	e.closed = true
	all := make([]*instance, 0, len(e.all))
	var starting []*instance
	for in := range e.all {
		if in.ready {
			all = append(all, in)
		} else {
			starting = append(starting, in)
		}
	}
	for _, p := range e.pools {
		p.idle = nil
	}
	for _, sp := range e.spares {
		sp.ready = nil
	}
	e.notifyLocked()
	e.mu.Unlock()

	e.stopReaper()
	<-e.reaperDone
	// Containers still starting are killed: their start fails (or, done,
	// notices the shutdown) and removes them. Spares are waited for below.
	var wg sync.WaitGroup
	for _, in := range starting {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.kill(ctx, in)
		}()
	}
	for _, in := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.removeInstance(ctx, in)
		}()
	}
	wg.Wait()
	done := make(chan struct{})
	go func() { e.spareWG.Wait(); e.bg.Wait(); close(done) }()
	select {
	case <-done:
		_ = e.alive.Close() // its containers are gone: nothing left to guard
		return nil
	case <-ctx.Done():
		_ = e.alive.Close()
		return ferry.Errorf(ferry.EUNAVAILABLE, "runtimes: close: %v", ctx.Err())
	}
}

// Execute runs one invocation. The error is for infrastructure failures only
// (Docker unreachable: EUNAVAILABLE; a spec that can never run, such as limits
// out of bounds or settings the engine refuses: EINVALID); failures of the
// function itself are a Result with status failed, timeout or oom. When ctx is
// cancelled the container is killed and ctx.Err() is returned.
func (e *Executor) Execute(ctx context.Context, s Spec) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	s.Limits = s.Limits.WithDefaults()
	img, err := e.checkSpec(&s)
	if err != nil {
		return Result{}, err
	}
	key := poolKey(s, img)

	var spareRT ferry.Runtime
	if e.spareN > 0 && canUseSpare(s) {
		spareRT = s.Runtime
	}
	queued := time.Now()
	in, viaSpare, err := e.acquire(ctx, key, s.Limits.MaxConcurrency, spareRT)
	if err != nil {
		return Result{}, err
	}
	queueMS := msSince(queued)

	var initMS float64
	cold := in == nil || viaSpare
	if cold {
		var initRes *Result
		in, initRes, err = e.coldStart(ctx, s, key, img, in)
		if err != nil || initRes != nil {
			e.releaseSlot(key)
			if initRes != nil {
				initRes.Metrics.QueueMS = queueMS
				return *initRes, nil
			}
			return Result{}, err
		}
		initMS = in.initMS
	}

	res, reuse, err := e.invoke(ctx, in, s)
	e.release(in, reuse)
	if err != nil {
		return Result{}, err
	}
	res.Metrics.Cold = cold
	res.Metrics.InitMS = initMS
	res.Metrics.QueueMS = queueMS
	return res, nil
}

// coldStart readies a container for s in the slot acquire counted under key:
// the spare acquire handed over, if any (falling back to a container of its
// own when the spare proves unusable), or a container created for s. A
// handler that fails to load yields a Result instead.
func (e *Executor) coldStart(ctx context.Context, s Spec, key, img string, spare *instance) (*instance, *Result, error) {
	if spare != nil {
		go e.fillSpares() // replace the spare taken
		res, err := e.assign(ctx, spare, s)
		if !errors.Is(err, errSpareUnusable) || ctx.Err() != nil {
			if res != nil || err != nil {
				return nil, res, err
			}
			return spare, nil, nil
		}
		// Keep the slot and create a container for the function instead.
		e.log.Warn("spare unusable, starting a container", "function", s.Function, "err", err)
	}
	return e.startFor(ctx, s, key, img)
}

func (e *Executor) checkSpec(s *Spec) (string, error) {
	if !s.Runtime.Valid() {
		return "", ferry.Errorf(ferry.EINVALID, "unknown runtime %q", s.Runtime)
	}
	img := e.cfg.Images[s.Runtime]
	if s.Function == "" || s.Handler == "" {
		return "", ferry.Errorf(ferry.EINVALID, "spec needs a function name and a handler")
	}
	// Versions stored before a bound was tightened must fail here, at once,
	// not in the engine (where a tiny CPU quota fails every start, or means
	// none at all).
	if err := s.Limits.Validate(); err != nil {
		return "", err
	}
	s.Limits.CPUs = min(s.Limits.CPUs, e.engineCPUs)
	if s.CodeDir == "" {
		return "", ferry.Errorf(ferry.EINVALID, "spec of %s has no code folder", s.Function)
	}
	abs, err := filepath.Abs(s.CodeDir)
	if err != nil {
		return "", ferry.Wrap(err, ferry.EINVALID, "code folder %q: %v", s.CodeDir, err)
	}
	s.CodeDir = abs
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return "", ferry.Errorf(ferry.EINVALID, "code folder %s of %s is missing", abs, s.Function)
	}
	if s.InvocationID == "" {
		s.InvocationID = randomHex(16)
	}
	if len(s.Event) == 0 {
		s.Event = json.RawMessage("null")
	}
	return img, nil
}

// poolKey identifies the containers an invocation may reuse: everything that
// goes into the container's configuration. The function name is part of it,
// so containers are never shared between functions.
func poolKey(s Spec, img string) string {
	k := struct {
		FunctionID string
		Function   string
		Version    int
		Runtime    ferry.Runtime
		Image      string
		Handler    string
		Checksum   string
		CodeDir    string
		MemoryMB   int
		CPUs       float64
		Network    bool
		Env        map[string]string // encoding/json sorts map keys
	}{s.FunctionID, s.Function, s.Version, s.Runtime, img, s.Handler, s.Checksum, s.CodeDir,
		s.Limits.MemoryMB, s.Limits.CPUs, s.Limits.Network, s.Env}
	b, _ := json.Marshal(k)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Fair share of the pool. A burst of one function must not take the warm
// containers of every other function (a trivial warm function once waited
// 7.5 s for a cold start while another ran 40 invocations), so:
//
//   - a key holds at most share() containers (three quarters of
//     MaxContainers), however high its max_concurrency: the rest of the pool
//     stays for other functions, and invocations over the share wait for one
//     of the key's own containers;
//   - at the global cap a cold start evicts a spare first, then the least
//     recently used idle container among the keys that hold at least as many
//     containers as the starting key will hold after the start; a function is
//     never evicted by one that ends up with more containers than it has.
//
// Every wait counts in the invocation's queue_ms.

// share is the most containers one warm-pool key may hold.
func (e *Executor) share() int { return max(1, e.cfg.MaxContainers-e.cfg.MaxContainers/4) }

// acquire returns an idle container of key; or, when spareRT is set and that
// runtime has a ready spare, the spare, now counted under key (spare true:
// it still needs assign); or nil after reserving a slot for a new container.
// It waits while the key is at maxConc containers or its share, or the
// executor at its global cap with no spare or idle container it may evict.
func (e *Executor) acquire(ctx context.Context, key string, maxConc int, spareRT ferry.Runtime) (in *instance, spare bool, err error) {
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return nil, false, ferry.Errorf(ferry.EUNAVAILABLE, "executor is shut down")
		}
		p := e.pools[key]
		if p == nil {
			p = &keyPool{}
			e.pools[key] = p
		}
		for len(p.idle) > 0 {
			in := p.idle[len(p.idle)-1]
			p.idle = p.idle[:len(p.idle)-1]
			if in.alive() {
				e.busy++
				e.mu.Unlock()
				return in, false, nil
			}
			// Died while idle (killed from outside): drop it and look again.
			e.dropLocked(in)
		}
		if p.count < min(maxConc, e.share()) {
			if spareRT != "" {
				if sp := e.takeSpareLocked(spareRT); sp != nil {
					// Already in total; from now on it belongs to key only.
					sp.key = key
					p.count++
					e.busy++
					e.mu.Unlock()
					return sp, true, nil
				}
			}
			// At the cap, a spare goes before any warm container.
			if e.total >= e.cfg.MaxContainers && !e.evictSpareLocked() {
				if victim := e.lruIdleLocked(p.count + 1); victim != nil {
					e.log.Debug("evict idle container", "container", victim.name)
					e.dropLocked(victim)
				}
			}
			if e.total < e.cfg.MaxContainers {
				p.count++
				e.total++
				e.busy++
				e.mu.Unlock()
				return nil, false, nil
			}
		}
		wait := e.changed
		e.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			e.mu.Lock()
			e.prunePoolLocked(key)
			e.mu.Unlock()
			return nil, false, ctx.Err()
		}
	}
}

// lruIdleLocked removes and returns the least recently used idle container of
// the keys holding at least minCount containers, or nil.
func (e *Executor) lruIdleLocked(minCount int) *instance {
	var victim *instance
	var vp *keyPool
	for _, p := range e.pools {
		if len(p.idle) > 0 && p.count >= minCount && (victim == nil || p.idle[0].lastUsed.Before(victim.lastUsed)) {
			victim, vp = p.idle[0], p
		}
	}
	if victim != nil {
		vp.idle = vp.idle[1:]
	}
	return victim
}

// dropLocked forgets a container that is not in any idle list and removes it
// in the background.
func (e *Executor) dropLocked(in *instance) {
	delete(e.all, in)
	if p := e.pools[in.key]; p != nil {
		p.count--
		e.prunePoolLocked(in.key)
	}
	e.total--
	e.notifyLocked()
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		e.removeInstance(context.Background(), in)
	}()
}

func (e *Executor) prunePoolLocked(key string) {
	if p := e.pools[key]; p != nil && p.count <= 0 && len(p.idle) == 0 {
		delete(e.pools, key)
	}
}

func (e *Executor) notifyLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// releaseSlot gives back a slot reserved by acquire whose container never
// became usable (its removal is already handled).
func (e *Executor) releaseSlot(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.pools[key]; p != nil {
		p.count--
		e.prunePoolLocked(key)
	}
	e.total--
	e.busy--
	e.notifyLocked()
}

// release returns a container after an invocation: back to the idle list when
// reuse is true, otherwise it is removed.
func (e *Executor) release(in *instance, reuse bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.busy--
	if reuse && !e.closed {
		if _, ok := e.all[in]; ok {
			in.lastUsed = time.Now()
			p := e.pools[in.key]
			p.idle = append(p.idle, in)
			e.notifyLocked()
			return
		}
	}
	if _, ok := e.all[in]; ok {
		e.dropLocked(in)
		return
	}
	e.notifyLocked()
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// fresh returns a context for cleanup work that must run even when the
// caller's context is cancelled.
func fresh(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

func fmtMS(d time.Duration) string { return fmt.Sprintf("%.3g s", d.Seconds()) }
