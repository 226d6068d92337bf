// Fault matrix: an HTTP upstream that stops answering (tests/fixtures/faulty-http-server.mjs).
// timeouts.upstream_response bounds the wait twice: for the response headers, and as the longest
// silence about a request on its SSE stream. Past it the call ends with -32002, the upstream
// connection closes and a session server is told with notifications/cancelled. SSE comments and
// an event that never ends are not an answer, and the gateway's own keep-alives (which keep a
// client's inactivity timeout from firing) do not make the call wait any longer. Listen streams
// (GET) are quiet by nature and exempt. (The stdio side is tests/integration/hardening_stdio.)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';

import {
  NODE, SOURCE_DIR, cleanup, connectClient, jsonRpcErrorProblems, mcpHeaders, openEventStream,
  rawInitialize, rawRpc, sleep, spawnManaged, startGateway, tmpDir, waitFor,
} from './harness.mjs';

const FAULTY_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'faulty-http-server.mjs');
const UPSTREAM_UNAVAILABLE = -32002;

let gateway;
let upstreamUrl;
let session;

async function upstreamStats() {
  const response = await fetch(new URL('/stats', upstreamUrl));
  return response.json();
}

before(async () => {
  const upstream = spawnManaged('faulty upstream (hang)', NODE, [FAULTY_JS, '0']);
  upstreamUrl = (await upstream.waitForLine(/listening on (http:\/\/\S+)/, 20_000))[1];
  const config = path.join(tmpDir('membrane-faults-hang-'), 'membrane.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'timeouts:',
    '  upstream_response: 2s',
    '  sse_keep_alive: 300ms',
    'upstreams:',
    '  faulty:',
    `    url: ${JSON.stringify(upstreamUrl)}`,
    '',
  ].join('\n'));
  gateway = await startGateway(['-c', config], { name: 'membrane (faults: hang)' });
  session = await rawInitialize(gateway.mcp('faulty'));
});
after(cleanup);

function call(name, args = {}) {
  return rawRpc(gateway.mcp('faulty'), {
    sessionId: session.sessionId,
    protocolVersion: session.protocolVersion,
    method: 'tools/call',
    params: { name, arguments: args, _meta: { progressToken: `p-${name}` } },
    timeoutMs: 40_000,
  });
}

function assertGaveUp(r, status, message) {
  assert.equal(r.status, status, r.response.text.slice(0, 300));
  assert.ok(r.message, `the call got an answer: ${r.response.text.slice(0, 300)}`);
  assert.deepEqual(jsonRpcErrorProblems(r.message, { code: UPSTREAM_UNAVAILABLE, id: r.id }), []);
  assert.match(r.message.error.message, /faulty/);
  assert.match(r.message.error.message, message);
}

describe('an upstream that never sends its response headers', () => {
  test('502 / -32002 after timeouts.upstream_response, and the connection is closed', { timeout: 60_000 }, async () => {
    const r = await call('hang-before-headers');
    assertGaveUp(r, 502, /no response within 2000 ms/);
    await waitFor(async () => (await upstreamStats()).closedEarly.includes('hang-before-headers'),
      { what: 'the upstream to see its connection closed' });
  });
});

describe('an upstream that opens its SSE stream and then goes silent', () => {
  test('the call ends with -32002; the upstream stream closes and the server is told the request is cancelled', { timeout: 60_000 }, async () => {
    const r = await call('silent-stream');
    assertGaveUp(r, 200, /sent nothing for this request in 2000 ms \(timeouts\.upstream_response\); it was cancelled/);
    assert.ok(r.response.messages.some((m) => m.method === 'notifications/progress'), 'the progress came first');
    // The gateway kept the client's connection busy all along: without the limit, a client
    // relying on an inactivity timeout would have waited forever.
    assert.match(r.response.text, /^: keep-alive/m);
    assert.doesNotMatch(r.response.text, /: ping/, 'the upstream\'s comments are not relayed');
    await waitFor(async () => {
      const stats = await upstreamStats();
      return stats.closedEarly.includes('silent-stream') && stats.cancelled.includes(r.id);
    }, { what: 'the upstream to see its stream closed and notifications/cancelled for the request' });
  });

  test('an event that never ends is no answer either', { timeout: 60_000 }, async () => {
    const r = await call('unended-event');
    assertGaveUp(r, 200, /sent nothing for this request in 2000 ms/);
    await waitFor(async () => (await upstreamStats()).closedEarly.includes('unended-event'),
      { what: 'the upstream to see its stream closed' });
  });

  test('a call that keeps reporting progress is not cut, however long it runs', { timeout: 60_000 }, async () => {
    const r = await call('slow-progress', { seconds: 5 });
    assert.equal(r.message?.result?.content?.[0]?.text?.startsWith('done after'), true, r.response.text.slice(-300));
  });

  test('the SDK client gets an McpError (-32002), not its own timeout', { timeout: 60_000 }, async () => {
    const { client } = await connectClient(gateway.mcp('faulty'));
    const started = Date.now();
    const error = await client.callTool({ name: 'silent-stream', arguments: {} }, undefined, {
      timeout: 45_000, resetTimeoutOnProgress: true,
    }).then(() => undefined, (e) => e);
    assert.ok(error instanceof McpError, `want an McpError, got ${error?.constructor?.name}: ${error?.message}`);
    assert.equal(error.code, UPSTREAM_UNAVAILABLE, error.message);
    assert.notEqual(error.code, ErrorCode.RequestTimeout);
    assert.ok(Date.now() - started < 40_000, 'ended by the gateway, long before the client would have given up');
  });
});

describe('listen streams are exempt', () => {
  test('a GET stream quiet for longer than upstream_response stays open and still delivers', { timeout: 60_000 }, async () => {
    const stream = await openEventStream(gateway.mcp('faulty'), {
      headers: mcpHeaders({ sessionId: session.sessionId, protocolVersion: session.protocolVersion }),
    });
    assert.equal(stream.status, 200);
    await sleep(5_000);
    assert.equal(stream.ended, false, 'the listen stream is still open after 2.5× the limit');
    const r = await call('notify-listeners');
    assert.match(r.message?.result?.content?.[0]?.text ?? '', /notified [1-9]/);
    const event = await stream.next((e) => e.data.includes('hello listeners'), 10_000);
    assert.equal(JSON.parse(event.data).method, 'notifications/message');
    stream.close();
  });
});

describe('afterwards', () => {
  test('the session still works and the gateway is running', async () => {
    const r = await call('echo', { message: 'after the hangs' });
    assert.equal(r.message?.result?.content?.[0]?.text, 'Echo: after the hangs');
    assert.ok(gateway.proc.running);
  });
});
