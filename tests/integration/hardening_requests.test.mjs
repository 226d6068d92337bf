// Hardening, requests an attacker sends: JSON nested far deeper than any MCP message (which
// used to overflow the gateway's stack), request methods sent as notifications (which used to
// reach the server unjudged and unaudited), a resources/read that names a harmless params.name
// next to the URI it reads (which used to be judged under that name), and an upstream that
// answers with JSON too deep to read. Every path (sessions, 2026-07-28, legacy SSE) is tried.
// Also: a line break (or NUL) in a client's method name, which must neither add header lines to
// the upstream request nor start a log line, and a body that a NUL byte would cut short.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  MEMBRANE_BIN, NODE, SOURCE_DIR, cleanup, mcpHeaders, openEventStream, rawFetch, rawInitialize,
  rawRpc, startGateway, startModernServer, statelessBody, statelessHeaders, stdioUpstreamFlag, tmpDir,
  waitFor,
} from './harness.mjs';

const HOSTILE_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'hostile-stdio-server.mjs');
const DEPTH = 100_000;

let gateway;
let dir;
let hostileLog;
let auditFile;
let session;

// `{"a":{"a":…}}` nested `levels` deep around `inner`: built as text, since JSON.stringify of
// such a value would itself recurse that deep.
const nested = (levels, inner = '1') => `${'{"a":'.repeat(levels)}${inner}${'}'.repeat(levels)}`;
const received = () => (fs.existsSync(hostileLog) ? fs.readFileSync(hostileLog, 'utf8') : '')
  .split('\n').filter(Boolean).map((line) => JSON.parse(line));
const auditRecords = () => fs.readFileSync(auditFile, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
const alive = async () => (await fetch(`${gateway.base}/healthz`)).status === 200 && gateway.proc.running;

before(async () => {
  dir = tmpDir('membrane-hardening-');
  hostileLog = path.join(dir, 'received.jsonl');
  auditFile = path.join(dir, 'audit.log');
  const policy = path.join(dir, 'policy.yaml');
  fs.writeFileSync(policy, [
    '- rule: no-secret-resources',
    '  condition: mcp.method == "resources/read" and tool.name startswith "secret://"',
    '  verdict: deny',
    '  message: secrets are not readable',
    '',
  ].join('\n'));
  gateway = await startGateway([
    '--upstream', stdioUpstreamFlag('hostile', [NODE, HOSTILE_JS]),
    '--policy', policy, '--audit-log', auditFile,
  ], { name: 'membrane (hardening requests)', env: { HOSTILE_LOG: hostileLog } });
  session = await rawInitialize(gateway.mcp('hostile'));
});
after(cleanup);

describe('JSON nested deeper than the limit', () => {
  test('in initialize params: 400, -32600 naming the limit, and the gateway lives', { timeout: 30_000 }, async () => {
    const body = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":${nested(DEPTH, '{}')}}`;
    assert.ok(body.length > 200_000);
    const response = await rawFetch(gateway.mcp('hostile'), { headers: mcpHeaders(), body });
    assert.equal(response.status, 400);
    assert.equal(response.json.error.code, -32600);
    assert.match(response.json.error.message, /nesting deeper than 64 levels/);
    assert.ok(await alive());
  });

  test('in tools/call arguments with the audit log on: refused, and the answered call before it stays in a verified trail',
    { timeout: 30_000 }, async () => {
      const answered = await rawRpc(gateway.mcp('hostile'), {
        sessionId: session.sessionId, protocolVersion: session.protocolVersion,
        method: 'tools/call', params: { name: 'echo', arguments: { message: 'before the attack' } },
      });
      assert.equal(answered.message.result.content[0].text, 'Echo: before the attack');
      const body = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":${nested(DEPTH)}}}`;
      const response = await rawFetch(gateway.mcp('hostile'), {
        headers: mcpHeaders({ sessionId: session.sessionId, protocolVersion: session.protocolVersion }), body,
      });
      assert.equal(response.status, 400);
      assert.match(response.json.error.message, /nesting deeper than 64 levels/);
      assert.ok(await alive());
      await waitFor(() => auditRecords().some((r) => r.method === 'tools/call' && r.tool === 'echo'),
        { what: 'the answered call in the audit trail' });
      const verify = spawnSync(MEMBRANE_BIN, ['audit', 'verify', auditFile], { encoding: 'utf8' });
      assert.equal(verify.status, 0, verify.stderr);
    });

  test('on the 2026-07-28 path: 400 before anything is forwarded', { timeout: 30_000 }, async () => {
    const body = `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":${nested(DEPTH)},` +
      `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`;
    const response = await rawFetch(gateway.mcp('hostile'), {
      headers: statelessHeaders({ method: 'tools/call', name: 'echo' }), body,
    });
    assert.equal(response.status, 400);
    assert.match(response.json.error.message, /nesting deeper than 64 levels/);
    assert.ok(await alive());
  });

  test('on the legacy HTTP+SSE message endpoint', { timeout: 30_000 }, async () => {
    const stream = await openEventStream(gateway.sse('hostile'));
    try {
      const endpoint = await stream.next((event) => event.event === 'endpoint');
      const target = new URL(endpoint.data, gateway.base).toString();
      const body = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":${nested(DEPTH, '{}')}}`;
      const response = await rawFetch(target, { headers: { 'content-type': 'application/json' }, body });
      assert.equal(response.status, 400);
      assert.match(response.json.error.message, /nesting deeper than 64 levels/);
    } finally {
      stream.close();
    }
    assert.ok(await alive());
  });

  test('a stdio server answering deeper than the limit: the call ends with -32002 saying why', { timeout: 30_000 }, async () => {
    const fresh = await rawInitialize(gateway.mcp('hostile'));
    const answer = await rawRpc(gateway.mcp('hostile'), {
      sessionId: fresh.sessionId, protocolVersion: fresh.protocolVersion,
      method: 'tools/call', params: { name: 'deep', arguments: { levels: 5000 } },
    });
    assert.equal(answer.message.error.code, -32002);
    assert.match(answer.message.error.message, /nesting deeper than 64 levels/);
    assert.ok(await alive());
  });
});

describe('a request method sent without an id (a notification named like a request)', () => {
  const notification = { jsonrpc: '2.0', method: 'tools/call', params: { name: 'echo', arguments: { message: 'unjudged' } } };
  const reachedServer = () => received().some((m) => m.method === 'tools/call' && m.params?.arguments?.message === 'unjudged');

  test('session path: refused with 400 naming the problem, never forwarded', { timeout: 30_000 }, async () => {
    const response = await rawFetch(gateway.mcp('hostile'), {
      headers: mcpHeaders({ sessionId: session.sessionId, protocolVersion: session.protocolVersion }), body: notification,
    });
    assert.equal(response.status, 400);
    assert.equal(response.json.error.code, -32600);
    assert.match(response.json.error.message, /'tools\/call' is a request and needs an "id"/);
    // A later real call proves the session and the child are fine, and orders the check after it.
    await rawRpc(gateway.mcp('hostile'), {
      sessionId: session.sessionId, protocolVersion: session.protocolVersion, method: 'ping',
    });
    assert.equal(reachedServer(), false);
  });

  test('2026-07-28 path: refused the same way', { timeout: 30_000 }, async () => {
    const body = statelessBody({ method: 'tools/call', params: { name: 'echo', arguments: { message: 'unjudged' } } });
    delete body.id;
    const response = await rawFetch(gateway.mcp('hostile'), {
      headers: statelessHeaders({ method: 'tools/call', name: 'echo' }), body,
    });
    assert.equal(response.status, 400);
    assert.match(response.json.error.message, /needs an "id"/);
    assert.equal(reachedServer(), false);
  });

  test('legacy HTTP+SSE path: refused the same way', { timeout: 30_000 }, async () => {
    const stream = await openEventStream(gateway.sse('hostile'));
    try {
      const endpoint = await stream.next((event) => event.event === 'endpoint');
      const target = new URL(endpoint.data, gateway.base).toString();
      const response = await rawFetch(target, { headers: { 'content-type': 'application/json' }, body: notification });
      assert.equal(response.status, 400);
      assert.match(response.json.error.message, /needs an "id"/);
    } finally {
      stream.close();
    }
    assert.equal(reachedServer(), false);
  });

  test('a real notification still passes', { timeout: 30_000 }, async () => {
    const response = await rawFetch(gateway.mcp('hostile'), {
      headers: mcpHeaders({ sessionId: session.sessionId, protocolVersion: session.protocolVersion }),
      body: { jsonrpc: '2.0', method: 'notifications/roots/list_changed' },
    });
    assert.equal(response.status, 202);
    await waitFor(() => received().some((m) => m.method === 'notifications/roots/list_changed'),
      { what: 'the notification at the server' });
  });
});

describe('what the policy judges is what the upstream acts on', () => {
  test('resources/read with an extra params.name is judged (and audited) by its uri', { timeout: 30_000 }, async () => {
    const answer = await rawRpc(gateway.mcp('hostile'), {
      sessionId: session.sessionId, protocolVersion: session.protocolVersion,
      method: 'resources/read', params: { uri: 'secret://payroll', name: 'harmless' },
    });
    assert.equal(answer.message.error?.code, -32003, JSON.stringify(answer.message));
    assert.match(answer.message.error.message, /no-secret-resources/);
    assert.equal(received().some((m) => m.method === 'resources/read' && m.params?.uri === 'secret://payroll'), false);
    await waitFor(() => auditRecords().some((r) => r.method === 'resources/read'), { what: 'the audit record' });
    const record = auditRecords().find((r) => r.method === 'resources/read');
    assert.equal(record.tool, 'secret://payroll');
    assert.equal(record.verdict, 'deny');
  });

  test('a judged method without its target is refused, not judged as an empty name', { timeout: 30_000 }, async () => {
    const response = await rawFetch(gateway.mcp('hostile'), {
      headers: mcpHeaders({ sessionId: session.sessionId, protocolVersion: session.protocolVersion }),
      body: { jsonrpc: '2.0', id: 99, method: 'resources/read', params: { name: 'secret://payroll' } },
    });
    assert.equal(response.status, 400);
    assert.equal(response.json.error.code, -32602);
    assert.match(response.json.error.message, /resources\/read needs params\.uri/);
  });

  test('allowed reads still work', { timeout: 30_000 }, async () => {
    const answer = await rawRpc(gateway.mcp('hostile'), {
      sessionId: session.sessionId, protocolVersion: session.protocolVersion,
      method: 'resources/read', params: { uri: 'public://readme' },
    });
    assert.equal(answer.message.result.contents[0].text, 'resource public://readme');
  });
});

describe('a line break in what a client sent never becomes a line of its own', () => {
  // A session client in front of a 2026-07-28 server: the gateway sends the request's method as
  // the Mcp-Method header, so a method holding CR LF would add header lines of the client's
  // choosing to the upstream request; and the exchange log quotes the method.
  let bridged;
  let modern;
  let client;
  before(async () => {
    modern = await startModernServer({ name: 'modern (hardening)' });
    bridged = await startGateway(['--upstream', `modern=${modern.url}`],
      { name: 'membrane (hardening header lines)' });
    client = await rawInitialize(bridged.mcp('modern'));
  });

  const methodsSeen = async () => {
    const answer = await rawRpc(bridged.mcp('modern'), {
      sessionId: client.sessionId, protocolVersion: client.protocolVersion,
      method: 'tools/call', params: { name: 'stats', arguments: {} },
    });
    return JSON.parse(answer.message.result.content[0].text).methods;
  };

  for (const [label, method] of [['CR LF', 'custom/x\r\nX-Injected: 1'], ['LF', 'custom/y\nX-Injected: 2'],
    ['NUL', 'custom/z\u0000X-Injected: 3']]) {
    test(`a method with ${label}: refused before it is sent, nothing reaches the server`, { timeout: 30_000 }, async () => {
      const before = await methodsSeen();
      const answer = await rawRpc(bridged.mcp('modern'), {
        sessionId: client.sessionId, protocolVersion: client.protocolVersion, method, params: {},
      });
      assert.equal(answer.status, 502);
      assert.equal(answer.message.error.code, -32002);
      assert.match(answer.message.error.message, /the header 'Mcp-Method' was not sent/);
      const after = await methodsSeen();
      for (const [name, count] of Object.entries(after)) {
        if (name === 'tools/call') continue;  // the stats calls themselves
        assert.equal(count, before[name], `${name} reached the server`);
      }
      assert.ok(!Object.keys(after).some((name) => name.startsWith('custom/')), JSON.stringify(after));
    });
  }

  test('the exchange log quotes such a method on one line', { timeout: 30_000 }, async () => {
    await waitFor(() => bridged.proc.lines.some((line) => line.includes('method=custom/x\\r\\nX-Injected: 1')),
      { timeoutMs: 10_000, what: 'the exchange log line with the method escaped' });
    assert.ok(!bridged.proc.lines.some((line) => /^(err\| )?X-Injected/.test(line.trim())),
      'a log line starts with the injected text');
  });

  test('a raw NUL byte in a body is not JSON: 400, whatever follows it', { timeout: 30_000 }, async () => {
    const body = '{"jsonrpc":"2.0","id":77,"method":"tools/call","params":{"name":"echo","arguments":{"message":"a"}}}'
      + '\u0000{"jsonrpc":"2.0","id":78,"method":"tools/call","params":{"name":"echo"}}';
    const response = await rawFetch(bridged.mcp('modern'), {
      headers: mcpHeaders({ sessionId: client.sessionId, protocolVersion: client.protocolVersion }), body,
    });
    assert.equal(response.status, 400);
    assert.equal(response.json.error.code, -32700);
  });
});
