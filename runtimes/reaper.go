package runtimes

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/ferry-faas/ferry"
)

// Orphans. Several executors (workers) may share one Docker engine, and each
// labels its containers with its own pool id; an executor writes nothing else
// anywhere to announce that it is alive. So a container of another pool is
// only removed when it is provably nobody's:
//
//   - it is not running (exited, created, dead) and was created more than
//     orphanAfter (start-up timeout + 1 min) ago. A live executor removes the containers it stops at once
//     and starts the ones it creates within milliseconds, so a stopped one that
//     old was left behind by a crash; or
//   - it is running and its owner's liveness socket (pool-<pool id>.sock
//     beside the container's bind-mounted run folder, visible on this host)
//     refuses connections, whatever its age: every executor listens there
//     for its lifetime, and the kernel closes the listener (leaving the file)
//     when the executor's process dies. Such a container may be running the
//     function of an invocation that Temporal is about to hand to another
//     worker (after 10 s: docs/RELIABILITY.md), so it is stopped at once: by
//     the restarted worker's first reap, or by any other worker on the host
//     within reapInterval. (Not the container's own protocol socket: during
//     a start-up its first connection is taken for the runner's.) Containers
//     of executors older than liveness sockets are judged by their protocol
//     socket once older than orphanAfter. A socket that cannot be checked
//     (another mount namespace) is left alone; its runner exits when its
//     connection drops (between invocations), and then the first rule applies.
//
// Containers of this executor's own pool that it does not know (creation
// answered with an error after the engine had created it) are removed after
// the same grace. Run folders without a container are removed after the grace.

// reapInterval is how often the reaper runs, derived from the idle timeout;
// at most 5 s, well within the 10 s after which Temporal hands the invocation
// of a dead worker to another.
func (e *Executor) reapInterval() time.Duration {
	d := e.cfg.IdleTimeout / 4
	return min(max(d, time.Second), 5*time.Second)
}

// listPool returns the ids of the containers labelled with a pool id.
func (e *Executor) listPool(ctx context.Context, poolID string) ([]string, error) {
	list, err := e.docker.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", labelPool+"="+poolID)),
	})
	if err != nil {
		return nil, dockerError("list containers", err)
	}
	ids := make([]string, 0, len(list))
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	return ids, nil
}

func (e *Executor) reapLoop(ctx context.Context) {
	defer close(e.reaperDone)
	t := time.NewTicker(e.reapInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.expireIdle(time.Now())
			e.reap(ctx)
			e.fillSpares()
		}
	}
}

// expireIdle removes idle containers unused for longer than the keep-alive.
func (e *Executor) expireIdle(now time.Time) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for key, p := range e.pools {
		i := 0
		for i < len(p.idle) && now.Sub(p.idle[i].lastUsed) >= e.cfg.IdleTimeout {
			i++
		}
		expired := p.idle[:i]
		p.idle = append([]*instance(nil), p.idle[i:]...)
		for _, in := range expired {
			e.log.Debug("idle container expired", "container", in.name)
			e.dropLocked(in)
			n++
		}
		e.prunePoolLocked(key)
	}
	return n
}

// reap removes orphaned containers and run folders (see the comment above).
func (e *Executor) reap(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	args := filters.NewArgs(filters.Arg("label", labelManaged+"=true"))
	if e.reapPool != "" {
		args.Add("label", labelPool+"="+e.reapPool)
	}
	list, err := e.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		e.log.Warn("reaper: list containers", "err", err)
		return
	}
	e.mu.Lock()
	known := make(map[string]bool, len(e.all))
	for in := range e.all {
		known[in.id] = true
	}
	for id := range e.building {
		known[id] = true
	}
	e.mu.Unlock()

	now := time.Now()
	names := make(map[string]bool, len(list))
	for _, c := range list {
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		names[name] = true
		if known[c.ID] {
			continue
		}
		own := c.Labels[labelPool] == e.poolID
		runSrc := ""
		for _, m := range c.Mounts {
			if m.Destination == runnerDir {
				runSrc = m.Source
			}
		}
		old := now.Sub(time.Unix(c.Created, 0)) >= e.orphanAfter
		orphan := old
		if !own && c.State == "running" {
			orphan = ownerGone(runSrc, c.Labels[labelPool], old)
		}
		if !orphan {
			continue
		}
		e.log.Info("reaper: remove orphaned container", "container", name, "owner", c.Labels[labelPool], "state", c.State)
		err := e.docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			e.log.Warn("reaper: remove container", "container", name, "err", err)
			continue
		}
		if runSrc != "" && filepath.Dir(runSrc) == e.runDir {
			_ = os.RemoveAll(runSrc)
		}
		if c.Labels[labelSpare] == "true" && name != "" {
			_ = os.RemoveAll(filepath.Join(e.taskDir, name))
		}
	}

	// Run folders and spares' code folders of containers that no longer
	// exist, and liveness sockets of dead executors.
	for _, dir := range []string{e.runDir, e.taskDir} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, d := range entries {
			if p := filepath.Join(dir, d.Name()); dir == e.runDir && strings.HasPrefix(d.Name(), "pool-") && refuses(p) {
				_ = os.Remove(p)
				continue
			}
			if !d.IsDir() || !strings.HasPrefix(d.Name(), "ferry-") || names[d.Name()] {
				continue
			}
			fi, err := d.Info()
			if err != nil || now.Sub(fi.ModTime()) < e.orphanAfter {
				continue
			}
			_ = os.RemoveAll(filepath.Join(dir, d.Name()))
		}
	}
}

// aliveSocket is the liveness socket of executor pool in runDir.
func aliveSocket(runDir, pool string) string {
	return filepath.Join(runDir, "pool-"+pool+".sock")
}

// listenAlive opens the executor's liveness socket and accepts (and closes)
// every probe until it is closed.
func listenAlive(runDir, pool string) (*net.UnixListener, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: aliveSocket(runDir, pool), Net: "unix"})
	if err != nil {
		return nil, ferry.Wrap(err, ferry.EINTERNAL, "runtimes: listen on the liveness socket: %v", err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return ln, nil
}

// ownerGone reports whether the executor of pool, whose container has its run
// folder at runSrc, provably died: its liveness socket refuses connections.
// Without one (an executor from before liveness sockets) the container's
// protocol socket is probed instead, and only when old is set: a container
// past its start-up.
func ownerGone(runSrc, pool string, old bool) bool {
	if runSrc == "" {
		return false
	}
	alive := aliveSocket(filepath.Dir(runSrc), pool)
	if _, err := os.Stat(alive); err == nil {
		return refuses(alive)
	}
	return old && refuses(filepath.Join(runSrc, socketName))
}

// refuses reports whether nothing listens on the Unix socket at path.
func refuses(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}
