// Server notifications outside a call through the gateway, with a 2026-07-28 server
// (tests/fixtures/modern-server.mjs) whose `announce_change` tool publishes a change to every
// `subscriptions/listen` stream:
//
//   - a 2026-07-28 client's subscriptions/listen is relayed: acknowledged first, then the changes
//     its filter asked for (and only those), and a list_changed seen on it drops the gateway's
//     cached list;
//   - a 2025-11-25 client (SDK v1) gets the same changes on its standalone GET stream: the gateway
//     opens subscriptions/listen for it and keeps the 2026-only acknowledgement to itself;
//   - the SDK v2 client's own listen() (it waits for an acknowledgement naming its subscription)
//     opens at once, whether the gateway relays the server's listen or serves one of its own for a
//     session server (server-everything over HTTP and over stdio).
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

import {
  NODE, SOURCE_DIR, cleanup, connectClient, connectV2, everythingStdioCommand, openListen, parseSse, spawnManaged,
  startEverythingHttp, startGateway, statelessBody, statelessHeaders, stdioUpstreamFlag, waitFor,
  withTimeout,
} from './harness.mjs';

const MODERN_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'modern-server.mjs');
const T = 60_000;

let modern;
let gateway;

before(async () => {
  const proc = spawnManaged('modern (listen)', NODE, [MODERN_JS, '0', '60000']);
  const m = await proc.waitForLine(/listening on (http:\/\/\S+)/, 20_000);
  modern = { url: m[1], proc };
  const everything = await startEverythingHttp({ name: 'everything (listen)' });
  gateway = await startGateway([
    '--upstream', `mod=${modern.url}`,
    '--upstream', `ev=${everything.url}`,
    '--upstream', stdioUpstreamFlag('evs', everythingStdioCommand()),
  ], { name: 'membrane (listen)' });
});
after(cleanup);

function headers(method, name) {
  return statelessHeaders({ method, name });
}

function body(id, method, params) {
  return JSON.stringify(statelessBody({ id, method, params }));
}

async function call(url, id, name, args) {
  const response = await fetch(url, { method: 'POST', headers: headers('tools/call', name), body: body(id, 'tools/call', { name, arguments: args }) });
  const text = await response.text();
  assert.equal(response.status, 200, text);
  const messages = text.startsWith('{') ? [JSON.parse(text)] : parseSse(text).map((e) => JSON.parse(e.data));
  return messages.find((m) => m.id === id);
}

async function stats() {
  const answer = await call(modern.url, 1, 'stats', {});
  return JSON.parse(answer.result.content[0].text);
}

/** Opens a 2026-07-28 subscriptions/listen stream and collects its messages as they arrive. */
async function listen(url, notifications) {
  const stream = await openListen(url, notifications);
  assert.equal(stream.status, 200);
  assert.match(stream.contentType, /text\/event-stream/);
  return stream;
}

const methods = (messages) => messages.map((m) => m.method);

describe('2026-07-28 client: subscriptions/listen through the gateway', () => {
  test('acknowledged first, then exactly the changes the filter asked for', { timeout: T }, async () => {
    const stream = await listen(gateway.mcp('mod'), { toolsListChanged: true, resourceSubscriptions: ['test://static'] });
    try {
      await waitFor(() => stream.messages.length > 0, { what: 'the acknowledgement' });
      assert.equal(stream.messages[0].method, 'notifications/subscriptions/acknowledged');
      await call(gateway.mcp('mod'), 2, 'announce_change', { kind: 'prompts' });   // not asked for
      await call(gateway.mcp('mod'), 3, 'announce_change', { kind: 'tools' });
      await call(gateway.mcp('mod'), 4, 'announce_change', { kind: 'resource', uri: 'test://static' });
      await waitFor(() => methods(stream.messages).includes('notifications/resources/updated'),
        { what: 'the resource update on the listen stream' });
      assert.deepEqual(methods(stream.messages), [
        'notifications/subscriptions/acknowledged',
        'notifications/tools/list_changed',
        'notifications/resources/updated',
      ]);
      assert.equal(stream.messages[2].params.uri, 'test://static');
    } finally {
      stream.close();
    }
  });

  test('a list_changed seen on the listen stream drops the cached tools/list', { timeout: T }, async () => {
    const list = async (id) => {
      const response = await fetch(gateway.mcp('mod'), { method: 'POST', headers: headers('tools/list'), body: body(id, 'tools/list', {}) });
      assert.equal(response.status, 200);
      return response.text();
    };
    await list(10);
    const cached = (await stats()).methods['tools/list'] ?? 0;
    await list(11);
    assert.equal((await stats()).methods['tools/list'] ?? 0, cached, 'the second list is answered from the cache');

    const stream = await listen(gateway.mcp('mod'), { toolsListChanged: true });
    try {
      await waitFor(() => stream.messages.length > 0, { what: 'the acknowledgement' });
      await call(gateway.mcp('mod'), 12, 'announce_change', { kind: 'tools' });
      await waitFor(() => methods(stream.messages).includes('notifications/tools/list_changed'),
        { what: 'tools/list_changed on the listen stream' });
      await list(13);
      assert.equal((await stats()).methods['tools/list'] ?? 0, cached + 1, 'after list_changed the list is fetched again');
    } finally {
      stream.close();
    }
  });
});

describe('2025-11-25 client (SDK v1): the standalone GET stream', () => {
  test('list_changed reaches the client; the 2026-only acknowledgement does not', { timeout: T }, async () => {
    const listensBefore = (await stats()).methods['subscriptions/listen'] ?? 0;
    const { client } = await connectClient(gateway.mcp('mod'));
    const seen = [];
    client.setNotificationHandler(ToolListChangedNotificationSchema, (n) => { seen.push(n.method); });
    // The SDK opens its GET stream after initialize; the gateway answers it with a listen upstream.
    await waitFor(async () => ((await stats()).methods['subscriptions/listen'] ?? 0) > listensBefore,
      { what: 'the gateway opening subscriptions/listen for the GET stream' });
    await client.callTool({ name: 'announce_change', arguments: { kind: 'tools' } });
    await withTimeout(waitFor(() => seen.length > 0, { what: 'tools/list_changed at the v1 client' }), 15_000);
    assert.deepEqual(seen, ['notifications/tools/list_changed']);
    await client.close();
  });
});

describe('SDK v2 client: listen() through the gateway', () => {
  // Far below the SDK's 60 s wait for an acknowledgement it can match.
  const OPENS_WITHIN_MS = 10_000;
  for (const [upstream, what] of [['mod', 'a 2026-07-28 server (relayed)'], ['ev', 'a session server over HTTP'], ['evs', 'a session server over stdio']]) {
    test(`opens at once on ${what}, with the filter the server honours`, { timeout: T }, async () => {
      const { client } = await connectV2(gateway.mcp(upstream));
      const started = Date.now();
      const subscription = await withTimeout(client.listen({ toolsListChanged: true, promptsListChanged: true }),
        OPENS_WITHIN_MS, `listen() on ${upstream}`);
      try {
        assert.ok(Date.now() - started < OPENS_WITHIN_MS);
        assert.deepEqual(subscription.honoredFilter, { toolsListChanged: true, promptsListChanged: true });
      } finally {
        await subscription.close();
      }
    });
  }

  test('a filter the server cannot honour is acknowledged empty and closed', { timeout: T }, async () => {
    const { client } = await connectV2(gateway.mcp('evs'));
    const subscription = await withTimeout(client.listen({ resourceSubscriptions: [] }), OPENS_WITHIN_MS, 'listen() with an empty filter');
    assert.deepEqual(subscription.honoredFilter, {});
    assert.equal(await withTimeout(subscription.closed, OPENS_WITHIN_MS, 'the graceful close'), 'graceful');
  });
});
