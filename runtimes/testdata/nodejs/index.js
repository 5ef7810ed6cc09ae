// Test function for the executor tests: one handler, the operation is in the event.
const fs = require("fs");
const os = require("os");
const cp = require("child_process");

const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));

exports.handler = async (event, context) => {
  for (const line of event.say || []) console.log(line); // written before the operation
  switch (event.op) {
    case "hello":
      console.log("hello from nodejs");
      return { hello: event.name || "world" };
    case "context":
      return {
        event,
        id: context.awsRequestId,
        name: context.functionName,
        version: String(context.functionVersion),
        memory: String(context.memoryLimitInMB),
        remaining: context.getRemainingTimeInMillis(),
        env: process.env.GREETING,
        uid: process.getuid(),
      };
    case "raise":
      throw new TypeError("bad input: " + event.n);
    case "sleep":
      await sleep(event.s);
      for (const line of event.then || []) console.log(line);
      return "slept";
    case "kill9":
      process.kill(process.pid, "SIGKILL");
      await sleep(10);
      return "alive";
    case "bgerror":
      setTimeout(() => {
        console.log("bg line");
        throw new Error("bg boom");
      }, 10);
      await sleep(1);
      return "slept";
    case "spin":
      for (;;) {}
    case "hog": {
      const chunks = [];
      for (;;) chunks.push(Buffer.alloc(16 << 20, 1));
    }
    case "forkbomb": {
      const kids = [];
      let error = "";
      for (let i = 0; i < 500; i++) {
        const k = cp.spawn("sleep", ["30"]);
        const ok = await new Promise((res) => {
          k.once("spawn", () => res(true));
          k.once("error", (e) => { error = e.code || e.message; res(false); });
        });
        if (!ok) break;
        kids.push(k);
      }
      for (const k of kids) k.kill("SIGKILL");
      return { forked: kids.length, error };
    }
    case "write": {
      const out = {};
      for (const p of ["/var/task/x", "/etc/x", "/x", "/tmp/x"]) {
        try { fs.writeFileSync(p, "x"); out[p] = "ok"; } catch (e) { out[p] = e.code; }
      }
      return out;
    }
    case "net": {
      const dev = fs.readFileSync("/proc/net/dev", "utf8").split("\n").slice(2)
        .filter((l) => l.includes(":")).map((l) => l.split(":")[0].trim());
      return { sys: fs.readdirSync("/sys/class/net").sort(), proc: dev.sort() };
    }
    case "spam": {
      const line = "x".repeat(99);
      for (let i = 0; i < event.lines; i++) console.log(line);
      return "spammed";
    }
    case "nonjson": {
      const a = {};
      a.self = a;
      return a;
    }
    case "exit":
      process.exit(event.code || 3);
    case "counter": {
      let n = 0;
      try { n = parseInt(fs.readFileSync("/tmp/counter", "utf8"), 10); } catch (e) {}
      n++;
      fs.writeFileSync("/tmp/counter", String(n));
      return n;
    }
    case "host":
      await sleep(event.s || 0);
      return os.hostname();
    case "limits": {
      const read = (...paths) => {
        for (const p of paths) {
          try {
            return fs.readFileSync(p, "utf8").trim();
          } catch (_) {}
        }
        return "";
      };
      const names = ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "_HANDLER", "FERRY_HANDLER", "GREETING", "HOME", "LAMBDA_TASK_ROOT"];
      return {
        memory: read("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"),
        swap: read("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
        cpu: read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us",
          "/sys/fs/cgroup/cpu.max").split(" ")[0],
        pids: read("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"),
        env: Object.fromEntries(names.map((k) => [k, process.env[k] || ""])),
        files: fs.readdirSync("/var/task").sort(),
      };
    }
    case "fdwrite": {
      const n = fs.writeSync(1, "a".repeat(200000) + "\n");
      fs.writeSync(2, "err line\n");
      console.log("print");
      cp.execFileSync("sh", ["-c", "echo child out; echo child err >&2"], { stdio: "inherit" });
      return n;
    }
    case "late":
      setTimeout(() => console.log("late output"), 300);
      setTimeout(() => { throw new Error("late boom"); }, 400);
      return "returned";
    case "unawaited":
      Promise.reject(new Error("nobody awaited"));
      return "returned";
    case "procs":
      cp.spawn("sleep", ["100"], { stdio: "ignore" });
      cp.execSync("sleep 100 >/dev/null 2>&1 &");
      return "started";
    case "pids":
      return fs.readdirSync("/proc").filter((p) => /^[0-9]+$/.test(p) && +p !== 1 && +p !== process.pid)
        .map((p) => fs.readFileSync(`/proc/${p}/comm`, "utf8").trim()).sort();
    case "deep": {
      let out = [];
      for (let i = 1; i < event.n; i++) out = [out];
      return out;
    }
    case "echo":
      return event;
    case "getenv":
      return process.env[event.name] ?? null;
  }
  throw new Error("unknown op " + event.op);
};

// Callback style: the invocation waits for the timer unless told not to.
exports.callback = (event, context, callback) => {
  if (event.nowait) context.callbackWaitsForEmptyEventLoop = false;
  setTimeout(() => console.log("timer ran"), 300);
  callback(null, "cb");
};
