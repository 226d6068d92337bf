// The protocol matrix (issue 15, item 4): every client revision × every upstream kind × every
// method family through the gateway. Each cell is its own test and ends in one of:
//
//   works        the real result arrived (content, progress, the server's question reached the
//                client and its answer got back, the notification reached the other side, ...)
//   clear error  the documented refusal: HTTP status, JSON-RPC code and a message that says what
//                is not supported (docs/protocol-versions.md, "The matrix")
//   limit        works as far as the documented limit allows (docs/protocol-versions.md, "Known
//                limits"): the part that works is asserted, the limit itself too
//
// No cell may hang (each has a bounded wait that fails with the cell's name) or crash the gateway
// (after every cell the gateway must still run: a death fails that cell and a fresh gateway, same
// port and session key, serves the next ones; after every upstream block it must answer
// /healthz and never have exited). A summary table of all cells is printed at the end.
//
// Clients: 2024-11-05 = SDK v1 SSEClientTransport at /sse/<name>; 2025-03-26, 2025-06-18,
// 2025-11-25 = SDK v1 StreamableHTTPClientTransport, the revision forced in initialize
// (recordingFetch); 2026-07-28 = SDK v2 client pinned to the revision, plus raw requests built with
// statelessRpc where the SDK cannot say it (logLevel, notifications, listen, DELETE, ping).
// Upstreams, one gateway each: server-everything over Streamable HTTP (sessions),
// modern-server.mjs (2026-07-28 only), modern-server.mjs --sessions (both revisions),
// server-everything over stdio, and modern-server.mjs --stdio (2026-07-28 only, over stdio: every
// request shares one process, 2025 clients through the session bridge).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  ELICITATION_ANSWER, EVERYTHING_JS, FULL_CAPABILITIES, MCP_ACCEPT, MODERN_JS, NODE, STATELESS, TEST_ROOTS,
  TIME_SCALE, callWithProgress, cleanup, connectClient, connectV2, freePort, mcpHeaders,
  openEventStream, openLegacySession, rawFetch, rawRpc, samplingAnswer, setWatchdog, sleep,
  startEverythingHttp, startGateway, startModernServer, statelessBody, statelessHeaders,
  statelessRpc, tmpDir, waitFor, withTimeout, writeSessionKeyFile,
} from './harness.mjs';

// About a minute for the whole file; the sanitizer build runs it 2-3x slower.
setWatchdog(420_000 * TIME_SCALE);
const CELL_MS = 30_000 * TIME_SCALE;   // one cell, start to end
const WAIT_MS = 12_000 * TIME_SCALE;   // one awaited event inside a cell
const CALL = { timeout: 20_000 * TIME_SCALE };
// The everything server's simulated logging and resource updates repeat every 5 s after a first
// one at once; where only a repetition can arrive, wait for one.
const REPEAT_WAIT_MS = 12_000 * TIME_SCALE;
// How long after the last progress of a cancelled call a response would have shown up (the server
// sends it right after that progress when the call is not cancelled).
const QUIET_AFTER_CANCEL_MS = 600;

const REVISIONS = ['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25', STATELESS];
// In the order the cells run: DELETE ends the row's session, so it comes last.
const FAMILIES = [
  'initialize/discover', 'lists', 'calls with progress', 'sampling/elicitation/roots',
  'listen and GET streams', 'resources/subscribe', 'notifications', 'cancellation', 'ping',
  'logging', 'DELETE',
];
const UPSTREAMS = [
  { key: 'session-http', name: 'ev', server: 'everything', transport: 'http',
    title: 'HTTP session server (server-everything, Streamable HTTP)' },
  { key: 'stateless-http', name: 'mod', server: 'fixture', transport: 'http', speaks: 'stateless',
    title: 'HTTP 2026-07-28 server (modern-server.mjs)' },
  { key: 'dual-http', name: 'dual', server: 'fixture', transport: 'http', speaks: 'both',
    title: 'HTTP server speaking both (modern-server.mjs --sessions)' },
  { key: 'stdio', name: 'evs', server: 'everything', transport: 'stdio',
    title: 'stdio session server (server-everything)' },
  { key: 'stateless-stdio', name: 'mods', server: 'fixture', transport: 'stdio', speaks: 'stateless',
    title: 'stdio 2026-07-28 server (modern-server.mjs --stdio)' },
];

const EV_DOC = 'demo://resource/static/document/architecture.md';
const EV_TOOLS = ['echo', 'trigger-long-running-operation', 'toggle-simulated-logging', 'toggle-subscriber-updates',
  'trigger-sampling-request', 'trigger-elicitation-request', 'get-roots-list'];
const FIXTURE_TOOLS = ['announce_change', 'ask_model', 'confirm', 'echo', 'list_roots', 'log', 'long_task',
  'request_info', 'stats', 'wait_for_cancel'];
const FIXTURE_INSTRUCTIONS = 'A 2026-07-28 test server.';
const LISTEN_CAPABILITIES = {};   // raw 2026 requests that must share one pooled upstream session

// ------------------------------------------------------------------------------------------------
// Outcomes and the summary table
// ------------------------------------------------------------------------------------------------

const results = new Map();   // `${upstream}|${revision}|${family}` -> {kind, note}
const works = (note = '') => ({ kind: 'works', note });
const clearError = (note = '') => ({ kind: 'clear error', note });
const limit = (note = '') => ({ kind: 'limit', note });

function printSummary() {
  const out = ['', 'protocol matrix: one line per client revision and upstream, one column per method family', ''];
  const counts = { works: 0, 'clear error': 0, limit: 0, failed: 0, 'not run': 0 };
  const short = { works: 'works', 'clear error': 'error', limit: 'limit', failed: 'FAILED', 'not run': '-' };
  out.push(`| client → upstream | ${FAMILIES.join(' | ')} |`);
  out.push(`|---|${FAMILIES.map(() => '---').join('|')}|`);
  for (const up of UPSTREAMS) {
    for (const rev of REVISIONS) {
      const cells = FAMILIES.map((family) => {
        const r = results.get(`${up.key}|${rev}|${family}`) ?? { kind: 'not run' };
        counts[r.kind]++;
        return short[r.kind];
      });
      out.push(`| ${rev} → ${up.key} | ${cells.join(' | ')} |`);
    }
  }
  out.push('', `cells: ${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(', ')}`);
  const notes = [...results.entries()].filter(([, r]) => r.kind !== 'works' && r.note);
  if (notes.length > 0) {
    out.push('', 'notes:');
    for (const [key, r] of notes) out.push(`  ${key.replaceAll('|', ' / ')}: ${r.kind}: ${r.note}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

after(printSummary);
after(cleanup);

// ------------------------------------------------------------------------------------------------
// One gateway per upstream kind
// ------------------------------------------------------------------------------------------------

class Block {
  constructor(up) {
    this.up = up;
    this.deaths = [];
    this.restarts = 0;
  }

  async start() {
    const { up } = this;
    const dir = tmpDir(`membrane-matrix-${up.key}-`);
    if (up.server === 'everything' && up.transport === 'http') {
      this.upstream = await startEverythingHttp({ name: 'everything-http (matrix)' });
    } else if (up.server === 'fixture' && up.transport === 'http') {
      this.upstream = await startModernServer({ name: `${up.name} (matrix)`, sessions: up.speaks === 'both' });
    }
    const stdioArgs = up.server === 'everything' ? [EVERYTHING_JS, 'stdio'] : [MODERN_JS, '--stdio'];
    this.port = await freePort();
    this.config = path.join(dir, 'membrane.yaml');
    fs.writeFileSync(this.config, [
      `listen: "127.0.0.1:${this.port}"`,
      'session:',
      `  key_file: ${JSON.stringify(writeSessionKeyFile(dir))}`,
      // A closed legacy stream is seen at the next keep-alive: keep them frequent.
      'timeouts:',
      '  sse_keep_alive: 2s',
      'upstreams:',
      `  ${up.name}:`,
      ...(up.transport === 'stdio'
        ? [`    command: ${JSON.stringify(NODE)}`, `    args: ${JSON.stringify(stdioArgs)}`]
        : [`    url: ${JSON.stringify(this.upstream.url)}`]),
      '',
    ].join('\n'));
    await this.startGateway();
  }

  async startGateway() {
    const suffix = this.restarts ? `, restart ${this.restarts}` : '';
    this.gw = await startGateway(['-c', this.config], { name: `membrane (matrix ${this.up.key}${suffix})` });
  }

  /** Why the gateway is gone, or undefined while it runs. */
  death() {
    const p = this.gw.proc;
    return p.running ? undefined : `exited (code ${p.exitCode}, signal ${p.exitSignal})`;
  }

  /** A gateway that died between cells is recorded, and replaced for the next cells. */
  async ensureGateway(cellName) {
    if (this.gw.proc.running) return undefined;
    const death = `${this.death()} between cells (before ${cellName})`;
    this.deaths.push(death);
    await this.restart();
    return death;
  }

  async restart() {
    this.restarts++;
    await this.startGateway();
  }

  get mcp() { return this.gw.mcp(this.up.name); }

  get sse() { return this.gw.sse(this.up.name); }

  /**
   * The fixture's own counters, asked directly (not through the gateway). A stdio fixture has no
   * address of its own: it is asked through the gateway, which sends every 2026-07-28 request,
   * and every request of the session bridge, to the one shared process that counted the others.
   */
  async stats() {
    const url = this.up.transport === 'stdio' ? this.mcp : this.upstream.url;
    const r = await statelessRpc(url, { method: 'tools/call', params: { name: 'stats', arguments: {} } });
    assert.ok(r.message?.result, `stats from ${url}: ${r.text.slice(0, 300)}`);
    return JSON.parse(r.message.result.content[0].text);
  }

  async stop() {
    await this.gw?.stop();
  }
}

function cell(block, rev, family, fn) {
  const key = `${block.up.key}|${rev}|${family}`;
  const name = `[${rev} → ${block.up.key}] ${family}`;
  test(name, { timeout: CELL_MS + 40_000 }, async () => {
    const earlier = await block.ensureGateway(name);
    let error;
    let outcome;
    try {
      if (earlier) throw new Error(`the gateway ${earlier}; a new one serves from here`);
      outcome = await withTimeout(Promise.resolve().then(fn), CELL_MS, `cell ${name}`);
    } catch (err) {
      error = err;
    }
    const death = block.death();
    if (death) {
      block.deaths.push(`${name}: ${death}`);
      error = new Error(`cell ${name}: the gateway ${death} during this cell` +
        (error ? `; the cell saw: ${error.message}` : ''));
      await block.restart();   // same port and session key: the next cells go on
    }
    if (error) {
      results.set(key, { kind: 'failed', note: String(error.message).split('\n')[0].slice(0, 200) });
      throw error;
    }
    assert.ok(outcome && ['works', 'clear error', 'limit'].includes(outcome.kind), `cell ${name} returned ${JSON.stringify(outcome)}`);
    results.set(key, outcome);
  });
}

// ------------------------------------------------------------------------------------------------
// Small helpers
// ------------------------------------------------------------------------------------------------

const textOf = (result) => (result?.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
const since = (list, mark) => list.slice(mark);
const notificationsIn = (messages, method) => messages.filter((m) => m.method === method && !('id' in m));

/** A JSON-RPC error message: its code, and a message that matches every pattern. */
function assertRpcError(message, { code, says = [], what }) {
  const detail = `${what}: ${JSON.stringify(message)?.slice(0, 500)}`;
  assert.ok(message && typeof message === 'object' && message.error, `a JSON-RPC error: ${detail}`);
  assert.equal(message.error.code, code, detail);
  for (const pattern of says) assert.match(message.error.message, pattern, detail);
}

/** A refusal answered as one JSON body: HTTP status, JSON-RPC code, what the message says. */
function assertRefused(r, { status, code, says = [], what }) {
  const detail = `${what}: HTTP ${r.status} ${r.text.slice(0, 400)}`;
  assert.equal(r.status, status, detail);
  assert.equal(r.contentType, 'application/json', detail);
  assertRpcError(r.json, { code, says, what: detail });
}

/** Elicitation answers that satisfy both the everything server's form and the fixture's. */
function elicitFor(request) {
  if (request.params?.requestedSchema?.properties?.ok) return { action: 'accept', content: { ok: true } };
  return structuredClone(ELICITATION_ANSWER);
}

/** A request method sent without an id: refused before it can reach the upstream unjudged. */
function assertRequestAsNotificationRefused(r, what) {
  assertRefused(r, { status: 400, code: -32600, says: [/tools\/call/, /\bid\b/], what });
}

function progressOf(events, steps) {
  const progress = events.filter((e) => e.type === 'progress' && e.total !== undefined);
  const values = progress.map((e) => e.progress);
  // The v1 SDK may drop the last progress when it arrives in the same read as the result.
  assert.ok(values.length >= steps - 1, `at least ${steps - 1} progress events: ${JSON.stringify(events)}`);
  assert.deepEqual(values, Array.from({ length: values.length }, (_, i) => i + 1), `progress 1, 2, … in order: ${JSON.stringify(events)}`);
  assert.ok(progress.every((e) => e.total === steps), `total ${steps}: ${JSON.stringify(events)}`);
  const resultAt = events.findIndex((e) => e.type === 'result');
  assert.ok(resultAt > events.findLastIndex((e) => e.type === 'progress'), `progress before the result: ${JSON.stringify(events)}`);
}

/** The everything server's toggles say which way they went: turn one on or off for sure. */
async function setToggle(callTool, name, on) {
  for (let i = 0; i < 2; i++) {
    const text = await callTool(name);
    if (on ? /^Started/.test(text) : /^Stopped/.test(text)) return text;
  }
  throw new Error(`${name} did not turn ${on ? 'on' : 'off'}`);
}

/** A raw 2026-07-28 subscriptions/listen: the stream, its events parsed as JSON-RPC messages. */
async function openListen(url, notifications, { capabilities = LISTEN_CAPABILITIES, id = 'matrix-listen' } = {}) {
  const stream = await openEventStream(url, {
    method: 'POST',
    headers: statelessHeaders({ method: 'subscriptions/listen', extra: { accept: MCP_ACCEPT } }),
    body: statelessBody({ id, method: 'subscriptions/listen', params: { notifications }, capabilities }),
    timeoutMs: WAIT_MS,
  });
  const message = async (predicate, ms = WAIT_MS) => JSON.parse((await stream.next((ev) => {
    try { return predicate(JSON.parse(ev.data)); } catch { return false; }
  }, ms)).data);
  return { stream, message, close: () => stream.close() };
}

/**
 * A stdio upstream may refuse subscriptions/listen (issue 15 allows "works, or is refused
 * clearly"): undefined when the listen is a stream, else the refusal, checked to be clear.
 */
async function listenRefusal(listen) {
  if (listen.stream.status === 200) return undefined;
  const text = await listen.stream.response.text();
  let body;
  try { body = JSON.parse(text); } catch { /* checked below */ }
  assert.ok(listen.stream.status >= 400, `HTTP ${listen.stream.status}: ${text.slice(0, 300)}`);
  assertRpcError(body, { code: body?.error?.code, says: [/subscriptions\/listen/, /stdio/], what: `a refused listen: HTTP ${listen.stream.status}` });
  return `subscriptions/listen on a stdio upstream is refused: HTTP ${listen.stream.status}, ${body.error.code} "${body.error.message}"`;
}

/** A tool called with a raw 2026-07-28 request; resolves the text of its result. */
async function statelessTool(url, name, args = {}, { capabilities = LISTEN_CAPABILITIES, id = `call-${name}` } = {}) {
  const r = await statelessRpc(url, { method: 'tools/call', params: { name, arguments: args }, capabilities, id, timeoutMs: WAIT_MS });
  assert.equal(r.status, 200, `${name}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  assert.ok(r.message?.result, `${name}: ${r.text.slice(0, 300)}`);
  return { text: textOf(r.message.result), response: r };
}

// ------------------------------------------------------------------------------------------------
// 2024-11-05 and 2025 clients: the SDK v1 client
// ------------------------------------------------------------------------------------------------

/**
 * A row of one SDK v1 client (legacy SSE for 2024-11-05, Streamable HTTP otherwise) shared by the
 * row's cells; connected on first use, so a refusal shows in every cell that needs it.
 */
function v1Row(block, rev) {
  const legacy = rev === '2024-11-05';
  let connecting;
  const row = {
    connect() {
      connecting ??= connectClient(legacy ? block.sse : block.mcp, {
        kind: legacy ? 'sse' : 'streamable',
        capabilities: FULL_CAPABILITIES,
        protocolVersion: rev,
        onElicit: elicitFor,
        name: `membrane-matrix-${rev}`,
      });
      return connecting;
    },
    async close() {
      if (connecting) await (await connecting.catch(() => undefined))?.close();
    },
    // What the client received from now on: call mark() first, then received(mark).
    async tool(name, args = {}) {
      const c = await row.connect();
      return textOf(await c.client.callTool({ name, arguments: args }, undefined, CALL));
    },
  };
  return row;
}

/** initialize as it went: the revision asked for on the wire, and the server's answer. */
function initializeResult(c) {
  const request = c.traffic.sent.find((m) => m.method === 'initialize');
  const response = c.traffic.received.find((m) => m.id === request?.id);
  assert.ok(response?.result, `initialize answered: ${JSON.stringify(response)}`);
  const posted = c.wire.map((w) => { try { return JSON.parse(w.body); } catch { return undefined; } })
    .find((m) => m?.method === 'initialize');
  return { asked: posted?.params?.protocolVersion, result: response.result };
}

function v1Cells(block, rev, row) {
  const { up } = block;
  const legacy = rev === '2024-11-05';
  const everything = up.server === 'everything';
  // 2024-11-05 / 2025 client -> gateway's session bridge: only a server without sessions of its
  // own needs it.
  const bridged = up.speaks === 'stateless';

  return {
    async 'initialize/discover'() {
      const c = await row.connect();
      const { asked, result } = initializeResult(c);
      assert.equal(asked, rev, 'the client asked for its revision');
      assert.equal(result.protocolVersion, rev, 'the revision negotiated end to end');
      if (!legacy) assert.equal(c.transport.protocolVersion, rev, 'the transport sends MCP-Protocol-Version');
      const info = c.client.getServerVersion();
      if (everything) {
        assert.equal(info.name, 'mcp-servers/everything');
      } else {
        assert.equal(info.name, up.speaks === 'both' ? 'membrane-dual-fixture' : 'membrane-modern-fixture');
        assert.equal(c.client.getInstructions(), FIXTURE_INSTRUCTIONS);
      }
      if (!legacy) {
        const posts = c.wire.filter((w) => w.method === 'POST');
        assert.ok(posts[0]?.responseHeaders['mcp-session-id'], 'initialize answered with Mcp-Session-Id');
        for (const w of posts.slice(1)) {
          assert.equal(w.requestHeaders['mcp-protocol-version'], rev, `later requests say ${rev}: ${w.body}`);
        }
      }
      if (bridged) {
        assert.equal(c.client.getServerCapabilities().resources?.subscribe, true,
          'resources.subscribe is offered: the gateway turns it into the listen\'s resourceSubscriptions');
      }
      return works(bridged ? 'initialize answered by the gateway from server/discover' : '');
    },

    async lists() {
      const { client } = await row.connect();
      const tools = (await client.listTools(undefined, CALL)).tools.map((t) => t.name);
      const resources = (await client.listResources(undefined, CALL)).resources.map((r) => r.uri);
      const templates = (await client.listResourceTemplates(undefined, CALL)).resourceTemplates.map((t) => t.uriTemplate);
      const prompts = (await client.listPrompts(undefined, CALL)).prompts.map((p) => p.name);
      if (everything) {
        for (const name of EV_TOOLS) assert.ok(tools.includes(name), `${name} listed: ${tools.join(', ')}`);
        assert.ok(resources.includes(EV_DOC), resources.join(', '));
        assert.ok(templates.length > 0 && templates.every((t) => t.includes('{')), templates.join(', '));
        assert.ok(prompts.includes('simple-prompt'), prompts.join(', '));
      } else {
        assert.deepEqual(tools.sort(), FIXTURE_TOOLS);
        assert.deepEqual(resources.sort(), ['test://counter', 'test://static']);
        assert.deepEqual(templates, ['test://echo/{text}']);
        assert.deepEqual(prompts, ['greeting']);
      }
      return works();
    },

    async 'calls with progress'() {
      const { client } = await row.connect();
      const [tool, args, text] = everything
        ? ['trigger-long-running-operation', { duration: 1, steps: 4 }, /^Long running operation completed\. Duration: 1 seconds, Steps: 4\.$/]
        : ['long_task', { steps: 4 }, /^done after 4 steps$/];
      const { events, result, error } = await callWithProgress(client, tool, args, { timeoutMs: CALL.timeout });
      assert.equal(error, undefined, String(error));
      assert.match(textOf(result), text);
      progressOf(events, 4);
      return works();
    },

    async 'sampling/elicitation/roots'() {
      const c = await row.connect();
      const { client, seen } = c;
      const before = { sampling: seen.sampling.length, elicitation: seen.elicitation.length, roots: seen.roots.length };
      if (everything) {
        const sampled = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'Say hi ☃', maxTokens: 5 } }, undefined, CALL);
        assert.equal(seen.sampling.length, before.sampling + 1, 'the client got one sampling/createMessage');
        assert.ok(textOf(sampled).includes(samplingAnswer(seen.sampling.at(-1)).content.text), textOf(sampled));
        const elicited = await client.callTool({ name: 'trigger-elicitation-request', arguments: {} }, undefined, CALL);
        assert.equal(seen.elicitation.length, before.elicitation + 1, 'the client got one elicitation/create');
        assert.ok(textOf(elicited).includes(`Name: ${ELICITATION_ANSWER.content.name}`), textOf(elicited));
        // The server asked for the roots once, after initialized; the tool shows its answer.
        const roots = await client.callTool({ name: 'get-roots-list', arguments: {} }, undefined, CALL);
        assert.ok(seen.roots.length >= 1, 'the client answered roots/list');
        for (const root of TEST_ROOTS) assert.ok(textOf(roots).includes(root.uri), textOf(roots));
      } else {
        const sampled = await client.callTool({ name: 'ask_model', arguments: { question: 'Wie geht’s?' } }, undefined, CALL);
        assert.equal(seen.sampling.length, before.sampling + 1, 'the client got one sampling/createMessage');
        assert.equal(seen.sampling.at(-1).params.messages[0].content.text, 'Wie geht’s?');
        assert.equal(textOf(sampled), `model said: ${samplingAnswer(seen.sampling.at(-1)).content.text}`);
        const elicited = await client.callTool({ name: 'confirm', arguments: { action: 'déployer' } }, undefined, CALL);
        assert.equal(seen.elicitation.length, before.elicitation + 1, 'the client got one elicitation/create');
        assert.equal(seen.elicitation.at(-1).params.message, 'Really déployer?');
        assert.equal(textOf(elicited), 'accept {"ok":true} (state confirming:déployer)');
        const roots = await client.callTool({ name: 'list_roots', arguments: {} }, undefined, CALL);
        assert.equal(seen.roots.length, before.roots + 1, 'the client got one roots/list');
        assert.equal(textOf(roots), `roots: ${TEST_ROOTS.map((r) => r.uri).join(' ')}`);
      }
      return works(bridged ? 'input_required became real requests on the call\'s stream' : '');
    },

    async 'listen and GET streams'() {
      const c = await row.connect();
      const getStreams = c.wire.filter((w) => w.method === 'GET');
      assert.ok(getStreams.some((w) => w.status === 200 && w.contentType === 'text/event-stream'),
        `the client's GET stream opened: ${JSON.stringify(getStreams.map((w) => [w.url, w.status, w.contentType]))}`);
      if (!legacy) {
        assert.ok(getStreams.every((w) => w.requestHeaders['mcp-session-id']), 'GET carries the session');
      }
      if (everything) {
        // The server asks for the roots 350 ms after initialized, outside any request: only the
        // session's standalone stream (the legacy stream) can carry it.
        await waitFor(() => c.seen.roots.length >= 1, { timeoutMs: WAIT_MS, what: 'roots/list on the standalone stream' });
        return works('the server\'s roots/list outside any request reached the client');
      }
      const mark = c.traffic.received.length;
      assert.equal(await row.tool('announce_change', { kind: 'tools' }), 'announced tools');
      await waitFor(() => notificationsIn(since(c.traffic.received, mark), 'notifications/tools/list_changed').length === 1,
        { timeoutMs: WAIT_MS, what: 'tools/list_changed on the GET stream' });
      assert.equal(notificationsIn(c.traffic.received, 'notifications/subscriptions/acknowledged').length, 0,
        'the 2026-only acknowledgement is not relayed');
      const changed = notificationsIn(since(c.traffic.received, mark), 'notifications/tools/list_changed')[0];
      assert.equal(changed.params?._meta?.['io.modelcontextprotocol/subscriptionId'], undefined,
        `a session has no subscriptions: the stamp is removed (${JSON.stringify(changed)})`);
      return works(bridged ? 'the GET stream is the server\'s subscriptions/listen' : '');
    },

    async 'resources/subscribe'() {
      const c = await row.connect();
      const mark = c.traffic.received.length;
      if (bridged) {
        // 2026-07-28 has no resources/subscribe: the gateway keeps the URI and listens again for
        // the session's GET stream with it in resourceSubscriptions. Announcing until the update
        // arrives covers the moment the new listen takes to open.
        const uri = 'test://static';
        assert.deepEqual(await c.client.subscribeResource({ uri }, CALL), {});
        await waitFor(async () => {
          if (notificationsIn(since(c.traffic.received, mark), 'notifications/resources/updated').some((n) => n.params.uri === uri)) return true;
          await row.tool('announce_change', { kind: 'resource', uri });
          return false;
        }, { timeoutMs: WAIT_MS, intervalMs: 300, what: `resources/updated for ${uri} on the GET stream` });
        assert.deepEqual(await c.client.unsubscribeResource({ uri }, CALL), {});
        const still = await c.client.ping();
        assert.deepEqual(still, {}, 'the session goes on');
        return works('resources/subscribe becomes resourceSubscriptions of the gateway\'s listen behind the GET stream (kept on this replica)');
      }
      const uri = everything ? EV_DOC : 'test://static';
      assert.deepEqual(await c.client.subscribeResource({ uri }, CALL), {});
      if (everything) {
        await setToggle((name) => row.tool(name), 'toggle-subscriber-updates', true);
        try {
          await waitFor(() => notificationsIn(since(c.traffic.received, mark), 'notifications/resources/updated')
            .some((n) => n.params.uri === uri), { timeoutMs: REPEAT_WAIT_MS, what: `resources/updated for ${uri}` });
        } finally {
          await setToggle((name) => row.tool(name), 'toggle-subscriber-updates', false);
        }
      } else {
        assert.equal(await row.tool('announce_change', { kind: 'resource', uri }), 'announced resource');
        await waitFor(() => notificationsIn(since(c.traffic.received, mark), 'notifications/resources/updated')
          .some((n) => n.params.uri === uri), { timeoutMs: WAIT_MS, what: `resources/updated for ${uri}` });
      }
      assert.deepEqual(await c.client.unsubscribeResource({ uri }, CALL), {});
      return works();
    },

    async notifications() {
      const c = await row.connect();
      const { client, seen, traffic } = c;
      // A request method without an id is refused before it could reach the upstream unjudged.
      const sneaky = { jsonrpc: '2.0', method: 'tools/call', params: { name: 'echo', arguments: { message: 'no id' } } };
      const refusedNote = legacy
        ? await rawFetch(c.transport._endpoint.href, { headers: { 'content-type': 'application/json' }, body: sneaky })
        : await rawFetch(block.mcp, { headers: mcpHeaders({ sessionId: c.transport.sessionId, protocolVersion: rev }), body: sneaky });
      assertRequestAsNotificationRefused(refusedNote, 'tools/call sent as a notification');

      const mark = traffic.received.length;
      if (everything) {
        // Client -> server: roots changed; the server asks for them again and logs what it got.
        const before = seen.roots.length;
        await client.sendRootsListChanged();
        await waitFor(() => seen.roots.length > before, { timeoutMs: WAIT_MS, what: 'roots/list after roots/list_changed' });
        await waitFor(() => notificationsIn(since(traffic.received, mark), 'notifications/message')
          .some((n) => /Roots updated: 2 root\(s\) received from client/.test(n.params.data)),
        { timeoutMs: WAIT_MS, what: 'the server\'s log message about the new roots' });
        return works('roots/list_changed reached the server; its roots/list and log message reached the client');
      }
      const countBefore = (await block.stats()).methods['notifications/roots/list_changed'] ?? 0;
      await client.sendRootsListChanged();
      const posted = c.wire.filter((w) => w.method === 'POST' && w.body?.includes('notifications/roots/list_changed'));
      assert.equal(posted.at(-1)?.status, 202, 'the notification is accepted');
      // Server -> client: a list change outside any request.
      assert.equal(await row.tool('announce_change', { kind: 'prompts' }), 'announced prompts');
      await waitFor(() => notificationsIn(since(traffic.received, mark), 'notifications/prompts/list_changed').length === 1,
        { timeoutMs: WAIT_MS, what: 'prompts/list_changed' });
      const countAfter = (await block.stats()).methods['notifications/roots/list_changed'] ?? 0;
      if (bridged) {
        assert.equal(countAfter, countBefore, 'a 2026-07-28 server keeps no session the notification could be about: dropped');
        return works('client notifications end at the gateway (202) by design; prompts/list_changed reached the client');
      }
      assert.equal(countAfter, countBefore + 1, 'roots/list_changed reached the server');
      return works();
    },

    async cancellation() {
      const c = await row.connect();
      const { client, traffic } = c;
      const controller = new AbortController();
      if (everything) {
        // The tool does not stop when cancelled, but the server drops its response: progress goes
        // on to the last step, and no result follows.
        const mark = traffic.sent.length;
        const call = client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1.2, steps: 4 } }, undefined,
          { ...CALL, signal: controller.signal, onprogress: () => controller.abort('the matrix cancels') });
        await assert.rejects(call);
        const sent = since(traffic.sent, mark);
        const request = sent.find((m) => m.method === 'tools/call');
        assert.ok(sent.some((m) => m.method === 'notifications/cancelled' && m.params.requestId === request.id),
          `notifications/cancelled sent: ${JSON.stringify(sent)}`);
        const token = request.params._meta.progressToken;
        await waitFor(() => traffic.received.some((m) => m.method === 'notifications/progress' &&
          m.params.progressToken === token && m.params.progress === 4), { timeoutMs: WAIT_MS, what: 'the last progress of the cancelled call' });
        await sleep(QUIET_AFTER_CANCEL_MS);
        assert.ok(!traffic.received.some((m) => m.id === request.id && ('result' in m || 'error' in m)),
          'the server saw the cancellation: it never answered the call');
      } else {
        const before = (await block.stats()).cancellations;
        const call = client.callTool({ name: 'wait_for_cancel', arguments: {} }, undefined, { ...CALL, signal: controller.signal });
        await sleep(300);
        controller.abort('the matrix cancels');
        await assert.rejects(call);
        await waitFor(async () => (await block.stats()).cancellations === before + 1,
          { timeoutMs: WAIT_MS, what: 'the server cancelling the call' });
      }
      assert.equal(await row.tool('echo', { message: 'after cancel' }), 'Echo: after cancel', 'the session goes on');
      return works(bridged ? 'notifications/cancelled closes the upstream request' : '');
    },

    async DELETE() {
      if (legacy) {
        // 2024-11-05 has no DELETE: the session ends with its stream.
        const del = await rawFetch(block.sse, { method: 'DELETE', headers: { accept: 'text/event-stream' } });
        assertRefused(del, { status: 405, code: -32600, says: [/GET opens the event stream/], what: 'DELETE /sse' });
        assert.equal(del.headers.get('allow'), 'GET');
        const c = await row.connect();
        const endpoint = c.transport._endpoint.href;
        await row.close();
        await waitFor(async () => (await rawFetch(endpoint, { headers: { 'content-type': 'application/json' },
          body: { jsonrpc: '2.0', id: 'after', method: 'ping' } })).status === 404,
        { timeoutMs: WAIT_MS, what: 'the message endpoint of the closed stream answering 404' });
        return works('closing the event stream ends the session (DELETE itself: 405, Allow: GET)');
      }
      const c = await row.connect();
      const sessionId = c.transport.sessionId;
      await c.transport.terminateSession();
      const del = c.wire.filter((w) => w.method === 'DELETE').at(-1);
      assert.equal(del?.status, 200, JSON.stringify(del));
      const after = await rawRpc(block.mcp, { sessionId, protocolVersion: rev, method: 'tools/list', timeoutMs: WAIT_MS });
      assert.equal(after.status, 404, after.response.text);
      assertRpcError(after.response.json, { code: -32001, says: [/[Ss]ession/], what: 'a request on the deleted session' });
      await row.close();
      return works(bridged ? 'answered by the gateway (no upstream session); the id is dead on this replica' : '');
    },

    async ping() {
      const { client } = await row.connect();
      const before = bridged ? (await block.stats()).methods.ping ?? 0 : 0;
      assert.deepEqual(await client.ping(CALL), {});
      if (bridged) {
        assert.equal((await block.stats()).methods.ping ?? 0, before, 'answered by the gateway');
        return works('answered by the gateway (2026-07-28 has no ping)');
      }
      return works();
    },

    async logging() {
      const c = await row.connect();
      const { client, traffic } = c;
      const before = bridged ? (await block.stats()).methods['logging/setLevel'] ?? 0 : 0;
      assert.deepEqual(await client.setLoggingLevel('debug', CALL), {});
      const mark = traffic.received.length;
      if (everything) {
        await setToggle((name) => row.tool(name), 'toggle-simulated-logging', true);
        try {
          await waitFor(() => notificationsIn(since(traffic.received, mark), 'notifications/message')
            .some((n) => /-level message|level-message/.test(String(n.params.data))),
          { timeoutMs: REPEAT_WAIT_MS, what: 'a simulated log message' });
        } finally {
          await setToggle((name) => row.tool(name), 'toggle-simulated-logging', false);
        }
        return works();
      }
      assert.equal(await row.tool('log', { message: 'matrix log line' }), 'logged');
      const logged = notificationsIn(since(traffic.received, mark), 'notifications/message');
      if (bridged) {
        assert.equal((await block.stats()).methods['logging/setLevel'] ?? 0, before, 'setLevel is answered by the gateway');
        assert.ok(logged.some((n) => n.params.data === 'matrix log line' && n.params.level === 'info'), JSON.stringify(logged));
        return works('logging/setLevel is kept by the gateway (on this replica) and sent as _meta logLevel with each request');
      }
      assert.ok(logged.some((n) => n.params.data === 'matrix log line' && n.params.level === 'info'), JSON.stringify(logged));
      return works();
    },
  };
}

// ------------------------------------------------------------------------------------------------
// 2026-07-28 clients: the SDK v2 client and raw requests
// ------------------------------------------------------------------------------------------------

function v2Row(block) {
  let connecting;
  return {
    connect() {
      connecting ??= connectV2(block.mcp, { capabilities: FULL_CAPABILITIES, name: 'membrane-matrix-2026' })
        .then((c) => {
          c.answers.elicit = elicitFor;
          return c;
        });
      return connecting;
    },
  };
}

function v2Cells(block, row) {
  const { up } = block;
  const everything = up.server === 'everything';
  const stdio = up.transport === 'stdio';
  const raw = (options) => statelessRpc(block.mcp, { timeoutMs: WAIT_MS, ...options });
  const tool = (name, args) => statelessTool(block.mcp, name, args).then((r) => r.text);

  return {
    async 'initialize/discover'() {
      const { client, wire } = await row.connect();
      assert.equal(client.getNegotiatedProtocolVersion(), STATELESS);
      const discover = await raw({ method: 'server/discover' });
      assert.equal(discover.status, 200, discover.text);
      const result = discover.message?.result;
      assert.ok(result?.supportedVersions?.includes(STATELESS), discover.text);
      const serverInfo = result._meta?.['io.modelcontextprotocol/serverInfo'];
      if (everything) {
        assert.equal(client.getServerVersion()?.name, 'mcp-servers/everything');
        assert.equal(serverInfo?.name, 'mcp-servers/everything');
        assert.equal(result.capabilities.logging, undefined, 'no logging capability (2026-07-28 has no logging/setLevel)');
      } else {
        const name = up.speaks === 'both' ? 'membrane-dual-fixture' : 'membrane-modern-fixture';
        assert.equal(client.getServerVersion()?.name, name);
        assert.equal(serverInfo?.name, name);
        assert.equal(client.getInstructions(), FIXTURE_INSTRUCTIONS);
      }
      for (const w of wire) assert.equal(w.responseHeaders['mcp-session-id'], undefined, 'no session is issued');
      return works(everything ? 'server/discover answered by the gateway from a pooled session\'s initialize' : '');
    },

    async lists() {
      const { client } = await row.connect();
      const options = { ...CALL, cacheMode: 'bypass' };
      const tools = (await client.listTools(undefined, options)).tools.map((t) => t.name);
      const resources = (await client.listResources(undefined, options)).resources.map((r) => r.uri);
      const templates = (await client.listResourceTemplates(undefined, options)).resourceTemplates.map((t) => t.uriTemplate);
      const prompts = (await client.listPrompts(undefined, options)).prompts.map((p) => p.name);
      if (everything) {
        for (const name of EV_TOOLS) assert.ok(tools.includes(name), `${name} listed: ${tools.join(', ')}`);
        assert.ok(resources.includes(EV_DOC), resources.join(', '));
        assert.ok(templates.length > 0 && templates.every((t) => t.includes('{')), templates.join(', '));
        assert.ok(prompts.includes('simple-prompt'), prompts.join(', '));
      } else {
        assert.deepEqual(tools.sort(), FIXTURE_TOOLS);
        assert.deepEqual(resources.sort(), ['test://counter', 'test://static']);
        assert.deepEqual(templates, ['test://echo/{text}']);
        assert.deepEqual(prompts, ['greeting']);
      }
      return works();
    },

    async 'calls with progress'() {
      const { client } = await row.connect();
      const [name, args, text] = everything
        ? ['trigger-long-running-operation', { duration: 1, steps: 4 }, /^Long running operation completed\. Duration: 1 seconds, Steps: 4\.$/]
        : ['long_task', { steps: 4 }, /^done after 4 steps$/];
      const events = [];
      const result = await client.callTool({ name, arguments: args },
        { ...CALL, onprogress: (p) => events.push({ type: 'progress', ...p }) });
      events.push({ type: 'result' });
      assert.match(textOf(result), text);
      progressOf(events, 4);
      return works();
    },

    async 'sampling/elicitation/roots'() {
      const { client, seen } = await row.connect();
      const before = { sampling: seen.sampling.length, elicitation: seen.elicitation.length, roots: seen.roots.length };
      if (everything) {
        const sampled = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'Say hi ☃', maxTokens: 5 } }, CALL);
        assert.equal(seen.sampling.length, before.sampling + 1);
        assert.ok(textOf(sampled).includes(samplingAnswer(seen.sampling.at(-1)).content.text), textOf(sampled));
        const elicited = await client.callTool({ name: 'trigger-elicitation-request', arguments: {} }, CALL);
        assert.equal(seen.elicitation.length, before.elicitation + 1);
        assert.ok(textOf(elicited).includes(`Name: ${ELICITATION_ANSWER.content.name}`), textOf(elicited));
        // The server asks for the roots once per session (its first roots/list may have come
        // during an earlier call on the pooled session); the tool shows the answer.
        const roots = await client.callTool({ name: 'get-roots-list', arguments: {} }, CALL);
        assert.ok(seen.roots.length >= 1, 'the client answered roots/list');
        for (const root of TEST_ROOTS) assert.ok(textOf(roots).includes(root.uri), textOf(roots));
        return works('the server\'s requests became input_required; the answers resumed the parked call');
      }
      const sampled = await client.callTool({ name: 'ask_model', arguments: { question: 'Wie geht’s?' } }, CALL);
      assert.equal(seen.sampling.length, before.sampling + 1);
      assert.equal(textOf(sampled), `model said: ${samplingAnswer(seen.sampling.at(-1)).content.text}`);
      const elicited = await client.callTool({ name: 'confirm', arguments: { action: 'déployer' } }, CALL);
      assert.equal(seen.elicitation.length, before.elicitation + 1);
      assert.equal(textOf(elicited), 'accept {"ok":true} (state confirming:déployer)');
      const roots = await client.callTool({ name: 'list_roots', arguments: {} }, CALL);
      assert.equal(seen.roots.length, before.roots + 1);
      assert.equal(textOf(roots), `roots: ${TEST_ROOTS.map((r) => r.uri).join(' ')}`);
      return works();
    },

    async 'listen and GET streams'() {
      const get = await rawFetch(block.mcp, { method: 'GET', headers: { accept: 'text/event-stream', 'mcp-protocol-version': STATELESS }, timeoutMs: WAIT_MS });
      assertRefused(get, { status: 405, code: -32600, says: [/GET has no meaning in MCP 2026-07-28/], what: 'GET with 2026-07-28' });
      assert.equal(get.headers.get('allow'), 'POST');
      if (!everything) {
        const { client, traffic } = await row.connect();
        const subscription = await client.listen({ toolsListChanged: true }, CALL);
        try {
          assert.equal(subscription.honoredFilter.toolsListChanged, true, JSON.stringify(subscription.honoredFilter));
          const mark = traffic.received.length;
          assert.equal(await tool('announce_change', { kind: 'tools' }), 'announced tools');
          await waitFor(() => notificationsIn(since(traffic.received, mark), 'notifications/tools/list_changed').length === 1,
            { timeoutMs: WAIT_MS, what: 'tools/list_changed on the listen stream' });
        } finally {
          await subscription.close();
        }
        return works('GET: 405 (no sessions in 2026-07-28); subscriptions/listen relayed');
      }
      // A session server: the listen is fed from the pooled session's standalone stream (HTTP) or
      // the child's own messages (stdio). The acknowledgement says what the server can honour and
      // names the listen. Log lines the server sends outside any call follow, untagged (as a
      // 2026-07-28 server passes them on over stdio): they belong to no subscription.
      const listen = await openListen(block.mcp, { toolsListChanged: true, promptsListChanged: false }, { id: 'matrix-listen-tools' });
      try {
        const refused = stdio ? await listenRefusal(listen) : undefined;
        if (refused) return clearError(`GET: 405; ${refused}`);
        assert.equal(listen.stream.status, 200, 'subscriptions/listen is answered with a stream');
        const first = await listen.message(() => true);
        assert.equal(first.method, 'notifications/subscriptions/acknowledged', JSON.stringify(first));
        assert.deepEqual(first.params.notifications, { toolsListChanged: true }, JSON.stringify(first));
        assert.equal(first.params._meta?.['io.modelcontextprotocol/subscriptionId'], 'matrix-listen-tools', JSON.stringify(first));
        await setToggle((name) => tool(name), 'toggle-simulated-logging', true);
        try {
          const logged = await listen.message((m) => m.method === 'notifications/message', REPEAT_WAIT_MS);
          assert.match(String(logged.params.data), /-level message|level-message/);
          assert.equal(logged.params._meta?.['io.modelcontextprotocol/subscriptionId'], undefined, JSON.stringify(logged));
        } finally {
          await setToggle((name) => tool(name), 'toggle-simulated-logging', false);
        }
      } finally {
        listen.close();
      }
      return works(`GET: 405; subscriptions/listen fed from the pooled session's ${stdio ? 'child' : 'standalone stream'}`);
    },

    async 'resources/subscribe'() {
      if (!everything) {
        // 2026-07-28 subscribes to resources in subscriptions/listen.
        const subscribe = await raw({ method: 'resources/subscribe', params: { uri: 'test://static' }, id: 'sub' });
        assertRefused(subscribe, { status: 404, code: -32601, says: [/Method not found/], what: 'resources/subscribe at a 2026-07-28 server, passed on' });
        const listen = await openListen(block.mcp, { resourceSubscriptions: ['test://static'] });
        try {
          const first = await listen.message(() => true);
          assert.equal(first.method, 'notifications/subscriptions/acknowledged', JSON.stringify(first));
          // The listen's own id, also over stdio, where the process knows it by the gateway's.
          assert.equal(first.params._meta?.['io.modelcontextprotocol/subscriptionId'], 'matrix-listen', JSON.stringify(first));
          assert.equal(await tool('announce_change', { kind: 'resource', uri: 'test://static' }), 'announced resource');
          const updated = await listen.message((m) => m.method === 'notifications/resources/updated');
          assert.equal(updated.params.uri, 'test://static');
          assert.equal(updated.params._meta?.['io.modelcontextprotocol/subscriptionId'], 'matrix-listen', JSON.stringify(updated));
        } finally {
          listen.close();
        }
        return works('resources/subscribe itself is the server\'s -32601 (not a 2026-07-28 method); subscriptions/listen with resourceSubscriptions delivers resources/updated');
      }
      // 2026-07-28 has no resources/subscribe: the listen's resourceSubscriptions subscribe in the
      // pooled session.
      const subscribe = await raw({ method: 'resources/subscribe', params: { uri: EV_DOC }, id: 'sub' });
      assertRefused(subscribe, { status: 404, code: -32601, says: [/resources\/subscribe/, /resourceSubscriptions/], what: 'resources/subscribe, removed in 2026-07-28' });
      const listen = await openListen(block.mcp, { resourceSubscriptions: [EV_DOC] });
      try {
        const refused = stdio ? await listenRefusal(listen) : undefined;
        if (refused) return limit(`resources/subscribe answered by the pooled session, but its updates need a listen: ${refused}`);
        const first = await listen.message(() => true);
        assert.equal(first.method, 'notifications/subscriptions/acknowledged', JSON.stringify(first));
        await setToggle((name) => tool(name), 'toggle-subscriber-updates', true);
        try {
          const updated = await listen.message((m) => m.method === 'notifications/resources/updated', REPEAT_WAIT_MS);
          assert.equal(updated.params.uri, EV_DOC);
          assert.equal(updated.params._meta?.['io.modelcontextprotocol/subscriptionId'], 'matrix-listen', JSON.stringify(updated));
        } finally {
          await setToggle((name) => tool(name), 'toggle-subscriber-updates', false);
        }
      } finally {
        listen.close();
      }
      return works('resources/subscribe: 404 / -32601 (removed in 2026-07-28); a listen\'s resourceSubscriptions subscribe in the pooled session and its updates arrive on the listen');
    },

    async notifications() {
      const sneaky = await rawFetch(block.mcp, {
        headers: statelessHeaders({ method: 'tools/call', name: 'echo' }),
        body: statelessBody({ id: null, method: 'tools/call', params: { name: 'echo', arguments: { message: 'no id' } } }),
        timeoutMs: WAIT_MS,
      });
      assertRequestAsNotificationRefused(sneaky, 'tools/call sent as a notification');
      const before = everything ? 0 : (await block.stats()).methods['notifications/roots/list_changed'] ?? 0;
      const note = await raw({ method: 'notifications/roots/list_changed', id: null });
      assert.equal(note.status, 202, note.text);
      if (everything) {
        return works('client notifications end at the gateway (202): no session exists they could be about; server notifications: see listen and logging');
      }
      await waitFor(async () => ((await block.stats()).methods['notifications/roots/list_changed'] ?? 0) === before + 1,
        { timeoutMs: WAIT_MS, what: 'the notification reaching the server' });
      const listen = await openListen(block.mcp, { promptsListChanged: true });
      try {
        await listen.message((m) => m.method === 'notifications/subscriptions/acknowledged');
        assert.equal(await tool('announce_change', { kind: 'prompts' }), 'announced prompts');
        await listen.message((m) => m.method === 'notifications/prompts/list_changed');
      } finally {
        listen.close();
      }
      return works();
    },

    async cancellation() {
      if (!everything) {
        const { client } = await row.connect();
        const before = (await block.stats()).cancellations;
        const controller = new AbortController();
        const call = client.callTool({ name: 'wait_for_cancel', arguments: {} }, { ...CALL, signal: controller.signal });
        await sleep(300);
        controller.abort('the matrix cancels');
        await assert.rejects(call);
        await waitFor(async () => (await block.stats()).cancellations === before + 1,
          { timeoutMs: WAIT_MS, what: 'the server cancelling the call' });
        return works('closing the request cancels the call');
      }
      // Closing the request: the gateway stops relaying and tells the pooled session
      // notifications/cancelled (a session server does not take a closed connection as one).
      const id = `cancel-${Date.now()}`;
      const stream = await openEventStream(block.mcp, {
        method: 'POST',
        headers: statelessHeaders({ method: 'tools/call', name: 'trigger-long-running-operation', extra: { accept: MCP_ACCEPT } }),
        body: statelessBody({ id, method: 'tools/call', params: { name: 'trigger-long-running-operation', arguments: { duration: 3, steps: 6 } },
          capabilities: LISTEN_CAPABILITIES, meta: { progressToken: id } }),
        timeoutMs: WAIT_MS,
      });
      try {
        assert.equal(stream.status, 200);
        const progress = JSON.parse((await stream.next((ev) => ev.data.includes('notifications/progress'), WAIT_MS)).data);
        assert.equal(progress.params.progressToken, id);
      } finally {
        stream.close();
      }
      await waitFor(() => block.gw.lines.some((l) => l.includes('method=tools/call') && l.includes(`id="${id}"`) && l.includes('client_gone=true')),
        { timeoutMs: WAIT_MS, what: 'the gateway ending the call as abandoned by the client' });
      assert.equal(await tool('echo', { message: 'after cancel' }), 'Echo: after cancel', 'the pooled session goes on');
      return works('closing the request ends the call; the gateway sends notifications/cancelled upstream');
    },

    async DELETE() {
      const del = await rawFetch(block.mcp, { method: 'DELETE', headers: { accept: MCP_ACCEPT, 'mcp-protocol-version': STATELESS }, timeoutMs: WAIT_MS });
      assertRefused(del, { status: 405, code: -32600, says: [/DELETE has no meaning in MCP 2026-07-28/], what: 'DELETE with 2026-07-28' });
      assert.equal(del.headers.get('allow'), 'POST');
      return clearError('2026-07-28 has no sessions to end (405, Allow: POST)');
    },

    async ping() {
      const ping = await raw({ method: 'ping', id: 'ping' });
      assertRefused(ping, { status: 404, code: -32601, says: [/Method not found/], what: 'ping, removed in 2026-07-28' });
      return clearError(everything
        ? 'ping is not a 2026-07-28 method: 404 / -32601 from the gateway, as a 2026-07-28 server answers it'
        : 'ping is not a 2026-07-28 method: 404 / -32601');
    },

    async logging() {
      if (!everything) {
        // 2026-07-28: the log level travels in each request's _meta.
        const r = await raw({ method: 'tools/call', params: { name: 'log', arguments: { message: 'matrix log line' } }, id: 'log',
          meta: { 'io.modelcontextprotocol/logLevel': 'debug' } });
        assert.equal(r.status, 200, r.text);
        assert.equal(textOf(r.message?.result), 'logged', r.text);
        const logged = r.messages.filter((m) => m.method === 'notifications/message');
        assert.ok(logged.some((n) => n.params.data === 'matrix log line'), r.text);
        return works('_meta logLevel: the log line arrives on the call\'s stream');
      }
      const setLevel = await raw({ method: 'logging/setLevel', params: { level: 'debug' }, id: 'level' });
      assertRefused(setLevel, { status: 404, code: -32601, says: [/logging\/setLevel/, /logLevel/], what: 'logging/setLevel, removed in 2026-07-28' });
      if (stdio) {
        // Over stdio the first simulated line goes to the only request in flight: the toggle. It
        // reaches the client because the request names a level.
        const on = await statelessRpc(block.mcp, { method: 'tools/call', params: { name: 'toggle-simulated-logging', arguments: {} },
          capabilities: LISTEN_CAPABILITIES, id: 'log-on', meta: { 'io.modelcontextprotocol/logLevel': 'debug' }, timeoutMs: WAIT_MS });
        try {
          assert.match(textOf(on.message?.result), /^Started/, on.text);
          const logged = on.messages.filter((m) => m.method === 'notifications/message');
          assert.ok(logged.some((n) => /-level message|level-message/.test(String(n.params.data))), on.text);
        } finally {
          await setToggle((name) => tool(name), 'toggle-simulated-logging', false);
        }
        return works('logging/setLevel: 404 / -32601 (removed in 2026-07-28); with _meta logLevel, log lines relayed on the call');
      }
      const listen = await openListen(block.mcp, { toolsListChanged: true });
      try {
        await listen.message((m) => m.method === 'notifications/subscriptions/acknowledged');
        await setToggle((name) => tool(name), 'toggle-simulated-logging', true);
        try {
          await listen.message((m) => m.method === 'notifications/message', REPEAT_WAIT_MS);
        } finally {
          await setToggle((name) => tool(name), 'toggle-simulated-logging', false);
        }
      } finally {
        listen.close();
      }
      return works('logging/setLevel: 404 / -32601 (removed in 2026-07-28); log lines outside calls arrive on subscriptions/listen');
    },
  };
}

// ------------------------------------------------------------------------------------------------
// The matrix
// ------------------------------------------------------------------------------------------------

for (const up of UPSTREAMS) {
  describe(`upstream: ${up.title}`, () => {
    const block = new Block(up);
    const rows = [];
    before(() => block.start());
    after(async () => {
      for (const row of rows) await row.close?.();
      await block.stop();
    });

    for (const rev of REVISIONS) {
      describe(`client ${rev}`, () => {
        const row = rev === STATELESS ? v2Row(block) : v1Row(block, rev);
        rows.push(row);
        const cells = rev === STATELESS ? v2Cells(block, row) : v1Cells(block, rev, row);
        for (const family of FAMILIES) cell(block, rev, family, cells[family]);
      });
    }

    test(`the gateway never exited during the ${up.key} block and answers /healthz`, { timeout: 20_000 }, async () => {
      assert.deepEqual(block.deaths, [], 'the gateway died during these cells');
      assert.ok(block.gw.proc.running, `the gateway ${block.death()}`);
      const health = await rawFetch(`${block.gw.base}/healthz`, { method: 'GET', timeoutMs: 10_000 });
      assert.equal(health.status, 200, health.text);
      assert.deepEqual(health.json, { status: 'ok' });
    });
  });
}
