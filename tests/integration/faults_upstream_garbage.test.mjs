// Fault matrix: an HTTP upstream that sends what no MCP server should (tests/fixtures/
// faulty-http-server.mjs). Whatever it sends, the client gets a JSON-RPC error for its request
// that says what went wrong, none of the bad bytes reach the client, and the gateway keeps
// serving the same session and new ones. What the gateway does per case (docs/architecture.md,
// "What an upstream may send"):
//
//   SSE event whose data is not JSON            dropped; the request ends with -32002 "dropped"
//   SSE event / JSON body with invalid UTF-8    the same (not JSON): never relayed
//   SSE event nested past limits.max_json_depth the same: never relayed
//   one event / body over max_upstream_message  -32002 "message too large" (502 for a body)
//   JSON body labelled text/plain               502 -32002 naming the Content-Type
//   JSON body cut short, stream reset           502 / -32002 on the stream
//
// A stdio child's lines get the same treatment: a line that is not a JSON-RPC message (not JSON,
// invalid UTF-8) is dropped and logged, and the request goes on waiting for its real answer (lines
// over the limit stop the child: tests/integration/hardening_stdio.test.mjs).
//
// (An upstream killed during a streaming call is tests/integration/mid_stream.test.mjs.)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';

import {
  NODE, SOURCE_DIR, cleanup, connectClient, jsonRpcErrorProblems, rawFetch, rawInitialize, rawRpc,
  spawnManaged, startGateway, tmpDir, waitFor,
} from './harness.mjs';

const FAULTY_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'faulty-http-server.mjs');
const HOSTILE_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'hostile-stdio-server.mjs');
const LIMIT = 64 * 1024;
const UPSTREAM_UNAVAILABLE = -32002;

let gateway;
let session;

before(async () => {
  const upstream = spawnManaged('faulty upstream (garbage)', NODE, [FAULTY_JS, '0']);
  const url = (await upstream.waitForLine(/listening on (http:\/\/\S+)/, 20_000))[1];
  const config = path.join(tmpDir('membrane-faults-garbage-'), 'membrane.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'limits:',
    '  max_upstream_message: 64KiB',
    'timeouts:',
    '  upstream_response: 20s',
    'upstreams:',
    '  faulty:',
    `    url: ${JSON.stringify(url)}`,
    '  hostile:',
    `    command: ${JSON.stringify(NODE)}`,
    `    args: [${JSON.stringify(HOSTILE_JS)}]`,
    '',
  ].join('\n'));
  gateway = await startGateway(['-c', config], { name: 'membrane (faults: garbage)' });
  session = await rawInitialize(gateway.mcp('faulty'));
});
after(cleanup);

function call(name, args = {}) {
  return rawRpc(gateway.mcp('faulty'), {
    sessionId: session.sessionId,
    protocolVersion: session.protocolVersion,
    method: 'tools/call',
    params: { name, arguments: args },
    timeoutMs: 30_000,
  });
}

function assertError(r, { status, message }) {
  assert.equal(r.status, status, r.response.text.slice(0, 300));
  assert.ok(r.message, `a JSON-RPC response for id ${r.id} arrived: ${r.response.text.slice(0, 300)}`);
  assert.deepEqual(jsonRpcErrorProblems(r.message, { code: UPSTREAM_UNAVAILABLE, id: r.id }), []);
  assert.match(r.message.error.message, /faulty/, 'the error names the upstream');
  assert.match(r.message.error.message, message);
}

describe('SSE events that are not JSON-RPC messages', () => {
  test('data that is not JSON is dropped; the request ends with -32002 saying so', async () => {
    const r = await call('garbage-event');
    assertError(r, { status: 200, message: /dropped \(not valid JSON/ });
    assert.doesNotMatch(r.response.text, /this is not JSON at all/, 'the garbage never reached the client');
  });

  test('a response with invalid UTF-8 is dropped, not relayed', async () => {
    const r = await call('invalid-utf8-event');
    assertError(r, { status: 200, message: /UTF-8/ });
    assert.doesNotMatch(r.response.text, /bad /, 'the bytes never reached the client');
  });

  test('a response nested deeper than limits.max_json_depth is dropped, not relayed', async () => {
    const r = await call('deep-event', { levels: 5000 });
    assertError(r, { status: 200, message: /dropped \(JSON nesting deeper than 64 levels/ });
    assert.doesNotMatch(r.response.text, /\[\[\[/);
  });

  test('the SDK client sees an McpError for its call, not a transport failure or a timeout', async () => {
    const { client } = await connectClient(gateway.mcp('faulty'));
    const error = await client.callTool({ name: 'garbage-event', arguments: {} }, undefined, { timeout: 30_000 })
      .then(() => undefined, (e) => e);
    assert.ok(error instanceof McpError, `want an McpError, got ${error?.constructor?.name}: ${error?.message}`);
    assert.equal(error.code, UPSTREAM_UNAVAILABLE);
    assert.notEqual(error.code, ErrorCode.RequestTimeout);
  });
});

describe('bodies the gateway cannot pass on', () => {
  test('a JSON body with invalid UTF-8 -> 502 / -32002', async () => {
    const r = await call('invalid-utf8-body');
    assertError(r, { status: 502, message: /not valid JSON in UTF-8/ });
  });

  test('a JSON body labelled text/plain -> 502 / -32002 naming the Content-Type', async () => {
    const r = await call('wrong-content-type');
    assertError(r, { status: 502, message: /Content-Type 'text\/plain'/ });
    assert.doesNotMatch(r.response.text, /labelled text\/plain/);
  });
});

describe('messages over limits.max_upstream_message', () => {
  test('one SSE event over the limit -> -32002 "message too large"', async () => {
    const r = await call('giant-event', { bytes: 4 * LIMIT });
    assertError(r, { status: 200, message: /message too large: more than 65536 bytes in one event \(limits\.max_upstream_message\)/ });
    assert.ok(r.response.text.length < LIMIT, `nothing of the giant event was relayed (${r.response.text.length} bytes)`);
  });

  test('a JSON body over the limit -> 502 / -32002 "message too large"', async () => {
    const r = await call('giant-body', { bytes: 4 * LIMIT });
    assertError(r, { status: 502, message: /message too large: more than 65536 bytes/ });
  });

  test('just under the limit passes', async () => {
    const r = await call('giant-event', { bytes: LIMIT - 1024 });
    assert.equal(r.status, 200);
    assert.ok(r.message?.result, r.response.text.slice(0, 200));
  });
});

describe('an upstream that breaks off', () => {
  test('a JSON body cut short (connection reset) -> 502 / -32002', async () => {
    const r = await call('cut-json-body');
    assertError(r, { status: 502, message: /failed while sending its response/ });
  });

  test('an SSE stream reset after a progress notification -> the progress, then -32002', async () => {
    const r = await call('reset-mid-stream');
    assertError(r, { status: 200, message: /broke off the stream/ });
    assert.ok(r.response.messages.some((m) => m.method === 'notifications/progress'), 'the progress arrived first');
  });
});

describe('a stdio child that writes garbage before its answer', () => {
  test('the garbage lines are dropped, the real answer arrives', async () => {
    const stdio = await rawInitialize(gateway.mcp('hostile'));
    const r = await rawRpc(gateway.mcp('hostile'), {
      sessionId: stdio.sessionId,
      protocolVersion: stdio.protocolVersion,
      method: 'tools/call',
      params: { name: 'garbage', arguments: {} },
      timeoutMs: 30_000,
    });
    assert.equal(r.message?.result?.content?.[0]?.text, 'the real answer', r.response.text.slice(0, 300));
    assert.doesNotMatch(r.response.text, /not JSON-RPC|bad /);
    // The gateway's log line may reach this process after the answer did.
    await waitFor(() => gateway.lines.some((l) => /hostile.*wrote a line that is not JSON-RPC/.test(l)),
      { what: 'the garbage to be logged' });
  });
});

describe('afterwards', () => {
  test('the same session and a new one work; the gateway is healthy', async () => {
    const same = await call('echo', { message: 'still here ✓' });
    assert.equal(same.message?.result?.content?.[0]?.text, 'Echo: still here ✓');
    const { client } = await connectClient(gateway.mcp('faulty'));
    const fresh = await client.callTool({ name: 'echo', arguments: { message: 'new session' } });
    assert.equal(fresh.content[0].text, 'Echo: new session');
    assert.ok(gateway.proc.running);
    assert.equal((await rawFetch(`${gateway.base}/healthz`, { method: 'GET' })).status, 200);
  });
});
