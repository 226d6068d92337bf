// Cancelling a call through the gateway, with the official clients and a 2026-07-28 server that
// counts the calls it saw cancelled (tests/fixtures/modern-server.mjs, tool wait_for_cancel):
//
//   - a 2026-07-28 client cancels by closing its request: the gateway closes the upstream request
//     at once, whether the upstream is answering with one pending JSON body or a quiet stream;
//   - a 2025-11-25 client (SDK v1) cancels with notifications/cancelled: the gateway, which holds
//     no upstream session for it, closes the upstream request instead;
//   - the SDK v2 client's own cancellation (AbortSignal) reaches the server the same way.
//
// The gateway's SSE keep-alive is set to 10 minutes, so nothing here can pass because a keep-alive
// write happened to find the connection closed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  Client as ClientV2,
  StreamableHTTPClientTransport as StreamableHTTPClientTransportV2,
} from '@modelcontextprotocol/client';

import {
  FULL_CAPABILITIES, MCP_ACCEPT, NODE, SOURCE_DIR, STATELESS, cleanup, connectClient, sleep,
  spawnManaged, startGateway, statelessBody, statelessHeaders, tmpDir, waitFor,
} from './harness.mjs';

const MODERN_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'modern-server.mjs');
const T = 60_000;

let modern;
let gateway;
let auditFile;

before(async () => {
  const proc = spawnManaged('modern (cancel)', NODE, [MODERN_JS, '0', '60000']);
  const m = await proc.waitForLine(/listening on (http:\/\/\S+)/, 20_000);
  modern = { url: m[1], proc };
  const dir = tmpDir('membrane-cancel-');
  auditFile = path.join(dir, 'audit.jsonl');
  const config = path.join(dir, 'membrane.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'timeouts:',
    '  sse_keep_alive: 600s',
    'audit:',
    `  file: ${JSON.stringify(auditFile)}`,
    'upstreams:',
    '  mod:',
    `    url: ${JSON.stringify(modern.url)}`,
    '',
  ].join('\n'));
  gateway = await startGateway(['-c', config], { name: 'membrane (cancel)' });
});
after(cleanup);

// The server's own count, asked directly so the question does not pass through the gateway.
async function cancellations() {
  const response = await fetch(modern.url, {
    method: 'POST',
    headers: statelessHeaders({ method: 'tools/call', name: 'stats' }),
    body: JSON.stringify(statelessBody({ method: 'tools/call', params: { name: 'stats', arguments: {} } })),
  });
  const text = await response.text();
  const json = text.startsWith('{') ? JSON.parse(text)
    : JSON.parse(text.split('\n').find((line) => line.startsWith('data: {')).slice(6));
  return JSON.parse(json.result.content[0].text).cancellations;
}

/** Starts wait_for_cancel with a raw 2026-07-28 request and closes it after `ms`. */
async function startAndClose(url, ms, accept = MCP_ACCEPT) {
  const controller = new AbortController();
  const pending = fetch(url, {
    method: 'POST',
    headers: statelessHeaders({ method: 'tools/call', name: 'wait_for_cancel', extra: { accept } }),
    body: JSON.stringify(statelessBody({ id: 7, method: 'tools/call', params: { name: 'wait_for_cancel', arguments: {} } })),
    signal: controller.signal,
  }).then((r) => r.text());
  await sleep(ms);
  controller.abort();
  await assert.rejects(pending, { name: 'AbortError' });
}

async function expectOneMoreCancellation(before, what) {
  await waitFor(async () => (await cancellations()) === before + 1,
    { timeoutMs: 10_000, what: `${what}: the server sees the call cancelled` });
}

function auditRecords() {
  if (!fs.existsSync(auditFile)) return [];
  return fs.readFileSync(auditFile, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

describe('a 2026-07-28 client closes its request', () => {
  test('control: closing a direct request cancels the call on the server', { timeout: T }, async () => {
    const before = await cancellations();
    await startAndClose(modern.url, 500);
    await expectOneMoreCancellation(before, 'direct');
  });

  test('through the gateway: the upstream request is closed at once and the call cancelled', { timeout: T }, async () => {
    const before = await cancellations();
    await startAndClose(gateway.mcp('mod'), 500);
    await expectOneMoreCancellation(before, 'through the gateway');
    await waitFor(() => auditRecords().some((r) => r.method === 'tools/call' && r.outcome === 'client_gone'),
      { what: 'an audit record of the abandoned call' });
  });

  test('the gateway keeps serving: the next call on the same upstream is answered', { timeout: T }, async () => {
    const response = await fetch(gateway.mcp('mod'), {
      method: 'POST',
      headers: statelessHeaders({ method: 'tools/call', name: 'echo' }),
      body: JSON.stringify(statelessBody({ id: 8, method: 'tools/call', params: { name: 'echo', arguments: { message: 'still here' } } })),
    });
    assert.equal(response.status, 200);
    assert.match(await response.text(), /Echo: still here/);
  });

  test('SDK v2 client: cancelling callTool (AbortSignal) cancels the call on the server', { timeout: T }, async () => {
    const client = new ClientV2({ name: 'membrane-it-cancel-v2', version: '1.0.0' },
      { capabilities: FULL_CAPABILITIES, versionNegotiation: { mode: { pin: STATELESS } } });
    await client.connect(new StreamableHTTPClientTransportV2(new URL(gateway.mcp('mod'))));
    try {
      const before = await cancellations();
      const controller = new AbortController();
      const call = client.callTool({ name: 'wait_for_cancel', arguments: {} }, { signal: controller.signal });
      await sleep(500);
      controller.abort('test cancels');
      await assert.rejects(call);
      await expectOneMoreCancellation(before, 'SDK v2');
    } finally {
      await client.close();
    }
  });
});

describe('a 2025-11-25 client (SDK v1) sends notifications/cancelled', () => {
  test('the gateway closes the upstream request: the 2026-07-28 server cancels the call', { timeout: T }, async () => {
    const { client } = await connectClient(gateway.mcp('mod'));
    const before = await cancellations();
    const controller = new AbortController();
    const call = client.callTool({ name: 'wait_for_cancel', arguments: {} }, undefined,
      { signal: controller.signal, timeout: 30_000 });
    await sleep(500);
    controller.abort('test cancels');
    await assert.rejects(call);
    await expectOneMoreCancellation(before, 'SDK v1');
    // The session goes on.
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'after cancel' } });
    assert.equal(echo.content[0].text, 'Echo: after cancel');
    await waitFor(() => auditRecords().some((r) => r.method === 'tools/call' && r.outcome === 'cancelled'),
      { what: 'an audit record of the cancelled call' });
  });

  test('a notifications/cancelled for an unknown request is accepted and changes nothing', { timeout: T }, async () => {
    const { client } = await connectClient(gateway.mcp('mod'));
    await client.notification({ method: 'notifications/cancelled', params: { requestId: 424242, reason: 'none' } });
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'fine' } });
    assert.equal(echo.content[0].text, 'Echo: fine');
  });
});

describe('a client that leaves before any answer', () => {
  test('leaves no error in the gateway\'s log: nobody was there to answer', { timeout: T }, async () => {
    // Every request above left before its answer, some before the gateway had started one.
    const unanswered = gateway.lines.filter((line) => /handler produced no response/.test(line));
    assert.deepEqual(unanswered, []);
  });
});
