package runtimes

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/bundle"
)

// Limits of one Go build.
const (
	buildTimeout  = 5 * time.Minute
	buildMemory   = 2 << 30
	buildTmpfs    = 1 << 30 // GOCACHE and the linker's temporary files
	buildPids     = 512
	buildMaxError = 16 << 10 // bytes of compiler output kept in the error
)

// DefaultMaxBuilds bounds the Go builds one executor (worker) runs at once:
// each may take 2 CPUs and 2 GiB, so a burst of first invocations of new Go
// versions cannot take the host. Further builds wait for a free slot, within
// their invocation's time budget.
const DefaultMaxBuilds = 2

// buildConfig is the builder container's configuration: as locked down as a
// function container, with more memory, processes and /tmp for the toolchain.
func buildConfig(img, srcDir, outDir, handler, poolID string) (*container.Config, *container.HostConfig) {
	mem := int64(buildMemory)
	pids := int64(buildPids)
	init := true
	cfg := &container.Config{
		Image: img,
		User:  containerUser,
		Env:   []string{"FERRY_HANDLER=" + handler, "HOME=/tmp"},
		Labels: map[string]string{
			labelManaged: "true",
			labelPool:    poolID,
			"ferry.role": "go-builder",
		},
	}
	host := &container.HostConfig{
		NetworkMode:    "none",
		ReadonlyRootfs: true,
		Tmpfs:          map[string]string{"/tmp": "rw,exec,nosuid,nodev,mode=1777,size=" + strconv.Itoa(buildTmpfs)},
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: srcDir, Target: "/src", ReadOnly: true},
			{Type: mount.TypeBind, Source: outDir, Target: "/out"},
		},
		CapDrop:     []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges"},
		Init:        &init,
		LogConfig:   container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m", "max-file": "1"}},
		Resources: container.Resources{
			Memory:     mem,
			MemorySwap: mem,
			NanoCPUs:   2e9,
			PidsLimit:  &pids,
			Ulimits: []*container.Ulimit{
				{Name: "nofile", Soft: 4096, Hard: 4096},
			},
		},
	}
	return cfg, host
}

// BuildGo compiles the Go bundle unpacked in srcDir, with handler as the
// function's name, into outDir/bootstrap, in a builder container without
// network. A compile error is EUNPROCESSABLE with the compiler's output as
// message; a missing builder image or Docker failure is EUNAVAILABLE.
func (e *Executor) BuildGo(ctx context.Context, srcDir, handler, outDir string) error {
	if err := bundle.CheckHandler(ferry.RuntimeGo, handler); err != nil {
		return err
	}
	src, err := filepath.Abs(srcDir)
	if err != nil {
		return ferry.Wrap(err, ferry.EINVALID, "source folder %q: %v", srcDir, err)
	}
	out, err := filepath.Abs(outDir)
	if err != nil {
		return ferry.Wrap(err, ferry.EINVALID, "output folder %q: %v", outDir, err)
	}
	select {
	case e.builds <- struct{}{}:
		defer func() { <-e.builds }()
	case <-ctx.Done():
		return ctx.Err()
	}
	// The builder runs as uid 1000 and must write the binary. The folder is
	// world-writable only while the build runs, never while it waits for a slot.
	if err := os.MkdirAll(out, 0o777); err != nil {
		return ferry.Wrap(err, ferry.EINTERNAL, "create %s: %v", out, err)
	}
	if err := os.Chmod(out, 0o777); err != nil {
		return ferry.Wrap(err, ferry.EINTERNAL, "chmod %s: %v", out, err)
	}
	defer os.Chmod(out, 0o755) // only the build needed a world-writable folder
	img := e.cfg.Images[goBuilderRuntime]
	cfg, host := buildConfig(img, src, out, handler, e.poolID)

	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	created, err := e.docker.ContainerCreate(ctx, cfg, host, nil, nil, "ferry-"+e.poolID+"-b"+randomHex(4)[:7])
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return ferry.Errorf(ferry.EUNAVAILABLE, "builder image %s is missing (build it with `make images`)", img)
		}
		return dockerError("create builder", err)
	}
	id := created.ID
	e.mu.Lock()
	e.building[id] = struct{}{} // not an orphan for the reaper
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.building, id)
		e.mu.Unlock()
		rctx, rcancel := fresh(ctx, 30*time.Second)
		defer rcancel()
		if err := e.docker.ContainerRemove(rctx, id, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			e.log.Warn("remove builder", "container", id, "err", err)
		}
	}()
	exitC, errC := e.docker.ContainerWait(ctx, id, container.WaitConditionNextExit)
	began := time.Now()
	if err := e.docker.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return dockerError("start builder", err)
	}
	var code int64
	select {
	case w := <-exitC:
		code = w.StatusCode
	case err := <-errC:
		if ctx.Err() == context.DeadlineExceeded {
			return ferry.Errorf(ferry.EUNPROCESSABLE, "the go build did not finish within %s", buildTimeout)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return dockerError("wait for builder", err)
	}
	logs := e.containerOutput(ctx, id)
	e.log.Info("go build finished", "exit", code, "ms", msSince(began))
	if code != 0 {
		msg := strings.TrimSpace(logs)
		if msg == "" {
			msg = "exit code " + strconv.Itoa(int(code))
		}
		return ferry.Errorf(ferry.EUNPROCESSABLE, "go build failed:\n%s", msg)
	}
	if fi, err := os.Stat(filepath.Join(out, "bootstrap")); err != nil || fi.Size() == 0 {
		return ferry.Errorf(ferry.EINTERNAL, "the go builder exited without writing bootstrap")
	}
	return nil
}

// goBuilderRuntime is the Images key of the builder image.
const goBuilderRuntime ferry.Runtime = "go-builder"

// containerOutput returns the end of a finished container's stdout and stderr.
func (e *Executor) containerOutput(ctx context.Context, id string) string {
	cctx, cancel := fresh(ctx, 10*time.Second)
	defer cancel()
	rc, err := e.docker.ContainerLogs(cctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var buf bytes.Buffer
	_, _ = stdcopy.StdCopy(&buf, &buf, io.LimitReader(rc, 4<<20))
	b := buf.Bytes()
	if len(b) > buildMaxError {
		b = append([]byte("...\n"), b[len(b)-buildMaxError:]...)
	}
	return string(b)
}
