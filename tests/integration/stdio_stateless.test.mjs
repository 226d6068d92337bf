// 2026-07-28 servers over stdio (tests/fixtures/conformance-server.mjs --stdio, on the official SDK
// v2 `serveStdio`): every 2026-07-28 request shares one child that never sees initialize, each
// under an id of the gateway's.
//
//   - two clients that use the same request id and progress token at once each get their own
//     answer and their own progress, under their own id and token;
//   - subscriptions/listen is relayed: the acknowledgement names the client's own listen id, the
//     changes come tagged with it, and closing one listen leaves another client's listen open;
//   - a log line reaches the call it belongs to when that call is the only one in flight;
//   - the gateway checks the Mcp-Param-* headers a stdio (or bridged session) server cannot see;
//   - `protocol: auto` learns the revision in a short-lived process of its own; a 2026-only server
//     serves session clients through the bridge, a server speaking both gives them sessions of
//     their own, a session-only server (server-everything) gets its 2026 clients bridged;
//   - a server that ignores requests before initialize costs its first client the probe's bound;
//   - `protocol: 2026-07-28` needs no probe, `protocol: 2025-11-25` bridges 2026 clients.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  EVERYTHING_JS, NODE, SOURCE_DIR, cleanup, connectClient, connectV2, freePort, openListen, parseSse, startGateway,
  statelessBody, statelessHeaders, tmpDir, waitFor, withTimeout, writeSessionKeyFile,
} from './harness.mjs';

const FIXTURE_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'conformance-server.mjs');
const HOSTILE_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'hostile-stdio-server.mjs');
const T = 60_000;

let gateway;

before(async () => {
  const dir = tmpDir('membrane-stdio-stateless-');
  const port = await freePort();
  const stdio = (name, args, protocol) => [
    `  ${name}:`,
    `    command: ${JSON.stringify(NODE)}`,
    `    args: ${JSON.stringify(args)}`,
    ...(protocol ? [`    protocol: "${protocol}"`] : []),
  ];
  const config = path.join(dir, 'membrane.yaml');
  fs.writeFileSync(config, [
    `listen: "127.0.0.1:${port}"`,
    'session:',
    `  key_file: ${JSON.stringify(writeSessionKeyFile(dir))}`,
    'upstreams:',
    ...stdio('modern', [FIXTURE_JS, '--stdio', '--modern-only']),
    ...stdio('dual', [FIXTURE_JS, '--stdio']),
    ...stdio('declared', [FIXTURE_JS, '--stdio', '--modern-only'], '2026-07-28'),
    ...stdio('pinned', [FIXTURE_JS, '--stdio'], '2025-11-25'),
    ...stdio('evs', [EVERYTHING_JS, 'stdio']),
    ...stdio('silent', [HOSTILE_JS]),
    '    env:',
    '      HOSTILE_SILENT_BEFORE_INITIALIZE: "1"',
    '',
  ].join('\n'));
  gateway = await startGateway(['-c', config], { name: 'membrane (stdio stateless)' });
});
after(cleanup);

/** A 2026-07-28 request; resolves every message of its answer (JSON or SSE). */
async function post(upstream, { id, method, params = {}, meta = {}, signal, headers = {} }) {
  const name = params.name ?? params.uri;
  const response = await fetch(gateway.mcp(upstream), {
    method: 'POST',
    headers: statelessHeaders({ method, name, extra: headers }),
    body: JSON.stringify(statelessBody({ id, method, params, meta })),
    signal,
  });
  const text = await response.text();
  const messages = text.startsWith('{') ? [JSON.parse(text)] : parseSse(text).map((e) => JSON.parse(e.data));
  return { status: response.status, messages };
}

const answerTo = (messages, id) => messages.find((m) => m.id === id && !m.method);

/** Opens a listen with the request id `id` and collects its messages as they arrive. */
async function listen(upstream, id, notifications) {
  const stream = await openListen(gateway.mcp(upstream), notifications, { id });
  assert.equal(stream.status, 200);
  assert.match(stream.contentType, /text\/event-stream/);
  return stream;
}

const SUBSCRIPTION_ID = 'io.modelcontextprotocol/subscriptionId';
const logLines = (what) => gateway.lines.filter((line) => line.includes(what));

describe('one shared child, many clients', () => {
  test('equal ids and progress tokens from two clients at once stay apart', { timeout: T }, async () => {
    const call = (token) => post('modern', {
      id: 1, method: 'tools/call', params: { name: 'test_tool_with_progress', arguments: {} }, meta: { progressToken: token },
    });
    const [a, b] = await Promise.all([call('same'), call('same')]);
    for (const [which, answer] of [['first', a], ['second', b]]) {
      assert.equal(answer.status, 200, `${which}: ${JSON.stringify(answer.messages)}`);
      const response = answerTo(answer.messages, 1);
      assert.ok(response?.result, `${which} client's answer, under its own id 1: ${JSON.stringify(answer.messages)}`);
      const progress = answer.messages.filter((m) => m.method === 'notifications/progress');
      assert.deepEqual(progress.map((m) => m.params.progress), [0, 50, 100], `${which} client's own three steps`);
      for (const m of progress) assert.equal(m.params.progressToken, 'same', 'progress under the client\'s own token');
      // The server saw a token of the gateway's (the tool returns the one it saw).
      assert.notEqual(response.result.content[0].text, 'same');
    }
    assert.notEqual(answerTo(a.messages, 1).result.content[0].text, answerTo(b.messages, 1).result.content[0].text,
      'the two calls went out under different tokens');
    // Each first request may have probed (a process of its own, stopped once it answered), and
    // one shared child serves them all.
    const started = logLines("upstream 'modern': started").filter((line) => line.includes('for 2026-07-28 requests'));
    const probes = logLines("upstream 'modern'").filter((line) => line.includes('(the probe was answered)'));
    assert.ok(probes.length >= 1 && probes.length <= 2, started.join('\n'));
    assert.equal(started.length - probes.length, 1, started.join('\n'));
  });

  test('a log line reaches the one call in flight', { timeout: T }, async () => {
    const answer = await post('modern', {
      id: 'log-1', method: 'tools/call', params: { name: 'test_tool_with_logging', arguments: {} }, meta: { 'io.modelcontextprotocol/logLevel': 'info' },
    });
    assert.equal(answer.status, 200);
    const logged = answer.messages.filter((m) => m.method === 'notifications/message').map((m) => m.params.data);
    assert.deepEqual(logged, ['Tool execution started', 'Tool processing data', 'Tool execution completed']);
    assert.ok(answerTo(answer.messages, 'log-1')?.result);
  });

  test('listens of two clients with the same id: each acknowledged and tagged with its own id', { timeout: T }, async () => {
    const first = await listen('modern', 'listen', { toolsListChanged: true });
    const second = await listen('modern', 'listen', { toolsListChanged: true, promptsListChanged: true });
    try {
      for (const [which, stream] of [['first', first], ['second', second]]) {
        await waitFor(() => stream.messages.length > 0, { what: `the ${which} acknowledgement` });
        const ack = stream.messages[0];
        assert.equal(ack.method, 'notifications/subscriptions/acknowledged');
        assert.equal(ack.params._meta[SUBSCRIPTION_ID], 'listen', `${which}: the client's own listen id`);
      }
      assert.deepEqual(second.messages[0].params.notifications, { toolsListChanged: true, promptsListChanged: true });

      await post('modern', { id: 2, method: 'tools/call', params: { name: 'test_trigger_tool_change', arguments: {} } });
      for (const [which, stream] of [['first', first], ['second', second]]) {
        await waitFor(() => stream.messages.some((m) => m.method === 'notifications/tools/list_changed'),
          { what: `tools/list_changed on the ${which} listen` });
        const change = stream.messages.find((m) => m.method === 'notifications/tools/list_changed');
        assert.equal(change.params._meta[SUBSCRIPTION_ID], 'listen');
      }
      await post('modern', { id: 3, method: 'tools/call', params: { name: 'test_trigger_prompt_change', arguments: {} } });
      await waitFor(() => second.messages.some((m) => m.method === 'notifications/prompts/list_changed'),
        { what: 'prompts/list_changed on the second listen' });
      assert.ok(!first.messages.some((m) => m.method === 'notifications/prompts/list_changed'),
        'the first listen did not ask for prompt changes');

      // Closing the first listen ends it at the server; the second goes on.
      first.close();
      const before = second.messages.length;
      await new Promise((resolve) => setTimeout(resolve, 300));
      await post('modern', { id: 4, method: 'tools/call', params: { name: 'test_trigger_tool_change', arguments: {} } });
      await waitFor(() => second.messages.length > before, { what: 'the next change on the second listen' });
    } finally {
      first.close();
      second.close();
    }
  });

  test('Mcp-Param-* headers are checked by the gateway for the stdio server, once it was listed', { timeout: T }, async () => {
    const call = (upstream, id, region, headers) => post(upstream, {
      id, method: 'tools/call', params: { name: 'test_x_mcp_header', arguments: { region } }, headers,
    });
    for (const upstream of ['modern', 'pinned']) {
      // What the tool declares is learnt from a tools/list the gateway relays.
      const listed = await post(upstream, { id: 20, method: 'tools/list' });
      assert.equal(listed.status, 200);
      const agreed = await call(upstream, 21, 'eu', { 'Mcp-Param-Region': 'eu' });
      assert.equal(agreed.status, 200, `${upstream}: ${JSON.stringify(agreed.messages)}`);
      assert.equal(answerTo(agreed.messages, 21).result.content[0].text, 'region=eu');
      const encoded = await call(upstream, 22, 'Zoë', { 'Mcp-Param-Region': '=?base64?Wm/Dqw==?=' });
      assert.equal(encoded.status, 200, `${upstream}: ${JSON.stringify(encoded.messages)}`);
      for (const [id, headers, says] of [
        [23, { 'Mcp-Param-Region': 'us' }, /says "us" but the body carries region="eu"/],
        [24, {}, /Mcp-Param-Region header is absent/],
        [25, { 'Mcp-Param-Region': '=?base64?ZXU?=' }, /invalid Base64/],
      ]) {
        const refused = await call(upstream, id, 'eu', headers);
        assert.equal(refused.status, 400, `${upstream} ${id}: ${JSON.stringify(refused.messages)}`);
        const error = answerTo(refused.messages, id).error;
        assert.equal(error.code, -32020);
        assert.match(error.message, says);
        assert.equal(error.data.mismatch.header, 'Mcp-Param-Region');
      }
    }
  });

  test('the SDK v2 client: list, call and listen()', { timeout: T }, async () => {
    const { client } = await connectV2(gateway.mcp('modern'));
    const tools = await client.listTools();
    assert.ok(tools.tools.some((t) => t.name === 'test_simple_text'));
    const result = await client.callTool({ name: 'test_simple_text', arguments: {} });
    assert.equal(result.content[0].text, 'This is a simple text response for testing.');
    const subscription = await withTimeout(client.listen({ toolsListChanged: true }), 10_000, 'listen()');
    assert.deepEqual(subscription.honoredFilter, { toolsListChanged: true });
    await subscription.close();
  });
});

describe('what the gateway learns about a stdio server', () => {
  test('2026-only: a session client (SDK v1) is bridged', { timeout: T }, async () => {
    const { client } = await connectClient(gateway.mcp('modern'));
    const result = await client.callTool({ name: 'test_simple_text', arguments: {} });
    assert.equal(result.content[0].text, 'This is a simple text response for testing.');
    await client.close();
    assert.ok(logLines("upstream 'modern' takes no initialize").length > 0);
  });

  test('both revisions: a session client gets a session of its own, a 2026 client passes through', { timeout: T }, async () => {
    const { client } = await connectClient(gateway.mcp('dual'));
    const result = await client.callTool({ name: 'test_simple_text', arguments: {} });
    assert.equal(result.content[0].text, 'This is a simple text response for testing.');
    await client.close();
    assert.ok(logLines("upstream 'dual' also speaks MCP 2025-11-25 with sessions").length > 0);
    const answer = await post('dual', { id: 7, method: 'tools/list' });
    assert.equal(answer.status, 200);
    assert.ok(answerTo(answer.messages, 7).result.tools.length > 0);
    assert.ok(logLines("upstream 'dual': started").some((line) => line.includes('for 2026-07-28 requests')));
  });

  test('session-only (server-everything): the probe learns it, 2026 clients are bridged', { timeout: T }, async () => {
    const answer = await post('evs', { id: 8, method: 'tools/call', params: { name: 'echo', arguments: { message: 'hi' } } });
    assert.equal(answer.status, 200, JSON.stringify(answer.messages));
    assert.equal(answerTo(answer.messages, 8).result.content[0].text, 'Echo: hi');
    assert.ok(logLines("upstream 'evs' speaks MCP with sessions").length > 0);
    await waitFor(() => logLines("upstream 'evs'").some((line) => line.includes('(the probe was answered)')),
      { what: 'the probe process stopped' });
  });

  test('a server that ignores requests before initialize: the probe gives up in time, sessions work', { timeout: T }, async () => {
    const started = Date.now();
    const { client } = await connectClient(gateway.mcp('silent'));
    const result = await client.callTool({ name: 'echo', arguments: { message: 'still served' } });
    assert.equal(result.content[0].text, 'Echo: still served');
    await client.close();
    // The probe's bound (10 s) is all the first client waits for.
    assert.ok(Date.now() - started < 25_000, `connected after ${Date.now() - started} ms`);
    assert.ok(logLines("upstream 'silent' speaks MCP with sessions").length > 0);
    await waitFor(() => logLines("upstream 'silent'").some((line) => line.includes('(the probe was answered)')),
      { what: 'the probe process stopped' });
  });

  test('protocol: 2026-07-28 needs no probe', { timeout: T }, async () => {
    const answer = await post('declared', { id: 9, method: 'tools/list' });
    assert.equal(answer.status, 200);
    assert.ok(answerTo(answer.messages, 9).result.tools.length > 0);
    const declared = logLines("upstream 'declared'");
    assert.equal(declared.filter((line) => line.includes('probe')).length, 0, declared.join('\n'));
    assert.equal(declared.filter((line) => line.includes('started')).length, 1, declared.join('\n'));
  });

  test('protocol: 2025-11-25 bridges 2026 clients onto sessions', { timeout: T }, async () => {
    const answer = await post('pinned', { id: 10, method: 'tools/list' });
    assert.equal(answer.status, 200);
    assert.ok(answerTo(answer.messages, 10).result.tools.length > 0);
    assert.ok(logLines("upstream 'pinned': opened a bridged session").length > 0);
    assert.ok(!logLines("upstream 'pinned': started").some((line) => line.includes('for 2026-07-28 requests')));
  });
});
