// 2024-11-05 clients (HTTP+SSE, the SDK v1 SSEClientTransport) in front of servers that speak only
// 2026-07-28: the legacy transport hands each message of such a session to the gateway's session
// bridge, and what the bridge answers goes out on the client's one stream.
//
// Against the 2026-only fixture over HTTP (modern-server.mjs) and over stdio (conformance-server.mjs
// --stdio --modern-only), the client's revision is kept, and everything the client does direct
// against a session server works: calls with progress, the server's questions (sampling,
// elicitation, roots) asked on the stream and answered by POST, resource subscriptions, the log
// level, list changes, and cancellation. Each exchange is audited as legacy-sse.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  ListTasksResultSchema, LoggingMessageNotificationSchema, ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

import {
  FULL_CAPABILITIES, NODE, SOURCE_DIR, cleanup, connectClient, freePort, sleep, startGateway, startModernServer,
  tmpDir, waitFor, withTimeout, writeSessionKeyFile,
} from './harness.mjs';

const FIXTURE_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'conformance-server.mjs');
const T = 60_000;

let gateway;
let modern;
let auditFile;

before(async () => {
  modern = await startModernServer({ name: 'modern (legacy bridge)' });
  const dir = tmpDir('membrane-legacy-bridge-');
  auditFile = path.join(dir, 'audit.jsonl');
  const port = await freePort();
  const config = path.join(dir, 'membrane.yaml');
  fs.writeFileSync(config, [
    `listen: "127.0.0.1:${port}"`,
    'session:',
    `  key_file: ${JSON.stringify(writeSessionKeyFile(dir))}`,
    'timeouts:',
    '  sse_keep_alive: 1s',
    'audit:',
    `  file: ${JSON.stringify(auditFile)}`,
    'upstreams:',
    '  mod:',
    `    url: ${JSON.stringify(modern.url)}`,
    '  mods:',
    `    command: ${JSON.stringify(NODE)}`,
    `    args: ${JSON.stringify([FIXTURE_JS, '--stdio', '--modern-only'])}`,
    '',
  ].join('\n'));
  gateway = await startGateway(['-c', config], { name: 'membrane (legacy bridge)' });
});
after(cleanup);

async function connectLegacy(upstream, options = {}) {
  return connectClient(gateway.sse(upstream), { kind: 'sse', capabilities: FULL_CAPABILITIES, ...options });
}

const text = (result) => result.content.map((c) => c.text).join('');

describe('2024-11-05 client → 2026-07-28-only server over HTTP', () => {
  test('initialize keeps the client\'s revision and the server\'s identity', { timeout: T }, async () => {
    const negotiated = (traffic) => traffic.received.find((m) => m.result?.protocolVersion)?.result.protocolVersion;
    const { client, traffic } = await connectLegacy('mod', { protocolVersion: '2024-11-05' });
    assert.equal(negotiated(traffic), '2024-11-05');
    assert.equal(client.getServerVersion().name, 'membrane-modern-fixture');
    assert.ok(client.getServerCapabilities().tools);
    const tools = await client.listTools();
    assert.ok(tools.tools.some((t) => t.name === 'echo'));
    await client.close();
    // The SDK v1 asks for its newest revision, and gets it.
    const { client: newer, traffic: newerTraffic } = await connectLegacy('mod');
    assert.equal(negotiated(newerTraffic), '2025-11-25');
    await newer.close();
  });

  test('a call with progress', { timeout: T }, async () => {
    const { client, traffic } = await connectLegacy('mod');
    const result = await client.callTool({ name: 'long_task', arguments: { steps: 3 } }, undefined,
      { onprogress: () => {} });
    assert.equal(text(result), 'done after 3 steps');
    // On the wire (the SDK v1 may drop a progress that arrives with the result in one chunk: it
    // handles notifications a tick later than responses).
    const answered = traffic.received.findIndex((m) => m.id !== undefined && m.result?.content);
    const progress = traffic.received.slice(0, answered).filter((m) => m.method === 'notifications/progress');
    assert.deepEqual(progress.map((m) => m.params.progress), [1, 2, 3], JSON.stringify(traffic.received));
    await client.close();
  });

  test('the server\'s questions are asked on the stream and answered by POST', { timeout: T }, async () => {
    const { client, seen } = await connectLegacy('mod');
    const sampled = await client.callTool({ name: 'ask_model', arguments: { question: 'why?' } });
    assert.match(text(sampled), /^model said: sampled\(4\)/);
    assert.equal(seen.sampling.length, 1);
    const confirmed = await client.callTool({ name: 'confirm', arguments: { action: 'deploy' } });
    assert.match(text(confirmed), /^accept .* \(state confirming:deploy\)$/);
    assert.equal(seen.elicitation.length, 1);
    const roots = await client.callTool({ name: 'list_roots', arguments: {} });
    assert.match(text(roots), /^roots: file:\/\//);
    assert.equal(seen.roots.length, 1);
    await client.close();
  });

  test('resources/subscribe brings the resource\'s updates; logging/setLevel is honoured', { timeout: T }, async () => {
    const { client } = await connectLegacy('mod');
    const updates = [];
    const logs = [];
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => updates.push(n.params.uri));
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params.data));
    await client.subscribeResource({ uri: 'test://static' });
    await sleep(500);   // the gateway listens again with the new subscription
    await client.callTool({ name: 'announce_change', arguments: { kind: 'resource', uri: 'test://static' } });
    await waitFor(() => updates.length > 0, { what: 'notifications/resources/updated' });
    assert.deepEqual(updates, ['test://static']);

    await client.setLoggingLevel('info');
    await client.callTool({ name: 'log', arguments: { message: 'seen at info' } });
    await waitFor(() => logs.length > 0, { what: 'the log line' });
    await client.setLoggingLevel('error');
    await client.callTool({ name: 'log', arguments: { message: 'hidden at error' } });
    await sleep(300);
    assert.deepEqual(logs, ['seen at info']);
    await client.close();
  });

  test('ping is answered, and tasks are refused clearly', { timeout: T }, async () => {
    const { client } = await connectLegacy('mod');
    assert.deepEqual(await client.ping(), {});
    await assert.rejects(client.request({ method: 'tasks/list', params: {} }, ListTasksResultSchema),
      (err) => err.code === -32601 && /tasks/.test(err.message));
    await client.close();
  });

  test('every exchange is judged, audited and logged as the legacy transport\'s', { timeout: T }, async () => {
    const { client } = await connectLegacy('mod');
    await client.callTool({ name: 'echo', arguments: { message: 'audited' } });
    await client.close();
    await waitFor(() => fs.existsSync(auditFile) &&
      fs.readFileSync(auditFile, 'utf8').split('\n').some((l) => l.includes('"tools/call"') && l.includes('"echo"')),
    { what: 'the audit record of the call' });
    assert.ok(gateway.lines.some((l) => /exchange upstream=mod transport=sse .*method=tools\/call target=echo/.test(l)),
      'the access log names the legacy transport');
  });
});

describe('2024-11-05 client → 2026-07-28-only server over stdio', () => {
  test('list, call with progress, sampling, list changes', { timeout: T }, async () => {
    const { client, seen, traffic } = await connectLegacy('mods');
    const tools = await client.listTools();
    assert.ok(tools.tools.some((t) => t.name === 'test_simple_text'));
    await client.callTool({ name: 'test_tool_with_progress', arguments: {} }, undefined, { onprogress: () => {} });
    const progress = traffic.received.filter((m) => m.method === 'notifications/progress');
    assert.deepEqual(progress.map((m) => m.params.progress), [0, 50, 100]);
    const sampled = await client.callTool({ name: 'test_sampling', arguments: { prompt: 'hi' } });
    assert.match(text(sampled), /sampled/);
    assert.equal(seen.sampling.length, 1);
    const changes = [];
    client.setNotificationHandler(ToolListChangedNotificationSchema, (n) => changes.push(n.method));
    await client.callTool({ name: 'test_trigger_tool_change', arguments: {} });
    await waitFor(() => changes.length > 0, { what: 'tools/list_changed' });
    await client.close();
  });

  test('a client that leaves, and the next one, each have a session of their own', { timeout: T }, async () => {
    const { client } = await connectLegacy('mods');
    await client.listTools();
    await client.close();
    await waitFor(() => gateway.lines.filter((l) => l.includes("legacy SSE session on 'mods' closed")).length >= 2,
      { what: 'the session closed' });
    const { client: next } = await withTimeout(connectLegacy('mods'), 20_000, 'a new session');
    await next.listTools();
    await next.close();
  });
});
