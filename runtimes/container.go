package runtimes

import (
	"sort"
	"strconv"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
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
	labelVersion  = "ferry.version"
	labelChecksum = "ferry.checksum"
	labelRuntime  = "ferry.runtime"
	labelPool     = "ferry.pool"
	labelKey      = "ferry.key"
)

// containerParams is everything containerConfig needs besides the spec.
type containerParams struct {
	Image    string
	RunDir   string // host folder with the protocol socket, mounted at /run/ferry
	PoolID   string // executor instance that owns the container
	Key      string // warm-pool key of the function version
	LogLimit int    // bytes of logs the runner keeps per invocation
}

// reservedEnv are variables the runner protocol sets; a function's own env
// cannot override them.
var reservedEnv = map[string]bool{
	"FERRY_HANDLER": true, "FERRY_FUNCTION_NAME": true, "FERRY_FUNCTION_VERSION": true,
	"FERRY_MEMORY_MB": true, "FERRY_LOG_LIMIT": true,
	"AWS_LAMBDA_FUNCTION_NAME": true, "AWS_LAMBDA_FUNCTION_VERSION": true,
	"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": true, "LAMBDA_TASK_ROOT": true, "_HANDLER": true,
	"HOME": true,
}

// ReservedEnv reports whether name is set by Ferry itself and therefore not
// allowed in a function's env (the API rejects such deployments).
func ReservedEnv(name string) bool { return reservedEnv[name] }

// containerConfig holds every setting of a function container, hardening
// included. It is pure so that a table test can pin each setting down.
func containerConfig(s Spec, p containerParams) (*container.Config, *container.HostConfig) {
	lim := s.Limits.WithDefaults()
	version := strconv.Itoa(s.Version)
	memMB := strconv.Itoa(lim.MemoryMB)

	env := []string{
		"FERRY_HANDLER=" + s.Handler,
		"FERRY_FUNCTION_NAME=" + s.Function,
		"FERRY_FUNCTION_VERSION=" + version,
		"FERRY_MEMORY_MB=" + memMB,
		"FERRY_LOG_LIMIT=" + strconv.Itoa(p.LogLimit),
		"AWS_LAMBDA_FUNCTION_NAME=" + s.Function,
		"AWS_LAMBDA_FUNCTION_VERSION=" + version,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + memMB,
		"LAMBDA_TASK_ROOT=" + taskRoot,
		"_HANDLER=" + s.Handler,
		"HOME=/tmp",
	}
	user := make([]string, 0, len(s.Env))
	for k, v := range s.Env {
		if !reservedEnv[k] {
			user = append(user, k+"="+v)
		}
	}
	sort.Strings(user) // map order is random; keep the config deterministic
	env = append(env, user...)

	cfg := &container.Config{
		Image:      p.Image,
		User:       containerUser,
		Env:        env,
		WorkingDir: taskRoot,
		Labels: map[string]string{
			labelManaged:  "true",
			labelFunction: s.Function,
			labelVersion:  version,
			labelChecksum: s.Checksum,
			labelRuntime:  string(s.Runtime),
			labelPool:     p.PoolID,
			labelKey:      p.Key,
		},
	}

	network := container.NetworkMode("none")
	if lim.Network {
		network = "bridge"
	}
	mem := int64(lim.MemoryMB) << 20
	pids := int64(pidsLimit)
	init := true // docker-init reaps zombies that user code leaves behind
	host := &container.HostConfig{
		NetworkMode:    network,
		ReadonlyRootfs: true,
		// exec stays allowed (as on Lambda); nosuid/nodev keep it harmless.
		Tmpfs: map[string]string{
			"/tmp": "rw,exec,nosuid,nodev,mode=1777,size=" + strconv.Itoa(tmpfsSize),
		},
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: s.CodeDir, Target: taskRoot, ReadOnly: true},
			{Type: mount.TypeBind, Source: p.RunDir, Target: runnerDir},
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
			NanoCPUs:   int64(lim.CPUs * 1e9),
			PidsLimit:  &pids,
			Ulimits: []*container.Ulimit{
				{Name: "nofile", Soft: nofileLimit, Hard: nofileLimit},
				{Name: "fsize", Soft: tmpfsSize, Hard: tmpfsSize},
			},
		},
	}
	return cfg, host
}
