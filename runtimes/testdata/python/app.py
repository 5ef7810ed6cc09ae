# Test function for the executor tests: one handler, the operation is in the event.
import os
import socket
import subprocess
import sys
import threading
import time


def handler(event, context):
    for line in event.get("say", []):  # written before the operation, flushed
        print(line, flush=True)
    op = event.get("op")
    if op == "hello":
        print("hello from python")
        return {"hello": event.get("name", "world")}
    if op == "context":
        return {
            "event": event,
            "id": context.aws_request_id,
            "name": context.function_name,
            "version": context.function_version,
            "memory": str(context.memory_limit_in_mb),
            "remaining": context.get_remaining_time_in_millis(),
            "env": os.environ.get("GREETING"),
            "uid": os.getuid(),
        }
    if op == "raise":
        raise ValueError("bad input: " + str(event.get("n")))
    if op == "sleep":
        time.sleep(event["s"])
        for line in event.get("then", []):
            print(line, flush=True)
        return "slept"
    if op == "kill9":
        os.kill(os.getpid(), 9)
    if op == "segv":
        import ctypes
        ctypes.string_at(0)
    if op == "bgerror":
        def fail():
            print("bg line", flush=True)
            raise ValueError("bg boom")
        t = threading.Thread(target=fail)
        t.start()
        t.join()
        return "joined"
    if op == "spin":
        while True:
            pass
    if op == "hog":
        chunks = []
        while True:
            chunks.append(b"\x01" * (16 << 20))
    if op == "forkbomb":
        pids, err = [], ""
        try:
            for _ in range(500):
                pid = os.fork()
                if pid == 0:
                    time.sleep(30)
                    os._exit(0)
                pids.append(pid)
        except OSError as e:
            err = e.__class__.__name__ + ": " + str(e)
        for pid in pids:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        return {"forked": len(pids), "error": err}
    if op == "write":
        out = {}
        for path in ("/var/task/x", "/etc/x", "/x", "/tmp/x"):
            try:
                with open(path, "w") as f:
                    f.write("x")
                out[path] = "ok"
            except OSError as e:
                out[path] = e.__class__.__name__
        return out
    if op == "net":
        with open("/proc/net/dev") as f:
            dev = [line.split(":")[0].strip() for line in f.readlines()[2:]]
        return {"sys": sorted(os.listdir("/sys/class/net")), "proc": sorted(dev)}
    if op == "spam":
        line = "x" * 99
        for _ in range(event["lines"]):
            print(line)
        return "spammed"
    if op == "nonjson":
        return {1, 2, 3}
    if op == "exit":
        sys.stdout.flush()
        os._exit(event.get("code", 3))
    if op == "counter":
        path = "/tmp/counter"
        n = 0
        if os.path.exists(path):
            with open(path) as f:
                n = int(f.read())
        n += 1
        with open(path, "w") as f:
            f.write(str(n))
        return n
    if op == "host":
        time.sleep(event.get("s", 0))
        return socket.gethostname()
    if op == "limits":
        def read(*paths):
            for p in paths:
                try:
                    with open(p) as f:
                        return f.read().strip()
                except OSError:
                    pass
            return ""
        names = ("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                 "_HANDLER", "FERRY_HANDLER", "GREETING", "HOME", "LAMBDA_TASK_ROOT")
        return {
            "memory": read("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"),
            "swap": read("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
            "cpu": read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us",
                        "/sys/fs/cgroup/cpu.max").split(" ")[0],
            "pids": read("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"),
            "env": {k: os.environ.get(k, "") for k in names},
            "files": sorted(os.listdir("/var/task")),
        }
    if op == "fdwrite":
        n = os.write(1, b"a" * 200000 + b"\n")
        os.write(2, b"err line\n")
        print("print")
        subprocess.run(["sh", "-c", "echo child out; echo child err >&2"], check=True)
        return n
    if op == "late":
        def late():
            time.sleep(0.3)
            print("late output")
        threading.Thread(target=late).start()
        return "returned"
    if op == "procs":
        subprocess.Popen(["sleep", "100"])
        os.system("sleep 100 &")
        return "started"
    if op == "pids":
        return sorted(open("/proc/%s/comm" % p).read().strip()
                      for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, os.getpid()))
    if op == "deep":
        out = []
        for _ in range(event["n"] - 1):
            out = [out]
        return out
    if op == "listen":
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", event["port"]))
        srv.listen(8)

        def serve():
            while True:
                conn, _ = srv.accept()
                conn.sendall(b"hello from " + socket.gethostname().encode())
                conn.close()

        threading.Thread(target=serve, daemon=True).start()
        return "listening"
    if op == "connect":
        try:
            with socket.create_connection((event["host"], event["port"]), timeout=event.get("timeout", 2)) as conn:
                return {"ok": True, "got": conn.recv(100).decode()}
        except OSError as e:
            return {"ok": False, "error": e.__class__.__name__ + ": " + str(e)}
    if op == "mounts":
        out = {}
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                out[fields[4]] = fields[3]  # mount point: its root in the source file system
        return out
    if op == "echo":
        return event
    if op == "getenv":
        return os.environ.get(event["name"])
    raise KeyError("unknown op %r" % op)
