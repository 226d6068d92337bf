// An upstream that dies in the middle of a call: the client's in-flight request must end with a
// JSON-RPC error response for that request id (the SDK's callTool promise rejects with an
// McpError instead of hanging until its own timeout), the gateway keeps serving, and new
// sessions work once the upstream is back.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';

import {
  callWithProgress, cleanup, connectClient, crashyStdioCommand, initializeRequest, mcpHeaders,
  rawFetch, sleep, startEverythingHttp, startGateway, stdioUpstreamFlag, tcpConnectable, waitFor,
} from './harness.mjs';

// Far longer than any legitimate answer here; if the SDK's own timeout fires, the gateway hung.
const SDK_TIMEOUT_MS = 40_000;

let gateway;
let upstream;

before(async () => {
  upstream = await startEverythingHttp({ name: 'everything-http (to be killed)' });
  gateway = await startGateway([
    '--upstream', `ev=${upstream.url}`,
    '--upstream', stdioUpstreamFlag('crashy', crashyStdioCommand()),
  ]);
});
after(cleanup);

function assertRejectedByGateway(r, what) {
  const desc = JSON.stringify(r.events.map((e) => [e.type, e.at, e.progress ?? e.error?.message]));
  assert.ok(r.error, `${what}: the call should have failed, got ${desc}`);
  assert.ok(r.error instanceof McpError, `${what}: want an McpError (a JSON-RPC error response), got ${r.error?.constructor?.name}: ${r.error?.message}`);
  assert.notEqual(r.error.code, ErrorCode.RequestTimeout,
    `${what}: the call only ended by the client's own ${SDK_TIMEOUT_MS} ms timeout - the gateway never answered it: ${desc}`);
  assert.notEqual(r.error.code, ErrorCode.ConnectionClosed, `${what}: the whole client connection was closed: ${desc}`);
  assert.ok(r.events.some((e) => e.type === 'progress'), `${what}: progress arrived before the failure: ${desc}`);
}

describe('HTTP upstream killed during a streaming call', () => {
  test('the in-flight call rejects with a JSON-RPC error; the gateway stays up', { timeout: 90_000 }, async () => {
    const c = await connectClient(gateway.mcp('ev'));
    // Sanity: the route works before the crash.
    const ok = await c.client.callTool({ name: 'echo', arguments: { message: 'before' } });
    assert.equal(ok.content[0].text, 'Echo: before');

    let killedAt;
    const r = await callWithProgress(c.client, 'trigger-long-running-operation', { duration: 6, steps: 6 }, {
      timeoutMs: SDK_TIMEOUT_MS,
      onProgress: () => {
        if (killedAt === undefined) {
          killedAt = Date.now();
          upstream.proc.proc.kill('SIGKILL');
        }
      },
    });
    assert.ok(killedAt !== undefined, 'a progress notification arrived, so the upstream was killed mid-call');
    assertRejectedByGateway(r, 'call on the killed HTTP upstream');
    // The operation would have needed ~5 more seconds; a rejection long after that means the
    // gateway waited for something (generous bound: load on a 2-core machine).
    assert.ok(r.events.at(-1).at < 30_000, `rejection took ${r.events.at(-1).at} ms`);

    assert.ok(gateway.proc.running, 'gateway still running');
    assert.equal((await rawFetch(`${gateway.base}/healthz`, { method: 'GET' })).status, 200);
  });

  test('while the upstream is down, a new session gets 502 quickly', { timeout: 60_000 }, async () => {
    await upstream.proc.exited;
    const res = await rawFetch(gateway.mcp('ev'), { headers: mcpHeaders(), body: initializeRequest({ id: 5 }), timeoutMs: 45_000 });
    assert.equal(res.status, 502, res.text.slice(0, 300));
    assert.match(res.json?.error?.message ?? '', /ev/);
  });

  test('once the upstream is back on its port, new sessions work again', { timeout: 60_000 }, async (t) => {
    const port = upstream.port;
    await sleep(200);
    let again;
    try {
      again = await startEverythingHttp({ port, name: 'everything-http (restarted)', attempts: 1 });
    } catch (err) {
      if (await tcpConnectable(port)) {
        t.skip(`port ${port} was taken by something else meanwhile`);
        return;
      }
      throw err;
    }
    await waitFor(async () => {
      const c = await connectClient(gateway.mcp('ev'), { connectTimeoutMs: 10_000 });
      const res = await c.client.callTool({ name: 'echo', arguments: { message: 'after' } });
      await c.close();
      return res.content[0].text === 'Echo: after';
    }, { timeoutMs: 30_000, intervalMs: 500, what: 'a working session after the upstream restarted' });
    await again.stop();
  });
});

describe('stdio upstream exits during a streaming call', () => {
  test('the in-flight call rejects with a JSON-RPC error; the gateway stays up', { timeout: 90_000 }, async () => {
    const c = await connectClient(gateway.mcp('crashy'));
    const ok = await c.client.callTool({ name: 'echo', arguments: { message: 'before ✓' } });
    assert.equal(ok.content[0].text, 'Echo: before ✓');

    const r = await callWithProgress(c.client, 'crash-after-progress', {}, { timeoutMs: SDK_TIMEOUT_MS });
    assertRejectedByGateway(r, 'call on the crashing stdio upstream');
    assert.ok(r.events.at(-1).at < 30_000, `rejection took ${r.events.at(-1).at} ms`);

    assert.ok(gateway.proc.running, 'gateway still running');
    assert.equal((await rawFetch(`${gateway.base}/healthz`, { method: 'GET' })).status, 200);
  });

  test('a new session on the same stdio upstream works afterwards (fresh child)', { timeout: 60_000 }, async () => {
    await waitFor(async () => {
      const c = await connectClient(gateway.mcp('crashy'), { connectTimeoutMs: 10_000 });
      try {
        const res = await c.client.callTool({ name: 'echo', arguments: { message: 'after ✓' } }, undefined, { timeout: 10_000 });
        return res.content[0].text === 'Echo: after ✓';
      } finally {
        await c.close();
      }
    }, { timeoutMs: 30_000, intervalMs: 500, what: 'a working session after the child crashed' });
  });

  test('two crashes in a row are each reported, nothing hangs', { timeout: 90_000 }, async () => {
    for (let i = 0; i < 2; i++) {
      const c = await connectClient(gateway.mcp('crashy'));
      const r = await callWithProgress(c.client, 'crash-after-progress', {}, { timeoutMs: SDK_TIMEOUT_MS });
      assertRejectedByGateway(r, `crash #${i + 1}`);
      await c.close();
    }
    assert.equal((await rawFetch(`${gateway.base}/healthz`, { method: 'GET' })).status, 200);
  });
});
