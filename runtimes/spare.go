package runtimes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-faas/ferry"
)

// Spares: the executor keeps Config.Spares containers per runtime (python and
// nodejs) started ahead of time, belonging to no function; a cold start that
// may use one (canUseSpare) takes it and assign gives it the function. Why,
// and every rule: runtimes/README.md, "Spares".

// DefaultSpares is the number of spares per runtime when Config.Spares is 0.
const DefaultSpares = 1

// spareRuntimes are the runtimes that keep spares.
var spareRuntimes = []ferry.Runtime{ferry.RuntimePython, ferry.RuntimeNode}

// Delays before starting a spare again after a failed start: doubling from
// spareRetryMin up to spareRetryMax.
const (
	spareRetryMin = 5 * time.Second
	spareRetryMax = 10 * time.Minute
)

// spareState is the executor's bookkeeping of one runtime's spares (guarded
// by Executor.mu).
type spareState struct {
	ready    []*instance // started, waiting for an init frame; oldest first
	starting int
	failures int       // consecutive failed starts
	retryAt  time.Time // no start before this after a failure
}

// spareOf returns the runtime's state, creating it.
func (e *Executor) spareOf(rt ferry.Runtime) *spareState {
	st := e.spares[rt]
	if st == nil {
		st = &spareState{}
		e.spares[rt] = st
	}
	return st
}

// takeSpareLocked removes and returns a live ready spare of rt, or nil.
func (e *Executor) takeSpareLocked(rt ferry.Runtime) *instance {
	st := e.spares[rt]
	for st != nil && len(st.ready) > 0 {
		in := st.ready[len(st.ready)-1]
		st.ready = st.ready[:len(st.ready)-1]
		if in.alive() {
			return in
		}
		e.log.Debug("spare died while waiting", "container", in.name)
		e.dropLocked(in)
	}
	return nil
}

// evictSpareLocked removes the oldest ready spare of any runtime to make room
// at the global cap. It reports whether there was one.
func (e *Executor) evictSpareLocked() bool {
	var victim *instance
	var vst *spareState
	for _, st := range e.spares {
		if len(st.ready) > 0 && (victim == nil || st.ready[0].lastUsed.Before(victim.lastUsed)) {
			victim, vst = st.ready[0], st
		}
	}
	if victim == nil {
		return false
	}
	vst.ready = vst.ready[1:]
	e.log.Debug("evict spare", "container", victim.name)
	e.dropLocked(victim)
	return true
}

// fillSpares starts spares in the background until every runtime has
// Config.Spares of them (ready or starting), below the global cap.
func (e *Executor) fillSpares() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.spareN <= 0 {
		return
	}
	now := time.Now()
	for _, rt := range spareRuntimes {
		st := e.spareOf(rt)
		if now.Before(st.retryAt) {
			continue
		}
		for len(st.ready)+st.starting < e.spareN && e.total < e.cfg.MaxContainers {
			st.starting++
			e.total++
			e.spareWG.Add(1)
			go e.startSpare(rt)
		}
	}
}

// startSpare starts one spare of rt, whose slot fillSpares reserved.
func (e *Executor) startSpare(rt ferry.Runtime) {
	defer e.spareWG.Done()
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.InitTimeout+10*time.Second)
	defer cancel()
	in := e.newInstance("", true)
	cfg, host := spareConfig(rt, in.taskDir, e.params(in, e.cfg.Images[rt]))
	// No user code runs in a spare until it is assigned, which applies the
	// function's own quota: it may start with the larger one.
	host.NanoCPUs = max(host.NanoCPUs, nanoCPUs(min(e.cfg.InitCPUs, e.engineCPUs)))
	in, res, err := e.start(ctx, in, launch{cfg: cfg, host: host, want: frameWaiting, what: "spare ready", logAttrs: []any{"runtime", rt}})
	if err == nil && res != nil {
		msg := string(res.Status)
		if res.Error != nil {
			msg = res.Error.Type + ": " + res.Error.Message
		}
		err = errors.New(msg)
	}

	e.mu.Lock()
	st := e.spareOf(rt)
	st.starting--
	if err != nil {
		e.total--
		st.failures++
		delay := min(spareRetryMin<<min(st.failures-1, 10), spareRetryMax)
		st.retryAt = time.Now().Add(delay)
		closed := e.closed
		e.notifyLocked()
		e.mu.Unlock()
		if !closed {
			lvl := e.log.Debug
			if st.failures == 1 {
				lvl = e.log.Warn
			}
			lvl("spare did not start", "runtime", rt, "retry_in", delay.String(), "err", err)
		}
		return
	}
	st.failures, st.retryAt = 0, time.Time{}
	if e.closed {
		delete(e.all, in)
		e.total--
		e.mu.Unlock()
		e.removeInstance(context.Background(), in)
		return
	}
	in.lastUsed = time.Now()
	st.ready = append(st.ready, in)
	e.notifyLocked()
	e.mu.Unlock()
}

// errSpareUnusable wraps failures of assign before the function's code ran
// in the spare: the caller starts a container for the function instead.
var errSpareUnusable = errors.New("spare unusable")

// assign gives a spare, already counted under key by acquire, to the function
// of s: its code, its limits and its handler. A handler that does not load
// yields a Result, as in start; on any failure the container is removed.
func (e *Executor) assign(ctx context.Context, in *instance, s Spec) (*Result, error) {
	began := time.Now()
	fail := func(res *Result, err error) (*Result, error) { return res, e.discard(ctx, in, res, began, err) }
	if err := fillCode(in.taskDir, s.CodeDir); err != nil {
		return fail(nil, fmt.Errorf("%w: fill its code folder: %v", errSpareUnusable, err))
	}
	filledAt := time.Now()
	uctx, cancel := fresh(ctx, 10*time.Second)
	_, err := e.docker.ContainerUpdate(uctx, in.id, spareUpdate(s))
	cancel()
	if err != nil {
		// Never run a function with other limits than its own.
		return fail(nil, fmt.Errorf("%w: set the function's limits: %v", errSpareUnusable, err))
	}
	updatedAt := time.Now()

	protocol, user := functionEnv(s)
	env := make(map[string]string, len(protocol)+len(user))
	for _, kv := range append(protocol, user...) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	deadline, timeoutMsg := e.initDeadline(s.timeout(), began, began)
	load := in.logs.start(false, nil) // before the runner can begin the load
	_ = in.conn.SetWriteDeadline(deadline)
	err = writeFrame(in.conn, initFrame{
		Type: frameInit, Handler: s.Handler, Function: s.Function, Version: strconv.Itoa(s.Version),
		MemoryMB: s.Limits.MemoryMB, Env: env,
	})
	if err != nil {
		// The runner went away while waiting; nothing of the function ran.
		return fail(nil, fmt.Errorf("%w: send init: %v", errSpareUnusable, err))
	}
	f, res, err := e.readInit(ctx, in, deadline, timeoutMsg, frameReady, load)
	if res != nil || err != nil {
		return fail(res, err)
	}
	in.initMS = msSince(began)
	e.spareAssigned.Add(1)
	e.log.Debug("spare assigned", "container", in.name, "function", s.Function, "version", s.Version,
		"init_ms", in.initMS, "fill_ms", ms(filledAt.Sub(began)), "update_ms", ms(updatedAt.Sub(filledAt)),
		"ready_ms", ms(time.Since(updatedAt)), "runner_init_ms", f.InitMS)
	return nil, nil
}

// fillCode puts the files of src (an unpacked bundle, never rewritten) into
// dst, an empty folder: hard links where possible, copies otherwise (another
// file system). Modes are kept, so what the container can read is what it
// could read with src mounted directly; symbolic links are recreated as they
// are (Unpack only lets through links that stay inside the bundle).
func fillCode(dst, src string) error {
	type dirMode struct {
		path string
		mode fs.FileMode
	}
	var dirs []dirMode // set once their content is in place
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.IsDir():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			dirs = append(dirs, dirMode{to, fi.Mode().Perm()})
			return os.Mkdir(to, 0o700)
		case d.Type().IsRegular():
			if err := os.Link(path, to); err == nil {
				return nil
			}
			return copyFile(to, path)
		default:
			return fmt.Errorf("%s: not a regular file, folder or link", rel)
		}
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i].path, dirs[i].mode); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(to, from string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(to, fi.Mode().Perm())
}
