package runtimes

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/ferry-faas/ferry"
)

// containerNameLen is the length of "ferry-<pool id>-<random>".
const containerNameLen = len("ferry-") + 16 + 1 + 8

// instance is one runner container and its protocol connection.
type instance struct {
	name   string
	id     string
	key    string
	runDir string
	// taskDir is a spare's own code folder, mounted at /var/task and filled
	// when the spare is assigned; "" for a container created for a function.
	taskDir string
	ln      *net.UnixListener
	conn    *net.UnixConn
	r       *bufio.Reader
	logs    *logPipe // the container's output (logpipe.go)
	marks   logMarks // the markers its runner writes into the log FIFO
	initMS  float64

	lastUsed time.Time // guarded by Executor.mu
	// ready (guarded by Executor.mu) is set when start is done with the
	// instance's fields: Close removes ready instances and only kills those
	// still starting, whose start then fails and removes them.
	ready bool

	// killAt is set when an invocation ended by timeout or cancellation: the
	// removal kills the container first (see removeInstance).
	killAt time.Time

	// pidfd of the container's init process (openProcess), or -1: lets a
	// timeout kill the container with one system call instead of an engine
	// round trip. Set in the background after start-up.
	pidfd     atomic.Int64
	pidfdDone chan struct{} // closed once pidfd is final; nil before ready

	removeOnce sync.Once
}

// alive reports, without blocking, whether the runner still holds its end of
// the connection and has sent nothing unasked. It catches containers that
// died while idle before an invocation is lost to them.
func (in *instance) alive() bool {
	if in.r.Buffered() > 0 {
		return false
	}
	if err := in.conn.SetDeadline(time.Time{}); err != nil {
		return false
	}
	raw, err := in.conn.SyscallConn()
	if err != nil {
		return false
	}
	idle := false
	if err := raw.Read(func(fd uintptr) bool { idle = peekIdle(fd); return true }); err != nil {
		return false
	}
	return idle // a peek that finds data (unasked) or the end of file is not idle
}

// launch is one container for start to create, built by the caller from
// containerConfig (startFor) or spareConfig (startSpare).
type launch struct {
	cfg  *container.Config
	host *container.HostConfig
	// timeout is the function's own bound on its load, besides the worker's
	// InitTimeout; 0 for a spare, which loads no function.
	timeout time.Duration
	// loadsFirst: the function loads before its runner connects (a Go
	// binary's package initialisation), so its load counts from the
	// container's start plus goStartAllowance.
	loadsFirst bool
	// captureLoad: the container's output from its start on is the
	// function's load (every container created for a function: a Go binary
	// prints from its packages' initialisation, before its runner can write a
	// marker).
	captureLoad bool
	want        string // the runner's first frame: frameReady, or frameWaiting for a spare
	what        string // the log line once ready: "container ready" or "spare ready"
	logAttrs    []any  // what that line says about the container
}

// newInstance names a new container of the executor and its run folder; a
// spare (spare set) also gets its own code folder. Nothing is created yet.
func (e *Executor) newInstance(key string, spare bool) *instance {
	name := "ferry-" + e.poolID + "-" + randomHex(4)
	in := &instance{name: name, key: key, runDir: filepath.Join(e.runDir, name), marks: newLogMarks()}
	if spare {
		in.taskDir = filepath.Join(e.taskDir, name)
	}
	in.pidfd.Store(-1)
	return in
}

func (e *Executor) params(in *instance, img string) containerParams {
	return containerParams{Image: img, RunDir: in.runDir, PoolID: e.poolID, Key: in.key, LogMark: in.marks.token}
}

// startFor creates and starts a container for the function of s and waits
// for its runner's ready frame. A function whose handler fails to load
// yields a Result (status failed, timeout or oom) instead of an instance.
func (e *Executor) startFor(ctx context.Context, s Spec, key, img string) (*instance, *Result, error) {
	in := e.newInstance(key, false)
	cfg, host := containerConfig(s, e.params(in, img))
	return e.start(ctx, in, launch{
		cfg: cfg, host: host,
		timeout:     s.timeout(),
		loadsFirst:  s.Runtime == ferry.RuntimeGo,
		captureLoad: true,
		want:        frameReady,
		what:        "container ready",
		logAttrs:    []any{"runtime", s.Runtime, "function", s.Function, "version", s.Version},
	})
}

// start runs the steps every container goes through: its folders and socket
// (prepare), the engine's create and start (createAndStart), then the
// runner's connection and first frame (awaitRunner). On any failure the
// container is discarded; a runner that fails to load yields a Result.
func (e *Executor) start(ctx context.Context, in *instance, l launch) (*instance, *Result, error) {
	began := time.Now()
	if err := e.prepare(in); err != nil {
		return nil, nil, e.discard(ctx, in, nil, began, err)
	}
	var load *capture
	if l.captureLoad {
		load = in.logs.start(true, nil)
	}
	exited, stopWait, err := e.createAndStart(ctx, in, l)
	if err != nil {
		return nil, nil, e.discard(ctx, in, nil, began, err)
	}
	defer stopWait()
	startedAt := time.Now()
	runnerInitMS, res, err := e.awaitRunner(ctx, in, l, load, began, startedAt, exited)
	if res != nil || err != nil {
		return nil, res, e.discard(ctx, in, res, began, err)
	}
	readyAt := time.Now()
	in.initMS = msSince(began)
	e.watch(ctx, in)
	e.mu.Lock()
	closed := e.closed
	in.ready = !closed
	e.mu.Unlock()
	if closed {
		return nil, nil, e.discard(ctx, in, nil, began, ferry.Errorf(ferry.EUNAVAILABLE, "executor is shut down"))
	}
	e.log.Debug(l.what, append([]any{"container", in.name}, append(l.logAttrs,
		"init_ms", in.initMS, "start_ms", ms(startedAt.Sub(began)), "ready_ms", ms(readyAt.Sub(startedAt)),
		"runner_init_ms", runnerInitMS)...)...)
	return in, nil, nil
}

// discard removes a container whose start or assignment failed and returns
// err. A Result, if any, is marked cold with the time spent since began.
func (e *Executor) discard(ctx context.Context, in *instance, res *Result, began time.Time, err error) error {
	e.mu.Lock()
	delete(e.all, in)
	e.mu.Unlock()
	e.removeInstance(ctx, in)
	if res != nil {
		res.Metrics.Cold = true
		res.Metrics.InitMS = msSince(began)
	}
	return err
}

// prepare creates the instance's run folder with its listening socket and
// its log FIFO and, for a spare, its empty code folder.
func (e *Executor) prepare(in *instance) error {
	// The runner (uid 1000) must be able to reach the socket in this folder,
	// and nothing more: it is mounted read-only (connecting needs no write).
	if err := os.Mkdir(in.runDir, 0o755); err != nil {
		return ferry.Wrap(err, ferry.EINTERNAL, "create run folder: %v", err)
	}
	if err := os.Chmod(in.runDir, 0o755); err != nil {
		return ferry.Wrap(err, ferry.EINTERNAL, "chmod run folder: %v", err)
	}
	if in.taskDir != "" {
		// Read-only in the container; uid 1000 must be able to list it.
		if err := os.Mkdir(in.taskDir, 0o755); err != nil {
			return ferry.Wrap(err, ferry.EINTERNAL, "create code folder: %v", err)
		}
		if err := os.Chmod(in.taskDir, 0o755); err != nil {
			return ferry.Wrap(err, ferry.EINTERNAL, "chmod code folder: %v", err)
		}
	}
	sock := filepath.Join(in.runDir, socketName)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return ferry.Wrap(err, ferry.EINTERNAL, "listen on runner socket: %v", err)
	}
	in.ln = ln
	if err := os.Chmod(sock, 0o666); err != nil {
		return ferry.Wrap(err, ferry.EINTERNAL, "chmod runner socket: %v", err)
	}
	if in.logs, err = openLogPipe(in.runDir, in.marks, e.cfg.LogLimit); err != nil {
		return ferry.Wrap(err, ferry.EINTERNAL, "%v", err)
	}
	return nil
}

// exitWatch reports the container's exit: exitC fires when it exits, errC
// when the engine's wait itself failed (then exitC never fires).
type exitWatch struct {
	exitC <-chan container.WaitResponse
	errC  <-chan error
}

// createAndStart creates the container of l, registers it with the executor
// and starts it. The returned watch reports its exit until stop is called.
func (e *Executor) createAndStart(ctx context.Context, in *instance, l launch) (w exitWatch, stop func(), err error) {
	created, err := e.docker.ContainerCreate(ctx, l.cfg, l.host, nil, nil, in.name)
	if err != nil {
		if ctx.Err() != nil {
			// The engine may have created it before the cancellation arrived.
			in.id = in.name
			return w, nil, ctx.Err()
		}
		if cerrdefs.IsNotFound(err) {
			return w, nil, ferry.Errorf(ferry.EUNAVAILABLE, "runtime image %s is missing (build it with `make images`)", l.cfg.Image)
		}
		return w, nil, dockerError("create container", err)
	}
	in.id = created.ID
	e.mu.Lock()
	closed := e.closed
	e.all[in] = struct{}{}
	e.mu.Unlock()
	if closed {
		return w, nil, ferry.Errorf(ferry.EUNAVAILABLE, "executor is shut down")
	}

	// Registered before the start so that an early exit cannot be missed.
	waitCtx, cancelWait := context.WithCancel(context.WithoutCancel(ctx))
	w.exitC, w.errC = e.docker.ContainerWait(waitCtx, in.id, container.WaitConditionNextExit)
	if err := e.docker.ContainerStart(ctx, in.id, container.StartOptions{}); err != nil {
		cancelWait()
		if ctx.Err() != nil {
			return w, nil, ctx.Err()
		}
		return w, nil, dockerError("start container", err)
	}
	return w, cancelWait, nil
}

// awaitRunner accepts the runner's connection and reads its first frame,
// l.want, within the start-up's deadlines (initDeadline). It returns the
// runner's own init time, or a Result when the container exited, ran out of
// time or failed to load the function.
func (e *Executor) awaitRunner(ctx context.Context, in *instance, l launch, load *capture, began, startedAt time.Time, w exitWatch) (float64, *Result, error) {
	// The runtime's own start (interpreter, runner) gets the worker's limit;
	// the runner connects before it loads the function, whose load then
	// gets the function's (initDeadline). A Go binary runs its packages'
	// initialisation (the function's load) before its runner can connect:
	// there the load counts from the container's start.
	var loadFrom time.Time
	if l.loadsFirst {
		loadFrom = startedAt.Add(goStartAllowance)
	}
	bootDeadline, bootMsg := e.initDeadline(l.timeout, began, loadFrom)
	type accepted struct {
		c   *net.UnixConn
		err error
	}
	accC := make(chan accepted, 1)
	go func() {
		c, err := in.ln.AcceptUnix()
		accC <- accepted{c, err}
	}()
	timer := time.NewTimer(time.Until(bootDeadline))
	defer timer.Stop()
	for in.conn == nil {
		select {
		case a := <-accC:
			if a.err != nil {
				return 0, nil, ferry.Wrap(a.err, ferry.EINTERNAL, "accept runner connection: %v", a.err)
			}
			in.conn = a.c
		case <-w.exitC:
			res, err := e.diagnose(ctx, in, "start-up", load)
			return 0, &res, err
		case <-w.errC:
			w = exitWatch{} // keep waiting for the connection or the timer
		case <-timer.C:
			res := e.initTimeout(ctx, in, bootMsg, load)
			return 0, &res, nil
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
	in.r = bufio.NewReader(in.conn)

	if loadFrom.IsZero() {
		loadFrom = time.Now()
	}
	deadline, msg := e.initDeadline(l.timeout, began, loadFrom)
	f, res, err := e.readInit(ctx, in, deadline, msg, l.want, load)
	if res != nil || err != nil {
		return 0, res, err
	}
	_ = in.conn.SetDeadline(time.Time{})
	return f.InitMS, nil, nil
}

// watch runs the background work of a ready instance: it opens the pidfd of
// the container's init process, and keeps the listener open, answering
// nothing, so that another executor's reaper can tell that the container's
// owner is still alive (see reap).
func (e *Executor) watch(ctx context.Context, in *instance) {
	in.pidfdDone = make(chan struct{})
	go func() {
		defer close(in.pidfdDone)
		ictx, cancel := fresh(ctx, 10*time.Second)
		defer cancel()
		if info, err := e.docker.ContainerInspect(ictx, in.id); err == nil && info.State != nil {
			in.pidfd.Store(int64(openProcess(info.State.Pid, in.id)))
		}
	}()
	go func() {
		for {
			c, err := in.ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// goStartAllowance is added to a Go function's timeout for loading it: its
// load counts from the container's start, which includes the process's own
// start (milliseconds; more on a loaded host).
const goStartAllowance = 500 * time.Millisecond

// initDeadline bounds a start-up (runtimes/README.md, "Loading"): the
// engine's part and the runtime's together get the worker's InitTimeout;
// loading the function (from loadFrom on: when the runner has connected or a
// spare got its init frame; for Go, the container's start plus
// goStartAllowance) also gets no more than the function's own timeout. It
// returns the deadline and what to say when it passes. Without a function
// (timeout 0: a spare) or before its load began (loadFrom zero) only
// InitTimeout applies.
func (e *Executor) initDeadline(timeout time.Duration, began, loadFrom time.Time) (time.Time, string) {
	deadline := began.Add(e.cfg.InitTimeout)
	msg := "the runtime did not become ready within " + fmtMS(e.cfg.InitTimeout)
	if timeout <= 0 || loadFrom.IsZero() {
		return deadline, msg
	}
	if d := loadFrom.Add(timeout); d.Before(deadline) {
		return d, fmt.Sprintf("the function did not finish loading within its timeout of %d s", int(timeout/time.Second))
	}
	return deadline, msg
}

// readInit reads the runner's first frame after start-up (or, for a spare,
// after its init frame) and expects want: ready, or waiting for a spare. A
// function that failed to load, ran out of time (timeoutMsg) or memory
// yields a Result; the caller removes the container in every case but success.
//
// c is the capture of the load's output (nil for a spare's start): it becomes
// the logs of a load that fails, and is dropped otherwise.
func (e *Executor) readInit(ctx context.Context, in *instance, deadline time.Time, timeoutMsg, want string, c *capture) (frame, *Result, error) {
	_ = in.conn.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = in.conn.SetReadDeadline(time.Now()) })
	f, err := readFrame(in.r, e.maxFrame())
	stop()
	if c != nil {
		defer in.logs.stop(c)
	}
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return f, nil, ctx.Err()
		case errors.Is(err, os.ErrDeadlineExceeded):
			res := e.initTimeout(ctx, in, timeoutMsg, c)
			return f, &res, nil
		default:
			res, err := e.diagnose(ctx, in, "start-up", c)
			return f, &res, err
		}
	}
	switch f.Type {
	case want:
	case frameInitError:
		fe := f.Error
		if fe == nil {
			fe = &ferry.FunctionError{Type: ferry.ErrTypeInit, Message: "the handler could not be loaded"}
		}
		var logs string
		if c != nil {
			logs = e.endedLogs(in, c)
		}
		return f, &Result{Status: StatusFailed, Error: fe, Logs: logs}, nil
	default:
		return f, &Result{Status: StatusFailed, Error: &ferry.FunctionError{
			Type: ferry.ErrTypeProtocol, Message: fmt.Sprintf("runner sent %q instead of %s", f.Type, want)}}, nil
	}
	_ = in.conn.SetDeadline(time.Time{})
	return f, nil, nil
}

func (e *Executor) initTimeout(ctx context.Context, in *instance, msg string, c *capture) Result {
	e.kill(ctx, in)
	logs := ""
	if c != nil {
		in.logs.sync(syncWait)
		logs, _, _ = in.logs.result(c)
	}
	if logs == "" {
		logs = e.tailLogs(ctx, in)
	}
	return Result{Status: StatusTimeout, Error: &ferry.FunctionError{Type: ferry.ErrTypeRuntimeTimeout, Message: msg}, Logs: logs}
}

// syncWait bounds the wait for the log FIFO to be read up to a point (the
// worker reads it continuously: this is only hit when it is overloaded).
const syncWait = 2 * time.Second

// endedLogs returns the logs of c once the runner's end marker was read
// (written before the frame that was just received).
func (e *Executor) endedLogs(in *instance, c *capture) string {
	t := time.NewTimer(syncWait)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		e.log.Warn("no end marker in the log FIFO after the runner's answer", "container", in.name)
	}
	logs, _, _ := in.logs.result(c)
	return logs
}

// invoke sends one invocation to a ready container and reads its result.
// reuse reports whether the container may serve another invocation.
func (e *Executor) invoke(ctx context.Context, in *instance, s Spec) (res Result, reuse bool, err error) {
	timeout := time.Duration(s.Limits.TimeoutSeconds) * time.Second
	began := time.Now()
	deadline := began.Add(timeout)
	_ = in.conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = in.conn.SetDeadline(time.Now()) })
	c := in.logs.start(false, s.OnLogs)
	defer in.logs.stop(c)

	err = writeFrame(in.conn, invokeFrame{Type: frameInvoke, ID: s.InvocationID, Event: s.Event,
		DeadlineMS: deadline.UnixMilli(), Operations: s.Operations})
	var f frame
	if err == nil {
		f, err = readFrame(in.r, e.maxFrame())
	}
	// A durable handler's checkpoints come before its result: each is
	// recorded and answered while the handler waits for the answer.
	for err == nil && f.Type == frameCheckpoint {
		err = writeFrame(in.conn, e.checkpoint(ctx, s, f))
		if err == nil {
			f, err = readFrame(in.r, e.maxFrame())
		}
	}
	elapsed := msSince(began)
	if !stop() {
		// ctx was cancelled and the deadline may be moved at any moment:
		// never hand this connection to another invocation.
		if err == nil {
			return Result{}, false, ctx.Err()
		}
	}

	if err != nil {
		var tooLarge errFrameTooLarge
		switch {
		case errors.As(err, &tooLarge):
			// The frame was skipped whole: the runner is still usable.
			_ = in.conn.SetDeadline(time.Time{})
			return Result{Status: StatusFailed, Error: &ferry.FunctionError{
				Type:    ferry.ErrTypeResultTooLarge,
				Message: fmt.Sprintf("the response of %d bytes exceeds the limit of %d bytes", tooLarge.size, tooLarge.limit),
			}, Logs: e.endedLogs(in, c), Metrics: ferry.Metrics{DurationMS: elapsed}}, true, nil
		case ctx.Err() != nil:
			killProcess(int(in.pidfd.Load()))
			in.killAt = time.Now()
			return Result{}, false, ctx.Err()
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Killed at once where the process is visible; the engine's kill
			// (which waits for the exit) and the removal follow in the
			// background.
			killProcess(int(in.pidfd.Load()))
			in.killAt = deadline
			// What was written before the deadline is in the FIFO now.
			in.logs.sync(syncWait)
			logs, _, _ := in.logs.result(c)
			return Result{Status: StatusTimeout, Error: &ferry.FunctionError{
				Type:    ferry.ErrTypeRuntimeTimeout,
				Message: fmt.Sprintf("function timed out after %d s", s.Limits.TimeoutSeconds),
			}, Logs: logs, Metrics: ferry.Metrics{DurationMS: elapsed}}, false, nil
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
			res, err := e.diagnose(ctx, in, "the invocation", c)
			res.Metrics.DurationMS = elapsed
			return res, false, err
		default:
			in.logs.sync(syncWait)
			logs, _, _ := in.logs.result(c)
			return Result{Status: StatusFailed, Error: &ferry.FunctionError{
				Type: ferry.ErrTypeProtocol, Message: "runner protocol error: " + err.Error(),
			}, Logs: logs, Metrics: ferry.Metrics{DurationMS: elapsed}}, false, nil
		}
	}
	_ = in.conn.SetDeadline(time.Time{})
	if f.Type != frameResult {
		in.logs.sync(syncWait)
		logs, _, _ := in.logs.result(c)
		return Result{Status: StatusFailed, Error: &ferry.FunctionError{
			Type: ferry.ErrTypeProtocol, Message: fmt.Sprintf("runner sent %q instead of a result", f.Type),
		}, Logs: logs, Metrics: ferry.Metrics{DurationMS: elapsed}}, false, nil
	}

	res = Result{Logs: e.endedLogs(in, c), Metrics: ferry.Metrics{
		DurationMS: f.DurationMS, MemoryPeak: f.MemoryPeak, CPUTimeMS: f.CPUMS,
	}}
	if res.Metrics.DurationMS <= 0 {
		res.Metrics.DurationMS = elapsed
	}
	switch {
	case !f.OK:
		res.Status = StatusFailed
		res.Error = f.Error
		if res.Error == nil {
			res.Error = &ferry.FunctionError{Type: ferry.ErrTypeError, Message: "the function failed without an error message"}
		}
	case len(f.Result) > e.cfg.ResultLimit:
		res.Status = StatusFailed
		res.Error = &ferry.FunctionError{Type: ferry.ErrTypeResultTooLarge,
			Message: fmt.Sprintf("the result of %d bytes exceeds the limit of %d bytes", len(f.Result), e.cfg.ResultLimit)}
	case f.Suspended != "":
		res.Status = StatusCompleted
		res.Suspended = f.Suspended
	default:
		res.Status = StatusCompleted
		res.Result = f.Result
		if len(res.Result) == 0 {
			res.Result = []byte("null")
		}
	}
	return res, true, nil
}

// checkpoint records one durable operation through the Spec's hook.
func (e *Executor) checkpoint(ctx context.Context, s Spec, f frame) CheckpointAck {
	c := f.Checkpoint
	c.Result, c.Error, c.DurationMS = f.Result, f.Error, f.DurationMS
	if s.Checkpoint == nil {
		return CheckpointAck{Type: frameCheckpointAck, Error: &ferry.FunctionError{Type: ferry.ErrTypeDurableUnavailable,
			Message: "durable operations are not available to this invocation"}}
	}
	ack := s.Checkpoint(ctx, c)
	ack.Type = frameCheckpointAck
	return ack
}

// diagnose explains why a runner went away: out of memory, or an exit, in
// the words of the runtime where it left any (a Go panic, a Python fatal
// error or traceback, the signal that killed it). c is the capture of the
// invocation or load that was running, whose output up to the end becomes
// the result's logs.
func (e *Executor) diagnose(ctx context.Context, in *instance, during string, c *capture) (Result, error) {
	cctx, cancel := fresh(ctx, 10*time.Second)
	defer cancel()
	if e.isClosed() {
		return Result{}, ferry.Errorf(ferry.EUNAVAILABLE, "executor is shut down")
	}
	// The connection drops a moment before the engine records the exit.
	wctx, wcancel := context.WithTimeout(cctx, 2*time.Second)
	exitC, errC := e.docker.ContainerWait(wctx, in.id, container.WaitConditionNotRunning)
	select {
	case <-exitC:
	case <-errC:
	}
	wcancel()
	info, err := e.docker.ContainerInspect(cctx, in.id)
	if err != nil {
		if e.isClosed() {
			return Result{}, ferry.Errorf(ferry.EUNAVAILABLE, "executor is shut down")
		}
		return Result{}, dockerError("inspect container", err)
	}
	st := info.State
	if st.Running {
		e.kill(ctx, in)
		logs, _ := e.deathLogs(ctx, in, c)
		return Result{Status: StatusFailed, Error: &ferry.FunctionError{
			Type: ferry.ErrTypeProtocol, Message: "the runner closed its connection during " + during,
		}, Logs: logs}, nil
	}
	if !st.OOMKilled && st.ExitCode == 137 {
		// The OOM event can reach the engine just after the exit.
		time.Sleep(100 * time.Millisecond)
		if again, err := e.docker.ContainerInspect(cctx, in.id); err == nil {
			st = again.State
		}
	}
	logs, words := e.deathLogs(ctx, in, c)
	if st.OOMKilled {
		mb := 0
		if info.HostConfig != nil {
			mb = int(info.HostConfig.Memory >> 20)
		}
		return Result{Status: StatusOOM, Error: &ferry.FunctionError{
			Type:    ferry.ErrTypeOutOfMemory,
			Message: fmt.Sprintf("the function ran out of memory (limit %d MB) during %s", mb, during),
		}, Logs: logs}, nil
	}
	if e.isClosed() {
		return Result{}, ferry.Errorf(ferry.EUNAVAILABLE, "executor is shut down")
	}
	msg := fmt.Sprintf("the runtime exited with code %d during %s", st.ExitCode, during)
	if sig := signalName(st.ExitCode - 128); st.ExitCode > 128 && sig != "" {
		msg = fmt.Sprintf("the runtime was killed by %s (exit code %d) during %s", sig, st.ExitCode, during)
	}
	if words.line != "" {
		msg += ": " + words.line
	}
	return Result{Status: StatusFailed, Error: &ferry.FunctionError{Type: ferry.ErrTypeExit, Message: msg, Stack: words.stack}, Logs: logs}, nil
}

// deathLogs returns, once the process is gone, the logs of c (everything
// written up to the end) and the runtime's last words: from the end of that
// output, else from output outside invocations (a goroutine that panicked
// after its invocation), else the runner's own last message in the
// container's log. Without a capture the logs are the container's log.
func (e *Executor) deathLogs(ctx context.Context, in *instance, c *capture) (logs string, words lastWords) {
	if in.logs != nil {
		in.logs.sync(syncWait)
	}
	tail := ""
	if c != nil {
		logs, tail, _ = in.logs.result(c)
	}
	if words = findLastWords(tail); words.line != "" {
		return logs, words
	}
	diag := e.tailLogs(ctx, in)
	if in.logs != nil {
		if w := findLastWords(in.logs.outsideText()); w.line != "" {
			return orDiag(logs, diag), w
		}
	}
	for _, line := range strings.Split(diag, "\n") {
		if strings.HasPrefix(line, "ferry-runner: ") {
			words = lastWords{line: clipLine(line)}
		}
	}
	if words.line == "" {
		words.line = lastLine(tail)
	}
	return orDiag(logs, diag), words
}

func orDiag(logs, diag string) string {
	if logs == "" {
		return diag
	}
	return logs
}

func (e *Executor) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// kill stops a container at once; its removal follows when it is released.
func (e *Executor) kill(ctx context.Context, in *instance) {
	if in.id == "" {
		return
	}
	cctx, cancel := fresh(ctx, 5*time.Second)
	defer cancel()
	if err := e.docker.ContainerKill(cctx, in.id, "KILL"); err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
		e.log.Warn("kill container", "container", in.name, "err", err)
	}
}

// removeInstance removes the container and its run folder. It is idempotent
// and runs to completion even when ctx is cancelled.
func (e *Executor) removeInstance(ctx context.Context, in *instance) {
	in.removeOnce.Do(func() {
		if in.logs != nil {
			defer in.logs.close()
		}
		if in.pidfdDone != nil {
			<-in.pidfdDone
		}
		defer closeProcess(int(in.pidfd.Load()))
		if in.conn != nil {
			_ = in.conn.Close()
		}
		if in.ln != nil {
			_ = in.ln.Close()
		}
		if in.id != "" && !in.killAt.IsZero() {
			exited, _ := waitExit(int(in.pidfd.Load()), time.Second)
			e.kill(ctx, in) // also when the pidfd was not usable
			if e.afterKill != nil {
				e.afterKill(in.id, in.killAt, exited)
			}
		}
		if in.id != "" {
			cctx, cancel := fresh(ctx, 30*time.Second)
			err := e.docker.ContainerRemove(cctx, in.id, container.RemoveOptions{Force: true, RemoveVolumes: true})
			cancel()
			if err != nil && !cerrdefs.IsNotFound(err) {
				e.log.Warn("remove container", "container", in.name, "err", err)
			}
		}
		if err := os.RemoveAll(in.runDir); err != nil {
			e.log.Warn("remove run folder", "dir", in.runDir, "err", err)
		}
		if in.taskDir != "" {
			if err := os.RemoveAll(in.taskDir); err != nil {
				e.log.Warn("remove code folder", "dir", in.taskDir, "err", err)
			}
		}
	})
}

// tailLogs returns the end of what the container wrote to its own stdout and
// stderr (the runner's output outside invocations), at most 8 KiB.
func (e *Executor) tailLogs(ctx context.Context, in *instance) string {
	cctx, cancel := fresh(ctx, 5*time.Second)
	defer cancel()
	rc, err := e.docker.ContainerLogs(cctx, in.id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "100"})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var buf bytes.Buffer
	_, _ = stdcopy.StdCopy(&buf, &buf, io.LimitReader(rc, 1<<20))
	const keep = 8 << 10
	b := buf.Bytes()
	if len(b) > keep {
		b = b[len(b)-keep:]
		for len(b) > 0 && !utf8.RuneStart(b[0]) {
			b = b[1:]
		}
	}
	return string(b)
}

// maxFrame bounds one runner frame: the result and room for an error's stack.
func (e *Executor) maxFrame() int { return e.cfg.ResultLimit + 1<<20 }

func lastLine(s string) string {
	s = strings.TrimRight(s, "\r\n\t ")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return clipLine(s)
}

func clipLine(s string) string {
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "..."
	}
	return s
}

// lastWords is what a runtime wrote as it died: the line that says what
// happened and, after it, its stack.
type lastWords struct{ line, stack string }

// findLastWords looks for the last message of a dying runtime in the end of
// its output: a Go panic or fatal error, a Python fatal error (faulthandler,
// on a native crash) or traceback, a V8 fatal error.
func findLastWords(tail string) lastWords {
	lines := strings.Split(strings.TrimRight(tail, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimRight(lines[i], "\r")
		for _, p := range []string{"panic: ", "fatal error: ", "Fatal Python error: ", "FATAL ERROR: "} {
			if strings.HasPrefix(l, p) {
				return lastWords{line: clipLine(l), stack: strings.TrimLeft(strings.Join(lines[i+1:], "\n"), "\n")}
			}
		}
		if l == "Traceback (most recent call last):" {
			return lastWords{line: lastLine(strings.Join(lines[i:], "\n")), stack: strings.Join(lines[i:], "\n")}
		}
	}
	return lastWords{}
}

// signalName is the Linux name of signal n (a container's exit code 128+n
// says that n killed it), or "".
func signalName(n int) string {
	names := map[int]string{1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
		7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
		14: "SIGALRM", 15: "SIGTERM", 24: "SIGXCPU", 25: "SIGXFSZ", 31: "SIGSYS"}
	return names[n]
}

// ensureNetwork creates functionNetwork unless it exists, and refuses one of
// that name that lets containers talk to each other. Several executors may
// share the engine: whoever creates it first wins, the others find it.
func (e *Executor) ensureNetwork(ctx context.Context) error {
	for attempt := 0; attempt < 2; attempt++ {
		n, err := e.docker.NetworkInspect(ctx, functionNetwork, network.InspectOptions{})
		if err == nil {
			if n.Driver != "bridge" || n.Options[iccOption] != "false" {
				return ferry.Errorf(ferry.EINVALID, "docker network %s exists but is not a bridge with %s=false, so functions could reach each other: remove it (docker network rm %s) and Ferry creates it", functionNetwork, iccOption, functionNetwork)
			}
			return nil
		}
		if !cerrdefs.IsNotFound(err) {
			return dockerError("inspect network "+functionNetwork, err)
		}
		_, err = e.docker.NetworkCreate(ctx, functionNetwork, network.CreateOptions{
			Driver:  "bridge",
			Options: map[string]string{iccOption: "false"},
			Labels:  map[string]string{labelManaged: "true"},
		})
		if err != nil && !cerrdefs.IsConflict(err) {
			return dockerError("create network "+functionNetwork, err)
		}
		// Created, by this executor or another one: check it.
	}
	return ferry.Errorf(ferry.EUNAVAILABLE, "docker network %s was created but cannot be found", functionNetwork)
}

// dockerError turns a Docker client error into a *ferry.Error whose cause it
// is: an unreachable
// engine is EUNAVAILABLE (retryable); settings the engine refuses (its
// "invalid parameter" answer, such as Docker's "Range of CPUs" or minimum
// memory) are EINVALID, since no retry can succeed; anything else EINTERNAL.
func dockerError(op string, err error) error {
	if client.IsErrConnectionFailed(err) || cerrdefs.IsUnavailable(err) {
		return ferry.Wrap(err, ferry.EUNAVAILABLE, "docker: %s: engine unreachable: %v", op, err)
	}
	if cerrdefs.IsInvalidArgument(err) {
		return ferry.Wrap(err, ferry.EINVALID, "docker refused to %s: %v", op, err)
	}
	return ferry.Wrap(err, ferry.EINTERNAL, "docker: %s: %v", op, err)
}
