package runtimes

import (
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/ferry-faas/ferry"
)

func TestContainerConfig(t *testing.T) {
	base := Spec{
		Function: "hello", Version: 3, Runtime: ferry.RuntimePython, Handler: "app.handler",
		Checksum: "abc123", CodeDir: "/code/abc123",
	}
	params := containerParams{Image: "ferry/python:latest", RunDir: "/data/run/ferry-x", PoolID: "p1", Key: "k1", LogMark: "m1"}

	withLimits := func(l ferry.Limits) Spec { s := base; s.Limits = l; return s }
	withEnv := func(env map[string]string) Spec { s := base; s.Env = env; return s }

	tests := []struct {
		name  string
		spec  Spec
		check func(t *testing.T, c *container.Config, h *container.HostConfig)
	}{
		{"hardening", base, checkHardening},
		{"protocol env", base, func(t *testing.T, c *container.Config, h *container.HostConfig) {
			for _, kv := range []string{
				"FERRY_HANDLER=app.handler", "FERRY_FUNCTION_NAME=hello", "FERRY_FUNCTION_VERSION=3",
				"FERRY_MEMORY_MB=128", "FERRY_LOG_MARK=m1", "AWS_LAMBDA_FUNCTION_NAME=hello",
				"AWS_LAMBDA_FUNCTION_VERSION=3", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
				"LAMBDA_TASK_ROOT=/var/task", "_HANDLER=app.handler", "HOME=/tmp",
			} {
				if !slices.Contains(c.Env, kv) {
					t.Errorf("env lacks %s: %v", kv, c.Env)
				}
			}
			if slices.Contains(c.Env, "FERRY_SPARE=1") {
				t.Errorf("a function's container is configured as a spare")
			}
		}},
		{"default limits", base, func(t *testing.T, c *container.Config, h *container.HostConfig) {
			eq(t, "network", string(h.NetworkMode), "none")
			eq(t, "memory", h.Memory, int64(128<<20))
			eq(t, "swap", h.MemorySwap, int64(128<<20))
			eq(t, "nano cpus", h.NanoCPUs, int64(5e8))
		}},
		{"explicit limits", withLimits(ferry.Limits{MemoryMB: 512, CPUs: 1.5, TimeoutSeconds: 5}), func(t *testing.T, c *container.Config, h *container.HostConfig) {
			eq(t, "memory", h.Memory, int64(512<<20))
			eq(t, "swap equals memory", h.MemorySwap, h.Memory)
			eq(t, "nano cpus", h.NanoCPUs, int64(1.5e9))
			eq(t, "network", string(h.NetworkMode), "none")
			if !slices.Contains(c.Env, "FERRY_MEMORY_MB=512") || !slices.Contains(c.Env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512") {
				t.Errorf("memory env missing: %v", c.Env)
			}
		}},
		{"network on", withLimits(ferry.Limits{Network: true}), func(t *testing.T, c *container.Config, h *container.HostConfig) {
			eq(t, "network", string(h.NetworkMode), functionNetwork)
		}},
		{"mounts", base, func(t *testing.T, c *container.Config, h *container.HostConfig) {
			eq(t, "mount count", len(h.Mounts), 2)
			eq(t, "binds", len(h.Binds), 0)
			eq(t, "volumes from", len(h.VolumesFrom), 0)
			want := []mount.Mount{
				{Type: mount.TypeBind, Source: "/code/abc123", Target: "/var/task", ReadOnly: true},
				{Type: mount.TypeBind, Source: "/data/run/ferry-x", Target: "/run/ferry", ReadOnly: true},
			}
			for i, m := range want {
				g := h.Mounts[i]
				if g.Type != m.Type || g.Source != m.Source || g.Target != m.Target || g.ReadOnly != m.ReadOnly {
					t.Errorf("mount %d = %+v, want %+v", i, g, m)
				}
			}
			for _, m := range h.Mounts {
				if strings.Contains(m.Source, "docker.sock") {
					t.Errorf("docker socket mounted: %+v", m)
				}
			}
		}},
		{"labels", base, func(t *testing.T, c *container.Config, h *container.HostConfig) {
			want := map[string]string{
				"ferry.managed": "true", "ferry.function": "hello", "ferry.version": "3",
				"ferry.checksum": "abc123", "ferry.pool": "p1", "ferry.key": "k1", "ferry.runtime": "python",
			}
			for k, v := range want {
				eq(t, "label "+k, c.Labels[k], v)
			}
		}},
		{"user env sorted, reserved names dropped", withEnv(map[string]string{"ZED": "1", "ALPHA": "x=y", "HOME": "/root", "FERRY_HANDLER": "evil.x", "FERRY_SOCKET": "/nowhere"}), func(t *testing.T, c *container.Config, h *container.HostConfig) {
			n := len(c.Env)
			eq(t, "user env", strings.Join(c.Env[n-2:], " "), "ALPHA=x=y ZED=1")
			// FERRY_SOCKET in a version stored before the prefix was reserved
			// would point the runner away from the protocol socket.
			if slices.Contains(c.Env, "HOME=/root") || slices.Contains(c.Env, "FERRY_HANDLER=evil.x") || slices.Contains(c.Env, "FERRY_SOCKET=/nowhere") {
				t.Errorf("reserved variable overridden: %v", c.Env)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, h := containerConfig(tc.spec, params)
			tc.check(t, c, h)
			// Pure: the same input gives the same output.
			c2, _ := containerConfig(tc.spec, params)
			eq(t, "deterministic env", strings.Join(c.Env, "\n"), strings.Join(c2.Env, "\n"))
		})
	}
}

// checkHardening pins down the settings every function container has,
// spares included.
func checkHardening(t *testing.T, c *container.Config, h *container.HostConfig) {
	t.Helper()
	eq(t, "user", c.User, "1000:1000")
	eq(t, "read-only rootfs", h.ReadonlyRootfs, true)
	eq(t, "cap drop", strings.Join(h.CapDrop, ","), "ALL")
	eq(t, "cap add", len(h.CapAdd), 0)
	eq(t, "security opt", strings.Join(h.SecurityOpt, ","), "no-new-privileges")
	eq(t, "privileged", h.Privileged, false)
	eq(t, "auto remove", h.AutoRemove, false)
	eq(t, "pids", *h.PidsLimit, int64(pidsLimit))
	eq(t, "init", *h.Init, true)
	eq(t, "image", c.Image, "ferry/python:latest")
	tmp := h.Tmpfs["/tmp"]
	for _, opt := range []string{"size=67108864", "nosuid", "nodev", "exec"} {
		if !slices.Contains(strings.Split(tmp, ","), opt) {
			t.Errorf("tmpfs /tmp %q lacks %s", tmp, opt)
		}
	}
	ul := map[string]int64{}
	for _, u := range h.Ulimits {
		if u.Soft != u.Hard {
			t.Errorf("ulimit %s soft %d != hard %d", u.Name, u.Soft, u.Hard)
		}
		ul[u.Name] = u.Hard
	}
	eq(t, "nofile", ul["nofile"], int64(nofileLimit))
	eq(t, "fsize", ul["fsize"], int64(tmpfsSize))
	eq(t, "log driver", h.LogConfig.Config["max-size"], "1m")
}

func TestSpareConfig(t *testing.T) {
	params := containerParams{Image: "ferry/nodejs:latest", RunDir: "/data/run/ferry-s", PoolID: "p1", LogMark: "m1"}
	c, h := spareConfig(ferry.RuntimeNode, "/data/task/ferry-s", params)
	t.Run("hardening", func(t *testing.T) {
		c := *c
		c.Image = "ferry/python:latest" // checkHardening's image
		checkHardening(t, &c, h)
	})
	eq(t, "image", c.Image, "ferry/nodejs:latest")
	eq(t, "network", string(h.NetworkMode), "none")
	eq(t, "memory", h.Memory, int64(ferry.DefaultLimits.MemoryMB)<<20)
	eq(t, "swap equals memory", h.MemorySwap, h.Memory)
	eq(t, "nano cpus", h.NanoCPUs, int64(ferry.DefaultLimits.CPUs*1e9))
	eq(t, "working dir", c.WorkingDir, "/var/task")
	want := []mount.Mount{
		{Type: mount.TypeBind, Source: "/data/task/ferry-s", Target: "/var/task", ReadOnly: true},
		{Type: mount.TypeBind, Source: "/data/run/ferry-s", Target: "/run/ferry", ReadOnly: true},
	}
	eq(t, "mount count", len(h.Mounts), len(want))
	for i, m := range want {
		g := h.Mounts[i]
		if g.Type != m.Type || g.Source != m.Source || g.Target != m.Target || g.ReadOnly != m.ReadOnly {
			t.Errorf("mount %d = %+v, want %+v", i, g, m)
		}
	}
	eq(t, "env", strings.Join(c.Env, " "), "FERRY_SPARE=1 FERRY_LOG_MARK=m1 LAMBDA_TASK_ROOT=/var/task HOME=/tmp")
	wantLabels := map[string]string{"ferry.managed": "true", "ferry.spare": "true", "ferry.runtime": "nodejs", "ferry.pool": "p1"}
	eq(t, "label count", len(c.Labels), len(wantLabels))
	for k, v := range wantLabels {
		eq(t, "label "+k, c.Labels[k], v)
	}

	// The update on assignment: the function's memory (no swap) and CPUs.
	u := spareUpdate(Spec{Limits: ferry.Limits{MemoryMB: 512, CPUs: 1.5}})
	eq(t, "update memory", u.Memory, int64(512<<20))
	eq(t, "update swap", u.MemorySwap, int64(512<<20))
	eq(t, "update cpus", u.NanoCPUs, int64(1.5e9))
	u = spareUpdate(Spec{})
	eq(t, "default update memory", u.Memory, int64(ferry.DefaultLimits.MemoryMB)<<20)
	eq(t, "default update cpus", u.NanoCPUs, int64(ferry.DefaultLimits.CPUs*1e9))
}

func TestCanUseSpare(t *testing.T) {
	py := Spec{Runtime: ferry.RuntimePython}
	for _, tc := range []struct {
		name string
		mut  func(*Spec)
		want bool
	}{
		{"python", func(*Spec) {}, true},
		{"nodejs", func(s *Spec) { s.Runtime = ferry.RuntimeNode }, true},
		{"go", func(s *Spec) { s.Runtime = ferry.RuntimeGo }, false},
		{"network", func(s *Spec) { s.Limits.Network = true }, false},
		{"plain env", func(s *Spec) { s.Env = map[string]string{"GREETING": "hi", "DB_URL": "x"} }, true},
		{"PYTHONPATH", func(s *Spec) { s.Env = map[string]string{"PYTHONPATH": "/var/task/lib"} }, false},
		{"NODE_OPTIONS", func(s *Spec) { s.Runtime = ferry.RuntimeNode; s.Env = map[string]string{"NODE_OPTIONS": "--x"} }, false},
		{"TZ", func(s *Spec) { s.Env = map[string]string{"TZ": "UTC"} }, false},
		{"LD_PRELOAD", func(s *Spec) { s.Env = map[string]string{"LD_PRELOAD": "/x.so"} }, false},
	} {
		s := py
		tc.mut(&s)
		eq(t, tc.name, canUseSpare(s), tc.want)
	}
}

func TestPoolKey(t *testing.T) {
	s := Spec{Function: "f", Version: 1, Runtime: ferry.RuntimePython, Handler: "a.b", Checksum: "c", CodeDir: "/x",
		Limits: ferry.Limits{MemoryMB: 128}, Env: map[string]string{"A": "1", "B": "2"}}
	k := poolKey(s, "img")
	same := s
	same.Env = map[string]string{"B": "2", "A": "1"}
	same.Event = []byte(`{"x":1}`)
	same.InvocationID = "other"
	same.Limits.TimeoutSeconds = 99 // not part of the container's settings
	eq(t, "same settings", poolKey(same, "img"), k)

	for name, mut := range map[string]func(*Spec){
		"function": func(s *Spec) { s.Function = "g" },
		"version":  func(s *Spec) { s.Version = 2 },
		"checksum": func(s *Spec) { s.Checksum = "d" },
		"handler":  func(s *Spec) { s.Handler = "a.c" },
		"memory":   func(s *Spec) { s.Limits.MemoryMB = 256 },
		"network":  func(s *Spec) { s.Limits.Network = true },
		"env":      func(s *Spec) { s.Env = map[string]string{"A": "1"} },
		"code dir": func(s *Spec) { s.CodeDir = "/y" },
	} {
		d := s
		mut(&d)
		if poolKey(d, "img") == k {
			t.Errorf("changing %s keeps the pool key", name)
		}
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}
