"""Ferry's Python runner.

Loads the handler named by FERRY_HANDLER (or, in a spare container started with
FERRY_SPARE=1, by the host's "init" frame) once, then serves invocations one at a
time over the Unix socket /run/ferry/ferry.sock with length-prefixed JSON frames
(see runtimes/README.md). Standard library only.

fd 1 and fd 2 are the FIFO /run/ferry/logs, read by the host: what the handler
(or its child processes, or the interpreter dying) writes leaves the container as
it is written; the runner marks where each invocation's part begins and ends. The
protocol has its own socket, so prints can never corrupt a result.
"""

import array
import faulthandler
import itertools
import json
import os
import socket
import struct
import sys
import threading
import time

SOCKET_PATH = os.environ.get("FERRY_SOCKET", "/run/ferry/ferry.sock")
TASK_ROOT = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
# Deepest nesting of arrays and objects in an event or a result (ferry.MaxJSONDepth).
MAX_JSON_DEPTH = 512
CGROUP_PEAK_FILES = (
    "/sys/fs/cgroup/memory.peak",  # cgroup v2
    "/sys/fs/cgroup/memory/memory.max_usage_in_bytes",  # cgroup v1
)


class FerryError(Exception):
    """A failure of the runtime itself (bad handler name, result not JSON, ...)."""

    def __init__(self, type_, message):
        super().__init__(message)
        self.type = type_


# --- logs -------------------------------------------------------------------


class LogMarks:
    """Delimits each invocation's part of the output for the host.

    The image's entry point points fd 1 and 2 at the FIFO /run/ferry/logs,
    whose reading end the host holds: what the function writes leaves the
    container as it is written and outlives the runner (runtimes/README.md,
    "Logs"). The runner only writes the host's begin and end markers
    (FERRY_LOG_MARK) into it, on a copy of fd 1 that the handler cannot
    replace; fd 3 is the container's own stderr, for the runner's diagnostics
    and for output of threads whose invocation ended.
    """

    def __init__(self):
        token = os.environ.pop("FERRY_LOG_MARK", "").encode()
        mark = b"\0ferry-log-" + token + b"-"
        self.begin_mark, self.end_mark = mark + b"B\0", mark + b"E\0"
        self.fd = os.dup(1)
        try:
            diag_fd = os.dup(3)
        except OSError:  # started without the entry point
            diag_fd = os.dup(2)
        self.diag = os.fdopen(diag_fd, "w", buffering=1, encoding="utf-8", errors="replace")

    def _flush(self):
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except Exception:  # the handler may have replaced or closed them
                pass

    def _write(self, mark):
        try:
            os.write(self.fd, mark)
        except OSError as exc:
            self.log("writing a log marker: %s" % exc)

    def begin(self):
        self._flush()  # what is still buffered belongs to no invocation
        self._write(self.begin_mark)

    def end(self):
        """Ends the invocation's (or the load's) output: what was written
        before reaches the host before this marker."""
        self._flush()
        self._write(self.end_mark)

    def log(self, msg):
        try:
            self.diag.write("ferry-runner: " + msg + "\n")
        except Exception:
            pass


# --- work left running ------------------------------------------------------
#
# The invocation a thread works for is its "owner": the running invocation for
# the main thread, the starting thread's owner for a new thread, the
# submitter's for a thread pool's work item. What a thread prints through
# sys.stdout/sys.stderr after its owner ended goes to the container's own log,
# never into a later invocation's logs (runtimes/README.md, "Work left running").


class Invocation:
    def __init__(self, request_id):
        self.id = request_id
        self.ended = False


def owner():
    return getattr(threading.current_thread(), "_ferry_owner", None)


def _start_thread(self, _start=threading.Thread.start):
    self._ferry_owner = owner()
    _start(self)


threading.Thread.start = _start_thread


def _patch_thread_pool():
    """Work items run for their submitter; patched once the module is in use."""
    futures = sys.modules.get("concurrent.futures.thread")
    if futures is None or getattr(futures.ThreadPoolExecutor.submit, "_ferry", False):
        return
    submit = futures.ThreadPoolExecutor.submit

    def submit_for_owner(self, fn, /, *args, **kwargs):
        inv = owner()

        def run(*a, **k):
            t = threading.current_thread()
            saved = getattr(t, "_ferry_owner", None)
            t._ferry_owner = inv
            try:
                return fn(*a, **k)
            finally:
                t._ferry_owner = saved

        return submit(self, run, *args, **kwargs)

    submit_for_owner._ferry = True
    futures.ThreadPoolExecutor.submit = submit_for_owner


class OwnedStream:
    """sys.stdout/sys.stderr: writes of threads whose invocation ended go to stale."""

    def __init__(self, stream, stale):
        self._stream, self._stale = stream, stale

    def write(self, text):
        inv = owner()
        if inv is not None and inv.ended:
            return self._stale.write(text)
        return self._stream.write(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def function_processes():
    """The function's processes: this runner's descendants and, in a container
    whose init is docker-init, the orphans it adopted. Never anything else,
    so a runner started outside a container touches no stranger's process."""
    me = os.getpid()
    roots = {me}
    try:
        with open("/proc/1/comm") as f:
            if os.getppid() == 1 and f.read().strip() == "docker-init":
                roots.add(1)
    except OSError:
        pass
    children = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return set()
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    found, todo = set(), list(roots)
    while todo:
        for pid in children.get(todo.pop(), ()):
            if pid not in found and pid not in roots:
                found.add(pid)
                todo.append(pid)
    return found


def end_processes(before):
    """Kills the function's processes started since before was taken, and reaps them."""
    for pid in function_processes() - before:
        try:
            os.kill(pid, 9)
        except OSError:
            continue
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # not our child: the container's init reaps it


# --- durable functions ------------------------------------------------------
# (runtimes/README.md, "Durable functions"): a step's result is checkpointed by
# the host before the handler goes on; a later run of the handler (after a
# crash, a retry or a wait) gets the recorded operations in its invoke frame
# and returns their results without running them again.

_channel = {"sock": None, "rfile": None, "lock": threading.Lock()}


class StepError(FerryError):
    """A recorded step's failure, raised again when the handler replays it."""


class _Suspend(BaseException):
    """Unwinds a handler that stopped at a wait or a callback (not an Exception,
    so that `except Exception` in the handler does not catch it)."""


def _checkpoint(frame, result_json=None):
    body = json.dumps(frame)
    if result_json is not None:
        body = body[:-1] + ',"result":' + result_json + "}"
    return _checkpoint_raw(body)


def _checkpoint_raw(body):
    with _channel["lock"]:
        send_frame(_channel["sock"], body)
        reply = read_frame(_channel["rfile"])
    if reply is None:
        os._exit(0)  # the host went away
    ack = json.loads(reply)
    if not ack.get("ok"):
        err = ack.get("error") or {}
        raise FerryError(err.get("type") or "Durable.CheckpointFailed", err.get("message") or "checkpoint refused")
    return ack


def _seconds(duration):
    """A number of seconds, or AWS's Duration-like {"days", "hours", "minutes", "seconds"}."""
    if isinstance(duration, dict):
        return (duration.get("days", 0) * 86400 + duration.get("hours", 0) * 3600
                + duration.get("minutes", 0) * 60 + duration.get("seconds", 0))
    for attr in ("total_seconds", "to_seconds"):
        if hasattr(duration, attr):
            return getattr(duration, attr)()
    return duration


class Callback:
    """A callback created by create_callback: POST JSON to `url` to complete it.
    `callback_id` and `url` are known only in the run that created it (the
    token is never stored); use them inside a step, as wait_for_callback does."""

    def __init__(self, durable, name, callback_id, url):
        self._durable, self.name, self.callback_id, self.url = durable, name, callback_id, url

    def result(self):
        """The JSON body POSTed to the callback; suspends the handler until then."""
        d = self._durable
        d.check_running()
        op = d.ops.get(self.name)
        if op is not None and op.get("status") == "succeeded":
            return op.get("result")
        if op is not None and op.get("status") in ("failed", "timed_out"):
            err = op.get("error") or {}
            raise StepError(err.get("type") or "Callback.Timeout", err.get("message") or "callback failed")
        d.suspend(self.name)


class Durable:
    """The durable operations of one run of a handler (exposed on its context)."""

    def __init__(self, ops):
        self.ops = {op["name"]: op for op in ops or ()}
        self.used = set()
        self.counters = {}
        self.suspended = None
        self.lock = threading.Lock()

    def check_running(self):
        if self.suspended is not None:
            raise _Suspend()

    def suspend(self, name):
        self.suspended = name
        raise _Suspend()

    def begin(self, name, kind):
        """Claims an operation name for this run: names are unique per invocation."""
        self.check_running()
        if name is None:
            with self.lock:
                n = self.counters[kind] = self.counters.get(kind, 0) + 1
            name = "%s#%d" % (kind, n)
        if not isinstance(name, str) or not name:
            raise FerryError("Durable.InvalidName", "an operation name is a non-empty string")
        with self.lock:
            if name in self.used:
                raise FerryError("Durable.DuplicateName",
                                 "operation name %r is used twice in this invocation: names must be unique" % name)
            self.used.add(name)
        op = self.ops.get(name)
        if op is not None and op.get("kind") != kind:
            raise FerryError("Durable.NonDeterministic", "operation %r was recorded as a %s, not a %s: the handler "
                             "must reach its operations in the same order on every run" % (name, op.get("kind"), kind))
        return name, op


class DurableContextMixin:
    """step, wait, create_callback and wait_for_callback, named as in AWS's
    durable execution SDK (context.step, context.wait, ...)."""

    def step(self, name, fn=None, *, attempts=1, backoff_seconds=1.0, backoff_rate=2.0):
        """Runs fn() once per invocation and returns its JSON result, recorded
        before this returns; later runs return the recorded result. fn may take
        one argument (a StepContext with .attempt). step(fn, name=...) works too."""
        if callable(name) and not callable(fn):
            name, fn = fn, name
        d = self._durable
        name, op = d.begin(name, "step")
        if op is not None:
            if op.get("status") == "succeeded":
                return op.get("result")
            err = op.get("error") or {}
            raise StepError(err.get("type") or "Error", err.get("message") or "step failed")
        takes_ctx = positional_arity(fn) >= 1
        start = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            try:
                value = fn(StepContext(attempt)) if takes_ctx else fn()
                break
            except Exception as exc:  # noqa: B902 — a step's failure, retried or recorded
                if attempt >= max(1, int(attempts)):
                    d.check_running()
                    _checkpoint({"type": "checkpoint", "kind": "step", "name": name, "status": "failed",
                                 "attempts": attempt, "error": error_info(exc),
                                 "duration_ms": round((time.perf_counter() - start) * 1000, 3)})
                    raise
                time.sleep(backoff_seconds * backoff_rate ** (attempt - 1))
        try:
            text = json.dumps(value, allow_nan=False, default=json_default)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise FerryError("Step.MarshalError", "the result of step %r is not JSON: %s" % (name, exc)) from None
        d.check_running()
        ack = _checkpoint({"type": "checkpoint", "kind": "step", "name": name, "status": "succeeded",
                           "attempts": attempt, "duration_ms": round((time.perf_counter() - start) * 1000, 3)}, text)
        if "result" in ack:
            return ack["result"]  # an earlier attempt recorded this step first
        return json.loads(text)

    def wait(self, duration=None, name=None, *, seconds=None):
        """A durable sleep: the handler stops here and runs again once the time
        has passed (no container is held meanwhile); earlier steps replay."""
        if seconds is not None:
            duration = seconds
        if isinstance(duration, str) and name is None or isinstance(name, (int, float, dict)):
            duration, name = name, duration  # wait("name", 5)
        d = self._durable
        name, op = d.begin(name, "wait")
        if op is not None:
            if op.get("status") == "succeeded":
                return None
            d.suspend(name)
        _checkpoint({"type": "checkpoint", "kind": "wait", "name": name, "status": "started",
                     "wait_seconds": _seconds(duration)})
        d.suspend(name)

    def invoke(self, function, event=None, name=None):
        """Invokes another Ferry function (its latest version) as a checkpointed
        operation and returns its result; its failure raises a StepError. The
        handler stops here while the function runs and replays once it ended."""
        d = self._durable
        name, op = d.begin(name, "invoke")
        if op is not None:
            if op.get("status") == "succeeded":
                return op.get("result")
            if op.get("status") == "started":
                d.suspend(name)
            err = op.get("error") or {}
            raise StepError(err.get("type") or "Error", err.get("message") or "the invoked function failed")
        try:
            text = json.dumps(event, allow_nan=False, default=json_default)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise FerryError("Invoke.InvalidEvent", "the event of invoke %r is not JSON: %s" % (name, exc)) from None
        body = json.dumps({"type": "checkpoint", "kind": "invoke", "name": name, "status": "started",
                           "function": function})
        _checkpoint_raw(body[:-1] + ',"event":' + text + "}")
        d.suspend(name)

    def create_callback(self, name=None, timeout=None):
        """A callback: its URL (with an unguessable single-use token) completes
        it with a JSON body; .result() waits for it."""
        d = self._durable
        name, op = d.begin(name, "callback")
        if op is not None:
            return Callback(d, name, None, None)
        ack = _checkpoint({"type": "checkpoint", "kind": "callback", "name": name, "status": "started",
                           "timeout_seconds": _seconds(timeout) if timeout is not None else 0})
        return Callback(d, name, ack.get("callback_id"), ack.get("callback_url"))

    def wait_for_callback(self, name=None, submitter=None, timeout=None):
        """create_callback, then submitter(callback_id) (or submitter(callback_id,
        callback_url)) as the step "<name>.submit", then the POSTed JSON."""
        if callable(name):
            name, submitter = submitter, name
        cb = self.create_callback(name, timeout)
        if submitter is not None:
            two = positional_arity(submitter) >= 2
            self.step(cb.name + ".submit",
                      lambda: submitter(cb.callback_id, cb.url) if two else submitter(cb.callback_id))
        return cb.result()


class StepContext:
    def __init__(self, attempt):
        self.attempt = attempt


# --- handler ----------------------------------------------------------------


class LambdaContext(DurableContextMixin):
    """The context object, with AWS Lambda's attribute names."""

    def __init__(self, request_id, deadline_ms, operations=None):
        self._durable = Durable(operations)
        self.aws_request_id = request_id
        self.function_name = os.environ.get("FERRY_FUNCTION_NAME", "")
        self.function_version = os.environ.get("FERRY_FUNCTION_VERSION", "")
        # A string, as on Lambda.
        self.memory_limit_in_mb = os.environ.get("FERRY_MEMORY_MB", "")
        self.invoked_function_arn = os.environ.get("FERRY_FUNCTION_ARN", "")
        self.log_group_name = ""
        self.log_stream_name = ""
        self.identity = None
        self.client_context = None
        self.deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        if not self.deadline_ms:
            return 0
        return max(0, int(self.deadline_ms - time.time() * 1000))

    def __repr__(self):
        return "LambdaContext(aws_request_id=%r, function_name=%r, function_version=%r)" % (
            self.aws_request_id,
            self.function_name,
            self.function_version,
        )


def load_handler(spec):
    """Imports "path/to/module.function" or "pkg.module.function" (last dot splits)."""
    import importlib

    mod_path, _, fn_name = spec.strip().rpartition(".")
    if not mod_path or not fn_name:
        raise FerryError("Runtime.MalformedHandlerName",
                         "handler %r is not of the form file.function" % spec)
    if mod_path.startswith("./"):
        mod_path = mod_path[2:]
    mod_name = mod_path.replace("/", ".")
    if mod_name.endswith(".py"):
        mod_name = mod_name[:-3]
    module = importlib.import_module(mod_name)
    fn = getattr(module, fn_name, None)
    if fn is None:
        raise FerryError("Runtime.HandlerNotFound",
                         "module %r has no function %r" % (mod_name, fn_name))
    if not callable(fn):
        raise FerryError("Runtime.HandlerNotFound",
                         "%s.%s is not callable" % (mod_name, fn_name))
    return fn, positional_arity(fn)


def positional_arity(fn):
    """How many of (event, context) fn takes: 0, 1 or 2."""
    # Read plain functions' code objects directly: importing inspect costs tens of
    # milliseconds of cold start.
    code, bound = getattr(fn, "__code__", None), 0
    if hasattr(getattr(fn, "__func__", None), "__code__"):  # a bound method
        code, bound = fn.__func__.__code__, 1
    if code is not None and not hasattr(fn, "__wrapped__"):
        if code.co_flags & 0x04:  # CO_VARARGS
            return 2
        return max(0, min(code.co_argcount - bound, 2))

    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    n = 0
    for p in params:
        if p.kind == p.VAR_POSITIONAL:
            return 2
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return min(n, 2)


def call_handler(fn, arity, event, context):
    args = (event, context)[:arity]
    result = fn(*args)
    if hasattr(result, "__await__"):
        # Lambda has no async handlers; running them is a convenience.
        import asyncio

        async def wait():
            return await result

        result = asyncio.run(wait())
    return result


def error_info(exc):
    """{type, message, stack} of an exception, without the runner's or importlib's frames."""
    import traceback

    if isinstance(exc, FerryError):
        return {"type": exc.type, "message": str(exc), "stack": ""}
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if not _internal_frame(f.filename)])
    return {"type": type(exc).__name__, "message": str(exc), "stack": "".join(te.format())}


def _internal_frame(filename):
    return (filename == __file__ or filename.startswith("<frozen importlib")
            or filename.startswith(os.path.dirname(os.__file__) + "/importlib/"))


def json_default(obj):
    import decimal

    # DynamoDB and friends hand out Decimals; Lambda's runtime serialises them too.
    if isinstance(obj, decimal.Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


_NOT_STRUCTURE = bytes(range(256)).translate(None, b'[]{}"')
_NESTING_STEP = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")


def json_too_deep(data, limit=MAX_JSON_DEPTH):
    """Whether the JSON text data (bytes) nests arrays and objects deeper than limit.

    Checked on the text, before decoding: json's decoder recurses, and nesting
    of a few thousand levels would end the runner with a RecursionError.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    if b"\\" in data:  # escaped quotes and backslashes cannot end a string
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Keep brackets and quotes, drop what is inside strings, then the running
    # sum of +1 per opening and -1 per closing bracket is the depth.
    data = b"".join(data.translate(None, _NOT_STRUCTURE).split(b'"')[::2])
    if len(data) <= 2 * limit:
        return False
    return max(itertools.accumulate(array.array("b", data.translate(_NESTING_STEP)))) > limit


# --- metrics ----------------------------------------------------------------


def cpu_time():
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def memory_peak():
    for path in CGROUP_PEAK_FILES:
        try:
            with open(path) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            continue
    return 0


# --- protocol ---------------------------------------------------------------


def connect(path, wait_s=5.0):
    deadline = time.monotonic() + wait_s
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def connect_or_exit(logs):
    try:
        return connect(SOCKET_PATH)
    except OSError as exc:
        logs.log("cannot connect to %s: %s" % (SOCKET_PATH, exc))
        os._exit(2)


def send_frame(sock, payload):
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    sock.sendall(struct.pack(">I", len(payload)) + payload)


def read_frame(rfile):
    """The next frame's JSON text (bytes), or None when the host closed the socket."""
    head = rfile.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack(">I", head)
    body = rfile.read(n)
    if len(body) < n:
        return None
    return body


def result_frame(ok, result_json, error, duration_ms, cpu_ms, suspended=None):
    head = {
        "type": "result",
        "ok": ok,
        "duration_ms": round(duration_ms, 3),
        "memory_peak": memory_peak(),
        "cpu_ms": round(cpu_ms, 3),
    }
    if suspended is not None:
        head["suspended"] = suspended
        return json.dumps(head)
    if not ok:
        head["error"] = error
        return json.dumps(head)
    # Splice the already-encoded result in rather than encoding it twice.
    return json.dumps(head)[:-1] + ',"result":' + result_json + "}"


def refuse_event(logs):
    """The result of an invocation whose event is nested too deeply: the handler is not called."""
    logs.begin()
    logs.end()
    return result_frame(False, None, {
        "type": "Runtime.UnmarshalError",
        "message": "the event is nested deeper than the limit of %d levels" % MAX_JSON_DEPTH,
        "stack": ""}, 0, 0)


def invoke(fn, arity, msg, logs):
    context = LambdaContext(msg.get("id", ""), msg.get("deadline_ms") or 0, msg.get("operations"))
    inv = Invocation(context.aws_request_id)
    threading.main_thread()._ferry_owner = inv
    _patch_thread_pool()
    processes = function_processes()
    cpu0 = cpu_time()
    logs.begin()
    start = time.perf_counter()
    ok, result_json, error = True, None, None
    try:
        result = call_handler(fn, arity, msg.get("event"), context)
        try:
            result_json = json.dumps(result, allow_nan=False, default=json_default)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            if isinstance(exc, RecursionError):
                exc = "it is nested deeper than the limit of %d levels" % MAX_JSON_DEPTH
            raise FerryError("Runtime.MarshalError",
                             "Unable to marshal the result: %s" % exc) from None
        if (result_json.count("[") + result_json.count("{") > MAX_JSON_DEPTH
                and json_too_deep(result_json.encode())):
            raise FerryError("Runtime.MarshalError", "Unable to marshal the result: it is nested "
                             "deeper than the limit of %d levels" % MAX_JSON_DEPTH)
    except _Suspend:
        pass
    except BaseException as exc:  # noqa: B902 — sys.exit() in a handler is its error too
        ok, error = False, error_info(exc)
    duration_ms = (time.perf_counter() - start) * 1000
    end_processes(processes)
    logs.end()
    inv.ended = True
    # A handler that stopped at a wait or a callback is suspended, whatever it
    # did after (even if it caught the unwinding).
    return result_frame(ok, result_json, error, duration_ms, (cpu_time() - cpu0) * 1000,
                        context._durable.suspended)


def main():
    start = time.perf_counter()
    logs = LogMarks()
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    # A native crash (SIGSEGV, SIGABRT, ...) prints the Python stack into the
    # logs: the host reads it after the process died and quotes it.
    faulthandler.enable(file=sys.stderr)
    sys.stdout = OwnedStream(sys.stdout, logs.diag)
    sys.stderr = OwnedStream(sys.stderr, logs.diag)

    # The bundle root (and its vendored packages) comes first; the runner's own
    # folder is not importable.
    sys.path[0] = TASK_ROOT
    try:
        os.chdir(TASK_ROOT)
    except OSError:
        pass

    # A spare (FERRY_SPARE=1) starts before it belongs to any function: it
    # connects, says "waiting" and loads the handler named by the init frame,
    # after the function's environment is set (runtimes/README.md, "Spares").
    spare = os.environ.get("FERRY_SPARE") == "1" and not os.environ.get("FERRY_HANDLER")
    sock = rfile = None
    if spare:
        import importlib  # load_handler's, imported while nobody waits

        sock = connect_or_exit(logs)
        rfile = sock.makefile("rb")
        send_frame(sock, json.dumps({"type": "waiting",
                                     "init_ms": round((time.perf_counter() - start) * 1000, 3)}))
        while True:
            body = read_frame(rfile)
            if body is None:
                os._exit(0)  # the host closed the connection before assigning it
            msg = json.loads(body)
            if msg.get("type") == "init":
                break
            logs.log("ignoring frame of type %r while waiting" % msg.get("type"))
        start = time.perf_counter()
        logs.begin()  # the load's output, the host's capture since the init frame
        for k, v in (msg.get("env") or {}).items():
            os.environ[str(k)] = str(v)
        if msg.get("handler"):
            os.environ["FERRY_HANDLER"] = str(msg["handler"])
        # The code folder was filled after the interpreter looked at it.
        importlib.invalidate_caches()
        sys.path_importer_cache.pop(TASK_ROOT, None)

    if sock is None:
        # Connected before loading: the host bounds the load by the
        # function's timeout from here (runtimes/README.md, "Loading").
        sock = connect_or_exit(logs)
    fn, arity, init_error = None, 0, None
    try:
        fn, arity = load_handler(os.environ.get("FERRY_HANDLER") or os.environ.get("_HANDLER", ""))
    except BaseException as exc:  # noqa: B902 — a module may call sys.exit() at import
        init_error = error_info(exc)
    logs.end()
    if init_error is not None:
        send_frame(sock, json.dumps({"type": "init_error", "error": init_error}))
        sock.close()
        os._exit(1)
    send_frame(sock, json.dumps({"type": "ready",
                                 "init_ms": round((time.perf_counter() - start) * 1000, 3)}))

    if rfile is None:
        rfile = sock.makefile("rb")
    try:
        serve(sock, rfile, fn, arity, logs)
    except BaseException as exc:  # noqa: B902 — say why in the container's log, not nowhere
        info = error_info(exc)
        logs.log("fatal: %s: %s\n%s" % (info["type"], info["message"], info["stack"]))
        os._exit(2)


def serve(sock, rfile, fn, arity, logs):
    _channel["sock"], _channel["rfile"] = sock, rfile
    while True:
        body = read_frame(rfile)
        if body is None:
            os._exit(0)  # the host closed the connection: nothing more to do
        # The frame is one level around the event.
        if json_too_deep(body, MAX_JSON_DEPTH + 1):
            send_frame(sock, refuse_event(logs))
            continue
        msg = json.loads(body)
        if msg.get("type") != "invoke":
            logs.log("ignoring frame of type %r" % msg.get("type"))
            continue
        send_frame(sock, invoke(fn, arity, msg, logs))


if __name__ == "__main__":
    main()
