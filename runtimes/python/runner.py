"""Ferry's Python runner.

Loads the handler named by FERRY_HANDLER (or, in a spare container started with
FERRY_SPARE=1, by the host's "init" frame) once, then serves invocations one at a
time over the Unix socket /run/ferry/ferry.sock with length-prefixed JSON frames
(see runtimes/README.md). Standard library only.

Everything written to fd 1 and fd 2 during an invocation (by the handler or by its
child processes) is captured through a pipe and returned as that invocation's logs;
the protocol has its own socket, so prints can never corrupt a result.
"""

import json
import os
import socket
import struct
import sys
import threading
import time

SOCKET_PATH = os.environ.get("FERRY_SOCKET", "/run/ferry/ferry.sock")
TASK_ROOT = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
DEFAULT_LOG_LIMIT = 1 << 20
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


class LogCapture:
    """Points fd 1 and 2 at a pipe drained by a thread into a capped buffer.

    end() writes a random marker into the same pipe and waits until the drain
    thread has seen it: everything written before end() has then been collected.
    """

    def __init__(self, limit):
        self.limit = limit
        self.marker = b"\0ferry-log-end-" + os.urandom(12).hex().encode() + b"\0"
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.buf = bytearray()
        self.total = 0
        # The runner's own diagnostics go to the container's original stderr.
        self.diag = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
        r, w = os.pipe()
        self.r, self.w = r, w
        os.dup2(w, 1)
        os.dup2(w, 2)
        threading.Thread(target=self._drain, name="ferry-logs", daemon=True).start()

    def _keep(self, data):
        if not data:
            return
        with self.lock:
            room = self.limit - len(self.buf)
            if room > 0:
                self.buf += data[:room]
            self.total += len(data)

    def _drain(self):
        marker, m = self.marker, len(self.marker)
        pending = b""
        while True:
            try:
                chunk = os.read(self.r, 1 << 16)
            except InterruptedError:
                continue
            if not chunk:
                return
            data = pending + chunk
            while True:
                i = data.find(marker)
                if i < 0:
                    break
                self._keep(data[:i])
                data = data[i + m:]
                self.done.set()
            # Hold back a tail that may be the start of a marker split across reads.
            keep = 0
            if data.rfind(b"\0", max(0, len(data) - m + 1)) >= 0:
                for k in range(min(m - 1, len(data)), 0, -1):
                    if marker.startswith(data[-k:]):
                        keep = k
                        break
            self._keep(data[: len(data) - keep])
            pending = data[len(data) - keep:]

    def begin(self):
        with self.lock:
            self.buf = bytearray()
            self.total = 0

    def end(self):
        """Returns (logs, truncated) of everything written since begin()."""
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except Exception:  # the handler may have replaced or closed them
                pass
        self.done.clear()
        os.write(self.w, self.marker)
        if not self.done.wait(10):
            self.log("log drain did not see the end marker in time")
        with self.lock:
            logs = self.buf.decode("utf-8", errors="replace")
            truncated = self.total > self.limit
            self.buf = bytearray()
            self.total = 0
        return logs, truncated

    def log(self, msg):
        try:
            self.diag.write("ferry-runner: " + msg + "\n")
        except Exception:
            pass


# --- handler ----------------------------------------------------------------


class LambdaContext:
    """The context object, with AWS Lambda's attribute names."""

    def __init__(self, request_id, deadline_ms):
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
    head = rfile.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack(">I", head)
    body = rfile.read(n)
    if len(body) < n:
        return None
    return json.loads(body)


def result_frame(ok, result_json, error, duration_ms, logs, truncated, cpu_ms):
    head = {
        "type": "result",
        "ok": ok,
        "duration_ms": round(duration_ms, 3),
        "logs": logs,
        "logs_truncated": truncated,
        "memory_peak": memory_peak(),
        "cpu_ms": round(cpu_ms, 3),
    }
    if not ok:
        head["error"] = error
        return json.dumps(head)
    # Splice the already-encoded result in rather than encoding it twice.
    return json.dumps(head)[:-1] + ',"result":' + result_json + "}"


def invoke(fn, arity, msg, logs):
    context = LambdaContext(msg.get("id", ""), msg.get("deadline_ms") or 0)
    cpu0 = cpu_time()
    logs.begin()
    start = time.perf_counter()
    ok, result_json, error = True, None, None
    try:
        result = call_handler(fn, arity, msg.get("event"), context)
        try:
            result_json = json.dumps(result, allow_nan=False, default=json_default)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise FerryError("Runtime.MarshalError",
                             "Unable to marshal the result: %s" % exc) from None
    except BaseException as exc:  # noqa: B902 — sys.exit() in a handler is its error too
        ok, error = False, error_info(exc)
    duration_ms = (time.perf_counter() - start) * 1000
    text, truncated = logs.end()
    return result_frame(ok, result_json, error, duration_ms, text,
                        truncated, (cpu_time() - cpu0) * 1000)


def main():
    start = time.perf_counter()
    limit = int(os.environ.get("FERRY_LOG_LIMIT") or DEFAULT_LOG_LIMIT)
    logs = LogCapture(limit)
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)

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
            msg = read_frame(rfile)
            if msg is None:
                os._exit(0)  # the host closed the connection before assigning it
            if msg.get("type") == "init":
                break
            logs.log("ignoring frame of type %r while waiting" % msg.get("type"))
        start = time.perf_counter()
        for k, v in (msg.get("env") or {}).items():
            os.environ[str(k)] = str(v)
        if msg.get("handler"):
            os.environ["FERRY_HANDLER"] = str(msg["handler"])
        # The code folder was filled after the interpreter looked at it.
        importlib.invalidate_caches()
        sys.path_importer_cache.pop(TASK_ROOT, None)

    logs.begin()
    fn, arity, init_error = None, 0, None
    try:
        fn, arity = load_handler(os.environ.get("FERRY_HANDLER") or os.environ.get("_HANDLER", ""))
    except BaseException as exc:  # noqa: B902 — a module may call sys.exit() at import
        init_error = error_info(exc)
    init_logs, init_truncated = logs.end()

    if sock is None:
        sock = connect_or_exit(logs)
    if init_error is not None:
        send_frame(sock, json.dumps({"type": "init_error", "error": init_error,
                                     "logs": init_logs, "logs_truncated": init_truncated}))
        sock.close()
        os._exit(1)
    send_frame(sock, json.dumps({"type": "ready",
                                 "init_ms": round((time.perf_counter() - start) * 1000, 3)}))

    if rfile is None:
        rfile = sock.makefile("rb")
    while True:
        msg = read_frame(rfile)
        if msg is None:
            os._exit(0)  # the host closed the connection: nothing more to do
        if msg.get("type") != "invoke":
            logs.log("ignoring frame of type %r" % msg.get("type"))
            continue
        send_frame(sock, invoke(fn, arity, msg, logs))


if __name__ == "__main__":
    main()
