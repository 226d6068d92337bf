// A 2026-07-28 client's log level in front of a session server (tests/fixtures/modern-server.mjs
// --sessions, pinned to sessions with `protocol: 2025-11-25` so that the gateway bridges): the
// request's `_meta` logLevel becomes logging/setLevel in the pooled session when it asks for more
// than the session logs already, and each request gets only the lines at or above its own level.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { cleanup, startGateway, startModernServer, statelessRpc, tmpDir } from './harness.mjs';

const T = 30_000;
const LOG_LEVEL = 'io.modelcontextprotocol/logLevel';

let server;
let gateway;

before(async () => {
  server = await startModernServer({ name: 'dual (log level)', sessions: true });
  const dir = tmpDir('membrane-bridge-log-level-');
  const config = path.join(dir, 'membrane.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'upstreams:',
    '  pinned:',
    `    url: ${JSON.stringify(server.url)}`,
    '    protocol: 2025-11-25',
    '',
  ].join('\n'));
  gateway = await startGateway(['-c', config], { name: 'membrane (log level)' });
});
after(cleanup);

let id = 0;
const call = (name, args, level) => statelessRpc(gateway.mcp('pinned'), {
  method: 'tools/call', params: { name, arguments: args }, id: ++id, timeoutMs: T,
  meta: level ? { [LOG_LEVEL]: level } : undefined,
});

/** How many logging/setLevel requests reached the server (its own count, asked directly). */
async function setLevels() {
  const r = await statelessRpc(server.url, { method: 'tools/call', params: { name: 'stats', arguments: {} }, id: 'stats', timeoutMs: T });
  return JSON.parse(r.message.result.content[0].text).methods['logging/setLevel'] ?? 0;
}

const logLines = (response) => response.messages.filter((m) => m.method === 'notifications/message');

describe('2026-07-28 client -> session server: _meta logLevel', () => {
  test('a request without a level gets no log lines, and sets none', { timeout: T }, async () => {
    const r = await call('log', { message: 'unasked' });
    assert.equal(r.message?.result?.content?.[0]?.text, 'logged', r.text);
    assert.deepEqual(logLines(r), []);
    assert.equal(await setLevels(), 0);
  });

  test('a level becomes logging/setLevel in the pooled session once, and again only when lower', { timeout: T }, async () => {
    await call('echo', { message: 'a' }, 'warning');
    assert.equal(await setLevels(), 1);
    await call('echo', { message: 'b' }, 'error');      // asks for less: the session logs enough
    await call('echo', { message: 'c' }, 'warning');
    assert.equal(await setLevels(), 1);
    await call('echo', { message: 'd' }, 'debug');
    assert.equal(await setLevels(), 2);
  });

  test('each request gets the lines at or above its own level', { timeout: T }, async () => {
    const quiet = await call('log', { message: 'below warning' }, 'warning');
    assert.equal(quiet.message?.result?.content?.[0]?.text, 'logged', quiet.text);
    assert.deepEqual(logLines(quiet), [], 'an info line is below warning');
    const loud = await call('log', { message: 'at info' }, 'info');
    assert.ok(logLines(loud).some((n) => n.params.data === 'at info' && n.params.level === 'info'), loud.text);
  });
});
