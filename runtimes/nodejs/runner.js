'use strict';
// Ferry's Node.js runner.
//
// Loads the handler named by FERRY_HANDLER ("file.export", CommonJS or ESM; in a
// spare container started with FERRY_SPARE=1, by the host's "init" frame) once,
// then serves invocations one at a time over the Unix socket
// /run/ferry/ferry.sock with length-prefixed JSON frames (see runtimes/README.md).
// No npm packages: Node's standard modules only.
//
// What an invocation writes to fd 1 and 2 (console.* included) goes to the host
// through a FIFO as it is written; the protocol has its own socket, so prints
// can never corrupt a result.

const { AsyncLocalStorage } = require('async_hooks');
const fs = require('fs');
const net = require('net');
const path = require('path');
const { Writable } = require('stream');
const { pathToFileURL } = require('url');

const SOCKET_PATH = process.env.FERRY_SOCKET || '/run/ferry/ferry.sock';
const TASK_ROOT = process.env.LAMBDA_TASK_ROOT || '/var/task';
// Deepest nesting of arrays and objects in an event or a result (ferry.MaxJSONDepth).
const MAX_JSON_DEPTH = 512;
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

// The entry point (see the Dockerfile) starts the runner with fd 1 and 2 on the
// FIFO /run/ferry/logs, whose reading end the host holds, and fd 3 on the
// container's own stderr. What the function writes (console.*, process.stdout,
// fs.writeSync(1, ...), child processes, Node's own fatal messages) leaves the
// container as it is written and outlives the runner (runtimes/README.md,
// "Logs"); the runner only writes the host's markers (FERRY_LOG_MARK) around
// each invocation's part. Output of code an invocation left running after it
// ended goes to fd 3, the container's own log.

// A blocking, synchronous stream on fd, in place of process.stdout/stderr:
// Node's own would set the shared FIFO non-blocking, and fs.writeSync(1, ...)
// would then fail with EAGAIN or write short.
function fdStream(fd, route) {
  const stream = new Writable({
    write(chunk, encoding, cb) {
      try {
        writeAll(route(fd), chunk);
        cb();
      } catch (err) {
        cb(err);
      }
    },
  });
  stream.fd = fd;
  stream.isTTY = false;
  stream._isStdio = true;
  stream.destroySoon = stream.destroy;
  stream._destroy = (err, cb) => cb(err); // never closes the fd
  return stream;
}

const pause = new Int32Array(new SharedArrayBuffer(4));

function writeAll(fd, buf) {
  for (let off = 0; off < buf.length; ) {
    try {
      off += fs.writeSync(fd, buf, off);
    } catch (err) {
      if (err.code !== 'EAGAIN') throw err;
      Atomics.wait(pause, 0, 0, 1); // full, and non-blocking after all: let the host catch up
    }
  }
}

class LogMarks {
  constructor() {
    const token = process.env.FERRY_LOG_MARK || '';
    delete process.env.FERRY_LOG_MARK;
    this.diagFd = 3;
    try {
      fs.fstatSync(3);
    } catch (_) {
      this.diagFd = 2; // started without the entry point
    }
    this.diag = (msg) => {
      try {
        writeAll(this.diagFd, Buffer.from(`ferry-runner: ${msg}\n`));
      } catch (_) {
        // nowhere left to say it
      }
    };
    this.beginMark = Buffer.from(`\0ferry-log-${token}-B\0`);
    this.endMark = Buffer.from(`\0ferry-log-${token}-E\0`);
    const route = (fd) => (owner.getStore()?.ended ? this.diagFd : fd);
    const out = fdStream(1, route);
    const err = fdStream(2, route);
    Object.defineProperty(process, 'stdout', { configurable: true, enumerable: true, get: () => out });
    Object.defineProperty(process, 'stderr', { configurable: true, enumerable: true, get: () => err });
  }

  mark(m) {
    try {
      writeAll(1, m);
    } catch (err) {
      this.diag(`writing a log marker: ${err.message}`);
    }
  }

  begin() {
    this.mark(this.beginMark);
  }

  // Ends the invocation's (or the load's) output: what was written before
  // reaches the host before this marker.
  end() {
    this.mark(this.endMark);
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
  if (err instanceof UnhandledRejection) {
    const inner = errorInfo(err.reason);
    return { type: 'Runtime.UnhandledPromiseRejection', message: `${inner.type}: ${inner.message}`, stack: inner.stack };
  }
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

// Whether the JSON text nests arrays and objects deeper than limit.
function jsonTooDeep(text, limit) {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // a backslash escapes the next character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > limit) return true;
    } else if (c === 93 || c === 125) depth--;
  }
  return false;
}

const tooDeepMessage = `nested deeper than the limit of ${MAX_JSON_DEPTH} levels`;

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

// Calls fn over the socket's frames, one at a time. A checkpoint_ack answers
// the running invocation's checkpoint, so it is handed over at once (the
// invocation's frame is still being served).
function serveFrames(sock, onFrame) {
  let buf = Buffer.alloc(0);
  const queue = [];
  let busy = false;
  const pump = async () => {
    if (busy) return;
    busy = true;
    while (queue.length) await onFrame(queue.shift());
    busy = false;
  };
  sock.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    try {
      while (buf.length >= 4) {
        const n = buf.readUInt32BE(0);
        if (buf.length < 4 + n) break;
        const body = buf.subarray(4, 4 + n).toString('utf8');
        buf = buf.subarray(4 + n);
        if (body.startsWith('{"type":"checkpoint_ack"')) {
          const waiter = ackWaiters.shift();
          if (waiter) waiter(JSON.parse(body));
          continue;
        }
        // The frame is one level around the event; a deeper event is refused
        // before parsing, by an invocation that does not call the handler.
        queue.push(jsonTooDeep(body, MAX_JSON_DEPTH + 1) ? { type: 'invoke', tooDeep: true } : JSON.parse(body));
      }
    } catch (err) {
      logs.diag(`fatal: ${err && err.stack}`);
      process.exit(2);
    }
    pump().catch((err) => {
      logs.diag(`fatal: ${err && err.stack}`);
      process.exit(2);
    });
  });
}

// ---- durable functions ----------------------------------------------------------
// (runtimes/README.md, "Durable functions"): a step's result is checkpointed by
// the host before the handler goes on; a later run of the handler gets the
// recorded operations in its invoke frame and returns their results.

const ackWaiters = []; // FIFO: the host answers checkpoints in order

function checkpoint(head, resultJSON) {
  let text = JSON.stringify(head);
  if (resultJSON !== undefined) text = text.slice(0, -1) + ',"result":' + resultJSON + '}';
  return checkpointRaw(text);
}

function checkpointRaw(text) {
  return new Promise((resolve, reject) => {
    ackWaiters.push((ack) => {
      if (ack.ok) resolve(ack);
      else {
        const e = ack.error || {};
        reject(new FerryError(e.type || 'Durable.CheckpointFailed', e.message || 'checkpoint refused'));
      }
    });
    conn.write(frame(text));
  });
}

// A recorded step's failure, thrown again when the handler replays it.
class StepError extends Error {
  constructor(info) {
    super((info && info.message) || 'step failed');
    this.name = (info && info.type) || 'Error';
  }
}

function seconds(d) {
  if (d && typeof d === 'object') {
    return (d.days || 0) * 86400 + (d.hours || 0) * 3600 + (d.minutes || 0) * 60 + (d.seconds || 0);
  }
  return d;
}

const never = () => new Promise(() => {});

// The durable operations of one run, on its context (AWS's names: step, wait,
// createCallback, waitForCallback).
function addDurable(context, ops, suspend) {
  const recorded = new Map((ops || []).map((op) => [op.name, op]));
  const used = new Set();
  const counters = {};
  let suspended = null;
  const begin = (name, kind) => {
    if (suspended !== null) return [null, null, true];
    if (name === undefined || name === null) {
      counters[kind] = (counters[kind] || 0) + 1;
      name = `${kind}#${counters[kind]}`;
    }
    if (typeof name !== 'string' || !name) throw new FerryError('Durable.InvalidName', 'an operation name is a non-empty string');
    if (used.has(name)) {
      throw new FerryError('Durable.DuplicateName', `operation name '${name}' is used twice in this invocation: names must be unique`);
    }
    used.add(name);
    const op = recorded.get(name);
    if (op && op.kind !== kind) {
      throw new FerryError('Durable.NonDeterministic', `operation '${name}' was recorded as a ${op.kind}, not a ${kind}: ` +
        'the handler must reach its operations in the same order on every run');
    }
    return [name, op, false];
  };
  const stop = (name) => {
    suspended = name;
    suspend(name);
    return never();
  };

  context.step = async (name, fn, opts = {}) => {
    if (typeof name === 'function') [name, fn, opts] = [undefined, name, fn || {}];
    const [n, op, stopped] = begin(name, 'step');
    if (stopped) return never();
    if (op) {
      if (op.status === 'succeeded') return op.result === undefined ? null : op.result;
      throw new StepError(op.error);
    }
    const attempts = Math.max(1, opts.attempts || 1);
    const t0 = performance.now();
    let value;
    let attempt = 1;
    for (; ; attempt++) {
      try {
        value = await fn({ attempt });
        break;
      } catch (err) {
        if (attempt >= attempts) {
          if (suspended !== null) return never();
          await checkpoint({ type: 'checkpoint', kind: 'step', name: n, status: 'failed', attempts: attempt,
            error: errorInfo(err), duration_ms: performance.now() - t0 });
          throw err;
        }
        const backoff = (opts.backoffSeconds === undefined ? 1 : opts.backoffSeconds) * (opts.backoffRate || 2) ** (attempt - 1);
        await new Promise((r) => setTimeout(r, backoff * 1000));
      }
    }
    let text;
    try {
      text = JSON.stringify(value === undefined ? null : value);
    } catch (e) {
      throw new FerryError('Step.MarshalError', `the result of step '${n}' is not JSON: ${e.message}`);
    }
    if (text === undefined) text = 'null';
    if (suspended !== null) return never();
    const ack = await checkpoint({ type: 'checkpoint', kind: 'step', name: n, status: 'succeeded', attempts: attempt,
      duration_ms: performance.now() - t0 }, text);
    if ('result' in ack) return ack.result; // an earlier attempt recorded this step first
    return JSON.parse(text);
  };

  // wait(duration) or wait(name, duration); duration in seconds or {days, hours, minutes, seconds}.
  context.wait = async (name, duration) => {
    if (duration === undefined && typeof name !== 'string') [name, duration] = [undefined, name];
    const [n, op, stopped] = begin(name, 'wait');
    if (stopped) return never();
    if (op) return op.status === 'succeeded' ? null : stop(n);
    await checkpoint({ type: 'checkpoint', kind: 'wait', name: n, status: 'started', wait_seconds: seconds(duration) });
    return stop(n);
  };

  context.createCallback = async (name, opts = {}) => {
    if (typeof name === 'object' && name !== null) [name, opts] = [undefined, name];
    const [n, op, stopped] = begin(name, 'callback');
    if (stopped) return never();
    let ack = {};
    if (!op) {
      ack = await checkpoint({ type: 'checkpoint', kind: 'callback', name: n, status: 'started',
        timeout_seconds: opts.timeout === undefined ? 0 : seconds(opts.timeout) });
    }
    return {
      name: n,
      callbackId: ack.callback_id || null,
      url: ack.callback_url || null,
      result: async () => {
        if (suspended !== null) return never();
        const done = recorded.get(n);
        if (done && done.status === 'succeeded') return done.result === undefined ? null : done.result;
        if (done && (done.status === 'failed' || done.status === 'timed_out')) {
          throw new StepError(done.error || { type: 'Callback.Timeout', message: 'callback failed' });
        }
        return stop(n);
      },
    };
  };

  // invoke(functionName, event, name): runs another Ferry function (its latest
  // version) as a checkpointed operation and returns its result; its failure
  // throws. The handler stops here while it runs and replays once it ended.
  context.invoke = async (functionName, event, name) => {
    const [n, op, stopped] = begin(name, 'invoke');
    if (stopped) return never();
    if (op) {
      if (op.status === 'succeeded') return op.result === undefined ? null : op.result;
      if (op.status === 'started') return stop(n);
      throw new StepError(op.error || { type: 'Error', message: 'the invoked function failed' });
    }
    let text;
    try {
      text = JSON.stringify(event === undefined ? null : event);
    } catch (e) {
      throw new FerryError('Invoke.InvalidEvent', `the event of invoke '${n}' is not JSON: ${e.message}`);
    }
    if (text === undefined) text = 'null';
    let head = JSON.stringify({ type: 'checkpoint', kind: 'invoke', name: n, status: 'started', function: functionName });
    head = head.slice(0, -1) + ',"event":' + text + '}';
    await checkpointRaw(head);
    return stop(n);
  };

  // waitForCallback(name, submitter(callbackId, url), {timeout}): createCallback,
  // the submitter as the step "<name>.submit", then the POSTed JSON.
  context.waitForCallback = async (name, submitter, opts = {}) => {
    if (typeof name === 'function') [name, submitter, opts] = [undefined, name, submitter || {}];
    const cb = await context.createCallback(name, opts);
    if (submitter) await context.step(`${cb.name}.submit`, () => submitter(cb.callbackId, cb.url));
    return cb.result();
  };
  return context;
}

// ---- invocation ---------------------------------------------------------------

let logs;
let conn = null; // the socket to the host
// The running invocation: {id, ended, fail(err)}; also the AsyncLocalStorage
// store of everything the handler started, so that output and errors of
// work left running after an invocation ended are told apart.
let current = null;
const owner = new AsyncLocalStorage();

// An unhandled promise rejection, reported as Lambda does.
class UnhandledRejection {
  constructor(reason) {
    this.reason = reason;
  }
}

function runHandler(fn, msg, inv) {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (err, result, viaCallback) => {
      if (settled) return;
      settled = true;
      resolve({ err, result, viaCallback, context });
    };
    // An uncaught error fails the invocation; after the handler finished,
    // it still does, until the result is sent.
    inv.fail = (err) => {
      if (!settled) finish(err);
      else if (inv.late === undefined) inv.late = err;
    };
    const done = (err, result) => finish(err == null ? null : err, result, true);
    const context = addDurable(makeContext(msg.id || '', msg.deadline_ms || 0, done), msg.operations,
      (name) => {
        if (settled) return;
        settled = true;
        resolve({ suspended: name, context });
      });
    owner.run(inv, () => {
      try {
        const args = [msg.event === undefined ? null : msg.event, context];
        // (event, context, callback): the callback completes it, unless a promise does.
        if (fn.length >= 3) args.push(done);
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
  });
}

// The function's processes: this runner's descendants and, in a container
// whose init is docker-init, the orphans it adopted. Never anything else, so a
// runner started outside a container touches no stranger's process.
function functionProcesses() {
  const roots = new Set([process.pid]);
  try {
    if (process.ppid === 1 && fs.readFileSync('/proc/1/comm', 'utf8').trim() === 'docker-init') roots.add(1);
  } catch (_) {
    // no /proc: only our own descendants
  }
  const children = new Map();
  let names = [];
  try {
    names = fs.readdirSync('/proc');
  } catch (_) {
    return new Set();
  }
  for (const name of names) {
    if (!/^[0-9]+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(name));
    } catch (_) {
      // gone meanwhile
    }
  }
  const found = new Set();
  const todo = [...roots];
  while (todo.length) {
    for (const pid of children.get(todo.pop()) || []) {
      if (!found.has(pid) && !roots.has(pid)) {
        found.add(pid);
        todo.push(pid);
      }
    }
  }
  return found;
}

// Kills the function's processes started since before was taken; libuv and
// the container's init reap them.
function endProcesses(before) {
  for (const pid of functionProcesses()) {
    if (before.has(pid)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch (_) {
      // already gone
    }
  }
}

// Resolves when nothing but the runner's own socket keeps the event loop
// alive: Lambda's callbackWaitsForEmptyEventLoop.
function emptyEventLoop() {
  return new Promise((resolve) => {
    process.once('beforeExit', () => {
      conn.ref();
      resolve();
    });
    conn.unref();
  });
}

async function invoke(fn, msg) {
  const cpu0 = process.cpuUsage();
  const inv = { id: msg.id || '', ended: false, late: undefined };
  inv.fail = (e) => {
    if (inv.late === undefined) inv.late = e;
  };
  current = inv;
  const processes = functionProcesses();
  logs.begin();
  const t0 = performance.now();
  let { err, result, viaCallback, context, suspended } = msg.tooDeep
    ? { err: new FerryError('Runtime.UnmarshalError', `the event is ${tooDeepMessage}`) }
    : await runHandler(fn, msg, inv);
  if (viaCallback && context.callbackWaitsForEmptyEventLoop) await emptyEventLoop();
  // Rejections of promises nobody awaited are reported after the microtasks
  // ran: one turn of the event loop lets them reach this invocation.
  await new Promise((resolve) => setImmediate(resolve));
  const durationMs = performance.now() - t0;
  endProcesses(processes);
  if (err == null && inv.late !== undefined) err = inv.late;
  inv.ended = true;
  current = null;
  let ok = err == null;
  let error = ok ? null : errorInfo(err);
  let resultJSON;
  if (ok) {
    let why = null;
    try {
      resultJSON = JSON.stringify(result === undefined ? null : result);
      if (resultJSON === undefined) resultJSON = 'null'; // a function or a symbol
      if (jsonTooDeep(resultJSON, MAX_JSON_DEPTH)) why = `it is ${tooDeepMessage}`;
    } catch (e) {
      why = /call stack/.test(e.message) ? `it is ${tooDeepMessage}` : e.message;
    }
    if (why !== null) {
      ok = false;
      error = { type: 'Runtime.MarshalError', message: `Unable to marshal the result: ${why}`, stack: '' };
    }
  }
  logs.end();
  const cpu = process.cpuUsage(cpu0);
  const head = {
    type: 'result',
    ok,
    duration_ms: Math.round(durationMs * 1000) / 1000,
    memory_peak: memoryPeak(),
    cpu_ms: (cpu.user + cpu.system) / 1000,
  };
  if (suspended !== undefined) {
    // Stopped at a wait or a callback: the host resumes it later.
    head.ok = true;
    head.suspended = suspended;
    return JSON.stringify(head);
  }
  if (!ok) {
    head.error = error;
    return JSON.stringify(head);
  }
  // Splice the already-encoded result in rather than encoding it twice.
  return JSON.stringify(head).slice(0, -1) + ',"result":' + resultJSON + '}';
}

// Loads the handler named by FERRY_HANDLER; the end marker ends what loading printed.
async function loadFunction() {
  let fn = null;
  let initError = null;
  try {
    fn = await loadHandler(process.env.FERRY_HANDLER || process.env._HANDLER || '');
  } catch (err) {
    initError = errorInfo(err);
  }
  logs.end();
  return { fn, initError };
}

async function connectOrExit() {
  let sock;
  try {
    sock = await connect(SOCKET_PATH);
  } catch (err) {
    logs.diag(`cannot connect to ${SOCKET_PATH}: ${err.message}`);
    process.exit(2);
  }
  conn = sock;
  sock.on('error', (err) => {
    logs.diag(`socket error: ${err.message}`);
    process.exit(2);
  });
  return sock;
}

// Sends init_error and exits.
function sendInitError(sock, loaded) {
  const msg = { type: 'init_error', error: loaded.initError };
  sock.removeAllListeners('close');
  sock.end(frame(JSON.stringify(msg)), () => process.exit(1));
}

async function main() {
  logs = new LogMarks();
  try {
    process.chdir(TASK_ROOT);
  } catch (_) {
    // no task root: the handler will not be found either
  }

  // An error thrown outside the handler's call stack (a timer, a promise
  // nobody awaited) fails the invocation that started that work while it
  // runs; once it ended, the error goes to the container's own log, never to
  // another invocation. Errors of work started at load time fail whichever
  // invocation is running. The runner survives all of them.
  const uncaught = (err) => {
    const started = owner.getStore();
    const inv = started && started.ended ? null : current;
    if (inv) {
      inv.fail(err == null ? new Error('uncaught ' + err) : err);
      return;
    }
    const raw = err instanceof UnhandledRejection ? err.reason : err;
    const where = started ? `of invocation ${started.id} after it ended` : 'outside an invocation';
    logs.diag(`uncaught error ${where}: ${raw && raw.stack ? raw.stack : raw}`);
  };
  process.on('uncaughtException', uncaught);
  process.on('unhandledRejection', (reason) => uncaught(new UnhandledRejection(reason)));

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
        logs.begin(); // the load's output, the host's capture since the init frame
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

  // Connected before loading: the host bounds the load by the function's
  // timeout from here (runtimes/README.md, "Loading").
  const sock = await connectOrExit();
  const loaded = await loadFunction();
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
