// OpenTelemetry: a test OTLP/HTTP receiver gets valid OTLP JSON with a SERVER span per request and
// a CLIENT span per upstream hop, named and attributed by the GenAI/MCP conventions; the trace
// context joins the caller's trace and reaches the upstream (header and params._meta) with the
// same trace id; a dead collector costs the proxy nothing but counted drops.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  NODE, SOURCE_DIR, cleanup, closedPort, connectClient, defer, rawFetch, spawnManaged, startGateway, tmpDir, waitFor,
} from './harness.mjs';

const RECORDING_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'recording-server.mjs');
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN = '00f067aa0ba902b7';

let gateway;
let upstreamUrl;
const received = [];

function spans() {
  return received.flatMap((body) => body.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)));
}

function attrs(span) {
  return Object.fromEntries(span.attributes.map(({ key, value }) => [key, value]));
}

before(async () => {
  const receiver = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    if (req.method === 'POST' && req.url === '/v1/traces' && req.headers['content-type'] === 'application/json') {
      received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    } else {
      res.writeHead(400).end();
    }
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  defer(() => new Promise((resolve) => receiver.close(resolve)));
  const recording = spawnManaged('recording upstream', NODE, [RECORDING_JS, '0']);
  upstreamUrl = (await recording.waitForLine(/listening on (\S+)/, 15_000))[1];
  const policy = path.join(tmpDir('membrane-otel-'), 'policy.yaml');
  fs.writeFileSync(policy, '- rule: no-loud-echo\n  condition: tool.name == "echo" and args.message startswith "LOUD"\n  verdict: deny\n');
  gateway = await startGateway(['--upstream', `rec=${upstreamUrl}`, '--policy', policy,
    '--otlp-endpoint', `http://127.0.0.1:${receiver.address().port}`], { name: 'membrane (otel)' });
});
after(cleanup);

describe('spans', () => {
  let seenHeaders;
  let seenMeta;

  before(async () => {
    const { client } = await connectClient(gateway.mcp('rec'), { headers: { traceparent: `00-${TRACE_ID}-${PARENT_SPAN}-01` } });
    seenHeaders = JSON.parse((await client.callTool({ name: 'request_headers', arguments: {} })).content[0].text);
    seenMeta = JSON.parse((await client.callTool({ name: 'request_meta', arguments: {} })).content[0].text);
    await client.callTool({ name: 'echo', arguments: { message: 'LOUD' } });
    await waitFor(() => spans().some((s) => s.name === 'tools/call echo'), { what: 'the spans to be exported', timeoutMs: 15_000 });
  });

  test('the export is valid OTLP JSON', () => {
    const body = received[0];
    const resource = Object.fromEntries(body.resourceSpans[0].resource.attributes.map(({ key, value }) => [key, value]));
    assert.deepEqual(resource['service.name'], { stringValue: 'membrane' });
    for (const span of spans()) {
      assert.match(span.traceId, /^[0-9a-f]{32}$/);
      assert.match(span.spanId, /^[0-9a-f]{16}$/);
      if (span.parentSpanId) assert.match(span.parentSpanId, /^[0-9a-f]{16}$/);
      assert.ok(Number.isInteger(span.kind) && [2, 3].includes(span.kind), `kind ${span.kind}`);
      assert.match(span.startTimeUnixNano, /^\d{19}$/);
      assert.match(span.endTimeUnixNano, /^\d{19}$/);
      assert.ok(BigInt(span.endTimeUnixNano) >= BigInt(span.startTimeUnixNano));
      // Wall-clock time (the gateway times exchanges on a steady clock and converts).
      const startMs = Number(BigInt(span.startTimeUnixNano) / 1_000_000n);
      assert.ok(Math.abs(startMs - Date.now()) < 10 * 60_000, `start ${span.startTimeUnixNano}`);
      for (const { key, value } of span.attributes) {
        assert.equal(typeof key, 'string');
        assert.equal(Object.keys(value).length, 1);
        assert.ok(['stringValue', 'intValue', 'doubleValue', 'boolValue', 'arrayValue'].includes(Object.keys(value)[0]));
        if ('intValue' in value) assert.match(value.intValue, /^-?\d+$/);
      }
    }
  });

  test('a SERVER span per request joins the caller\'s trace, with the MCP and GenAI attributes', () => {
    const server = spans().find((s) => s.name === 'tools/call request_headers' && s.kind === 2);
    assert.ok(server, 'SERVER span named "{method} {tool}"');
    assert.equal(server.traceId, TRACE_ID);
    assert.equal(server.parentSpanId, PARENT_SPAN);
    const a = attrs(server);
    assert.deepEqual(a['mcp.method.name'], { stringValue: 'tools/call' });
    assert.deepEqual(a['gen_ai.operation.name'], { stringValue: 'execute_tool' });
    assert.deepEqual(a['gen_ai.tool.name'], { stringValue: 'request_headers' });
    assert.deepEqual(a['membrane.upstream'], { stringValue: 'rec' });
    assert.deepEqual(a['network.transport'], { stringValue: 'tcp' });
    assert.ok(a['jsonrpc.request.id'] && a['mcp.session.id'] && a['mcp.protocol.version']);
    // The SDK numbers its requests: the id is written in decimal.
    assert.match(a['jsonrpc.request.id'].stringValue, /^[0-9]+$/);
  });

  test('a CLIENT span for the upstream hop, whose id the upstream received in traceparent and _meta', () => {
    const server = spans().find((s) => s.name === 'tools/call request_headers' && s.kind === 2);
    const client = spans().find((s) => s.name === 'tools/call request_headers' && s.kind === 3);
    assert.ok(client);
    assert.equal(client.traceId, TRACE_ID);
    assert.equal(client.parentSpanId, server.spanId);
    assert.equal(seenHeaders.traceparent, `00-${TRACE_ID}-${client.spanId}-01`);
    assert.match(seenMeta.traceparent, new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`));
  });

  test('a denied call carries the verdict and rule, and never reaches the upstream', () => {
    const denied = spans().filter((s) => s.name === 'tools/call echo');
    assert.equal(denied.length, 1, 'only a SERVER span: no upstream hop');
    const a = attrs(denied[0]);
    assert.deepEqual(a['membrane.policy.verdict'], { stringValue: 'deny' });
    assert.deepEqual(a['membrane.policy.rule_ids'], { arrayValue: { values: [{ stringValue: 'no-loud-echo' }] } });
  });

  test('without an incoming context, a new trace starts and reaches the upstream', async () => {
    const { client } = await connectClient(gateway.mcp('rec'));
    const seen = JSON.parse((await client.callTool({ name: 'request_headers', arguments: {} })).content[0].text);
    const traceId = seen.traceparent.split('-')[1];
    assert.notEqual(traceId, TRACE_ID);
    await waitFor(() => spans().some((s) => s.traceId === traceId && s.kind === 2), { what: 'the new trace', timeoutMs: 15_000 });
  });

  test('the trace context joins what the client put in _meta, and the gateway\'s own hop wins', async () => {
    const { client } = await connectClient(gateway.mcp('rec'));
    const theirs = `00-${TRACE_ID}-${PARENT_SPAN}-01`;
    const seen = JSON.parse((await client.callTool({
      name: 'request_meta', arguments: {}, _meta: { keep: 'yes', progressToken: 7, traceparent: theirs },
    })).content[0].text);
    assert.equal(seen.keep, 'yes');
    assert.equal(seen.progressToken, 7);
    const [, traceId, spanId] = seen.traceparent.split('-');
    assert.equal(traceId, TRACE_ID, 'the caller\'s trace, read from _meta');
    assert.notEqual(spanId, PARENT_SPAN, 'the span of the gateway\'s hop, not the caller\'s');
  });

  test('a message spelled with escapes or odd spacing reaches the upstream whole, with the context', async () => {
    const { session, headers } = await openRawSession(gateway.mcp('rec'));
    for (const body of [
      '{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"request_meta","arguments":{},"_meta":{"k\\u0065ep":"yes"}}}',
      ' { "params" : { "arguments" : { } , "name" : "request_meta" } , "method" : "tools/call" , "id" : 22 , "jsonrpc" : "2.0" } ',
    ]) {
      const response = await rawFetch(gateway.mcp('rec'), { headers: { ...headers, 'mcp-session-id': session }, body });
      assert.equal(response.status, 200, response.text);
      const answer = response.json ?? response.messages.at(-1);
      const seen = JSON.parse(answer.result.content[0].text);
      assert.match(seen.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      if (body.includes('k\\u0065ep')) assert.equal(seen.keep, 'yes');
    }
  });
});

async function openRawSession(url) {
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' };
  const opened = await rawFetch(url, {
    headers,
    body: { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } },
  });
  assert.equal(opened.status, 200, opened.text);
  const session = opened.headers.get('mcp-session-id');
  await rawFetch(url, { headers: { ...headers, 'mcp-session-id': session }, body: { jsonrpc: '2.0', method: 'notifications/initialized' } });
  return { session, headers };
}

test('a dead collector: calls work, spans are dropped and counted', { timeout: 60_000 }, async () => {
  const dead = await startGateway(['--upstream', `rec=${upstreamUrl}`, '--otlp-endpoint', `http://127.0.0.1:${await closedPort()}`,
    '--admin', '127.0.0.1:0'], { name: 'membrane (dead collector)' });
  const admin = (await dead.proc.waitForLine(/admin listening on (http:\/\/\S+)/, 10_000))[1];
  const { client } = await connectClient(dead.mcp('rec'));
  for (let i = 0; i < 5; i += 1) {
    const result = await client.callTool({ name: 'echo', arguments: { message: `still fine ${i}` } });
    assert.equal(result.content[0].text, `Echo: still fine ${i}`);
  }
  await waitFor(async () => {
    const text = (await rawFetch(`${admin}/metrics`, { method: 'GET' })).text;
    const dropped = Number(text.match(/^membrane_otlp_spans_dropped_total (\S+)$/m)?.[1] ?? 0);
    return dropped >= 10;
  }, { what: 'the dropped spans to be counted', timeoutMs: 20_000 });
});

test('arguments and results are captured only when asked, and after redaction', { timeout: 60_000 }, async () => {
  const dir = tmpDir('membrane-otel-capture-');
  const localSpans = [];
  const receiver = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    localSpans.push(...JSON.parse(Buffer.concat(chunks).toString('utf8')).resourceSpans
      .flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)));
    res.writeHead(200).end('{}');
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  defer(() => new Promise((resolve) => receiver.close(resolve)));
  const config = path.join(dir, 'membrane.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'otel:',
    `  endpoint: http://127.0.0.1:${receiver.address().port}`,
    '  capture: [arguments, results]',
    'policy:',
    `  paths: ${JSON.stringify(path.join(SOURCE_DIR, 'policies', 'default'))}`,
    'upstreams:',
    '  rec:',
    `    url: ${JSON.stringify(upstreamUrl)}`,
    '',
  ].join('\n'));
  const capturing = await startGateway(['-c', config], { name: 'membrane (otel capture)' });
  const { client } = await connectClient(capturing.mcp('rec'));
  const result = await client.callTool({ name: 'echo', arguments: { message: 'key AKIAIOSFODNN7EXAMPLE' } });
  assert.match(result.content[0].text, /REDACTED/);
  await waitFor(() => localSpans.some((s) => s.name === 'tools/call echo' && s.kind === 2), { what: 'the span', timeoutMs: 15_000 });
  const a = attrs(localSpans.find((s) => s.name === 'tools/call echo' && s.kind === 2));
  assert.match(a['gen_ai.tool.call.arguments'].stringValue, /REDACTED:secrets-in-results/);
  assert.match(a['gen_ai.tool.call.result'].stringValue, /REDACTED:secrets-in-results/);
  assert.ok(!JSON.stringify(localSpans).includes('AKIAIOSFODNN7EXAMPLE'), 'the secret never reaches the collector');
  // Without capture (the first gateway), no argument or result attribute exists.
  assert.ok(spans().every((s) => !s.attributes.some(({ key }) => key.startsWith('gen_ai.tool.call.'))));
});
