// MCP revision 2026-07-28 ("stateless") through the gateway, with real peers on both sides:
//
//   - SDK v2 client (@modelcontextprotocol/client, pinned to 2026-07-28) -> gateway -> a
//     session-era server (server-everything over stdio and over Streamable HTTP): the gateway
//     turns the server's live requests (elicitation, sampling, roots) into input_required results.
//   - SDK v1 client (2025-11-25) -> gateway -> a 2026-07-28-only server (tests/fixtures/
//     modern-server.mjs, which rejects a 2025 client itself): the gateway answers initialize and
//     ping, and turns input_required into real elicitation/sampling requests to the client.
//   - SDK v2 client -> gateway -> the 2026-07-28 server.
//   - Malformed 2026-07-28 requests, with the exact HTTP status and JSON-RPC error code.
//   - The gateway's result cache: public results within their TTL are answered without reaching
//     the server; private results are cached per authenticated subject only.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import * as jose from 'jose';

import {
  ELICITATION_ANSWER, FULL_CAPABILITIES, MCP_ACCEPT,
  STATELESS, TEST_ROOTS, UNICODE_TEXT, statelessBody, statelessHeaders,
  callWithProgress, cleanup, connectClient, connectV2, everythingStdioCommand, flipChar, rawFetch,
  samplingAnswer, sleep, startEverythingHttp, startGateway, startModernServer, stdioUpstreamFlag, tmpDir,
} from './harness.mjs';

const ISSUER = 'https://issuer.membrane.test';
const AUDIENCE = 'https://mcp.membrane.test';
const T = 30_000;                       // per-test timeout
const CALL = { timeout: 30_000 };       // per-request SDK timeout

const MODERN_TOOLS = ['announce_change', 'ask_model', 'confirm', 'echo', 'list_roots', 'log', 'long_task', 'request_info', 'stats', 'wait_for_cancel'];
const MODERN_INFO = { name: 'membrane-modern-fixture', version: '2.0.0' };

let everythingHttp;
let modern;        // 2026-07-28 server, tools TTL 60 s: describes 2, 3 and 4
let modernCache;   // 2026-07-28 server, tools TTL 60 s: the cache tests without auth
let modernFast;    // 2026-07-28 server, tools TTL 300 ms: cache expiry
let modernAuth;    // 2026-07-28 server, TTL 60 s: behind the gateway with authentication
let gateway;       // no authentication
let authGateway;   // --jwks/--issuer/--audience
let signingKey;

const startModern = (name, ttlMs) => startModernServer({ name, ttlMs });

async function mint(sub) {
  return new jose.SignJWT({ scope: 'mcp' })
    .setProtectedHeader({ alg: signingKey.alg, kid: signingKey.kid })
    .setSubject(sub)
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(signingKey.privateKey);
}

before(async () => {
  const { publicKey, privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
  signingKey = { alg: 'ES256', kid: 'pv-1', privateKey };
  const dir = tmpDir('membrane-pv-');
  const jwksFile = path.join(dir, 'jwks.json');
  fs.writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await jose.exportJWK(publicKey)), kid: 'pv-1', alg: 'ES256', use: 'sig' }] }));

  [everythingHttp, modern, modernCache, modernFast, modernAuth] = await Promise.all([
    startEverythingHttp(),
    startModern('modern', 60_000),
    startModern('modern-cache', 60_000),
    startModern('modern-fast', 300),
    startModern('modern-auth', 60_000),
  ]);
  [gateway, authGateway] = await Promise.all([
    startGateway([
      '--upstream', stdioUpstreamFlag('evs', everythingStdioCommand()),
      '--upstream', `evh=${everythingHttp.url}`,
      '--upstream', `mod=${modern.url}`,
      '--upstream', `cache=${modernCache.url}`,
      '--upstream', `fast=${modernFast.url}`,
    ], { name: 'membrane (protocol versions)' }),
    startGateway([
      '--upstream', `priv=${modernAuth.url}`,
      '--jwks', jwksFile, '--issuer', ISSUER, '--audience', AUDIENCE,
    ], { name: 'membrane (protocol versions, auth)' }),
  ]);
});
after(cleanup);

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

/** Progress events from the server (the v2 SDK adds its own, without `total`, per input round). */
async function callToolWithProgress(callTool) {
  const events = [];
  const result = await callTool((p) => events.push({ type: 'progress', ...p }));
  events.push({ type: 'result' });
  return { events, result };
}

function assertProgressBeforeResult(events, steps) {
  const progress = events.filter((e) => e.type === 'progress' && e.total !== undefined);
  assert.deepEqual(progress.map((e) => [e.progress, e.total]),
    Array.from({ length: steps }, (_, i) => [i + 1, steps]), `progress 1..${steps} of ${steps}: ${JSON.stringify(events)}`);
  const lastProgress = events.findLastIndex((e) => e.type === 'progress');
  const resultAt = events.findIndex((e) => e.type === 'result');
  assert.ok(resultAt > lastProgress, `every progress event arrived before the result: ${JSON.stringify(events)}`);
}

function textOf(result) {
  return result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');
}

async function stats(client) {
  const result = await client.callTool({ name: 'stats', arguments: {} });
  return JSON.parse(result.content[0].text);
}
const count = (s, method) => s.methods[method] ?? 0;

function encodedName(text) {
  return `=?base64?${Buffer.from(text, 'utf8').toString('base64')}?=`;
}

/** Asserts a JSON (not SSE) JSON-RPC error answer with this HTTP status, code and id. */
function assertRejected(r, { status, code, id = 1, what }) {
  const detail = `${what}: HTTP ${r.status} ${r.text.slice(0, 400)}`;
  assert.equal(r.status, status, detail);
  assert.equal(r.contentType, 'application/json', detail);
  assert.ok(r.json && typeof r.json === 'object', detail);
  assert.equal(r.json.jsonrpc, '2.0', detail);
  assert.equal(r.json.id, id, detail);
  assert.equal(r.json.error?.code, code, detail);
  assert.equal(typeof r.json.error.message, 'string', detail);
  assert.ok(!('result' in r.json), detail);
}

/** resources/read test://counter as a hand-built 2026-07-28 request; resolves the text. */
async function readStateless(url, token) {
  const r = await rawFetch(url, {
    headers: statelessHeaders({
      method: 'resources/read', name: 'test://counter',
      extra: token ? { authorization: `Bearer ${token}` } : {},
    }),
    body: statelessBody({ method: 'resources/read', params: { uri: 'test://counter' } }),
  });
  assert.equal(r.status, 200, r.text);
  const result = r.messages.find((x) => x.id === 1)?.result;
  assert.equal(result?.cacheScope, 'private', r.text);
  return result.contents[0].text;
}

// ------------------------------------------------------------------------------------------------
// 1. SDK v2 client -> server-everything (a session-era server)
// ------------------------------------------------------------------------------------------------

for (const [label, upstream] of [['stdio', 'evs'], ['HTTP', 'evh']]) {
  describe(`SDK v2 client -> server-everything (${label})`, () => {
    let v2;

    before(async () => {
      v2 = await connectV2(gateway.mcp(upstream));
    });

    test('the client negotiated 2026-07-28 with the gateway and the connection is stateless', { timeout: T }, async () => {
      assert.equal(v2.client.getNegotiatedProtocolVersion(), STATELESS);
      assert.equal(v2.client.getServerVersion()?.name, 'mcp-servers/everything', 'serverInfo is the upstream\'s');
      await v2.client.callTool({ name: 'echo', arguments: { message: 'stateless?' } }, CALL);
      const posts = v2.wire.filter((w) => w.method === 'POST');
      assert.ok(posts.length >= 2, 'discover and a call went over the wire');
      for (const w of posts) {
        assert.equal(w.requestHeaders['mcp-protocol-version'], STATELESS, JSON.stringify(w.requestHeaders));
        assert.equal(w.responseHeaders['mcp-session-id'], undefined, `no session id is issued: ${JSON.stringify(w.responseHeaders)}`);
        assert.equal(w.status, 200);
      }
    });

    test('tools/list has the capability-gated tools (the _meta capabilities reached the server)', { timeout: T }, async () => {
      const { tools } = await v2.client.listTools(undefined, { ...CALL, cacheMode: 'bypass' });
      const names = tools.map((t) => t.name);
      for (const name of ['echo', 'trigger-long-running-operation', 'trigger-elicitation-request',
        'trigger-sampling-request', 'get-roots-list']) {
        assert.ok(names.includes(name), `${name} is listed: ${names.join(', ')}`);
      }
      const echo = tools.find((t) => t.name === 'echo');
      assert.equal(echo.inputSchema.type, 'object');
      assert.ok(echo.inputSchema.properties.message, 'echo has its message argument');
    });

    test('echo round-trips Unicode text byte for byte', { timeout: T }, async () => {
      const result = await v2.client.callTool({ name: 'echo', arguments: { message: UNICODE_TEXT } }, CALL);
      assert.deepEqual(result.content, [{ type: 'text', text: `Echo: ${UNICODE_TEXT}` }]);
      assert.notEqual(result.isError, true);
    });

    test('trigger-long-running-operation: progress events arrive before the result', { timeout: T }, async () => {
      const steps = 4;
      const { events, result } = await callToolWithProgress((onprogress) => v2.client.callTool(
        { name: 'trigger-long-running-operation', arguments: { duration: 1, steps } }, { ...CALL, onprogress }));
      assert.match(textOf(result), /Long running operation completed\. Duration: 1 seconds, Steps: 4\./);
      assertProgressBeforeResult(events, steps);
    });

    test('elicitation accept: the server\'s question reaches the client and the answer goes back', { timeout: T }, async () => {
      v2.answers.elicit = () => structuredClone(ELICITATION_ANSWER);
      const before = v2.seen.elicitation.length;
      const result = await v2.client.callTool({ name: 'trigger-elicitation-request', arguments: {} }, CALL);
      assert.equal(v2.seen.elicitation.length, before + 1, 'the client answered exactly one elicitation/create');
      assert.equal(v2.seen.elicitation.at(-1).params.requestedSchema.type, 'object');
      const text = textOf(result);
      assert.match(text, /User provided the requested information/);
      assert.ok(text.includes(`Name: ${ELICITATION_ANSWER.content.name}`), text);
      assert.ok(text.includes('Favorite Integer: 7'), text);
    });

    test('elicitation decline: the decline goes back', { timeout: T }, async () => {
      v2.answers.elicit = () => ({ action: 'decline' });
      try {
        const before = v2.seen.elicitation.length;
        const result = await v2.client.callTool({ name: 'trigger-elicitation-request', arguments: {} }, CALL);
        assert.equal(v2.seen.elicitation.length, before + 1, 'the client answered exactly one elicitation/create');
        const text = textOf(result);
        assert.match(text, /User declined to provide the requested information/);
        assert.ok(!text.includes(ELICITATION_ANSWER.content.name), text);
      } finally {
        v2.answers.elicit = () => structuredClone(ELICITATION_ANSWER);
      }
    });

    test('sampling: the server\'s sampling request reaches the client and the answer goes back', { timeout: T }, async () => {
      const before = v2.seen.sampling.length;
      const prompt = 'Say hi ☃ 日本';
      const result = await v2.client.callTool({ name: 'trigger-sampling-request', arguments: { prompt, maxTokens: 7 } }, CALL);
      assert.equal(v2.seen.sampling.length, before + 1, 'the client answered exactly one sampling/createMessage');
      const req = v2.seen.sampling.at(-1);
      assert.equal(req.params.messages[0].content.text, `Resource trigger-sampling-request context: ${prompt}`);
      assert.equal(req.params.maxTokens, 7);
      assert.ok(textOf(result).includes(samplingAnswer(req).content.text), textOf(result));
    });

    // server-everything asks for roots with a request unrelated to any call: over HTTP it goes out
    // on the session's standalone GET stream, which the gateway reads for the sessions it holds
    // and hands to the call in flight, so it becomes that call's input_required.
    test('roots: the server lists the client\'s roots', { timeout: T }, async () => {
      const result = await v2.client.callTool({ name: 'get-roots-list', arguments: {} }, { timeout: 20_000 });
      assert.ok(v2.seen.roots.length >= 1, 'the client answered roots/list');
      for (const root of TEST_ROOTS) assert.ok(textOf(result).includes(root.uri), `result names ${root.uri}: ${textOf(result)}`);
    });

    test('resources: list and read a static document', { timeout: T }, async () => {
      const { resources } = await v2.client.listResources(undefined, { ...CALL, cacheMode: 'bypass' });
      const uri = 'demo://resource/static/document/architecture.md';
      assert.ok(resources.some((r) => r.uri === uri), `${uri} is listed`);
      const read = await v2.client.readResource({ uri }, { ...CALL, cacheMode: 'bypass' });
      assert.equal(read.contents.length, 1);
      assert.equal(read.contents[0].uri, uri);
      assert.equal(read.contents[0].mimeType, 'text/markdown');
      assert.match(read.contents[0].text, /^# Everything Server – Architecture/);
    });

    test('prompts: simple-prompt and args-prompt with non-ASCII arguments', { timeout: T }, async () => {
      const { prompts } = await v2.client.listPrompts(undefined, { ...CALL, cacheMode: 'bypass' });
      assert.ok(prompts.some((p) => p.name === 'simple-prompt') && prompts.some((p) => p.name === 'args-prompt'));
      const simple = await v2.client.getPrompt({ name: 'simple-prompt' }, CALL);
      assert.equal(simple.messages[0].role, 'user');
      assert.equal(simple.messages[0].content.text, 'This is a simple prompt without arguments.');
      const withArgs = await v2.client.getPrompt({ name: 'args-prompt', arguments: { city: 'Zürich', state: 'ZH' } }, CALL);
      assert.equal(withArgs.messages[0].content.text, "What's weather in Zürich, ZH?");
    });
  });
}

// ------------------------------------------------------------------------------------------------
// 2. SDK v1 client (2025-11-25) -> the 2026-07-28 server
// ------------------------------------------------------------------------------------------------

describe('SDK v1 client -> 2026-07-28 server', () => {
  let v1;
  let elicitAnswer = () => ({ action: 'accept', content: { ok: true, note: 'Zoë 山田 🚀' } });

  before(async () => {
    v1 = await connectClient(gateway.mcp('mod'), {
      capabilities: FULL_CAPABILITIES,
      onElicit: (req) => elicitAnswer(req),
    });
  });

  test('without the gateway the server rejects the v1 client (the bridge is needed)', { timeout: T }, async () => {
    await assert.rejects(connectClient(modern.url, { connectTimeoutMs: 20_000 }), (err) => {
      assert.equal(err.code, 400, `HTTP 400 from the server: ${err.message}`);
      assert.match(err.message, /-32022/);
      assert.match(err.message, /Unsupported protocol version: 2025-11-25/);
      return true;
    });
  });

  test('the gateway answers initialize (from server/discover) and ping itself', { timeout: T }, async () => {
    assert.deepEqual(v1.client.getServerVersion(), MODERN_INFO);
    assert.equal(v1.client.getInstructions(), 'A 2026-07-28 test server.');
    const caps = v1.client.getServerCapabilities();
    assert.ok(caps.tools && caps.resources && caps.prompts, JSON.stringify(caps));
    const before = await stats(v1.client);
    const fresh = await connectClient(gateway.mcp('mod'), { capabilities: FULL_CAPABILITIES });
    assert.deepEqual(await fresh.client.ping(), {});
    assert.deepEqual(await v1.client.ping(), {});
    const afterwards = await stats(v1.client);
    assert.equal(count(afterwards, 'initialize'), count(before, 'initialize'), 'initialize never reached the server');
    assert.equal(count(afterwards, 'ping'), 0, 'ping never reached the server');
    assert.equal(count(afterwards, 'notifications/initialized'), 0, 'notifications/initialized never reached the server');
    await fresh.close();
  });

  test('tools/list', { timeout: T }, async () => {
    const { tools } = await v1.client.listTools(undefined, CALL);
    assert.deepEqual(tools.map((t) => t.name).sort(), MODERN_TOOLS);
    const echo = tools.find((t) => t.name === 'echo');
    assert.deepEqual(echo.inputSchema.required, ['message']);
  });

  test('echo round-trips Unicode text byte for byte', { timeout: T }, async () => {
    const result = await v1.client.callTool({ name: 'echo', arguments: { message: UNICODE_TEXT } }, undefined, CALL);
    assert.deepEqual(result.content, [{ type: 'text', text: `Echo: ${UNICODE_TEXT}` }]);
    assert.notEqual(result.isError, true);
  });

  test('long_task: progress events arrive before the result', { timeout: T }, async () => {
    const { events, result, error } = await callWithProgress(v1.client, 'long_task', { steps: 5 }, { timeoutMs: 30_000 });
    assert.equal(error, undefined, String(error));
    assert.equal(textOf(result), 'done after 5 steps');
    assertProgressBeforeResult(events, 5);
  });

  test('confirm (accept): input_required becomes a real elicitation; the server\'s requestState survives', { timeout: T }, async () => {
    const before = v1.seen.elicitation.length;
    const action = 'déployer 🚀';
    const result = await v1.client.callTool({ name: 'confirm', arguments: { action } }, undefined, CALL);
    assert.equal(v1.seen.elicitation.length, before + 1, 'the client got exactly one elicitation/create');
    const req = v1.seen.elicitation.at(-1);
    assert.equal(req.params.message, `Really ${action}?`);
    assert.deepEqual(req.params.requestedSchema.required, ['ok']);
    const m = textOf(result).match(/^accept (\{.*\}) \(state (.*)\)$/);
    assert.ok(m, textOf(result));
    assert.deepEqual(JSON.parse(m[1]), { ok: true, note: 'Zoë 山田 🚀' });
    assert.equal(m[2], `confirming:${action}`);
  });

  test('confirm (decline): the decline reaches the server', { timeout: T }, async () => {
    elicitAnswer = () => ({ action: 'decline' });
    try {
      const before = v1.seen.elicitation.length;
      const result = await v1.client.callTool({ name: 'confirm', arguments: { action: 'drop the table' } }, undefined, CALL);
      assert.equal(v1.seen.elicitation.length, before + 1);
      assert.equal(textOf(result), 'decline (state confirming:drop the table)');
    } finally {
      elicitAnswer = () => ({ action: 'accept', content: { ok: true, note: 'Zoë 山田 🚀' } });
    }
  });

  test('ask_model: input_required becomes a real sampling request', { timeout: T }, async () => {
    const before = v1.seen.sampling.length;
    const question = 'Wie geht’s? 日本 🚀';
    const result = await v1.client.callTool({ name: 'ask_model', arguments: { question } }, undefined, CALL);
    assert.equal(v1.seen.sampling.length, before + 1, 'the client got exactly one sampling/createMessage');
    const req = v1.seen.sampling.at(-1);
    assert.equal(req.params.messages[0].content.text, question);
    assert.equal(req.params.maxTokens, 50);
    assert.equal(textOf(result), `model said: ${samplingAnswer(req).content.text}`);
  });

  test('resources: list and read test://static', { timeout: T }, async () => {
    const { resources } = await v1.client.listResources(undefined, CALL);
    assert.deepEqual(resources.map((r) => r.uri).sort(), ['test://counter', 'test://static']);
    const read = await v1.client.readResource({ uri: 'test://static' }, CALL);
    assert.deepEqual(read.contents, [{ uri: 'test://static', mimeType: 'text/plain', text: 'static résumé' }]);
  });

  test('prompts: greeting with a non-ASCII name', { timeout: T }, async () => {
    const { prompts } = await v1.client.listPrompts(undefined, CALL);
    assert.deepEqual(prompts.map((p) => p.name), ['greeting']);
    const name = 'Zoë 山田 🚀';
    const prompt = await v1.client.getPrompt({ name: 'greeting', arguments: { name } }, CALL);
    assert.deepEqual(prompt.messages, [{ role: 'user', content: { type: 'text', text: `Hello, ${name}!` } }]);
  });

  // The server answers an unknown method with HTTP 404 and -32601; a session client must get the
  // JSON-RPC error, not a 404 (which says its session is gone).
  test('a method the server does not have: a JSON-RPC error (HTTP 200), and the session goes on', { timeout: T }, async () => {
    const { z } = await import('zod');
    const anyResult = z.object({}).passthrough();
    await assert.rejects(v1.client.request({ method: 'membrane/no-such-method', params: {} }, anyResult, CALL), (err) => {
      assert.equal(err.code, -32601, `a JSON-RPC error, not an HTTP one: ${err.message}`);
      assert.match(err.message, /Method not found/);
      return true;
    });
    // resources/subscribe is bridged (the listen behind the GET stream); a bad one is refused by
    // the gateway with the reason, and the session goes on.
    assert.equal(v1.client.getServerCapabilities().resources?.subscribe, true);
    assert.deepEqual(await v1.client.subscribeResource({ uri: 'test://static' }, CALL), {});
    await assert.rejects(v1.client.request({ method: 'resources/subscribe', params: { uri: '' } }, z.object({}).passthrough(), CALL), (err) => {
      assert.equal(err.code, -32602, err.message);
      assert.match(err.message, /uri must be a non-empty string/);
      return true;
    });
    const echo = await v1.client.callTool({ name: 'echo', arguments: { message: 'still here' } }, undefined, CALL);
    assert.equal(textOf(echo), 'Echo: still here');
  });
});

// ------------------------------------------------------------------------------------------------
// 3. SDK v2 client -> the 2026-07-28 server
// ------------------------------------------------------------------------------------------------

describe('SDK v2 client -> 2026-07-28 server', () => {
  let v2;
  let direct;

  before(async () => {
    [v2, direct] = await Promise.all([connectV2(gateway.mcp('mod')), connectV2(modern.url)]);
  });

  test('the client negotiated 2026-07-28; discover matches a direct connection', { timeout: T }, async () => {
    assert.equal(v2.client.getNegotiatedProtocolVersion(), STATELESS);
    assert.deepEqual(v2.client.getServerVersion(), direct.client.getServerVersion());
    assert.deepEqual(v2.client.getServerCapabilities(), direct.client.getServerCapabilities());
    assert.equal(v2.client.getInstructions(), 'A 2026-07-28 test server.');
    for (const w of v2.wire.filter((x) => x.method === 'POST')) {
      assert.equal(w.responseHeaders['mcp-session-id'], undefined, 'no session id is issued');
    }
  });

  test('tools/list equals the direct answer', { timeout: T }, async () => {
    const [through, straight] = await Promise.all([
      v2.client.listTools(undefined, { ...CALL, cacheMode: 'bypass' }),
      direct.client.listTools(undefined, { ...CALL, cacheMode: 'bypass' })]);
    assert.deepEqual(through.tools.map((t) => t.name).sort(), MODERN_TOOLS);
    assert.deepEqual(through.tools, straight.tools);
  });

  test('echo round-trips Unicode text byte for byte', { timeout: T }, async () => {
    const result = await v2.client.callTool({ name: 'echo', arguments: { message: UNICODE_TEXT } }, CALL);
    assert.deepEqual(result.content, [{ type: 'text', text: `Echo: ${UNICODE_TEXT}` }]);
  });

  test('long_task: progress events arrive before the result', { timeout: T }, async () => {
    const { events, result } = await callToolWithProgress((onprogress) => v2.client.callTool(
      { name: 'long_task', arguments: { steps: 5 } }, { ...CALL, onprogress }));
    assert.equal(textOf(result), 'done after 5 steps');
    assertProgressBeforeResult(events, 5);
  });

  test('confirm (accept) and (decline): input_required passes through to the client', { timeout: T }, async () => {
    v2.answers.elicit = () => ({ action: 'accept', content: { ok: true, note: 'Zoë 山田 🚀' } });
    const action = 'déployer 🚀';
    const before = v2.seen.elicitation.length;
    const accepted = await v2.client.callTool({ name: 'confirm', arguments: { action } }, CALL);
    assert.equal(v2.seen.elicitation.length, before + 1);
    assert.equal(v2.seen.elicitation.at(-1).params.message, `Really ${action}?`);
    const m = textOf(accepted).match(/^accept (\{.*\}) \(state (.*)\)$/);
    assert.ok(m, textOf(accepted));
    assert.deepEqual(JSON.parse(m[1]), { ok: true, note: 'Zoë 山田 🚀' });
    assert.equal(m[2], `confirming:${action}`);

    v2.answers.elicit = () => ({ action: 'decline' });
    const declined = await v2.client.callTool({ name: 'confirm', arguments: { action: 'drop the table' } }, CALL);
    assert.equal(v2.seen.elicitation.length, before + 2);
    assert.equal(textOf(declined), 'decline (state confirming:drop the table)');
  });

  test('ask_model: sampling through input_required', { timeout: T }, async () => {
    const before = v2.seen.sampling.length;
    const question = 'Wie geht’s? 日本 🚀';
    const result = await v2.client.callTool({ name: 'ask_model', arguments: { question } }, CALL);
    assert.equal(v2.seen.sampling.length, before + 1);
    const req = v2.seen.sampling.at(-1);
    assert.equal(req.params.messages[0].content.text, question);
    assert.equal(textOf(result), `model said: ${samplingAnswer(req).content.text}`);
  });

  test('resources: read test://static', { timeout: T }, async () => {
    const read = await v2.client.readResource({ uri: 'test://static' }, { ...CALL, cacheMode: 'bypass' });
    assert.deepEqual(read.contents, [{ uri: 'test://static', mimeType: 'text/plain', text: 'static résumé' }]);
  });

  test('prompts: greeting with a non-ASCII name', { timeout: T }, async () => {
    const name = 'Zoë 山田 🚀';
    const prompt = await v2.client.getPrompt({ name: 'greeting', arguments: { name } }, CALL);
    assert.deepEqual(prompt.messages, [{ role: 'user', content: { type: 'text', text: `Hello, ${name}!` } }]);
  });
});

// ------------------------------------------------------------------------------------------------
// 4. Malformed 2026-07-28 requests
// ------------------------------------------------------------------------------------------------

describe('bad 2026-07-28 requests', () => {
  const echoParams = { name: 'echo', arguments: { message: 'hi' } };
  const url = () => gateway.mcp('mod');

  test('control: a well-formed stateless request is answered (JSON, no session)', { timeout: T }, async () => {
    const r = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'tools/call', name: 'echo' }),
      body: statelessBody({ method: 'tools/call', params: echoParams }),
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('mcp-session-id'), null);
    const msg = r.messages.find((x) => x.id === 1);
    assert.deepEqual(msg?.result?.content, [{ type: 'text', text: 'Echo: hi' }], r.text);
  });

  test('unsupported revision (header and _meta agree) -> 400 / -32022 listing what server/discover lists', { timeout: T }, async () => {
    const r = await rawFetch(url(), {
      headers: statelessHeaders({ version: '2099-01-01', method: 'tools/list' }),
      body: statelessBody({ method: 'tools/list', metaVersion: '2099-01-01' }),
    });
    assertRejected(r, { status: 400, code: -32022, what: 'header and _meta 2099-01-01' });
    assert.equal(r.json.error.data.requested, '2099-01-01');
    assert.ok(Array.isArray(r.json.error.data.supported), JSON.stringify(r.json.error.data));
    const discover = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'server/discover' }), body: statelessBody({ method: 'server/discover' }),
    });
    assert.deepEqual(r.json.error.data.supported, [STATELESS], JSON.stringify(r.json.error.data));
    for (const version of r.json.error.data.supported) {
      assert.ok(discover.json.result.supportedVersions.includes(version), `${version} is in server/discover: ${discover.text}`);
    }
  });

  test('a session request naming a revision the gateway does not know: -32022 with every revision, 2024-11-05 too (bridged)', { timeout: T }, async () => {
    // A session client's initialize makes the gateway learn that the server takes no sessions.
    const init = await rawFetch(url(), {
      headers: { 'content-type': 'application/json', accept: MCP_ACCEPT },
      body: { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'probe', version: '1' } } },
    });
    assert.equal(init.status, 200, init.text);
    const r = await rawFetch(url(), {
      headers: { 'content-type': 'application/json', accept: MCP_ACCEPT, 'mcp-session-id': init.headers.get('mcp-session-id'), 'mcp-protocol-version': '2024-12-31' },
      body: { jsonrpc: '2.0', id: 2, method: 'tools/list' },
    });
    assertRejected(r, { status: 400, code: -32022, id: 2, what: 'MCP-Protocol-Version 2024-12-31 on a bridged session' });
    assert.deepEqual(r.json.error.data.supported, [STATELESS, '2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'], JSON.stringify(r.json.error.data));
  });

  test('a header revision the body does not repeat is a header mismatch (-32020), supported or not', { timeout: T }, async () => {
    const header = await rawFetch(url(), {
      headers: statelessHeaders({ version: '2099-01-01', method: 'tools/list' }),
      body: statelessBody({ method: 'tools/list' }),
    });
    assertRejected(header, { status: 400, code: -32020, what: 'header 2099-01-01, _meta 2026-07-28' });
    const meta = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'tools/list' }),
      body: statelessBody({ id: 7, method: 'tools/list', metaVersion: '2099-01-01' }),
    });
    assertRejected(meta, { status: 400, code: -32020, id: 7, what: 'header 2026-07-28, _meta 2099-01-01' });
  });

  test('_meta says 2026-07-28 but the MCP-Protocol-Version header is missing -> 400 / -32020', { timeout: T }, async () => {
    const r = await rawFetch(url(), {
      headers: statelessHeaders({ version: null, method: 'tools/list' }),
      body: statelessBody({ method: 'tools/list' }),
    });
    assertRejected(r, { status: 400, code: -32020, what: 'no version header' });
  });

  test('_meta protocolVersion differs from the header -> 400 / -32020', { timeout: T }, async () => {
    const r = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'tools/list' }),
      body: statelessBody({ method: 'tools/list', metaVersion: '2025-11-25' }),
    });
    assertRejected(r, { status: 400, code: -32020, what: '_meta 2025-11-25 vs header 2026-07-28' });
  });

  test('Mcp-Method missing -> 400 / -32020', { timeout: T }, async () => {
    const r = await rawFetch(url(), {
      headers: statelessHeaders({}),
      body: statelessBody({ method: 'tools/list' }),
    });
    assertRejected(r, { status: 400, code: -32020, what: 'no Mcp-Method' });
  });

  test('Mcp-Method differs from the body\'s method -> 400 / -32020', { timeout: T }, async () => {
    const r = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'prompts/list' }),
      body: statelessBody({ method: 'tools/list' }),
    });
    assertRejected(r, { status: 400, code: -32020, what: 'Mcp-Method prompts/list vs tools/list' });
  });

  test('Mcp-Name missing on tools/call -> 400 / -32020', { timeout: T }, async () => {
    const r = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'tools/call' }),
      body: statelessBody({ method: 'tools/call', params: echoParams }),
    });
    assertRejected(r, { status: 400, code: -32020, what: 'no Mcp-Name' });
  });

  test('Mcp-Name differs from params.name (tools/call) or params.uri (resources/read) or the prompt -> 400 / -32020', { timeout: T }, async () => {
    const before = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'tools/call', name: 'stats' }),
      body: statelessBody({ method: 'tools/call', params: { name: 'stats', arguments: {} } }),
    });
    const statsBefore = JSON.parse(before.messages.find((x) => x.id === 1).result.content[0].text);

    const tool = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'tools/call', name: 'stats' }),
      body: statelessBody({ method: 'tools/call', params: echoParams }),
    });
    assertRejected(tool, { status: 400, code: -32020, what: 'Mcp-Name stats vs echo' });
    const resource = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'resources/read', name: 'test://counter' }),
      body: statelessBody({ method: 'resources/read', params: { uri: 'test://static' } }),
    });
    assertRejected(resource, { status: 400, code: -32020, what: 'Mcp-Name test://counter vs test://static' });
    const prompt = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'prompts/get', name: 'farewell' }),
      body: statelessBody({ method: 'prompts/get', params: { name: 'greeting', arguments: { name: 'x' } } }),
    });
    assertRejected(prompt, { status: 400, code: -32020, what: 'Mcp-Name farewell vs greeting' });
    const malformed = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'tools/call', name: '=?base64?!!not base64!!?=' }),
      body: statelessBody({ method: 'tools/call', params: echoParams }),
    });
    assertRejected(malformed, { status: 400, code: -32020, what: 'malformed =?base64?…?= Mcp-Name' });
    const wrongEncoded = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'tools/call', name: encodedName('stats') }),
      body: statelessBody({ method: 'tools/call', params: echoParams }),
    });
    assertRejected(wrongEncoded, { status: 400, code: -32020, what: 'base64 of another name' });

    // None of the rejected requests reached the server (only the stats calls did).
    const after = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'tools/call', name: 'stats' }),
      body: statelessBody({ method: 'tools/call', params: { name: 'stats', arguments: {} } }),
    });
    const statsAfter = JSON.parse(after.messages.find((x) => x.id === 1).result.content[0].text);
    assert.equal(count(statsAfter, 'tools/call'), count(statsBefore, 'tools/call') + 1, 'rejected tools/call never reached the server');
    assert.equal(count(statsAfter, 'resources/read'), count(statsBefore, 'resources/read'));
    assert.equal(count(statsAfter, 'prompts/get'), count(statsBefore, 'prompts/get'));
  });

  test('a correctly =?base64?…?= encoded Mcp-Name is accepted (ASCII and non-ASCII names)', { timeout: T }, async () => {
    const ascii = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'tools/call', name: encodedName('echo') }),
      body: statelessBody({ method: 'tools/call', params: echoParams }),
    });
    assert.equal(ascii.status, 200, ascii.text);
    assert.deepEqual(ascii.messages.find((x) => x.id === 1)?.result?.content, [{ type: 'text', text: 'Echo: hi' }], ascii.text);

    // No such tool: the request passes the gateway's checks and the server itself answers.
    const name = 'écho 日本 🚀';
    const unicode = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'tools/call', name: encodedName(name) }),
      body: statelessBody({ id: 2, method: 'tools/call', params: { name, arguments: {} } }),
    });
    assert.equal(unicode.status, 200, `non-ASCII name must not be refused: ${unicode.text}`);
    const msg = unicode.messages.find((x) => x.id === 2);
    assert.ok(msg, unicode.text);
    assert.notEqual(msg.error?.code, -32020, unicode.text);
    const said = msg.error ? msg.error.message : textOf(msg.result);
    assert.ok(said.includes(`Tool ${name} not found`), `the server saw the exact name: ${unicode.text}`);
  });

  test('_meta without clientCapabilities -> 400 / -32602', { timeout: T }, async () => {
    const r = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'tools/list' }),
      body: statelessBody({ method: 'tools/list', capabilities: null }),
    });
    assertRejected(r, { status: 400, code: -32602, what: 'no clientCapabilities' });
    const notObject = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'tools/list' }),
      body: statelessBody({ method: 'tools/list', capabilities: 'all' }),
    });
    assertRejected(notObject, { status: 400, code: -32602, what: 'clientCapabilities is a string' });
  });

  test('header says 2026-07-28 but _meta has no protocolVersion -> 400 / -32602', { timeout: T }, async () => {
    const r = await rawFetch(url(), {
      headers: statelessHeaders({ method: 'tools/list' }),
      body: statelessBody({ method: 'tools/list', metaVersion: null }),
    });
    assertRejected(r, { status: 400, code: -32602, what: 'no _meta protocolVersion' });
  });

  test('a JSON-RPC response POSTed with 2026-07-28 headers -> 400 / -32600', { timeout: T }, async () => {
    const r = await rawFetch(url(), {
      headers: statelessHeaders({}),
      body: { jsonrpc: '2.0', id: 5, result: {} },
    });
    assertRejected(r, { status: 400, code: -32600, id: 5, what: 'a response' });
  });

  for (const method of ['GET', 'DELETE']) {
    test(`${method} with MCP-Protocol-Version 2026-07-28 -> 405`, { timeout: T }, async () => {
      const r = await rawFetch(url(), {
        method,
        headers: { accept: method === 'GET' ? 'text/event-stream' : MCP_ACCEPT, 'mcp-protocol-version': STATELESS },
        timeoutMs: 10_000,
      });
      assert.equal(r.status, 405, `${method}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
    });
  }

  test('requestState on a session-era upstream: garbage and altered states -> 400 / -32602; the genuine one works', { timeout: T }, async () => {
    const evs = gateway.mcp('evs');
    const call = (id, params) => rawFetch(evs, {
      headers: statelessHeaders({ method: 'tools/call', name: params.name }),
      body: statelessBody({ id, method: 'tools/call', params, capabilities: { elicitation: {} } }),
      untilId: id,
    });

    const garbage = await call(1, { name: 'echo', arguments: { message: 'x' }, requestState: 'ms1.garbage', inputResponses: {} });
    assertRejected(garbage, { status: 400, code: -32602, id: 1, what: 'requestState ms1.garbage' });

    // A genuine state: the server asks for elicitation, the gateway answers input_required.
    const first = await call(2, { name: 'trigger-elicitation-request', arguments: {} });
    assert.equal(first.status, 200, first.text);
    const pending = first.messages.find((x) => x.id === 2)?.result;
    assert.equal(pending?.resultType, 'input_required', first.text);
    const [key, request] = Object.entries(pending.inputRequests)[0];
    assert.equal(request.method, 'elicitation/create', first.text);
    assert.equal(typeof pending.requestState, 'string');
    const inputResponses = { [key]: structuredClone(ELICITATION_ANSWER) };

    const altered = await call(3, {
      name: 'trigger-elicitation-request', arguments: {}, inputResponses, requestState: flipChar(pending.requestState),
    });
    assertRejected(altered, { status: 400, code: -32602, id: 3, what: 'altered requestState' });

    const genuine = await call(4, {
      name: 'trigger-elicitation-request', arguments: {}, inputResponses, requestState: pending.requestState,
    });
    assert.equal(genuine.status, 200, genuine.text);
    const done = genuine.messages.find((x) => x.id === 4)?.result;
    assert.ok(done, genuine.text);
    assert.ok(textOf(done).includes(`Name: ${ELICITATION_ANSWER.content.name}`), genuine.text);
  });
});

// ------------------------------------------------------------------------------------------------
// 5. The gateway's result cache
// ------------------------------------------------------------------------------------------------

describe('cache', () => {
  test('public tools/list within its TTL is answered by the gateway for every client', { timeout: T }, async () => {
    const [a, b, c] = await Promise.all([
      connectClient(gateway.mcp('cache')),
      connectClient(gateway.mcp('cache')),
      connectV2(gateway.mcp('cache'), { capabilities: {} }),
    ]);
    const first = await a.client.listTools(undefined, CALL);   // fills the cache (or finds it filled)
    const before = await stats(a.client);
    assert.ok(count(before, 'tools/list') >= 1, 'the first tools/list reached the server');
    const again = await a.client.listTools(undefined, CALL);
    const other = await b.client.listTools(undefined, CALL);
    const modernClient = await c.client.listTools(undefined, { ...CALL, cacheMode: 'bypass' });
    const afterwards = await stats(a.client);
    assert.equal(count(afterwards, 'tools/list'), count(before, 'tools/list'),
      `no further tools/list reached the server: ${JSON.stringify(before)} -> ${JSON.stringify(afterwards)}`);
    assert.equal(count(afterwards, 'tools/call'), count(before, 'tools/call') + 1, 'the server is reachable (the stats call got there)');
    for (const list of [again, other, modernClient]) {
      assert.deepEqual(list.tools.map((t) => t.name).sort(), MODERN_TOOLS);
      assert.deepEqual(list.tools, first.tools);
    }
  });

  test('after the TTL (300 ms) expires, tools/list reaches the server again', { timeout: T }, async () => {
    const a = await connectClient(gateway.mcp('fast'));
    await a.client.listTools(undefined, CALL);
    await sleep(800);
    const before = await stats(a.client);
    const list = await a.client.listTools(undefined, CALL);
    const afterwards = await stats(a.client);
    assert.deepEqual(list.tools.map((t) => t.name).sort(), MODERN_TOOLS);
    assert.equal(count(afterwards, 'tools/list'), count(before, 'tools/list') + 1,
      `the expired entry was not served: ${JSON.stringify(before)} -> ${JSON.stringify(afterwards)}`);
  });

  test('anonymous callers never get private results from the cache', { timeout: T }, async () => {
    const [a, b] = await Promise.all([connectClient(gateway.mcp('cache')), connectClient(gateway.mcp('cache'))]);
    const read = async (c) => (await c.client.readResource({ uri: 'test://counter' }, CALL)).contents[0].text;
    const texts = [await read(a), await read(a), await read(b), await readStateless(gateway.mcp('cache')),
      await readStateless(gateway.mcp('cache'))];
    const numbers = texts.map((t) => Number(t.match(/^read (\d+)$/)?.[1]));
    assert.ok(numbers.every(Number.isInteger), JSON.stringify(texts));
    for (let i = 1; i < numbers.length; i++) {
      assert.ok(numbers[i - 1] < numbers[i], `every read reached the server: ${JSON.stringify(texts)}`);
    }
  });

  test('private test://counter is cached per authenticated subject and never served to another', { timeout: T }, async () => {
    const [tokenA, tokenA2, tokenB] = await Promise.all([mint('alice'), mint('alice'), mint('bob')]);
    const url = authGateway.mcp('priv');
    const [A, A2, B] = await Promise.all([
      connectClient(url, { headers: { Authorization: `Bearer ${tokenA}` } }),
      connectClient(url, { headers: { Authorization: `Bearer ${tokenA2}` } }),
      connectClient(url, { headers: { Authorization: `Bearer ${tokenB}` } }),
    ]);
    const read = async (c) => (await c.client.readResource({ uri: 'test://counter' }, CALL)).contents[0].text;
    const before = await stats(A.client);

    const a1 = await read(A);
    const a2 = await read(A);
    assert.match(a1, /^read \d+$/);
    assert.equal(a2, a1, 'alice\'s second read comes from the cache');
    assert.equal(await read(A2), a1, 'alice\'s other session shares her private entry');
    assert.equal(await readStateless(url, tokenA2), a1, 'alice\'s stateless request gets her private entry');

    const b1 = await read(B);
    assert.match(b1, /^read \d+$/);
    assert.notEqual(b1, a1, 'bob never gets alice\'s private result');
    assert.equal(await read(B), b1, 'bob\'s second read comes from his own entry');
    assert.equal(await readStateless(url, tokenB), b1, 'bob\'s stateless request gets his own entry');
    assert.equal(await read(A), a1, 'alice still gets her own entry');

    const afterwards = await stats(A.client);
    assert.equal(count(afterwards, 'resources/read'), count(before, 'resources/read') + 2,
      `exactly one read per subject reached the server: ${JSON.stringify(before)} -> ${JSON.stringify(afterwards)}`);
  });

  test('with authentication on, a public tools/list is still shared between subjects', { timeout: T }, async () => {
    const url = authGateway.mcp('priv');
    const [A, B] = await Promise.all([
      connectClient(url, { headers: { Authorization: `Bearer ${await mint('carol')}` } }),
      connectClient(url, { headers: { Authorization: `Bearer ${await mint('dave')}` } }),
    ]);
    const first = await A.client.listTools(undefined, CALL);
    const before = await stats(A.client);
    const other = await B.client.listTools(undefined, CALL);
    const afterwards = await stats(B.client);
    assert.deepEqual(other.tools, first.tools);
    assert.equal(count(afterwards, 'tools/list'), count(before, 'tools/list'), 'dave got the public entry carol filled');
  });
});
