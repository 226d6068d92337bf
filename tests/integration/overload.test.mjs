// Overload protection (docs/overload.md): each limit under limits: is pushed past with real
// clients. Beyond it the client gets 503 (429 for its own session limit) with Retry-After and a
// JSON-RPC error -32004 naming the limit, the refusal is counted in
// membrane_overload_rejections_total{limit=...}, traffic under the limit goes on unaffected, and
// the gateway serves again once the load is gone.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, test } from 'node:test';

import {
  MCP_ACCEPT,
  NODE,
  PROTOCOL_LATEST,
  SOURCE_DIR,
  cleanup,
  jsonRpcErrorProblems,
  mcpHeaders,
  metric,
  openEventStream,
  rawFetch,
  rawInitialize,
  rawRpc,
  sleep,
  spawnManaged,
  startGateway,
  tmpDir,
  waitFor,
  withTimeout,
} from './harness.mjs';

after(cleanup);

const FLOOD_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'flood-server.mjs');
const OVERLOADED = -32004;

let floodUrl;
async function floodUpstream() {
  if (floodUrl) return floodUrl;
  const proc = spawnManaged('flood-server', NODE, [FLOOD_JS, '0']);
  floodUrl = (await proc.waitForLine(/listening on (http:\/\/\S+)/, 15_000))[1];
  return floodUrl;
}

// A gateway in front of the flood fixture with the given `limits:`, and its admin listener.
async function startLimited(name, limits) {
  const upstream = await floodUpstream();
  const dir = tmpDir('membrane-overload-');
  const config = path.join(dir, 'membrane.yaml');
  const lines = [
    'listen: "127.0.0.1:0"',
    'admin: "127.0.0.1:0"',
    'log_level: info',
    'limits:',
    ...Object.entries(limits).map(([key, value]) => `  ${key}: ${value}`),
    'upstreams:',
    '  flood:',
    `    url: ${upstream}`,
    '    protocol: "2025-11-25"',
  ];
  fs.writeFileSync(config, lines.join('\n') + '\n');
  const gateway = await startGateway(['-c', config], { name });
  gateway.admin = (await gateway.proc.waitForLine(/admin listening on (http:\/\/\S+)/, 10_000))[1];
  return gateway;
}

const rejections = (gateway, limit) => metric(gateway, 'membrane_overload_rejections_total', { limit });

// The checks every refusal must pass.
function assertRefused(response, { status = 503, limit, id, retryAfter }) {
  assert.equal(response.status, status, response.text);
  const header = response.headers.get ? response.headers.get('retry-after') : response.headers['retry-after'];
  assert.match(String(header), /^[1-9][0-9]*$/, 'Retry-After is a whole number of seconds');
  if (retryAfter) retryAfter(Number(header));
  const body = response.json ?? JSON.parse(response.text);
  assert.deepEqual(jsonRpcErrorProblems(body, { code: OVERLOADED, id }), []);
  assert.equal(body.error.data.limit, limit);
  assert.equal(body.error.data.retryAfter, Number(header));
  return body;
}

// A POST with node:http from a chosen local address (127.0.0.x are all loopback on Linux), so
// that one test can be several callers. JSON answers only.
function postFrom(localAddress, url, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const text = JSON.stringify(body);
    const request = http.request({
      host: u.hostname, port: u.port, path: u.pathname, method: 'POST', localAddress, agent: false,
      headers: { 'content-type': 'application/json', accept: MCP_ACCEPT, 'content-length': Buffer.byteLength(text), ...headers },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const textBody = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(textBody); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, text: textBody, json });
      });
    });
    request.on('error', reject);
    request.setTimeout(20_000, () => request.destroy(new Error(`POST ${url} timed out`)));
    request.end(text);
  });
}

let nextId = 1;
function initializeBody() {
  return {
    jsonrpc: '2.0', id: nextId++, method: 'initialize',
    params: { protocolVersion: PROTOCOL_LATEST, capabilities: {}, clientInfo: { name: 'overload-test', version: '1' } },
  };
}

function echo(gateway, session, message = 'hi') {
  return rawRpc(gateway.mcp('flood'), {
    sessionId: session.sessionId, protocolVersion: session.protocolVersion,
    method: 'tools/call', params: { name: 'echo', arguments: { message } },
  });
}

// A keep-alive HTTP/1.1 connection, one request at a time (Content-Length answers only).
async function keepAliveConnection(port) {
  const socket = net.connect({ port, host: '127.0.0.1' });
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  let buffered = Buffer.alloc(0);
  let waiting;
  socket.on('data', (chunk) => { buffered = Buffer.concat([buffered, chunk]); waiting?.(); });
  socket.on('close', () => waiting?.());
  return {
    socket,
    async get(target) {
      socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end >= 0) {
          const head = buffered.subarray(0, end).toString();
          const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
          if (buffered.length >= end + 4 + length) {
            const text = buffered.subarray(end + 4, end + 4 + length).toString();
            buffered = buffered.subarray(end + 4 + length);
            return { status: Number(head.split(' ')[1]), text };
          }
        }
        if (socket.destroyed) throw new Error('connection closed');
        await new Promise((resolve) => { waiting = resolve; });
      }
    },
    close() { socket.destroy(); },
  };
}

test('connections beyond limits.max_connections: 503 then close; the open ones carry on', async () => {
  const gateway = await startLimited('membrane (connections)', { max_connections: 3 });
  const open = [];
  for (let i = 0; i < 3; i++) {
    const connection = await keepAliveConnection(gateway.port);
    assert.equal((await connection.get('/healthz')).status, 200);
    open.push(connection);
  }
  // The fourth, with the clients the SDKs use (fetch) and node:http.
  const refused = await rawFetch(`${gateway.base}/healthz`, { method: 'GET' });
  const body = assertRefused(refused, { limit: 'connections', id: null });
  assert.match(body.error.message, /3 connections/);
  assert.equal(refused.headers.get('connection'), 'close');
  const refusedToo = await postFrom('127.0.0.1', gateway.mcp('flood'), initializeBody());
  assertRefused(refusedToo, { limit: 'connections', id: null });
  assert.ok(await rejections(gateway, 'connections') >= 2);
  // Under the limit nothing changed.
  for (const connection of open) assert.equal((await connection.get('/healthz')).status, 200);
  // One closes: a new client gets in again.
  open[0].close();
  await waitFor(async () => (await rawFetch(`${gateway.base}/healthz`, { method: 'GET' })).status === 200,
    { what: 'a new connection served once one closed' });
  assert.equal(await metric(gateway, 'membrane_connections_open') <= 3, true);
  for (const connection of open.slice(1)) connection.close();
  assert.ok(gateway.lines.some((l) => /overload: refused a connection from 127\.0\.0\.1:\d+/.test(l)), 'refusal logged');
});

test('streams beyond limits.max_streams: 503 before anything reaches the upstream', async () => {
  const gateway = await startLimited('membrane (streams)', { max_streams: 2 });
  const session = await rawInitialize(gateway.mcp('flood'));
  const headers = mcpHeaders({ sessionId: session.sessionId, protocolVersion: session.protocolVersion });
  // Under the limit: a listen stream and a call.
  const listen = await openEventStream(gateway.mcp('flood'), { headers });
  assert.equal(listen.status, 200);
  assert.equal((await echo(gateway, session)).message.result.content[0].text, 'Echo: hi');
  // A legacy session is a stream too: now both slots are taken.
  const legacy = await openEventStream(gateway.sse('flood'));
  assert.equal(legacy.status, 200);
  await legacy.next((event) => event.event === 'endpoint');

  const call = await echo(gateway, session);
  assertRefused(call.response, { limit: 'streams', id: call.id });
  const secondListen = await rawFetch(gateway.mcp('flood'), { method: 'GET', headers: { ...headers, accept: 'text/event-stream' } });
  assertRefused(secondListen, { limit: 'streams', id: null });
  const thirdStream = await rawFetch(gateway.sse('flood'), { method: 'GET', headers: { accept: 'text/event-stream' } });
  assertRefused(thirdStream, { limit: 'streams', id: null });
  // Notifications open nothing: never refused.
  const note = await rawFetch(gateway.mcp('flood'), { headers, body: { jsonrpc: '2.0', method: 'notifications/roots/list_changed' } });
  assert.equal(note.status, 202);
  assert.ok(await rejections(gateway, 'streams') >= 3);
  assert.equal(await metric(gateway, 'membrane_stream_slots_used'), 2);

  // The listen stream ends: calls go through again.
  listen.close();
  await waitFor(async () => (await echo(gateway, session)).status === 200, { what: 'a call served once a stream closed' });
  legacy.close();
  await waitFor(async () => await metric(gateway, 'membrane_stream_slots_used') === 0, { what: 'every slot given back' });
});

test('sessions: per caller (429) and in total (503); DELETE frees a place, re-initializing does not', async () => {
  const gateway = await startLimited('membrane (sessions)', {
    max_sessions: 3, max_sessions_per_caller: 2, session_idle: '1h',
  });
  const url = gateway.mcp('flood');
  // Caller A (127.0.0.1) opens two sessions and never uses them again: they still count.
  const a1 = await postFrom('127.0.0.1', url, initializeBody());
  const a2 = await postFrom('127.0.0.1', url, initializeBody());
  assert.equal(a1.status, 200);
  assert.equal(a2.status, 200);
  const third = initializeBody();
  assertRefused(await postFrom('127.0.0.1', url, third), {
    status: 429, limit: 'sessions_per_caller', id: third.id,
    retryAfter: (seconds) => assert.ok(seconds > 3000 && seconds <= 3600, `Retry-After ${seconds}: when the oldest idle session expires`),
  });
  // A's existing sessions go on working.
  const session = { sessionId: a1.headers['mcp-session-id'], protocolVersion: PROTOCOL_LATEST };
  assert.equal((await echo(gateway, session)).status, 200);
  // Caller B (127.0.0.2) has a quota of its own, until the gateway as a whole is full.
  const b1 = await postFrom('127.0.0.2', url, initializeBody());
  assert.equal(b1.status, 200);
  assertRefused(await postFrom('127.0.0.2', url, initializeBody()), { limit: 'sessions' });
  assert.equal(await metric(gateway, 'membrane_sessions_live'), 3);
  assert.ok(await rejections(gateway, 'sessions_per_caller') >= 1);
  assert.ok(await rejections(gateway, 'sessions') >= 1);

  // DELETE gives A's place back at once.
  const deleted = await rawFetch(url, { method: 'DELETE', headers: mcpHeaders({ sessionId: a2.headers['mcp-session-id'], protocolVersion: PROTOCOL_LATEST }) });
  assert.equal(deleted.status, 200);
  assert.equal((await postFrom('127.0.0.1', url, initializeBody())).status, 200);
  assert.ok(gateway.lines.some((l) => /overload: address 127\.0\.0\.1: Too many sessions/.test(l)), 'refusal logged with its caller');
});

test('an idle session stops counting after limits.session_idle', async () => {
  const gateway = await startLimited('membrane (session idle)', {
    max_sessions: 10, max_sessions_per_caller: 1, session_idle: '3s',
  });
  const url = gateway.mcp('flood');
  assert.equal((await postFrom('127.0.0.1', url, initializeBody())).status, 200);
  let wait = 0;
  assertRefused(await postFrom('127.0.0.1', url, initializeBody()), {
    status: 429, limit: 'sessions_per_caller', retryAfter: (seconds) => { wait = seconds; assert.ok(seconds <= 3); },
  });
  await sleep(wait * 1000 + 200);
  await waitFor(async () => (await postFrom('127.0.0.1', url, initializeBody())).status === 200,
    { what: 'a new session once the idle one expired' });
});

// A client that asks for a flood of events and then stops reading its socket.
async function slowClient(gateway, session, { count, size }) {
  const socket = net.connect({ port: gateway.port, host: '127.0.0.1' });
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  const id = nextId++;
  const body = JSON.stringify({
    jsonrpc: '2.0', id, method: 'tools/call',
    params: { name: 'flood', arguments: { count, size }, _meta: { progressToken: `p${id}` } },
  });
  socket.write(`POST /mcp/flood HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
    `Accept: ${MCP_ACCEPT}\r\nMcp-Session-Id: ${session.sessionId}\r\nMCP-Protocol-Version: ${session.protocolVersion}\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  // Counted as the bytes arrive (events are whole within a chunk of the response).
  const seen = { progress: 0, result: false };
  let pending = '';
  let finished;
  const done = new Promise((resolve) => { finished = resolve; });
  socket.setEncoding('utf8');
  socket.on('data', (text) => {
    pending += text;
    const cut = pending.lastIndexOf('\n\n');
    if (cut < 0) return;
    const complete = pending.slice(0, cut);
    pending = pending.slice(cut + 2);
    seen.progress += (complete.match(/"method":"notifications\/progress"/g) ?? []).length;
    if (complete.includes(`"id":${id},"result":{"content":[{"type":"text","text":"flooded ${count}"}]}`)) {
      seen.result = true;
      finished();
    }
  });
  socket.on('close', () => finished());
  socket.pause();
  return {
    id,
    // Reads everything that was held back; resolves with what arrived.
    async drain() {
      socket.resume();
      await withTimeout(done, 60_000, `the result of flood ${id}`);
      socket.destroy();
      return seen;
    },
  };
}

test('events queued for slow clients stay within limits.max_stream_buffer / max_buffered_bytes', async () => {
  const perStream = 64 * 1024;
  const gateway = await startLimited('membrane (buffered)', { max_stream_buffer: '64KiB', max_buffered_bytes: '128KiB' });
  const session = await rawInitialize(gateway.mcp('flood'));
  const buffered = () => metric(gateway, 'membrane_buffered_event_bytes');
  // 3000 events of 8 KB: far more than the kernel's socket buffers hold on both sides.
  const flood = { count: 3000, size: 8000 };
  const first = await slowClient(gateway, session, flood);
  await waitFor(async () => await buffered() > perStream / 2, { timeoutMs: 30_000, what: 'the first stream queue filling up' });
  // One stream is full: there is still room for one more stream's budget, so calls go through.
  assert.equal((await echo(gateway, session)).status, 200);
  const second = await slowClient(gateway, session, flood);
  await waitFor(async () => await buffered() > perStream + perStream / 2, { timeoutMs: 30_000, what: 'the second stream queue filling up' });
  // Bounded: each stream stops at its budget (one event more at most), whatever the upstream sends.
  for (let i = 0; i < 5; i++) {
    assert.ok(await buffered() <= 2 * (perStream + 8200), `buffered ${await buffered()} bytes`);
    await sleep(100);
  }
  const call = await echo(gateway, session);
  assertRefused(call.response, { limit: 'buffered_bytes', id: call.id });
  assert.ok(await rejections(gateway, 'buffered_bytes') >= 1);

  // The slow clients read again: nothing was lost (the upstream was paused, not cut off).
  const [one, two] = await Promise.all([first.drain(), second.drain()]);
  assert.deepEqual(one, { progress: flood.count, result: true });
  assert.deepEqual(two, { progress: flood.count, result: true });
  await waitFor(async () => await buffered() === 0, { what: 'the queues emptied' });
  assert.equal((await echo(gateway, session)).status, 200);
});
