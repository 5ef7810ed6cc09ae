package runtimes

import (
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/bundle"
)

// Paths inside every function container (runtimes/README.md).
const (
	taskRoot   = "/var/task"  // the function's code, read-only
	runnerDir  = "/run/ferry" // holds ferry.sock, the protocol socket
	socketName = "ferry.sock"
)

// Hardening constants shared by all function containers.
const (
	containerUser = "1000:1000"
	tmpfsSize     = 64 << 20 // bytes of /tmp; also the largest file a function may write
	pidsLimit     = 64       // processes and threads per container
	nofileLimit   = 1024
)

// Labels every Ferry container carries; the reaper selects on labelManaged.
const (
	labelManaged  = "ferry.managed"
	labelFunction = "ferry.function"
	labelFuncID   = "ferry.function_id"
	labelVersion  = "ferry.version"
	labelChecksum = "ferry.checksum"
	labelRuntime  = "ferry.runtime"
	labelPool     = "ferry.pool"
	labelKey      = "ferry.key"
	labelSpare    = "ferry.spare" // "true" on a spare, whatever function it serves now
)

// functionNetwork is the Docker network of every function with network: true
// (ensureNetwork creates it): a bridge with inter-container communication
// off, so that such functions reach what the host lets them reach outside,
// but not each other's containers, as they could on Docker's default bridge.
const (
	functionNetwork = "ferry-functions"
	iccOption       = "com.docker.network.bridge.enable_icc"
)

// containerParams is everything containerConfig needs besides the spec.
type containerParams struct {
	Image   string
	RunDir  string // host folder with the protocol socket, mounted at /run/ferry
	PoolID  string // executor instance that owns the container
	Key     string // warm-pool key of the function version
	LogMark string // token of the log markers (logpipe.go)
}

// functionEnv is the environment that names the function: the protocol's
// variables, then the function's own (sorted, reserved names dropped). A
// container created for the function gets it at creation; a spare receives it
// in its init frame.
func functionEnv(s Spec) (protocol, user []string) {
	lim := s.Limits.WithDefaults()
	version := strconv.Itoa(s.Version)
	memMB := strconv.Itoa(lim.MemoryMB)
	protocol = []string{
		"FERRY_HANDLER=" + s.Handler,
		"FERRY_FUNCTION_NAME=" + s.Function,
		"FERRY_FUNCTION_VERSION=" + version,
		"FERRY_MEMORY_MB=" + memMB,
		"AWS_LAMBDA_FUNCTION_NAME=" + s.Function,
		"AWS_LAMBDA_FUNCTION_VERSION=" + version,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + memMB,
		"_HANDLER=" + s.Handler,
	}
	user = make([]string, 0, len(s.Env))
	for k, v := range s.Env {
		if !bundle.ReservedEnv(k) {
			user = append(user, k+"="+v)
		}
	}
	sort.Strings(user) // map order is random; keep the config deterministic
	return protocol, user
}

// poolEnv is the environment every container of the pool has, spares included.
func poolEnv(p containerParams) []string {
	return []string{
		"FERRY_LOG_MARK=" + p.LogMark,
		"LAMBDA_TASK_ROOT=" + taskRoot,
		"HOME=/tmp",
	}
}

// containerConfig holds every setting of a function container, hardening
// included. It is pure so that a table test can pin each setting down.
func containerConfig(s Spec, p containerParams) (*container.Config, *container.HostConfig) {
	lim := s.Limits.WithDefaults()
	protocol, user := functionEnv(s)
	env := append(append(protocol, poolEnv(p)...), user...) // the function's own last
	cfg := &container.Config{
		Image:      p.Image,
		User:       containerUser,
		Env:        env,
		WorkingDir: taskRoot,
		Labels: map[string]string{
			labelManaged:  "true",
			labelFunction: s.Function,
			labelFuncID:   s.FunctionID,
			labelVersion:  strconv.Itoa(s.Version),
			labelChecksum: s.Checksum,
			labelRuntime:  string(s.Runtime),
			labelPool:     p.PoolID,
			labelKey:      p.Key,
		},
	}
	return cfg, hostConfig(s.CodeDir, p.RunDir, lim)
}

// spareConfig is the configuration of a spare: a container of a runtime that
// belongs to no function yet (runtimes/README.md, "Spares"). It has the same
// hardening as containerConfig and the default limits (its memory and CPU
// quota are updated when it is assigned; the pids limit is the same for
// every function), no network, and its own code folder codeDir, still empty,
// mounted read-only at /var/task. Its labels name no function: Docker labels
// cannot change, and the function it serves is kept in the pool's memory.
func spareConfig(rt ferry.Runtime, codeDir string, p containerParams) (*container.Config, *container.HostConfig) {
	env := append([]string{"FERRY_SPARE=1"}, poolEnv(p)...)
	cfg := &container.Config{
		Image:      p.Image,
		User:       containerUser,
		Env:        env,
		WorkingDir: taskRoot,
		Labels: map[string]string{
			labelManaged: "true",
			labelSpare:   "true",
			labelRuntime: string(rt),
			labelPool:    p.PoolID,
		},
	}
	return cfg, hostConfig(codeDir, p.RunDir, ferry.DefaultLimits)
}

// hostConfig is the hardening and the limits shared by every function
// container.
func hostConfig(codeDir, runDir string, lim ferry.Limits) *container.HostConfig {
	network := container.NetworkMode("none")
	if lim.Network {
		network = functionNetwork
	}
	mem := int64(lim.MemoryMB) << 20
	pids := int64(pidsLimit)
	init := true // docker-init reaps zombies that user code leaves behind
	return &container.HostConfig{
		NetworkMode:    network,
		ReadonlyRootfs: true,
		// exec stays allowed (as on Lambda); nosuid/nodev keep it harmless.
		Tmpfs: map[string]string{
			"/tmp": "rw,exec,nosuid,nodev,mode=1777,size=" + strconv.Itoa(tmpfsSize),
		},
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: codeDir, Target: taskRoot, ReadOnly: true},
			{Type: mount.TypeBind, Source: runDir, Target: runnerDir, ReadOnly: true},
		},
		CapDrop:     []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges"},
		Init:        &init,
		AutoRemove:  false, // the executor removes containers itself, after inspecting them
		// The runner captures the function's output; this only bounds what the
		// runner itself (or an escaped child) writes to the container's stdout.
		LogConfig: container.LogConfig{
			Type:   "json-file",
			Config: map[string]string{"max-size": "1m", "max-file": "1"},
		},
		Resources: container.Resources{
			Memory:     mem,
			MemorySwap: mem, // equal to Memory: no swap
			NanoCPUs:   nanoCPUs(lim.CPUs),
			PidsLimit:  &pids,
			Ulimits: []*container.Ulimit{
				{Name: "nofile", Soft: nofileLimit, Hard: nofileLimit},
				{Name: "fsize", Soft: tmpfsSize, Hard: tmpfsSize},
			},
		},
	}
}

// spareUpdate is the resource update that gives an assigned spare the
// function's limits: memory (with memory+swap equal) and CPU quota. The pids
// limit and ulimits are the same for every function and set at creation.
func spareUpdate(s Spec) container.UpdateConfig {
	lim := s.Limits.WithDefaults()
	mem := int64(lim.MemoryMB) << 20
	return container.UpdateConfig{Resources: container.Resources{
		Memory: mem, MemorySwap: mem, NanoCPUs: nanoCPUs(lim.CPUs),
	}}
}

// nanoCPUs is Docker's unit of a CPU quota (rounded: 0.3 CPUs is 3e8, not
// 299999999).
func nanoCPUs(cpus float64) int64 { return int64(math.Round(cpus * 1e9)) }

// startupEnvPrefixes and startupEnvNames are variables an interpreter reads
// when it starts, not later: setting them in a running spare would not have
// their effect, so a function that sets one gets a container created for it.
var startupEnvPrefixes = []string{"PYTHON", "NODE_", "UV_", "LD_", "LC_", "MALLOC_", "GLIBC_", "GCONV_", "OPENSSL_"}

var startupEnvNames = map[string]bool{"LANG": true, "LANGUAGE": true, "TZ": true, "PATH": true, "TMPDIR": true}

// canUseSpare reports whether s may run in a spare: python or nodejs, no
// network, and no variable that only takes effect at an interpreter's start.
func canUseSpare(s Spec) bool {
	if s.Runtime != ferry.RuntimePython && s.Runtime != ferry.RuntimeNode {
		return false
	}
	if s.Limits.Network {
		return false
	}
	for k := range s.Env {
		if bundle.ReservedEnv(k) {
			continue
		}
		if startupEnvNames[k] {
			return false
		}
		for _, p := range startupEnvPrefixes {
			if strings.HasPrefix(k, p) {
				return false
			}
		}
	}
	return true
}
