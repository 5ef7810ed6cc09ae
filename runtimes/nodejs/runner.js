'use strict';
// Ferry's Node.js runner.
//
// Loads the handler named by FERRY_HANDLER ("file.export", CommonJS or ESM; in a
// spare container started with FERRY_SPARE=1, by the host's "init" frame) once,
// then serves invocations one at a time over the Unix socket
// /run/ferry/ferry.sock with length-prefixed JSON frames (see runtimes/README.md).
// No npm packages: Node's standard modules only.
//
// process.stdout/process.stderr writes (console.* included) during an invocation
// are captured as its logs; the protocol has its own socket, so prints can never
// corrupt a result.

const fs = require('fs');
const net = require('net');
const path = require('path');
const { pathToFileURL } = require('url');

const SOCKET_PATH = process.env.FERRY_SOCKET || '/run/ferry/ferry.sock';
const TASK_ROOT = process.env.LAMBDA_TASK_ROOT || '/var/task';
const DEFAULT_LOG_LIMIT = 1 << 20;
const CGROUP_PEAK_FILES = [
  '/sys/fs/cgroup/memory.peak', // cgroup v2
  '/sys/fs/cgroup/memory/memory.max_usage_in_bytes', // cgroup v1
];

const startedAt = performance.now();

// A failure of the runtime itself (bad handler name, result not JSON, ...).
class FerryError extends Error {
  constructor(type, message) {
    super(message);
    this.name = type;
  }
}

// ---- logs -------------------------------------------------------------------

// Replaces process.stdout.write and process.stderr.write. While an invocation runs
// their bytes go to a capped buffer; otherwise to the container's own output.
class LogCapture {
  constructor(limit) {
    this.limit = limit;
    this.active = false;
    this.reset();
    for (const stream of [process.stdout, process.stderr]) {
      const original = stream.write.bind(stream);
      stream.write = (chunk, encoding, cb) => this.write(original, chunk, encoding, cb);
    }
    this.diag = (msg) => fs.writeSync(2, `ferry-runner: ${msg}\n`);
  }

  reset() {
    this.chunks = [];
    this.kept = 0;
    this.total = 0;
  }

  write(original, chunk, encoding, cb) {
    if (!this.active) return original(chunk, encoding, cb);
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    let buf;
    if (Buffer.isBuffer(chunk)) buf = chunk;
    else if (chunk instanceof Uint8Array) buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    else buf = Buffer.from(String(chunk), typeof encoding === 'string' ? encoding : 'utf8');
    const room = this.limit - this.kept;
    if (room > 0) {
      const part = buf.length > room ? buf.subarray(0, room) : buf;
      this.chunks.push(Buffer.from(part)); // copy: the caller may reuse its buffer
      this.kept += part.length;
    }
    this.total += buf.length;
    if (typeof cb === 'function') process.nextTick(cb);
    return true;
  }

  begin() {
    this.reset();
    this.active = true;
  }

  // Returns {logs, truncated} of everything written since begin().
  end() {
    this.active = false;
    const logs = Buffer.concat(this.chunks, this.kept).toString('utf8');
    const truncated = this.total > this.limit;
    this.reset();
    return { logs, truncated };
  }
}

// ---- handler ----------------------------------------------------------------

// "dir/file.export" or "file.a.b": the module is everything up to the first dot
// after the last slash, the rest is the (possibly nested) export, as on Lambda.
function parseHandler(spec) {
  const slash = spec.lastIndexOf('/');
  const dir = spec.slice(0, slash + 1);
  const rest = spec.slice(slash + 1);
  const dot = rest.indexOf('.');
  if (dot <= 0 || dot === rest.length - 1) {
    throw new FerryError('Runtime.MalformedHandlerName', `handler "${spec}" is not of the form file.export`);
  }
  return { module: dir + rest.slice(0, dot), exportPath: rest.slice(dot + 1).split('.') };
}

async function loadModule(base) {
  const abs = path.resolve(TASK_ROOT, base);
  for (const ext of ['.js', '.mjs', '.cjs']) {
    const file = abs + ext;
    if (!fs.existsSync(file)) continue;
    if (ext === '.mjs') return import(pathToFileURL(file).href);
    if (ext === '.cjs') return require(file);
    try {
      return require(file);
    } catch (err) {
      // A .js file in a package with "type": "module" is ESM.
      if (err && err.code === 'ERR_REQUIRE_ESM') return import(pathToFileURL(file).href);
      throw err;
    }
  }
  // No file: maybe a folder with an index or a package name.
  try {
    return require(abs);
  } catch (err) {
    if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes(abs)) {
      throw new FerryError('Runtime.ImportModuleError', `Cannot find module '${base}' in ${TASK_ROOT}`);
    }
    throw err;
  }
}

async function loadHandler(spec) {
  const { module, exportPath } = parseHandler(spec);
  const mod = await loadModule(module);
  let fn = mod;
  for (const key of exportPath) fn = fn == null ? undefined : fn[key];
  if (typeof fn !== 'function') {
    throw new FerryError('Runtime.HandlerNotFound', `${module}.${exportPath.join('.')} is undefined or not a function`);
  }
  return fn;
}

function makeContext(id, deadlineMs, finish) {
  return {
    awsRequestId: id,
    functionName: process.env.FERRY_FUNCTION_NAME || '',
    functionVersion: process.env.FERRY_FUNCTION_VERSION || '',
    memoryLimitInMB: process.env.FERRY_MEMORY_MB || '', // a string, as on Lambda
    invokedFunctionArn: process.env.FERRY_FUNCTION_ARN || '',
    logGroupName: '',
    logStreamName: '',
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis() {
      return deadlineMs ? Math.max(0, Math.floor(deadlineMs - Date.now())) : 0;
    },
    // Lambda's legacy completion methods.
    done: (err, result) => finish(err, result),
    succeed: (result) => finish(null, result),
    fail: (err) => finish(err == null ? new Error('failed') : err),
  };
}

// The stack without the frames of the runner that called the handler.
function userStack(err) {
  if (err instanceof FerryError) return '';
  const lines = String(err.stack || '').split('\n');
  const cut = lines.findIndex((l) => l.includes(__filename));
  if (cut < 0) return lines.join('\n');
  let end = cut;
  if (end > 0 && lines[end - 1].includes('at new Promise (<anonymous>)')) end--;
  return lines.slice(0, end).join('\n');
}

function errorInfo(err) {
  if (err instanceof Error) {
    return { type: err.name || 'Error', message: String(err.message), stack: userStack(err) };
  }
  let message;
  try {
    message = typeof err === 'string' ? err : JSON.stringify(err);
  } catch (_) {
    message = String(err);
  }
  return { type: 'Error', message: String(message), stack: '' };
}

function memoryPeak() {
  for (const file of CGROUP_PEAK_FILES) {
    try {
      const n = parseInt(fs.readFileSync(file, 'utf8'), 10);
      if (Number.isFinite(n)) return n;
    } catch (_) {
      // not this cgroup version
    }
  }
  return 0;
}

// ---- protocol -----------------------------------------------------------------

function frame(text) {
  const body = Buffer.from(text, 'utf8');
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

function connect(file, waitMs = 5000) {
  const deadline = Date.now() + waitMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const sock = net.createConnection(file);
      sock.once('connect', () => {
        sock.removeAllListeners('error');
        resolve(sock);
      });
      sock.once('error', (err) => {
        sock.destroy();
        if (Date.now() > deadline) reject(err);
        else setTimeout(attempt, 10);
      });
    };
    attempt();
  });
}

// Calls fn over the socket's frames, one at a time.
function serveFrames(sock, onFrame) {
  let buf = Buffer.alloc(0);
  let busy = false;
  const pump = async () => {
    if (busy) return;
    busy = true;
    while (buf.length >= 4) {
      const n = buf.readUInt32BE(0);
      if (buf.length < 4 + n) break;
      const body = buf.subarray(4, 4 + n).toString('utf8');
      buf = buf.subarray(4 + n);
      await onFrame(JSON.parse(body));
    }
    busy = false;
  };
  sock.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    pump().catch((err) => {
      logs.diag(`fatal: ${err && err.stack}`);
      process.exit(2);
    });
  });
}

// ---- invocation ---------------------------------------------------------------

let logs;
let current = null; // finish() of the running invocation, for uncaught errors

function runHandler(fn, msg) {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (err, result) => {
      if (settled) return;
      settled = true;
      resolve({ err, result });
    };
    current = finish;
    const context = makeContext(msg.id || '', msg.deadline_ms || 0, finish);
    try {
      const args = [msg.event === undefined ? null : msg.event, context];
      // (event, context, callback): the callback completes it, unless a promise does.
      if (fn.length >= 3) args.push((err, result) => finish(err == null ? null : err, result));
      const out = fn(...args);
      if (out && typeof out.then === 'function') {
        out.then(
          (v) => finish(null, v),
          (e) => finish(e == null ? new Error('handler rejected with ' + e) : e),
        );
      } else if (fn.length < 3) {
        finish(null, out);
      }
    } catch (err) {
      finish(err);
    }
  });
}

async function invoke(fn, msg) {
  const cpu0 = process.cpuUsage();
  logs.begin();
  const t0 = performance.now();
  const { err, result } = await runHandler(fn, msg);
  const durationMs = performance.now() - t0;
  current = null;
  let ok = err == null;
  let error = ok ? null : errorInfo(err);
  let resultJSON;
  if (ok) {
    try {
      resultJSON = JSON.stringify(result === undefined ? null : result);
      if (resultJSON === undefined) resultJSON = 'null'; // a function or a symbol
    } catch (e) {
      ok = false;
      error = { type: 'Runtime.MarshalError', message: `Unable to marshal the result: ${e.message}`, stack: '' };
    }
  }
  const { logs: text, truncated } = logs.end();
  const cpu = process.cpuUsage(cpu0);
  const head = {
    type: 'result',
    ok,
    duration_ms: Math.round(durationMs * 1000) / 1000,
    logs: text,
    logs_truncated: truncated,
    memory_peak: memoryPeak(),
    cpu_ms: (cpu.user + cpu.system) / 1000,
  };
  if (!ok) {
    head.error = error;
    return JSON.stringify(head);
  }
  // Splice the already-encoded result in rather than encoding it twice.
  return JSON.stringify(head).slice(0, -1) + ',"result":' + resultJSON + '}';
}

// Loads the handler named by FERRY_HANDLER, capturing what loading prints.
async function loadFunction() {
  logs.begin();
  let fn = null;
  let initError = null;
  try {
    fn = await loadHandler(process.env.FERRY_HANDLER || process.env._HANDLER || '');
  } catch (err) {
    initError = errorInfo(err);
  }
  const init = logs.end();
  return { fn, initError, logs: init.logs, truncated: init.truncated };
}

async function connectOrExit() {
  let sock;
  try {
    sock = await connect(SOCKET_PATH);
  } catch (err) {
    logs.diag(`cannot connect to ${SOCKET_PATH}: ${err.message}`);
    process.exit(2);
  }
  sock.on('error', (err) => {
    logs.diag(`socket error: ${err.message}`);
    process.exit(2);
  });
  return sock;
}

// Sends init_error and exits.
function sendInitError(sock, loaded) {
  const msg = { type: 'init_error', error: loaded.initError, logs: loaded.logs, logs_truncated: loaded.truncated };
  sock.removeAllListeners('close');
  sock.end(frame(JSON.stringify(msg)), () => process.exit(1));
}

async function main() {
  logs = new LogCapture(parseInt(process.env.FERRY_LOG_LIMIT, 10) || DEFAULT_LOG_LIMIT);
  try {
    process.chdir(TASK_ROOT);
  } catch (_) {
    // no task root: the handler will not be found either
  }

  // An error thrown outside the handler's call stack (a timer, an unawaited
  // promise) fails the running invocation instead of killing the runner.
  const uncaught = (err) => {
    if (current) current(err == null ? new Error('uncaught ' + err) : err);
    else logs.diag(`uncaught error outside an invocation: ${err && err.stack ? err.stack : err}`);
  };
  process.on('uncaughtException', uncaught);
  process.on('unhandledRejection', uncaught);

  // A spare (FERRY_SPARE=1) starts before it belongs to any function: it
  // connects, says "waiting" and loads the handler named by the init frame,
  // after the function's environment is set (runtimes/README.md, "Spares").
  if (process.env.FERRY_SPARE === '1' && !process.env.FERRY_HANDLER) {
    const sock = await connectOrExit();
    sock.on('close', () => process.exit(0)); // the host is gone: nothing more to do
    sock.write(frame(JSON.stringify({ type: 'waiting', init_ms: Math.round((performance.now() - startedAt) * 1000) / 1000 })));
    let fn = null;
    serveFrames(sock, async (msg) => {
      if (fn === null && msg.type === 'init') {
        const t0 = performance.now();
        for (const [k, v] of Object.entries(msg.env || {})) process.env[k] = String(v);
        if (msg.handler) process.env.FERRY_HANDLER = String(msg.handler);
        const loaded = await loadFunction();
        if (loaded.initError) {
          sendInitError(sock, loaded);
          return;
        }
        fn = loaded.fn;
        sock.write(frame(JSON.stringify({ type: 'ready', init_ms: Math.round((performance.now() - t0) * 1000) / 1000 })));
        return;
      }
      if (fn === null || msg.type !== 'invoke') {
        logs.diag(`ignoring frame of type ${msg.type}`);
        return;
      }
      sock.write(frame(await invoke(fn, msg)));
    });
    return;
  }

  const loaded = await loadFunction();
  const sock = await connectOrExit();
  if (loaded.initError) {
    sendInitError(sock, loaded);
    return;
  }
  const fn = loaded.fn;
  sock.on('close', () => process.exit(0)); // the host is gone: nothing more to do
  sock.write(frame(JSON.stringify({ type: 'ready', init_ms: Math.round((performance.now() - startedAt) * 1000) / 1000 })));

  serveFrames(sock, async (msg) => {
    if (msg.type !== 'invoke') {
      logs.diag(`ignoring frame of type ${msg.type}`);
      return;
    }
    sock.write(frame(await invoke(fn, msg)));
  });
}

main();
