// Fault matrix: the client disconnects in the middle of a streaming call. The gateway notices at
// once (not at its next keep-alive, set to 10 minutes here) and gives the upstream request up:
//   - HTTP upstream: the request's upstream stream is closed (MCP: a server must not take a closed
//     stream for a cancellation, and a client may resume with Last-Event-ID; so the gateway sends
//     no notifications/cancelled of its own for a session server);
//   - stdio upstream: the child is told with notifications/cancelled, since it cannot see the
//     client leave, and its answer would have nowhere to go.
// The session goes on working afterwards, and the call's audit record says the client left.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  NODE, SOURCE_DIR, cleanup, mcpHeaders, openEventStream, rawInitialize, rawRpc, spawnManaged,
  startGateway, stdioUpstreamFlag, tmpDir, waitFor,
} from './harness.mjs';

const FAULTY_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'faulty-http-server.mjs');
const HOSTILE_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'hostile-stdio-server.mjs');

let gateway;
let upstreamUrl;
let auditFile;
let hostileLog;

before(async () => {
  const upstream = spawnManaged('faulty upstream (disconnect)', NODE, [FAULTY_JS, '0']);
  upstreamUrl = (await upstream.waitForLine(/listening on (http:\/\/\S+)/, 20_000))[1];
  const dir = tmpDir('membrane-faults-disconnect-');
  auditFile = path.join(dir, 'audit.log');
  hostileLog = path.join(dir, 'hostile.jsonl');
  const config = path.join(dir, 'membrane.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'timeouts:',
    '  sse_keep_alive: 600s',
    'audit:',
    `  file: ${JSON.stringify(auditFile)}`,
    'upstreams:',
    '  faulty:',
    `    url: ${JSON.stringify(upstreamUrl)}`,
    '  hostile:',
    `    command: ${JSON.stringify(NODE)}`,
    `    args: [${JSON.stringify(HOSTILE_JS)}]`,
    `    env: {HOSTILE_LOG: ${JSON.stringify(hostileLog)}}`,
    '',
  ].join('\n'));
  gateway = await startGateway(['-c', config], { name: 'membrane (faults: disconnect)' });
});
after(cleanup);

/** Starts `tool` on a streaming POST, waits for `firstEvent`, then hangs up. */
async function startAndHangUp(upstream, session, tool, firstEvent) {
  const id = 77;
  const stream = await openEventStream(gateway.mcp(upstream), {
    method: 'POST',
    headers: mcpHeaders({ sessionId: session.sessionId, protocolVersion: session.protocolVersion }),
    body: { jsonrpc: '2.0', id, method: 'tools/call', params: { name: tool, arguments: { seconds: 60 }, _meta: { progressToken: 'p' } } },
  });
  assert.equal(stream.status, 200);
  if (firstEvent) await stream.next(firstEvent, 15_000);
  stream.close();
  return id;
}

function auditRecords() {
  return fs.readFileSync(auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

describe('HTTP upstream', () => {
  test('the upstream stream of the abandoned call is closed at once', { timeout: 60_000 }, async () => {
    const session = await rawInitialize(gateway.mcp('faulty'));
    const id = await startAndHangUp('faulty', session, 'slow-progress',
      (e) => JSON.parse(e.data).method === 'notifications/progress');
    await waitFor(async () => {
      const stats = await (await fetch(new URL('/stats', upstreamUrl))).json();
      return stats.closedEarly.includes('slow-progress');
    }, { what: 'the upstream to see the call\'s stream closed', timeoutMs: 10_000 });
    await waitFor(() => auditRecords().some((r) => r.request_id === id && r.outcome === 'client_gone' && r.tool === 'slow-progress'),
      { what: 'the audit record of the abandoned call' });
    const after = await rawRpc(gateway.mcp('faulty'), {
      sessionId: session.sessionId, protocolVersion: session.protocolVersion,
      method: 'tools/call', params: { name: 'echo', arguments: { message: 'next' } },
    });
    assert.equal(after.message?.result?.content?.[0]?.text, 'Echo: next');
  });
});

describe('stdio upstream', () => {
  test('the child is told with notifications/cancelled for the abandoned request', { timeout: 60_000 }, async () => {
    const session = await rawInitialize(gateway.mcp('hostile'));
    const id = await startAndHangUp('hostile', session, 'hang');
    const cancelled = () => fs.existsSync(hostileLog) && fs.readFileSync(hostileLog, 'utf8').split('\n').filter(Boolean)
      .map((l) => JSON.parse(l))
      .find((m) => m.method === 'notifications/cancelled' && m.params?.requestId === id);
    const note = await waitFor(cancelled, { what: 'notifications/cancelled to reach the child', timeoutMs: 10_000 });
    assert.match(note.params.reason, /client/);
    const after = await rawRpc(gateway.mcp('hostile'), {
      sessionId: session.sessionId, protocolVersion: session.protocolVersion,
      method: 'tools/call', params: { name: 'echo', arguments: { message: 'next' } },
    });
    assert.equal(after.message?.result?.content?.[0]?.text, 'Echo: next');
  });
});
