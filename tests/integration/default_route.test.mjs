// The default route: `default_upstream` (or --default-upstream) also serves one upstream at /mcp
// and /sse, for clients that cannot use a path of their own (MCP Inspector 0.15 rewrites any URL
// path to /mcp or /sse). Every revision reaches it there as it does at /mcp/<name>; the named
// routes stay as they are; without a default, /mcp is a clear 404; a default that names no
// upstream is a config error with file:line.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  MEMBRANE_BIN, cleanup, connectClient, connectV2, everythingStdioCommand, rawFetch,
  startEverythingHttp, startGateway, stdioUpstreamFlag, tmpDir,
} from './harness.mjs';

let upstream;
let gateway;
let plain;

before(async () => {
  upstream = await startEverythingHttp();
  gateway = await startGateway([
    '--upstream', `ev=${upstream.url}`,
    '--upstream', stdioUpstreamFlag('evs', everythingStdioCommand()),
    '--default-upstream', 'evs',
  ], { name: 'membrane (default route)' });
  plain = await startGateway(['--upstream', `ev=${upstream.url}`], { name: 'membrane (no default)' });
});
after(cleanup);

const echoText = async (client, message) =>
  (await client.callTool({ name: 'echo', arguments: { message } })).content[0].text;

describe('/mcp and /sse serve the default upstream', () => {
  for (const [label, protocolVersion] of [['2025-11-25', '2025-11-25'], ['2025-03-26', '2025-03-26']]) {
    test(`a ${label} Streamable HTTP client at /mcp`, { timeout: 60_000 }, async () => {
      const { client, transport } = await connectClient(`${gateway.base}/mcp`, { protocolVersion });
      assert.ok(transport.sessionId, 'a session of its own');
      const tools = (await client.listTools()).tools.map((t) => t.name);
      assert.ok(tools.includes('echo'), tools.join(', '));
      assert.equal(await echoText(client, 'via /mcp'), 'Echo: via /mcp');
    });
  }

  test('a 2024-11-05 HTTP+SSE client at /sse (its message endpoint names the upstream)', { timeout: 60_000 }, async () => {
    const { client, wire } = await connectClient(`${gateway.base}/sse`, { kind: 'sse' });
    assert.equal(await echoText(client, 'via /sse'), 'Echo: via /sse');
    assert.ok(wire.some((w) => w.method === 'POST' && w.url.includes('/sse/evs/message?sessionId=')),
      JSON.stringify(wire.map((w) => [w.method, w.url])));
  });

  test('a 2026-07-28 client at /mcp', { timeout: 60_000 }, async () => {
    const { client } = await connectV2(`${gateway.base}/mcp`);
    const tools = (await client.listTools()).tools.map((t) => t.name);
    assert.ok(tools.includes('echo'), tools.join(', '));
    assert.equal(await echoText(client, 'stateless via /mcp'), 'Echo: stateless via /mcp');
  });

  test('the named routes are unchanged', { timeout: 60_000 }, async () => {
    const { client } = await connectClient(gateway.mcp('ev'));
    assert.equal(await echoText(client, 'named'), 'Echo: named');
  });

  test('a session from /mcp is the default upstream\'s: it also works at /mcp/<default>', { timeout: 60_000 }, async () => {
    const { transport } = await connectClient(`${gateway.base}/mcp`);
    const r = await rawFetch(gateway.mcp('evs'), {
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream',
        'mcp-session-id': transport.sessionId, 'mcp-protocol-version': '2025-11-25' },
      body: { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'echo', arguments: { message: 'same session' } } },
    });
    assert.equal(r.status, 200, r.text);
    assert.match(r.text, /Echo: same session/);
    const other = await rawFetch(gateway.mcp('ev'), {
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream',
        'mcp-session-id': transport.sessionId, 'mcp-protocol-version': '2025-11-25' },
      body: { jsonrpc: '2.0', id: 10, method: 'tools/list' },
    });
    assert.notEqual(other.status, 200, 'a session never crosses to another upstream');
  });
});

describe('without a default upstream', () => {
  test('/mcp and /sse are a 404 that says how to reach a server', async () => {
    for (const route of ['/mcp', '/sse']) {
      const r = await rawFetch(`${plain.base}${route}`, {
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } },
      });
      assert.equal(r.status, 404, r.text);
      assert.match(r.json.error.message, /\/mcp\/<name>/);
      assert.match(r.json.error.message, /default_upstream/);
      assert.match(r.json.error.message, /configured: ev/);
    }
  });
});

describe('a default that names no upstream', () => {
  test('is refused by config check with file:line', () => {
    const dir = tmpDir('membrane-default-route-');
    const file = path.join(dir, 'membrane.yaml');
    fs.writeFileSync(file, [
      'upstreams:',
      '  docs:',
      '    url: http://127.0.0.1:9/mcp',
      'default_upstream: doc',
      '',
    ].join('\n'));
    const r = spawnSync(MEMBRANE_BIN, ['config', 'check', '-c', file], { encoding: 'utf8' });
    assert.notEqual(r.status, 0, r.stdout);
    assert.match(r.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:\\d+: default_upstream: names no configured upstream \\(configured: docs\\)`));
  });

  test('is refused on the command line, naming the flag', () => {
    const r = spawnSync(MEMBRANE_BIN, ['serve', '--listen', '127.0.0.1:0', '--upstream', 'docs=http://127.0.0.1:9/mcp',
      '--default-upstream', 'nope'], { encoding: 'utf8', timeout: 10_000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /--default-upstream 'nope': names no configured upstream \(configured: docs\)/);
  });
});
