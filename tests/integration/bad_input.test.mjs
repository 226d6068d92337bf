// Bad input gets a clear, spec-shaped answer: a JSON-RPC error body
// {"jsonrpc":"2.0","id":…|null,"error":{"code":…,"message":…}} with the right HTTP status, and
// the gateway keeps serving afterwards. Everything here is raw fetch / node:http so the exact
// status codes and bodies are visible.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import {
  MCP_ACCEPT, PROTOCOL_LATEST,
  cleanup, closedPort, flipChar, httpRaw, initializeRequest, jsonRpcErrorProblems, mcpHeaders,
  rawFetch, rawInitialize, rawRpc, startEverythingHttp, startGateway,
} from './harness.mjs';

let upstream;
let gateway;
let session;  // a real session through /mcp/ev: {sessionId, protocolVersion}

before(async () => {
  upstream = await startEverythingHttp();
  const downPort = await closedPort();
  gateway = await startGateway([
    '--upstream', `ev=${upstream.url}`,
    '--upstream', `down=http://127.0.0.1:${downPort}/mcp`,
  ]);
  session = await rawInitialize(gateway.mcp('ev'));
});
after(cleanup);

function sessionHeaders(extra = {}) {
  return mcpHeaders({ sessionId: session.sessionId, protocolVersion: session.protocolVersion, extra });
}

/** Asserts HTTP status and a well-formed JSON-RPC error body. Returns the parsed body. */
function assertJsonRpcError(res, { status, code, id, what }) {
  const body = res.json ?? (() => { try { return JSON.parse(res.text); } catch { return undefined; } })();
  assert.equal(res.status, status, `${what}: HTTP status ${res.status} (want ${status}); body: ${res.text.slice(0, 300)}`);
  assert.deepEqual(jsonRpcErrorProblems(body, { code, id }), [],
    `${what}: body is not the expected JSON-RPC error: ${res.text.slice(0, 300)}`);
  return body;
}

describe('health endpoints', () => {
  test('GET /healthz is 200 and GET /readyz is 200', async () => {
    assert.equal((await rawFetch(`${gateway.base}/healthz`, { method: 'GET' })).status, 200);
    assert.equal((await rawFetch(`${gateway.base}/readyz`, { method: 'GET' })).status, 200);
  });
});

describe('body parsing', () => {
  for (const [what, body] of [
    ['truncated JSON', '{"jsonrpc":"2.0","id":1,'],
    ['not JSON at all', 'hello, gateway'],
    ['invalid UTF-8 inside a JSON string', Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])],
  ]) {
    test(`${what} -> 400 / -32700 (parse error, id null)`, async () => {
      const res = await rawFetch(gateway.mcp('ev'), { headers: sessionHeaders(), body });
      assertJsonRpcError(res, { status: 400, code: -32700, id: null, what });
    });
  }

  for (const [what, body] of [
    ['an object that is not JSON-RPC', '{"hello":1}'],
    ['an empty array', '[]'],
    ['a bare number', '42'],
    ['a string', '"tools/list"'],
    ['null', 'null'],
    ['jsonrpc "1.0"', '{"jsonrpc":"1.0","id":1,"method":"ping"}'],
    ['a non-string method', '{"jsonrpc":"2.0","id":1,"method":7}'],
  ]) {
    test(`${what} (${body}) -> 400 / -32600 (invalid request)`, async () => {
      const res = await rawFetch(gateway.mcp('ev'), { headers: sessionHeaders(), body });
      assertJsonRpcError(res, { status: 400, code: -32600, what });
    });
  }

  test('Content-Type: text/plain -> 415', async () => {
    const res = await rawFetch(gateway.mcp('ev'), {
      headers: { 'content-type': 'text/plain', accept: MCP_ACCEPT },
      body: initializeRequest(),
    });
    assertJsonRpcError(res, { status: 415, what: 'text/plain POST' });
  });

  for (const accept of ['application/json', 'text/event-stream', 'text/html']) {
    test(`Accept: ${accept} (not both MCP media types) -> 406`, async () => {
      const res = await rawFetch(gateway.mcp('ev'), {
        headers: { 'content-type': 'application/json', accept },
        body: initializeRequest(),
      });
      assertJsonRpcError(res, { status: 406, what: `Accept: ${accept}` });
    });
  }

  test('Content-Type: application/json; charset=utf-8 and a spaced Accept list are fine', async () => {
    const res = await rawFetch(gateway.mcp('ev'), {
      headers: {
        'content-type': 'application/json; charset=utf-8',
        accept: 'text/event-stream ,  application/json;q=0.9',
        'mcp-session-id': session.sessionId,
        'mcp-protocol-version': session.protocolVersion,
      },
      body: { jsonrpc: '2.0', id: 5, method: 'ping' },
    });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.messages.find((m) => m.id === 5), { jsonrpc: '2.0', id: 5, result: {} });
  });

  const big = () => {
    const pad = 'x'.repeat(5 * 1024 * 1024);
    return JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'ping', params: { pad } });
  };

  // The client sends the whole body, as fetch() and the SDK do. The 413 must be readable by it:
  // a server that answers early and closes with unread input in its socket makes the kernel
  // reset the connection, and the client sees EPIPE/ECONNRESET instead of the answer (servers
  // avoid that by draining the excess or by a lingering close).
  async function postTooLarge(opts) {
    try {
      return await httpRaw(gateway.mcp('ev'), { headers: sessionHeaders(), body: big(), ...opts });
    } catch (err) {
      assert.fail(`no HTTP response could be read: ${err.code ?? err.message} (the connection was reset ` +
        'while the body was being sent, so the client never sees the 413)');
    }
  }

  test('a 5 MiB body (limit 4 MiB) with Content-Length -> 413', { timeout: 60_000 }, async () => {
    const res = await postTooLarge({});
    assert.equal(res.status, 413, res.text.slice(0, 300));
  });

  test('a 5 MiB chunked body (no Content-Length) -> 413', { timeout: 60_000 }, async () => {
    const res = await postTooLarge({ chunked: true });
    assert.equal(res.status, 413, res.text.slice(0, 300));
  });

  test('a 3 MiB body (under the limit) is accepted', { timeout: 60_000 }, async () => {
    const text = 'y'.repeat(3 * 1024 * 1024);
    const res = await httpRaw(gateway.mcp('ev'), {
      headers: sessionHeaders(),
      body: JSON.stringify({ jsonrpc: '2.0', id: 10, method: 'tools/call', params: { name: 'echo', arguments: { message: text } } }),
    });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assert.ok(res.text.includes(`Echo: ${'y'.repeat(1000)}`), 'the echo of the large message came back');
  });
});

describe('sessions', () => {
  const cases = [
    ['a random string', () => 'definitely-not-a-session-id'],
    ['random base64url', () => crypto.randomBytes(48).toString('base64url')],
    ['a real id with its middle character flipped', () => flipChar(session.sessionId)],
    ['a real id with its first character flipped', () => flipChar(session.sessionId, 0)],
    ['a real id with a character appended', () => `${session.sessionId}A`],
    ['a real id truncated by one character', () => session.sessionId.slice(0, -1)],
  ];
  for (const [what, makeId] of cases) {
    test(`POST with ${what} as Mcp-Session-Id -> 404`, async () => {
      const id = makeId();
      assert.notEqual(id, session.sessionId);
      const r = await rawRpc(gateway.mcp('ev'), { sessionId: id, protocolVersion: session.protocolVersion, method: 'tools/list', id: 77 });
      assertJsonRpcError(r.response, { status: 404, id: [77, null], what });
    });
  }

  test('GET and DELETE with a tampered Mcp-Session-Id -> 404', async () => {
    const headers = { 'mcp-session-id': flipChar(session.sessionId), 'mcp-protocol-version': session.protocolVersion };
    const get = await rawFetch(gateway.mcp('ev'), { method: 'GET', headers: { ...headers, accept: 'text/event-stream' }, timeoutMs: 10_000 });
    assert.equal(get.status, 404, `GET: ${get.text.slice(0, 300)}`);
    const del = await rawFetch(gateway.mcp('ev'), { method: 'DELETE', headers, timeoutMs: 10_000 });
    assert.equal(del.status, 404, `DELETE: ${del.text.slice(0, 300)}`);
  });

  test('a session id issued for one upstream is not accepted on another route', async () => {
    const r = await rawRpc(gateway.mcp('down'), { sessionId: session.sessionId, protocolVersion: session.protocolVersion, method: 'tools/list' });
    assert.ok([400, 404].includes(r.status), `status ${r.status}: ${r.response.text.slice(0, 300)}`);
  });

  test('a non-initialize request without Mcp-Session-Id -> 400', async () => {
    const r = await rawRpc(gateway.mcp('ev'), { protocolVersion: PROTOCOL_LATEST, method: 'tools/list', id: 78 });
    assertJsonRpcError(r.response, { status: 400, id: [78, null], what: 'tools/list without session' });
  });

  test('the real session still works after all that', async () => {
    const r = await rawRpc(gateway.mcp('ev'), {
      sessionId: session.sessionId, protocolVersion: session.protocolVersion,
      method: 'tools/call', params: { name: 'echo', arguments: { message: 'still here' } },
    });
    assert.equal(r.status, 200, r.response.text);
    assert.deepEqual(r.message?.result, { content: [{ type: 'text', text: 'Echo: still here' }] });
  });
});

describe('routing and upstream failures', () => {
  test('unknown upstream /mcp/nope -> 404 naming "nope"', async () => {
    const res = await rawFetch(`${gateway.base}/mcp/nope`, { headers: mcpHeaders(), body: initializeRequest() });
    const body = assertJsonRpcError(res, { status: 404, what: '/mcp/nope' });
    assert.match(body.error.message, /nope/);
  });

  test('unknown upstream on the legacy route /sse/nope -> 404', async () => {
    const res = await rawFetch(`${gateway.base}/sse/nope`, { method: 'GET', headers: { accept: 'text/event-stream' }, timeoutMs: 10_000 });
    assert.equal(res.status, 404, res.text.slice(0, 300));
  });

  test('upstream down -> 502 with a JSON-RPC error naming the upstream', { timeout: 60_000 }, async () => {
    const res = await rawFetch(gateway.mcp('down'), { headers: mcpHeaders(), body: initializeRequest({ id: 31 }), timeoutMs: 45_000 });
    const body = assertJsonRpcError(res, { status: 502, id: [31, null], what: 'initialize on a down upstream' });
    assert.match(body.error.message, /down/);
  });
});

describe('request headers', () => {
  test('Origin: http://evil.example -> 403', async () => {
    const res = await rawFetch(gateway.mcp('ev'), {
      headers: mcpHeaders({ extra: { origin: 'http://evil.example' } }),
      body: initializeRequest(),
    });
    assertJsonRpcError(res, { status: 403, what: 'foreign Origin' });
  });

  test('Origin: http://evil.example on a session request -> 403', async () => {
    const res = await rawFetch(gateway.mcp('ev'), {
      headers: sessionHeaders({ origin: 'http://evil.example' }),
      body: { jsonrpc: '2.0', id: 3, method: 'tools/list' },
    });
    assertJsonRpcError(res, { status: 403, what: 'foreign Origin with a session' });
  });

  test('a loopback Origin is allowed', async () => {
    const res = await rawFetch(gateway.mcp('ev'), {
      headers: mcpHeaders({ extra: { origin: `http://127.0.0.1:${gateway.port}` } }),
      body: initializeRequest(),
    });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assert.ok(res.headers.get('mcp-session-id'));
  });

  test('MCP-Protocol-Version: 1999-01-01 after initialize -> 400', async () => {
    const r = await rawRpc(gateway.mcp('ev'), { sessionId: session.sessionId, protocolVersion: '1999-01-01', method: 'tools/list', id: 44 });
    assertJsonRpcError(r.response, { status: 400, code: -32022, id: [44, null], what: 'unsupported MCP-Protocol-Version' });
    // The 2026-07-28 shape: the supported revisions and the one asked for.
    assert.ok(r.response.json.error.data.supported.includes('2025-11-25'));
    assert.equal(r.response.json.error.data.requested, '1999-01-01');
    const ok = await rawRpc(gateway.mcp('ev'), { sessionId: session.sessionId, protocolVersion: session.protocolVersion, method: 'tools/list', id: 45 });
    assert.equal(ok.status, 200, 'the same request with the negotiated version works');
  });
});

describe('afterwards', () => {
  test('the gateway is alive and serving', async () => {
    assert.ok(gateway.proc.running, `gateway exited: code ${gateway.proc.exitCode} signal ${gateway.proc.exitSignal}`);
    assert.equal((await rawFetch(`${gateway.base}/healthz`, { method: 'GET' })).status, 200);
    const fresh = await rawInitialize(gateway.mcp('ev'));
    const r = await rawRpc(gateway.mcp('ev'), {
      sessionId: fresh.sessionId, protocolVersion: fresh.protocolVersion,
      method: 'tools/call', params: { name: 'echo', arguments: { message: 'ok' } },
    });
    assert.deepEqual(r.message?.result, { content: [{ type: 'text', text: 'Echo: ok' }] });
  });
});
