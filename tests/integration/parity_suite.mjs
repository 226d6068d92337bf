// The "gateway is transparent" assertions, shared by parity_http, parity_stdio and legacy_sse.
//
// Each assertion runs the same operation on a DIRECT client (SDK client connected straight to a
// server-everything instance) and a THROUGH client (SDK client connected via the gateway to an
// equivalent server-everything instance) and compares what the two observe.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import {
  ELICITATION_ANSWER,
  FULL_CAPABILITIES,
  PROTOCOL_OLDER,
  TEST_ROOTS,
  UNICODE_TEXT,
  callWithProgress,
  jsonRpcErrorProblems,
  openEventStream,
  outcome,
  rawFetch,
  rawInitialize,
  rawRpc,
  samplingAnswer,
  waitFor,
  withTimeout,
} from './harness.mjs';

const CALL_TIMEOUT = { timeout: 30_000 };

/**
 * Registers the parity tests in the current describe() block.
 *   makeDirect(capabilities) / makeThrough(capabilities) -> Promise<{client, transport, seen}>
 *   label: text used in assertion messages ("through /mcp/ev", ...)
 */
export function parityTests({ makeDirect, makeThrough, label = 'through the gateway' }) {
  let D;  // direct, full capabilities
  let T;  // through the gateway, full capabilities

  before(async () => {
    [D, T] = await Promise.all([makeDirect(FULL_CAPABILITIES), makeThrough(FULL_CAPABILITIES)]);
  });

  test('initialize: serverInfo, capabilities and instructions are those of the upstream', () => {
    assert.deepEqual(T.client.getServerVersion(), D.client.getServerVersion(), `serverInfo ${label}`);
    assert.deepEqual(T.client.getServerCapabilities(), D.client.getServerCapabilities(), `server capabilities ${label}`);
    assert.equal(T.client.getInstructions(), D.client.getInstructions(), `instructions ${label}`);
  });

  test('tools/list deep-equals the direct answer (client capabilities reach the upstream)', async () => {
    const [direct, through] = await Promise.all([D.client.listTools(), T.client.listTools()]);
    assert.ok(direct.tools.some((t) => t.name === 'trigger-sampling-request'), 'direct list has the capability-gated tools');
    assert.deepEqual(through, direct);
  });

  test('a client without capabilities gets the same reduced tools/list as direct', async () => {
    const [d0, t0] = await Promise.all([makeDirect({}), makeThrough({})]);
    const [direct, through] = await Promise.all([d0.client.listTools(), t0.client.listTools()]);
    assert.ok(!direct.tools.some((t) => t.name === 'trigger-sampling-request'), 'direct list lacks capability-gated tools');
    assert.deepEqual(through, direct);
    await Promise.all([d0.close(), t0.close()]);
  });

  test('echo round-trips non-ASCII text exactly', async () => {
    const args = { name: 'echo', arguments: { message: UNICODE_TEXT } };
    const [direct, through] = await Promise.all([
      D.client.callTool(args, undefined, CALL_TIMEOUT), T.client.callTool(args, undefined, CALL_TIMEOUT)]);
    assert.equal(through.content[0].text, `Echo: ${UNICODE_TEXT}`);
    assert.deepEqual(through, direct);
  });

  test('JSON escapes, control characters and U+2028/9 survive', async () => {
    const message = 'tab\t newline\n cr\r nul\u0000 bell\u0007 quote" backslash\\ slash/ \u2028\u2029 \uFEFF end';
    const through = await T.client.callTool({ name: 'echo', arguments: { message } }, undefined, CALL_TIMEOUT);
    assert.equal(through.content[0].text, `Echo: ${message}`);
  });

  test('a larger payload (~250 KB of mixed UTF-8) round-trips', async () => {
    const message = 'Ωmega-日本-🚀-'.repeat(10_000);
    const through = await T.client.callTool({ name: 'echo', arguments: { message } }, undefined, CALL_TIMEOUT);
    assert.equal(through.content[0].text.length, `Echo: ${message}`.length);
    assert.ok(through.content[0].text === `Echo: ${message}`, 'echoed text differs');
  });

  test('binary (base64 image) content is identical', async () => {
    const args = { name: 'get-tiny-image', arguments: {} };
    const [direct, through] = await Promise.all([
      D.client.callTool(args, undefined, CALL_TIMEOUT), T.client.callTool(args, undefined, CALL_TIMEOUT)]);
    assert.deepEqual(through, direct);
  });

  test('progress notifications stream before the result, in order, spread over time', { timeout: 60_000 }, async () => {
    const args = { duration: 3, steps: 5 };
    const [direct, through] = await Promise.all([
      callWithProgress(D.client, 'trigger-long-running-operation', args, { timeoutMs: 45_000 }),
      callWithProgress(T.client, 'trigger-long-running-operation', args, { timeoutMs: 45_000 }),
    ]);
    const show = (r) => JSON.stringify(r.events.map((e) => [e.type, e.at, e.progress ?? e.error?.message]));
    // The SDK client dispatches notifications on a microtask but responses synchronously, so
    // when the last progress notification and the result arrive in the same read, the client
    // drops that last notification ("unknown token"). server-everything sends progress 5 right
    // before the result, so 5 is optional; 1..4 must all arrive, in order, before the result.
    for (const [who, r] of [['direct', direct], [label, through]]) {
      assert.equal(r.error, undefined, `${who}: call failed: ${r.error?.message}`);
      const types = r.events.map((e) => e.type);
      assert.equal(types.at(-1), 'result', `${who}: the result comes last: ${show(r)}`);
      assert.ok(types.slice(0, -1).every((t) => t === 'progress'), `${who}: only progress before the result: ${show(r)}`);
      const values = r.events.slice(0, -1).map((e) => e.progress);
      assert.ok(JSON.stringify(values) === '[1,2,3,4]' || JSON.stringify(values) === '[1,2,3,4,5]',
        `${who}: want progress 1,2,3,4(,5) in order before the result, got ${show(r)}`);
      assert.ok(r.events.slice(0, -1).every((e) => e.total === 5), `${who}: total is 5 ${show(r)}`);
    }
    const ev = through.events;
    const res = ev.at(-1);
    // 5 steps of 0.6 s: ~1.8 s between progress 1 and 4. Buffering would collapse it to ~0.
    assert.ok(ev[3].at - ev[0].at >= 1200,
      `${label}: progress was not streamed (progress 1 to 4 gap ${ev[3].at - ev[0].at} ms): ${show(through)}`);
    assert.ok(res.at - ev[0].at >= 1200,
      `${label}: first progress arrived only ${res.at - ev[0].at} ms before the result: ${show(through)}`);
    assert.deepEqual(through.result, direct.result);
  });

  test('resources: list, templates and read (text and blob) match direct', async () => {
    const [dl, tl] = await Promise.all([D.client.listResources(), T.client.listResources()]);
    assert.deepEqual(tl, dl);
    assert.ok(dl.resources.length > 0, 'server-everything lists resources');
    const [dt, tt] = await Promise.all([D.client.listResourceTemplates(), T.client.listResourceTemplates()]);
    assert.deepEqual(tt, dt);
    const staticDoc = dl.resources.find((r) => r.uri.startsWith('demo://resource/static/')) ?? dl.resources[0];
    const [dr, tr] = await Promise.all([
      D.client.readResource({ uri: staticDoc.uri }), T.client.readResource({ uri: staticDoc.uri })]);
    assert.deepEqual(tr, dr);
    // Dynamic resources embed a timestamp, so compare their shape only.
    const blobUri = 'demo://resource/dynamic/blob/7';
    const tb = await T.client.readResource({ uri: blobUri });
    assert.equal(tb.contents.length, 1);
    assert.equal(tb.contents[0].uri, blobUri);
    assert.match(Buffer.from(tb.contents[0].blob, 'base64').toString('utf8'), /^Resource 7: /);
  });

  test('prompts: list, get without and with arguments match direct', async () => {
    const [dl, tl] = await Promise.all([D.client.listPrompts(), T.client.listPrompts()]);
    assert.deepEqual(tl, dl);
    const simple = { name: 'simple-prompt' };
    assert.deepEqual(await T.client.getPrompt(simple), await D.client.getPrompt(simple));
    const withArgs = { name: 'args-prompt', arguments: { city: 'Zürich', state: 'ZH' } };
    const [dp, tp] = await Promise.all([D.client.getPrompt(withArgs), T.client.getPrompt(withArgs)]);
    assert.deepEqual(tp, dp);
    assert.equal(tp.messages[0].content.text, "What's weather in Zürich, ZH?");
  });

  test('ping answers with an empty result', async () => {
    assert.deepEqual(await T.client.ping(), await D.client.ping());
  });

  test('an unknown tool fails the same way as direct', async () => {
    const args = { name: 'no-such-tool-🦄', arguments: {} };
    const [direct, through] = await Promise.all([
      outcome(D.client.callTool(args, undefined, CALL_TIMEOUT)), outcome(T.client.callTool(args, undefined, CALL_TIMEOUT))]);
    assert.deepEqual(through, direct);
  });

  test('invalid tool arguments fail the same way as direct', async () => {
    const args = { name: 'get-sum', arguments: { a: 'one', b: 2 } };
    const [direct, through] = await Promise.all([
      outcome(D.client.callTool(args, undefined, CALL_TIMEOUT)), outcome(T.client.callTool(args, undefined, CALL_TIMEOUT))]);
    assert.deepEqual(through, direct);
  });

  test('an unknown method gives the same JSON-RPC error as direct', async () => {
    const { z } = await import('zod');
    const anyResult = z.object({}).passthrough();
    const req = { method: 'membrane/no-such-method', params: {} };
    const [direct, through] = await Promise.all([
      outcome(D.client.request(req, anyResult, CALL_TIMEOUT)), outcome(T.client.request(req, anyResult, CALL_TIMEOUT))]);
    assert.equal(direct.kind, 'rejected');
    assert.deepEqual(through, direct);
  });

  test('sampling: the server\'s request reaches the client and the answer goes back', async () => {
    const args = { name: 'trigger-sampling-request', arguments: { prompt: 'Say hi ☃ 日本', maxTokens: 5 } };
    const before = T.seen.sampling.length;
    const [direct, through] = await Promise.all([
      D.client.callTool(args, undefined, CALL_TIMEOUT), T.client.callTool(args, undefined, CALL_TIMEOUT)]);
    assert.equal(T.seen.sampling.length, before + 1, 'the client received exactly one sampling/createMessage');
    const req = T.seen.sampling.at(-1);
    assert.equal(req.params.messages[0].content.text, 'Resource trigger-sampling-request context: Say hi ☃ 日本');
    assert.equal(req.params.maxTokens, 5);
    assert.ok(through.content[0].text.includes(samplingAnswer(req).content.text), 'tool result carries the sampled text');
    assert.deepEqual(through, direct);
  });

  test('elicitation: the server\'s request reaches the client and the answer goes back', async () => {
    const args = { name: 'trigger-elicitation-request', arguments: {} };
    const before = T.seen.elicitation.length;
    const [direct, through] = await Promise.all([
      D.client.callTool(args, undefined, CALL_TIMEOUT), T.client.callTool(args, undefined, CALL_TIMEOUT)]);
    assert.equal(T.seen.elicitation.length, before + 1, 'the client received exactly one elicitation/create');
    assert.equal(T.seen.elicitation.at(-1).params.requestedSchema.type, 'object');
    assert.ok(through.content.some((c) => c.text.includes(`Name: ${ELICITATION_ANSWER.content.name}`)), 'tool result carries the answer');
    assert.deepEqual(through, direct);
  });

  test('roots: the server lists the client\'s roots (server-to-client request)', async () => {
    const args = { name: 'get-roots-list', arguments: {} };
    const [direct, through] = await Promise.all([
      D.client.callTool(args, undefined, CALL_TIMEOUT), T.client.callTool(args, undefined, CALL_TIMEOUT)]);
    assert.ok(T.seen.roots.length >= 1, 'the client received roots/list');
    for (const root of TEST_ROOTS) assert.ok(through.content[0].text.includes(root.uri), `result names ${root.uri}`);
    assert.deepEqual(through, direct);
  });

  test('logging: notifications/message sent outside any request reach the client', { timeout: 40_000 }, async () => {
    const isSimulated = (n) => /-level message|level-message/.test(String(n.params.data));
    for (const [who, c] of [['direct', D], [label, T]]) {
      await c.client.setLoggingLevel('debug');
      const res = await c.client.callTool({ name: 'toggle-simulated-logging', arguments: {} }, undefined, CALL_TIMEOUT);
      assert.match(res.content[0].text, /^Started simulated/, `${who}: logging was started`);
      try {
        await waitFor(() => c.seen.logging.some(isSimulated), { timeoutMs: 15_000, what: `${who}: a simulated log message` });
      } finally {
        await c.client.callTool({ name: 'toggle-simulated-logging', arguments: {} }, undefined, CALL_TIMEOUT).catch(() => {});
      }
      const n = c.seen.logging.find(isSimulated);
      assert.ok(['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'].includes(n.params.level));
    }
  });

  test('concurrent calls on one session are answered to the right request', async () => {
    const msgs = Array.from({ length: 12 }, (_, i) => `parallel #${i} — ${'λ'.repeat(i)}`);
    const results = await Promise.all(msgs.map((m) =>
      T.client.callTool({ name: 'echo', arguments: { message: m } }, undefined, CALL_TIMEOUT)));
    assert.deepEqual(results.map((r) => r.content[0].text), msgs.map((m) => `Echo: ${m}`));
  });
}

/**
 * Streamable-HTTP-only checks that use raw fetch: older protocol revisions, the GET stream, and
 * session termination with DELETE. `throughUrl()` is the gateway's /mcp/<name> URL; `directUrl()`
 * (optional) the upstream's own URL for comparison.
 */
export function streamableRawTests({ throughUrl, directUrl }) {
  for (const version of PROTOCOL_OLDER) {
    test(`a ${version} client can initialize and call tools`, async () => {
      const t = await rawInitialize(throughUrl(), { protocolVersion: version });
      assert.ok(t.sessionId, 'initialize response carries Mcp-Session-Id');
      assert.equal(t.protocolVersion, version, 'negotiated protocol version');
      if (directUrl) {
        const d = await rawInitialize(directUrl(), { protocolVersion: version });
        assert.equal(t.protocolVersion, d.protocolVersion);
        assert.deepEqual(t.result.serverInfo, d.result.serverInfo);
        assert.deepEqual(t.result.capabilities, d.result.capabilities);
      }
      const r = await rawRpc(throughUrl(), {
        sessionId: t.sessionId, protocolVersion: version, method: 'tools/call',
        params: { name: 'echo', arguments: { message: `v${version} ✓` } },
      });
      assert.equal(r.status, 200, r.response.text);
      assert.ok(r.message, `a JSON-RPC response with id ${r.id} arrived: ${r.response.text.slice(0, 300)}`);
      assert.deepEqual(r.message.result, { content: [{ type: 'text', text: `Echo: v${version} ✓` }] });
    });
  }

  test('a request without MCP-Protocol-Version is accepted (2025-03-26 is assumed)', async () => {
    const t = await rawInitialize(throughUrl(), { protocolVersion: '2025-03-26' });
    const r = await rawRpc(throughUrl(), { sessionId: t.sessionId, method: 'tools/list' });
    assert.equal(r.status, 200, r.response.text);
    assert.ok(Array.isArray(r.message?.result?.tools), r.response.text.slice(0, 300));
  });

  test('GET with the session id opens a text/event-stream', async () => {
    const t = await rawInitialize(throughUrl());
    const stream = await openEventStream(throughUrl(), {
      headers: { 'mcp-session-id': t.sessionId, 'mcp-protocol-version': t.protocolVersion },
    });
    try {
      assert.equal(stream.status, 200);
      assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
    } finally {
      stream.close();
    }
  });

  test('the response to a request is JSON or SSE, and carries the request id', async () => {
    const t = await rawInitialize(throughUrl());
    const r = await rawRpc(throughUrl(), { sessionId: t.sessionId, protocolVersion: t.protocolVersion, method: 'ping', id: 'str-id-✓' });
    assert.equal(r.status, 200);
    assert.ok(['application/json', 'text/event-stream'].includes(r.response.contentType), r.response.contentType);
    assert.deepEqual(r.message, { jsonrpc: '2.0', id: 'str-id-✓', result: {} });
  });

  test('DELETE ends the session; the id is then refused with 404', async () => {
    const t = await rawInitialize(throughUrl());
    const headers = { 'mcp-session-id': t.sessionId, 'mcp-protocol-version': t.protocolVersion };
    const del = await rawFetch(throughUrl(), { method: 'DELETE', headers });
    assert.ok([200, 202, 204, 405].includes(del.status), `DELETE answered ${del.status}: ${del.text}`);
    if (del.status === 405) return;  // the spec lets a server refuse client-initiated termination
    const after = await rawRpc(throughUrl(), { sessionId: t.sessionId, protocolVersion: t.protocolVersion, method: 'tools/list' });
    assert.equal(after.status, 404, `request on a deleted session: ${after.response.text}`);
    const problems = jsonRpcErrorProblems(after.response.json);
    assert.deepEqual(problems, [], after.response.text);
  });

  test('notifications and responses POSTed by the client get 202 Accepted', async () => {
    const t = await rawInitialize(throughUrl());
    const r = await rawFetch(throughUrl(), {
      headers: {
        'content-type': 'application/json', accept: 'application/json, text/event-stream',
        'mcp-session-id': t.sessionId, 'mcp-protocol-version': t.protocolVersion,
      },
      body: { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 424242, reason: 'membrane test' } },
    });
    assert.equal(r.status, 202, r.text);
  });
}

export { describe, withTimeout };
