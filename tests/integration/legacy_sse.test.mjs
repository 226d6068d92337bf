// The legacy HTTP+SSE transport (protocol 2024-11-05) at /sse/<name>: GET opens the event
// stream whose first event is `endpoint`, the client POSTs to that URL (202) and every server
// message arrives as a `message` event. The same transparency assertions as the Streamable HTTP
// parity tests run through an SSEClientTransport, for an HTTP and a stdio upstream.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  PROTOCOL_LATEST,
  cleanup, connectClient, everythingStdioCommand, initializeRequest, openEventStream, rawFetch,
  startEverythingHttp, startGateway, stdioUpstreamFlag,
} from './harness.mjs';
import { parityTests } from './parity_suite.mjs';

let upstream;
let gateway;

before(async () => {
  upstream = await startEverythingHttp();
  gateway = await startGateway([
    '--upstream', `ev=${upstream.url}`,
    '--upstream', stdioUpstreamFlag('evs', everythingStdioCommand()),
  ]);
});
after(cleanup);

for (const [name, kind] of [['ev', 'HTTP'], ['evs', 'stdio']]) {
  describe(`raw legacy SSE handshake (${kind} upstream)`, () => {
    for (const version of ['2024-11-05', PROTOCOL_LATEST]) {
      test(`endpoint event, 202 on POST, response as a message event (${version} client)`, { timeout: 30_000 }, async () => {
        const stream = await openEventStream(gateway.sse(name));
        try {
          assert.equal(stream.status, 200);
          assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
          const first = await stream.next(() => true, 10_000);
          assert.equal(first.event, 'endpoint', `first event is "endpoint", got ${JSON.stringify(first)}`);
          assert.match(first.data, new RegExp(`^/sse/${name}/message\\?sessionId=\\S+$`));
          const endpoint = new URL(first.data, gateway.base).href;

          const post = await rawFetch(endpoint, {
            headers: { 'content-type': 'application/json' },
            body: initializeRequest({ id: 'init-1', protocolVersion: version }),
          });
          assert.equal(post.status, 202, `POST to the endpoint: ${post.status} ${post.text}`);

          const msgEvent = await stream.next((e) => e.event === 'message', 15_000);
          const msg = JSON.parse(msgEvent.data);
          assert.equal(msg.jsonrpc, '2.0');
          assert.equal(msg.id, 'init-1');
          assert.equal(msg.result.protocolVersion, version);
          assert.equal(msg.result.serverInfo.name, 'mcp-servers/everything');

          assert.equal((await rawFetch(endpoint, {
            headers: { 'content-type': 'application/json' },
            body: { jsonrpc: '2.0', method: 'notifications/initialized' },
          })).status, 202);
          assert.equal((await rawFetch(endpoint, {
            headers: { 'content-type': 'application/json' },
            body: { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { message: 'sse ✓ 日本' } } },
          })).status, 202);
          const echo = JSON.parse((await stream.next((e) => e.event === 'message' && JSON.parse(e.data).id === 2, 15_000)).data);
          assert.deepEqual(echo.result, { content: [{ type: 'text', text: 'Echo: sse ✓ 日本' }] });
        } finally {
          stream.close();
        }
      });
    }

    test('POST to the message endpoint with an unknown sessionId is refused (400/404)', async () => {
      const r = await rawFetch(`${gateway.sse(name)}/message?sessionId=not-a-real-session`, {
        headers: { 'content-type': 'application/json' },
        body: { jsonrpc: '2.0', id: 1, method: 'ping' },
      });
      // The 2024-11-05 transport does not name a status; Streamable HTTP uses 404 for this.
      assert.ok([400, 404].includes(r.status), `status ${r.status}: ${r.text}`);
    });
  });

  describe(`SSEClientTransport -> gateway /sse/${name} -> ${kind} upstream`, () => {
    parityTests({
      label: `through /sse/${name} (${kind} upstream)`,
      makeDirect: kind === 'HTTP'
        ? (capabilities) => connectClient(upstream.url, { capabilities })
        : (capabilities) => connectClient(everythingStdioCommand(), { kind: 'stdio', capabilities }),
      makeThrough: (capabilities) => connectClient(gateway.sse(name), { kind: 'sse', capabilities }),
    });
  });
}
