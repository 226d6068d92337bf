// Shared harness for Membrane's integration tests (node:test, ESM).
//
// Every process a test starts goes through spawnManaged(), which registers it for cleanup; every
// test file calls `after(cleanup)` so the gateway, the upstream servers and their children die
// even when a test fails. All traffic stays on 127.0.0.1 and every port is chosen at run time.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import {
  Client as ClientV2,
  StreamableHTTPClientTransport as StreamableHTTPClientTransportV2,
} from '@modelcontextprotocol/client';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

const here = path.dirname(fileURLToPath(import.meta.url));

export const SOURCE_DIR = path.resolve(process.env.MEMBRANE_SOURCE_DIR ?? path.join(here, '..', '..'));
export const MEMBRANE_BIN = path.resolve(process.env.MEMBRANE_BIN ?? path.join(SOURCE_DIR, 'build', 'membrane'));
export const NODE = process.execPath;
export const EVERYTHING_JS = path.join(
  SOURCE_DIR, 'tests', 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
export const CRASHY_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'crashy-server.mjs');

// Newest protocol revision the pinned SDK speaks, and the older ones a gateway must still serve.
export const PROTOCOL_LATEST = '2025-11-25';
export const PROTOCOL_OLDER = ['2025-06-18', '2025-03-26'];

// Text that must survive every hop byte for byte (accents, dash, CJK, astral-plane emoji). It is
// NUL-free on purpose; control characters including NUL have their own test in parity_suite.
export const UNICODE_TEXT = 'héllo — 日本語 🚀 NUL-free';

// Capabilities a "full" client declares: server-everything registers trigger-sampling-request,
// trigger-elicitation-request and get-roots-list only for clients that declare these.
export const FULL_CAPABILITIES = Object.freeze({
  sampling: {},
  elicitation: { form: {} },
  roots: { listChanged: true },
});

export const TEST_ROOTS = Object.freeze([
  { uri: 'file:///tmp/membrane-root-%CE%B1', name: 'Root α' },
  { uri: 'file:///tmp/membrane-root-b', name: 'Root b' },
]);

const log = (...args) => {
  if (process.env.MEMBRANE_IT_VERBOSE) console.error('[harness]', ...args);
};

// ------------------------------------------------------------------------------------------------
// Cleanup registry
// ------------------------------------------------------------------------------------------------

const cleanups = [];        // LIFO list of async functions
const liveProcesses = new Set();  // ManagedProcess objects not yet known to have exited
const allProcesses = [];     // every ManagedProcess, for the failure log dump

/** Registers `fn` to run in cleanup() (last registered runs first). Returns fn. */
export function defer(fn) {
  cleanups.push(fn);
  return fn;
}

/** Runs every deferred function, then SIGKILLs any process still alive. Never throws. */
export async function cleanup() {
  while (cleanups.length > 0) {
    const fn = cleanups.pop();
    try {
      await withTimeout(Promise.resolve().then(fn), 15_000, 'cleanup step');
    } catch (err) {
      log('cleanup step failed:', err?.message ?? err);
    }
  }
  for (const p of [...liveProcesses]) {
    try { await p.stop({ signal: 'SIGKILL', timeoutMs: 5_000 }); } catch { /* ignore */ }
  }
}

function killAllNow() {
  for (const p of liveProcesses) {
    try { p.proc.kill('SIGKILL'); } catch { /* ignore */ }
  }
}

process.on('exit', (code) => {
  killAllNow();
  if ((code !== 0 || process.exitCode) || process.env.MEMBRANE_IT_VERBOSE) dumpLogs();
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    killAllNow();
    process.exit(1);
  });
}

// Each test file must finish in under two minutes even when the gateway hangs on every request:
// past the watchdog, everything is killed and the file fails with a clear message.
const WATCHDOG_MS = Number(process.env.MEMBRANE_IT_WATCHDOG_MS ?? 110_000);
const startedAt = Date.now();
let watchdog;
function armWatchdog(ms) {
  clearTimeout(watchdog);
  watchdog = setTimeout(() => {
    process.stderr.write(`\n[harness] watchdog: this test file ran for more than ${ms} ms; ` +
      'killing its processes and failing (something hung)\n');
    killAllNow();
    process.exit(1);
  }, Math.max(0, ms - (Date.now() - startedAt)));
  watchdog.unref();
}
armWatchdog(WATCHDOG_MS);

/**
 * A file that runs longer than two minutes on purpose (many cells, each bounded) sets its own
 * budget, counted from the file's start; MEMBRANE_IT_WATCHDOG_MS still wins when it is longer.
 */
export function setWatchdog(ms) {
  armWatchdog(Math.max(ms, WATCHDOG_MS));
}

// Slow builds (sanitizers) set MEMBRANE_IT_TIME_SCALE, e.g. 3: bounded waits that only exist to
// turn a hang into a failure are multiplied by it. It never makes a test pass that would fail.
export const TIME_SCALE = Math.max(1, Number(process.env.MEMBRANE_IT_TIME_SCALE ?? 1) || 1);

function dumpLogs() {
  for (const p of allProcesses) {
    const tail = p.lines.slice(p.name.startsWith('membrane') ? -80 : -20);
    if (tail.length === 0) continue;
    process.stderr.write(`\n----- last ${tail.length} log lines of ${p.name} (pid ${p.pid}) -----\n`);
    for (const l of tail) process.stderr.write(`  ${l}\n`);
  }
}

// ------------------------------------------------------------------------------------------------
// Small utilities
// ------------------------------------------------------------------------------------------------

export { sleep };

/** Rejects with a descriptive error if `promise` does not settle within `ms`. */
export function withTimeout(promise, ms, what = 'operation') {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `fn` until it returns a truthy value (which is returned) or `timeoutMs` passes. */
export async function waitFor(fn, { timeoutMs = 10_000, intervalMs = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
        (lastError ? ` (last error: ${lastError.message ?? lastError})` : ''));
    }
    await sleep(intervalMs);
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A port nobody listens on (for "upstream down" cases). */
export async function closedPort() {
  return freePort();
}

export function tmpDir(prefix = 'membrane-it-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a session key file (hex text of `bytes` random bytes) and returns its path. */
export function writeSessionKeyFile(dir, name = 'session.key', bytes = 48) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, crypto.randomBytes(bytes).toString('hex') + '\n', { mode: 0o600 });
  return file;
}

/** True if `pid` names a live, non-zombie process. */
export function pidAlive(pid) {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;  // gone between the two checks
  }
}

/** Every descendant pid of `rootPid` (children, grandchildren, ...), from `ps`. */
export function descendantPids(rootPid) {
  const out = execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' });
  const children = new Map();
  for (const line of out.split('\n')) {
    const m = line.trim().match(/^(\d+)\s+(\d+)$/);
    if (!m) continue;
    const [pid, ppid] = [Number(m[1]), Number(m[2])];
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(pid);
  }
  const result = [];
  const stack = [rootPid];
  while (stack.length) {
    for (const c of children.get(stack.pop()) ?? []) {
      result.push(c);
      stack.push(c);
    }
  }
  return result;
}

/** Direct children of `pid` as reported by `ps --ppid`. */
export function childPids(pid) {
  try {
    const out = execFileSync('ps', ['--ppid', String(pid), '-o', 'pid='], { encoding: 'utf8' });
    return out.split('\n').map((s) => s.trim()).filter(Boolean).map(Number);
  } catch {
    return [];  // ps exits 1 when there is no match
  }
}

// ------------------------------------------------------------------------------------------------
// Managed child processes
// ------------------------------------------------------------------------------------------------

class ManagedProcess {
  constructor(name, proc) {
    this.name = name;
    this.proc = proc;
    this.pid = proc.pid;
    this.lines = [];
    this.exitCode = undefined;
    this.exitSignal = undefined;
    this._waiters = new Set();
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        liveProcesses.delete(this);
        log(`${name} (pid ${this.pid}) exited code=${code} signal=${signal}`);
        for (const w of this._waiters) w.onExit();
        resolve({ code, signal });
      });
    });
    proc.on('error', (err) => {
      this.lines.push(`[spawn error] ${err.message}`);
      for (const w of this._waiters) w.onExit();
    });
    for (const [stream, tag] of [[proc.stdout, 'out'], [proc.stderr, 'err']]) {
      if (!stream) continue;
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          this._addLine(`${tag}| ${buf.slice(0, nl).replace(/\r$/, '')}`);
          buf = buf.slice(nl + 1);
        }
      });
      stream.on('end', () => { if (buf) this._addLine(`${tag}| ${buf}`); buf = ''; });
    }
  }

  _addLine(line) {
    this.lines.push(line);
    if (this.lines.length > 5000) this.lines.splice(0, 1000);
    for (const w of this._waiters) w.onLine(line);
  }

  get running() {
    return this.exitCode === undefined && this.exitSignal === undefined;
  }

  logTail(n = 30) {
    return this.lines.slice(-n).join('\n');
  }

  /** Resolves with the regex match of the first log line (stdout or stderr) matching `re`. */
  waitForLine(re, timeoutMs = 20_000) {
    for (const l of this.lines) {
      const m = l.match(re);
      if (m) return Promise.resolve(m);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        onLine: (line) => {
          const m = line.match(re);
          if (m) finish(() => resolve(m));
        },
        onExit: () => finish(() => reject(new Error(
          `${this.name} exited (code ${this.exitCode}, signal ${this.exitSignal}) before logging ${re}; ` +
          `log tail:\n${this.logTail()}`))),
      };
      const timer = setTimeout(() => finish(() => reject(new Error(
        `${this.name} did not log ${re} within ${timeoutMs} ms; log tail:\n${this.logTail()}`))), timeoutMs);
      const finish = (f) => {
        clearTimeout(timer);
        this._waiters.delete(waiter);
        f();
      };
      this._waiters.add(waiter);
      if (!this.running) waiter.onExit();
    });
  }

  /** Sends `signal`, waits up to timeoutMs for exit, then SIGKILLs. Resolves {code, signal}. */
  async stop({ signal = 'SIGTERM', timeoutMs = 10_000 } = {}) {
    if (!this.running) return { code: this.exitCode, signal: this.exitSignal };
    try { this.proc.kill(signal); } catch { /* already gone */ }
    try {
      return await withTimeout(this.exited, timeoutMs, `${this.name} exit after ${signal}`);
    } catch {
      try { this.proc.kill('SIGKILL'); } catch { /* ignore */ }
      return await this.exited;
    }
  }
}

/** Spawns a process with piped output, registered for cleanup. */
export function spawnManaged(name, command, args, { env = {}, cwd = SOURCE_DIR, stdin = 'ignore' } = {}) {
  const proc = spawn(command, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: [stdin, 'pipe', 'pipe'],
  });
  const mp = new ManagedProcess(name, proc);
  liveProcesses.add(mp);
  allProcesses.push(mp);
  defer(() => mp.stop({ signal: 'SIGTERM', timeoutMs: 5_000 }));
  log(`spawned ${name} pid ${proc.pid}: ${command} ${args.join(' ')}`);
  return mp;
}

// ------------------------------------------------------------------------------------------------
// Real MCP peers
// ------------------------------------------------------------------------------------------------

/**
 * Starts @modelcontextprotocol/server-everything in Streamable HTTP mode on a free port (or on
 * `port`). Resolves {url, port, proc, stop()} once it listens.
 */
export async function startEverythingHttp({ port, name = 'everything-http', attempts = 3 } = {}) {
  let lastErr;
  for (let i = 0; i < attempts; i++) {
    const p = port ?? await freePort();
    const proc = spawnManaged(`${name}:${p}`, NODE, [EVERYTHING_JS, 'streamableHttp'], { env: { PORT: String(p) } });
    try {
      await proc.waitForLine(/listening on port/i, 30_000);
      await waitFor(() => tcpConnectable(p), { timeoutMs: 10_000, what: `port ${p}` });
      return {
        url: `http://127.0.0.1:${p}/mcp`,
        port: p,
        proc,
        stop: (opts) => proc.stop(opts),
      };
    } catch (err) {
      lastErr = err;
      await proc.stop({ signal: 'SIGKILL' });
      if (port !== undefined) break;  // a fixed port was asked for: do not silently change it
    }
  }
  throw lastErr;
}

/** Argument vector (command + args) that runs server-everything over stdio. */
export function everythingStdioCommand() {
  return [NODE, EVERYTHING_JS, 'stdio'];
}

/** Argument vector of the crashy stdio fixture. */
export function crashyStdioCommand() {
  return [NODE, CRASHY_JS];
}

export const MODERN_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'modern-server.mjs');

/**
 * Starts tests/fixtures/modern-server.mjs: a 2026-07-28-only server, or with `sessions` one that
 * also serves 2025 clients with sessions. Resolves {url, proc}.
 */
export async function startModernServer({ name = 'modern', ttlMs = 60_000, sessions = false } = {}) {
  const proc = spawnManaged(name, NODE, [MODERN_JS, '0', String(ttlMs), ...(sessions ? ['--sessions'] : [])]);
  const m = await proc.waitForLine(/listening on (http:\/\/\S+)/, 20_000);
  return { url: m[1], proc };
}

function quoteWord(w) {
  return /[\s'"]/.test(w) ? `'${w.replace(/'/g, '')}'` : w;
}

/** `--upstream` flag value `NAME=stdio:COMMAND ARGS…` for an argv. */
export function stdioUpstreamFlag(name, argv) {
  return `${name}=stdio:${argv.map(quoteWord).join(' ')}`;
}

export function tcpConnectable(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

// ------------------------------------------------------------------------------------------------
// The gateway
// ------------------------------------------------------------------------------------------------

export function gatewayBinaryProblem() {
  if (!fs.existsSync(MEMBRANE_BIN)) return `gateway binary ${MEMBRANE_BIN} does not exist (set MEMBRANE_BIN)`;
  try {
    fs.accessSync(MEMBRANE_BIN, fs.constants.X_OK);
  } catch {
    return `gateway binary ${MEMBRANE_BIN} is not executable`;
  }
  return undefined;
}

/**
 * Starts `membrane serve ARGS…` (adding `--listen 127.0.0.1:0` unless args already choose a
 * listener or a config file) and waits for "listening on http(s)://HOST:PORT" on its stderr.
 *
 * Resolves {base, url, port, scheme, proc, pid, lines, mcp(name), sse(name), stop()}.
 */
export async function startGateway(args, { env = {}, name = 'membrane', startTimeoutMs = 30_000 } = {}) {
  const problem = gatewayBinaryProblem();
  if (problem) throw new Error(problem);
  const argv = ['serve'];
  if (!args.includes('-c') && !args.includes('--config') && !args.includes('--listen')) {
    argv.push('--listen', '127.0.0.1:0');
  }
  argv.push(...args);
  const proc = spawnManaged(name, MEMBRANE_BIN, argv, { env });
  // Runs before the generic stop registered by spawnManaged: stop the gateway, then make sure
  // none of its stdio upstream children outlive it (even if it had to be SIGKILLed).
  defer(async () => {
    if (!proc.running) return;
    let kids = [];
    try { kids = descendantPids(proc.pid); } catch { /* ps unavailable */ }
    await proc.stop({ signal: 'SIGTERM', timeoutMs: 10_000 });
    await sleep(200);
    for (const pid of kids) {
      if (pidAlive(pid)) {
        log(`killing leftover child ${pid} of ${name}`);
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
    }
  });
  const m = await proc.waitForLine(/membrane listening on (https?):\/\/(\S+)/, startTimeoutMs);
  const scheme = m[1];
  const hostPort = m[2].replace(/[/,;.)\]]+$/, '').replace(/\/.*$/, '');
  const parsed = new URL(`${scheme}://${hostPort}`);
  const port = Number(parsed.port);
  const base = `${scheme}://127.0.0.1:${port}`;
  return {
    base,
    url: base,
    port,
    scheme,
    proc,
    pid: proc.pid,
    lines: proc.lines,
    mcp: (upstream) => `${base}/mcp/${upstream}`,
    sse: (upstream) => `${base}/sse/${upstream}`,
    stop: (opts) => proc.stop(opts),
  };
}

// ------------------------------------------------------------------------------------------------
// MCP clients (the official SDK)
// ------------------------------------------------------------------------------------------------

/** Deterministic answers the test client gives to server-initiated requests. */
export function samplingAnswer(request) {
  const first = request.params.messages?.[0]?.content;
  const text = first && first.type === 'text' ? first.text : '';
  return {
    role: 'assistant',
    content: { type: 'text', text: `sampled(${text.length}): ✓ ünïcødé 🚀` },
    model: 'membrane-test-model',
    stopReason: 'endTurn',
  };
}

export const ELICITATION_ANSWER = Object.freeze({
  action: 'accept',
  content: { name: 'Zoë 山田', check: true, email: 'zoe@example.com', integer: 7, number: 2.5 },
});

/**
 * Creates an SDK Client that declares `capabilities` and answers the server-initiated requests
 * those capabilities allow. `seen` records what the server sent: {sampling: [], elicitation: [],
 * roots: [], logging: []}. `onElicit(request, extra)` replaces the default elicitation answer.
 */
export function makeClient(capabilities = {}, { name = 'membrane-it', onElicit } = {}) {
  const client = new Client({ name, version: '1.0.0' }, { capabilities });
  const seen = { sampling: [], elicitation: [], roots: [], logging: [] };
  if (capabilities.sampling) {
    client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
      seen.sampling.push(req);
      return samplingAnswer(req);
    });
  }
  if (capabilities.elicitation) {
    client.setRequestHandler(ElicitRequestSchema, async (req, extra) => {
      seen.elicitation.push(req);
      return onElicit ? onElicit(req, extra) : structuredClone(ELICITATION_ANSWER);
    });
  }
  if (capabilities.roots) {
    client.setRequestHandler(ListRootsRequestSchema, async (req) => {
      seen.roots.push(req);
      return { roots: structuredClone(TEST_ROOTS) };
    });
  }
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    seen.logging.push(n);
  });
  return { client, seen };
}

/**
 * Records every JSON-RPC message an SDK transport (v1 or v2) carries: `sent` by the client and
 * `received` from the server, including what the SDK itself then drops (a response to a request it
 * cancelled, progress for a token it forgot). Install before connect.
 */
export function tapTransport(transport) {
  const traffic = { sent: [], received: [] };
  const send = transport.send.bind(transport);
  transport.send = (message, options) => {
    traffic.sent.push(message);
    return send(message, options);
  };
  let handler;
  Object.defineProperty(transport, 'onmessage', {
    configurable: true,
    get: () => handler,
    set: (fn) => {
      handler = fn && ((message, extra) => {
        traffic.received.push(message);
        return fn(message, extra);
      });
    },
  });
  return traffic;
}

/**
 * A fetch for SDK transports that records each HTTP exchange in `wire` ({method, url,
 * requestHeaders, body, status, contentType, responseHeaders}) and, with `protocolVersion`, makes
 * the client ask for that revision in `initialize` (the v1 SDK always asks for its newest).
 */
export function recordingFetch({ wire = [], protocolVersion, base = fetch } = {}) {
  const wrapped = async (input, init = {}) => {
    let body = init.body;
    if (protocolVersion && typeof body === 'string') {
      try {
        const message = JSON.parse(body);
        if (message?.method === 'initialize' && message.params) {
          message.params.protocolVersion = protocolVersion;
          body = JSON.stringify(message);
        }
      } catch { /* not JSON: sent as it is */ }
    }
    const res = await base(input, { ...init, body });
    wire.push({
      method: init.method ?? 'GET',
      url: String(input instanceof Request ? input.url : input),
      requestHeaders: Object.fromEntries(new Headers(init.headers ?? {}).entries()),
      body: typeof body === 'string' ? body : undefined,
      status: res.status,
      contentType: (res.headers.get('content-type') ?? '').split(';')[0].trim(),
      responseHeaders: Object.fromEntries(res.headers.entries()),
    });
    return res;
  };
  wrapped.wire = wire;
  return wrapped;
}

/**
 * Connects an SDK client.
 *   kind: 'streamable' (url), 'sse' (url of the legacy SSE endpoint) or 'stdio' (argv).
 *   protocolVersion: the revision the client asks for in initialize (HTTP kinds).
 * Resolves {client, transport, seen, traffic, wire, close()}; the connection is closed in
 * cleanup(). `traffic` is tapTransport's record, `wire` the HTTP exchanges (HTTP kinds).
 */
export async function connectClient(target, {
  kind = 'streamable', capabilities = {}, sessionId, headers, name, connectTimeoutMs = 30_000, fetch: baseFetch, onElicit,
  protocolVersion,
} = {}) {
  const { client, seen } = makeClient(capabilities, { name, onElicit });
  const transportErrors = [];
  const wire = [];
  const fetchImpl = kind === 'stdio' ? undefined
    : recordingFetch({ wire, protocolVersion, base: baseFetch ?? fetch });
  let transport;
  if (kind === 'streamable') {
    transport = new StreamableHTTPClientTransport(new URL(target), {
      sessionId,
      fetch: fetchImpl,
      requestInit: headers ? { headers } : undefined,
      // The SDK's default reconnection behaviour is kept on purpose: that is what real clients do.
    });
  } else if (kind === 'sse') {
    transport = new SSEClientTransport(new URL(target), {
      requestInit: headers ? { headers } : undefined,
      fetch: fetchImpl,
      eventSourceInit: fetchImpl ? { fetch: fetchImpl } : undefined,
    });
  } else if (kind === 'stdio') {
    const [command, ...args] = target;
    transport = new StdioClientTransport({ command, args, stderr: 'pipe', cwd: SOURCE_DIR });
  } else {
    throw new Error(`unknown transport kind ${kind}`);
  }
  const traffic = tapTransport(transport);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    const pid = kind === 'stdio' ? transport.pid : undefined;
    try { await withTimeout(client.close(), 5_000, 'client.close'); } catch { /* ignore */ }
    if (pid && pidAlive(pid)) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* ignore */ }
    }
  };
  defer(close);
  await withTimeout(client.connect(transport), connectTimeoutMs, `MCP connect to ${kind === 'stdio' ? target.join(' ') : target}`);
  // Installed after connect: Client.connect replaces nothing here, and errors from dropped
  // streams are recorded for diagnosis instead of being thrown at random.
  client.onerror = (err) => transportErrors.push(err);
  return { client, transport, seen, close, transportErrors, traffic, wire };
}

/**
 * An SDK v2 client (@modelcontextprotocol/client) pinned to 2026-07-28. `answers.elicit` decides
 * the elicitation answer and can be switched by a test; `seen` records the server-to-client
 * requests the client fulfilled, `wire` every HTTP exchange and `traffic` every message.
 */
export async function connectV2(url, { capabilities = FULL_CAPABILITIES, headers, name = 'membrane-it-v2' } = {}) {
  const client = new ClientV2({ name, version: '1.0.0' },
    { capabilities, versionNegotiation: { mode: { pin: STATELESS } } });
  const seen = { elicitation: [], sampling: [], roots: [] };
  const answers = { elicit: () => structuredClone(ELICITATION_ANSWER) };
  if (capabilities.elicitation) {
    client.setRequestHandler('elicitation/create', async (req) => {
      seen.elicitation.push(req);
      return answers.elicit(req);
    });
  }
  if (capabilities.sampling) {
    client.setRequestHandler('sampling/createMessage', async (req) => {
      seen.sampling.push(req);
      return samplingAnswer(req);
    });
  }
  if (capabilities.roots) {
    client.setRequestHandler('roots/list', async (req) => {
      seen.roots.push(req);
      return { roots: structuredClone(TEST_ROOTS) };
    });
  }
  const wire = [];
  const transport = new StreamableHTTPClientTransportV2(new URL(url), {
    fetch: recordingFetch({ wire }),
    requestInit: headers ? { headers } : undefined,
  });
  const traffic = tapTransport(transport);
  const close = () => withTimeout(client.close(), 5_000, 'v2 client close').catch(() => {});
  defer(close);
  await withTimeout(client.connect(transport), 30_000, `v2 connect to ${url}`);
  return { client, seen, answers, wire, traffic, close };
}

// ------------------------------------------------------------------------------------------------
// Raw HTTP (for exact status codes and headers)
// ------------------------------------------------------------------------------------------------

export const MCP_ACCEPT = 'application/json, text/event-stream';

// MCP 2026-07-28 (stateless) requests built by hand: the headers and the `_meta` envelope the
// revision requires. `null` leaves a field out (for the malformed-request tests).
export const STATELESS = '2026-07-28';
export const META_VERSION = 'io.modelcontextprotocol/protocolVersion';
export const META_CAPABILITIES = 'io.modelcontextprotocol/clientCapabilities';

export function statelessHeaders({ version = STATELESS, method, name, extra = {} } = {}) {
  const h = { 'content-type': 'application/json', accept: MCP_ACCEPT };
  if (version !== null) h['mcp-protocol-version'] = version;
  if (method !== undefined) h['mcp-method'] = method;
  if (name !== undefined) h['mcp-name'] = name;
  return { ...h, ...extra };
}

export function statelessBody({ id = 1, method, params = {}, metaVersion = STATELESS, capabilities = {}, meta: extraMeta = {} }) {
  const meta = { ...extraMeta };
  if (metaVersion !== null) meta[META_VERSION] = metaVersion;
  if (capabilities !== null) meta[META_CAPABILITIES] = capabilities;
  // A notification (id null) has no id member at all.
  return { jsonrpc: '2.0', ...(id === null ? {} : { id }), method, params: { ...params, _meta: meta } };
}

/**
 * A 2026-07-28 request (or notification, with `id: null`) built from statelessHeaders and
 * statelessBody. `name` is the Mcp-Name header (defaults to params.name or params.uri). Resolves
 * rawFetch's answer plus `message`, the JSON-RPC response with the request's id.
 */
export async function statelessRpc(url, {
  method, params = {}, id = 1, capabilities = {}, meta, name, headers = {}, timeoutMs, untilId,
} = {}) {
  const mcpName = name ?? (method === 'tools/call' || method === 'prompts/get' ? params.name
    : method === 'resources/read' ? params.uri : undefined);
  const response = await rawFetch(url, {
    headers: statelessHeaders({ method, name: mcpName, extra: headers }),
    body: statelessBody({ id, method, params, capabilities, meta }),
    timeoutMs,
    untilId: untilId ?? (id === null ? undefined : id),
  });
  const message = id === null ? undefined
    : response.messages.find((m) => m.id === id && ('result' in m || 'error' in m));
  return { ...response, message };
}

/** Parses a complete text/event-stream body into [{event, data, id}]. */
/**
 * Opens a 2026-07-28 subscriptions/listen stream (request id `id`) and collects its messages as
 * they arrive. Resolves once the response began: {status, contentType, messages, close}.
 */
export async function openListen(url, notifications, { id = 'listen-1' } = {}) {
  const controller = new AbortController();
  const response = await fetch(url, {
    method: 'POST',
    headers: statelessHeaders({ method: 'subscriptions/listen' }),
    body: JSON.stringify(statelessBody({ id, method: 'subscriptions/listen', params: { notifications } })),
    signal: controller.signal,
  });
  const messages = [];
  (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end + 2);
          buffer = buffer.slice(end + 2);
          for (const event of parseSse(block)) if (event.data) messages.push(JSON.parse(event.data));
        }
      }
    } catch { /* closed by the test */ }
  })();
  return { status: response.status, contentType: response.headers.get('content-type'), messages, close: () => controller.abort() };
}

export function parseSse(text) {
  const events = [];
  let cur = { event: undefined, data: [], id: undefined };
  let hasField = false;
  for (const rawLine of text.split(/\r\n|\r|\n/)) {
    if (rawLine === '') {
      if (hasField && cur.data.length > 0) {
        events.push({ event: cur.event ?? 'message', data: cur.data.join('\n'), id: cur.id });
      }
      cur = { event: undefined, data: [], id: undefined };
      hasField = false;
      continue;
    }
    if (rawLine.startsWith(':')) continue;
    const idx = rawLine.indexOf(':');
    const field = idx < 0 ? rawLine : rawLine.slice(0, idx);
    let value = idx < 0 ? '' : rawLine.slice(idx + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    hasField = true;
    if (field === 'event') cur.event = value;
    else if (field === 'data') cur.data.push(value);
    else if (field === 'id') cur.id = value;
  }
  if (hasField && cur.data.length > 0) events.push({ event: cur.event ?? 'message', data: cur.data.join('\n'), id: cur.id });
  return events;
}

/**
 * fetch() with a timeout that returns {status, headers, contentType, text, json, messages}:
 *   json     - the parsed body when it is application/json (else undefined)
 *   messages - JSON-RPC messages: the JSON body (array flattened) or the `message` events of an
 *              SSE body.
 * With `untilId`, an SSE body is read only until the response with that id has arrived (the
 * spec says a server SHOULD close the stream then; these tests do not depend on it).
 */
export async function rawFetch(url, { method = 'POST', headers = {}, body, timeoutMs = 20_000, untilId } = {}) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`${method} ${url} timed out after ${timeoutMs} ms`)), timeoutMs);
  try {
    const res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : (typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body)),
      signal: ac.signal,
    });
    const contentType = (res.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
    let text = '';
    let json;
    let messages = [];
    const sseMessages = (t) => {
      const out = [];
      for (const ev of parseSse(t)) {
        if (ev.event === 'message') {
          try { out.push(JSON.parse(ev.data)); } catch { /* ignore */ }
        }
      }
      return out;
    };
    if (contentType === 'text/event-stream' && untilId !== undefined && res.body) {
      const decoder = new TextDecoder();
      const reader = res.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
        // Only complete events count: cut at the last blank line.
        const m = [...text.matchAll(/\r\n\r\n|\n\n|\r\r/g)].at(-1);
        const complete = m ? text.slice(0, m.index + m[0].length) : '';
        if (sseMessages(complete).some((msg) => msg.id === untilId && ('result' in msg || 'error' in msg))) {
          await reader.cancel().catch(() => {});
          break;
        }
      }
    } else {
      text = await res.text();
    }
    if (contentType === 'application/json' && text.length > 0) {
      try { json = JSON.parse(text); } catch { /* leave undefined */ }
      if (json !== undefined) messages = Array.isArray(json) ? json : [json];
    } else if (contentType === 'text/event-stream') {
      messages = sseMessages(text);
    }
    return { status: res.status, headers: res.headers, contentType, text, json, messages };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Low-level HTTP/1.1 request with node:http (for bodies a server may refuse before reading them:
 * the response is still returned if the upload is cut short). `chunked: true` streams the body
 * without Content-Length.
 */
export function httpRaw(url, { method = 'POST', headers = {}, body = '', chunked = false, timeoutMs = 30_000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
    const hdrs = { ...headers };
    if (!chunked) hdrs['content-length'] = String(buf.length);
    else hdrs['transfer-encoding'] = 'chunked';
    let settled = false;
    let response;
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: hdrs, agent: false,
    }, (res) => {
      response = res;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      const done = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      };
      res.on('end', done);
      res.on('close', done);
      res.on('error', done);
    });
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(new Error(`${method} ${url} got no complete response within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (err) => {
      // EPIPE / ECONNRESET after the server answered early is fine: the response still counts.
      if (response || settled) return;
      settled = true;
      clearTimeout(timer);
      reject(err);
    });
    if (chunked) {
      const piece = 64 * 1024;
      let off = 0;
      const pump = () => {
        while (off < buf.length) {
          const ok = req.write(buf.subarray(off, off + piece));
          off += piece;
          if (!ok) { req.once('drain', pump); return; }
        }
        req.end();
      };
      pump();
    } else {
      req.end(buf);
    }
  });
}

export function mcpHeaders({ sessionId, protocolVersion, extra = {} } = {}) {
  const h = { 'content-type': 'application/json', accept: MCP_ACCEPT, ...extra };
  if (sessionId) h['mcp-session-id'] = sessionId;
  if (protocolVersion) h['mcp-protocol-version'] = protocolVersion;
  return h;
}

export function initializeRequest({ id = 1, protocolVersion = PROTOCOL_LATEST, capabilities = {} } = {}) {
  return {
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: { protocolVersion, capabilities, clientInfo: { name: 'membrane-it-raw', version: '1.0.0' } },
  };
}

/**
 * Raw Streamable HTTP handshake: initialize + notifications/initialized.
 * Resolves {sessionId, protocolVersion, result, response}.
 */
export async function rawInitialize(mcpUrl, { protocolVersion = PROTOCOL_LATEST, capabilities = {}, headers = {} } = {}) {
  const response = await rawFetch(mcpUrl, {
    headers: mcpHeaders({ extra: headers }),
    body: initializeRequest({ protocolVersion, capabilities }),
    untilId: 1,
  });
  if (response.status !== 200) {
    throw new Error(`initialize at ${mcpUrl} answered HTTP ${response.status}: ${response.text.slice(0, 500)}`);
  }
  const sessionId = response.headers.get('mcp-session-id');
  const msg = response.messages.find((m) => m.id === 1);
  if (!msg || !msg.result) throw new Error(`initialize at ${mcpUrl} gave no result: ${response.text.slice(0, 500)}`);
  const negotiated = msg.result.protocolVersion;
  const note = await rawFetch(mcpUrl, {
    headers: mcpHeaders({ sessionId, protocolVersion: negotiated, extra: headers }),
    body: { jsonrpc: '2.0', method: 'notifications/initialized' },
  });
  if (note.status !== 202 && note.status !== 200) {
    throw new Error(`notifications/initialized answered HTTP ${note.status}: ${note.text.slice(0, 500)}`);
  }
  return { sessionId, protocolVersion: negotiated, result: msg.result, response };
}

let rawId = 1000;
/**
 * Raw JSON-RPC request over Streamable HTTP. Resolves {status, response, message} where message is
 * the JSON-RPC response with the request's id (if any arrived).
 */
export async function rawRpc(mcpUrl, { sessionId, protocolVersion, method, params, id = ++rawId, headers = {}, timeoutMs } = {}) {
  const response = await rawFetch(mcpUrl, {
    headers: mcpHeaders({ sessionId, protocolVersion, extra: headers }),
    body: { jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) },
    timeoutMs,
    untilId: id,
  });
  const message = response.messages.find((m) => m.id === id && ('result' in m || 'error' in m));
  return { status: response.status, response, message, id };
}

/**
 * Opens a text/event-stream (GET, or `method` with a JSON `body`) and returns a reader: next(predicate, timeoutMs) resolves with the
 * next SSE event satisfying predicate; close() aborts.
 */
export async function openEventStream(url, { headers = {}, timeoutMs = 15_000, method = 'GET', body } = {}) {
  const ac = new AbortController();
  const init = { method, headers: { accept: 'text/event-stream', ...headers }, signal: ac.signal };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await withTimeout(fetch(url, init), timeoutMs, `${method} ${url}`);
  const events = [];
  const waiters = new Set();
  let ended = false;
  let buffer = '';
  const pump = async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk, { stream: true });
        // Split complete events (terminated by a blank line).
        for (;;) {
          const m = buffer.match(/\r\n\r\n|\n\n|\r\r/);
          if (!m) break;
          const block = buffer.slice(0, m.index);
          buffer = buffer.slice(m.index + m[0].length);
          for (const ev of parseSse(block + '\n\n')) {
            events.push(ev);
            for (const w of waiters) w();
          }
        }
      }
    } catch { /* aborted */ }
    ended = true;
    for (const w of waiters) w();
  };
  if (res.ok) pump();
  else ended = true;
  let cursor = 0;
  return {
    status: res.status,
    headers: res.headers,
    response: res,
    events,
    get ended() { return ended; },
    next(predicate = () => true, waitMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          while (cursor < events.length) {
            const ev = events[cursor++];
            if (predicate(ev)) { cleanupWaiter(); resolve(ev); return; }
          }
          if (ended) { cleanupWaiter(); reject(new Error(`event stream ${url} ended without a matching event`)); }
        };
        const timer = setTimeout(() => { cleanupWaiter(); reject(new Error(`no matching event on ${url} within ${waitMs} ms`)); }, waitMs);
        const cleanupWaiter = () => { clearTimeout(timer); waiters.delete(check); };
        waiters.add(check);
        check();
      });
    },
    close() { ac.abort(); },
  };
}

/**
 * A 2024-11-05 (HTTP+SSE) session by hand: GET `sseUrl`, read the `endpoint` event. `post(message)`
 * POSTs one JSON-RPC message to the endpoint (rawFetch's answer); `response(id)` resolves the
 * message event answering `id`; `next(predicate)` the next matching message; close() ends it.
 */
export async function openLegacySession(sseUrl, { waitMs = 15_000 } = {}) {
  const stream = await openEventStream(sseUrl, { timeoutMs: waitMs });
  if (stream.status !== 200) throw new Error(`GET ${sseUrl} answered HTTP ${stream.status}`);
  const first = await stream.next(() => true, waitMs);
  if (first.event !== 'endpoint') throw new Error(`first event of ${sseUrl} is ${JSON.stringify(first)}`);
  const endpoint = new URL(first.data, sseUrl).href;
  const messages = (predicate) => (ev) => {
    if (ev.event !== 'message') return false;
    try { return predicate(JSON.parse(ev.data)); } catch { return false; }
  };
  return {
    stream,
    endpoint,
    post: (message, headers = {}) => rawFetch(endpoint, { headers: { 'content-type': 'application/json', ...headers }, body: message }),
    next: async (predicate, ms = waitMs) => JSON.parse((await stream.next(messages(predicate), ms)).data),
    response: async (id, ms = waitMs) => JSON.parse((await stream.next(
      messages((m) => m.id === id && ('result' in m || 'error' in m)), ms)).data),
    close: () => stream.close(),
  };
}

/** Asserts-friendly description of a JSON-RPC error body: returns a list of problems. */
export function jsonRpcErrorProblems(body, { code, id } = {}) {
  const problems = [];
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    return ['body is not a JSON object'];
  }
  if (body.jsonrpc !== '2.0') problems.push(`jsonrpc is ${JSON.stringify(body.jsonrpc)}, want "2.0"`);
  if (!('id' in body)) problems.push('no "id" member');
  if (id !== undefined && !(Array.isArray(id) ? id : [id]).includes(body.id)) {
    problems.push(`id is ${JSON.stringify(body.id)}, want ${JSON.stringify(id)}`);
  }
  if (!body.error || typeof body.error !== 'object') return [...problems, 'no "error" object'];
  if (!Number.isInteger(body.error.code)) problems.push(`error.code ${JSON.stringify(body.error.code)} is not an integer`);
  if (code !== undefined && body.error.code !== code) problems.push(`error.code is ${body.error.code}, want ${code}`);
  if (typeof body.error.message !== 'string' || body.error.message.length === 0) problems.push('error.message is not a non-empty string');
  if ('result' in body) problems.push('has a "result" member next to "error"');
  return problems;
}

/** Outcome of a promise as plain data, so direct and gateway outcomes can be deep-compared. */
export async function outcome(promise) {
  try {
    return { kind: 'result', value: await promise };
  } catch (err) {
    return { kind: 'rejected', code: err?.code, message: err?.message, data: err?.data, name: err?.constructor?.name };
  }
}

/** Runs a tool call with progress, recording [{type:'progress'|'result'|'error', at, ...}]. */
export async function callWithProgress(client, name, args, { timeoutMs = 60_000, onProgress } = {}) {
  const events = [];
  const start = Date.now();
  try {
    const result = await client.callTool({ name, arguments: args }, undefined, {
      timeout: timeoutMs,
      onprogress: (p) => {
        events.push({ type: 'progress', at: Date.now() - start, progress: p.progress, total: p.total });
        onProgress?.(p);
      },
    });
    events.push({ type: 'result', at: Date.now() - start, result });
    return { events, result };
  } catch (error) {
    events.push({ type: 'error', at: Date.now() - start, error });
    return { events, error };
  }
}

// One sample of a metric family (labels as an object), from /metrics.
export async function metric(gateway, name, labels = {}) {
  const response = await rawFetch(`${gateway.admin}/metrics`, { method: 'GET' });
  assert.equal(response.status, 200);
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',');
  const prefix = wanted ? `${name}{${wanted}} ` : `${name} `;
  const line = response.text.split('\n').find((l) => l.startsWith(prefix));
  assert.ok(line, `/metrics has ${prefix.trim()}`);
  return Number(line.slice(prefix.length));
}

export function flipChar(s, index = Math.floor(s.length / 2)) {
  const c = s[index];
  const replacement = c === 'A' ? 'B' : 'A';
  return s.slice(0, index) + replacement + s.slice(index + 1);
}

// ------------------------------------------------------------------------------------------------
// TLS
// ------------------------------------------------------------------------------------------------

/** Self-signed certificate for 127.0.0.1/localhost made with the openssl CLI: {cert, key, pem}. */
export function makeSelfSignedCert(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'pipe' });
  return { cert, key, pem: fs.readFileSync(cert, 'utf8') };
}

/**
 * A fetch() look-alike over node:https that trusts `ca` (PEM), for SDK transports' `fetch`
 * option: the global fetch cannot be given a CA at run time. Streams the response body.
 */
export function httpsFetchWithCa(ca) {
  return async (input, init = {}) => {
    const { default: https } = await import('node:https');
    const { Readable } = await import('node:stream');
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    const headers = {};
    new Headers(init.headers ?? {}).forEach((v, k) => { headers[k] = v; });
    const body = init.body === undefined || init.body === null ? undefined : Buffer.from(init.body);
    if (body) headers['content-length'] = String(body.length);
    return new Promise((resolve, reject) => {
      const req = https.request({
        host: url.hostname, port: url.port, path: url.pathname + url.search,
        method: init.method ?? 'GET', headers, ca, servername: url.hostname === '127.0.0.1' ? undefined : url.hostname,
      }, (res) => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (Array.isArray(v)) v.forEach((x) => h.append(k, x));
          else if (v !== undefined) h.set(k, v);
        }
        const nullBody = [204, 304].includes(res.statusCode) || (init.method ?? 'GET') === 'HEAD';
        if (nullBody) res.resume();
        resolve(new Response(nullBody ? null : Readable.toWeb(res), { status: res.statusCode, headers: h }));
      });
      req.on('error', reject);
      if (init.signal) {
        if (init.signal.aborted) req.destroy(new Error('aborted'));
        init.signal.addEventListener('abort', () => req.destroy(new DOMException('aborted', 'AbortError')), { once: true });
      }
      req.end(body);
    });
  };
}
