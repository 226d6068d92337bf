// Fault matrix: the OTLP collector is down in the ways that hurt: it accepts connections and
// never answers, or it resets every connection. (Nobody listening at all is in otel.test.mjs.)
// Calls are unaffected; spans wait in a queue bounded by otel.queue, are dropped past it and
// counted; and the gateway still stops promptly on SIGTERM instead of flushing into a collector
// that will never answer.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  NODE, SOURCE_DIR, cleanup, connectClient, defer, rawFetch, spawnManaged, startGateway, tmpDir, waitFor,
} from './harness.mjs';

const FAULTY_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'faulty-http-server.mjs');
const QUEUE = 20;

let upstreamUrl;

before(async () => {
  const upstream = spawnManaged('faulty upstream (otlp)', NODE, [FAULTY_JS, '0']);
  upstreamUrl = (await upstream.waitForLine(/listening on (http:\/\/\S+)/, 20_000))[1];
});
after(cleanup);

/** A TCP listener that does `onConnection(socket)` with every connection; resolves its port. */
async function brokenCollector(onConnection) {
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onConnection(socket);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  defer(() => new Promise((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(resolve);
  }));
  return server.address().port;
}

async function gatewayWithCollector(port, name) {
  const config = path.join(tmpDir('membrane-faults-otlp-'), 'membrane.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'admin: "127.0.0.1:0"',
    'otel:',
    `  endpoint: "http://127.0.0.1:${port}"`,
    `  queue: ${QUEUE}`,
    'upstreams:',
    '  faulty:',
    `    url: ${JSON.stringify(upstreamUrl)}`,
    '',
  ].join('\n'));
  const gateway = await startGateway(['-c', config], { name });
  const admin = (await gateway.proc.waitForLine(/admin listening on (http:\/\/\S+)/, 10_000))[1];
  gateway.metric = async (metric) => {
    const text = (await rawFetch(`${admin}/metrics`, { method: 'GET' })).text;
    return Number(text.match(new RegExp(`^${metric} (\\S+)$`, 'm'))?.[1]);
  };
  return gateway;
}

async function callsWork(gateway, count) {
  const { client } = await connectClient(gateway.mcp('faulty'));
  let maxQueued = 0;
  for (let i = 0; i < count; i += 1) {
    const r = await client.callTool({ name: 'echo', arguments: { message: `span ${i}` } });
    assert.equal(r.content[0].text, `Echo: span ${i}`);
    if (i % 10 === 0) maxQueued = Math.max(maxQueued, await gateway.metric('membrane_otlp_spans_queued'));
  }
  return maxQueued;
}

describe('a collector that accepts and never answers', () => {
  test('calls work, the queue stays within otel.queue, drops are counted, SIGTERM is prompt', { timeout: 90_000 }, async () => {
    let connections = 0;
    const port = await brokenCollector(() => { connections += 1; });
    const gateway = await gatewayWithCollector(port, 'membrane (otlp: hanging collector)');
    let maxQueued = await callsWork(gateway, 60);
    await waitFor(() => connections >= 1, { what: 'the exporter to reach the collector' });
    // With an export hanging on the collector, calls go on and the queue stays bounded.
    const dropped = await gateway.metric('membrane_otlp_spans_dropped_total');
    maxQueued = Math.max(maxQueued, await callsWork(gateway, 60));
    assert.ok(maxQueued <= QUEUE, `queued spans stayed within otel.queue (${maxQueued})`);
    await waitFor(async () => await gateway.metric('membrane_otlp_spans_dropped_total') >= dropped + 60,
      { what: 'spans past the queue to be dropped and counted', timeoutMs: 20_000 });
    // Shutdown flushes at most one batch into a collector that does not answer, then gives up.
    const exit = await gateway.stop({ signal: 'SIGTERM', timeoutMs: 40_000 });
    assert.deepEqual(exit, { code: 0, signal: null }, 'exit 0 on SIGTERM, not killed after a hang');
  });
});

describe('a collector that resets every connection', () => {
  test('calls work and the spans are dropped and counted', { timeout: 90_000 }, async () => {
    const port = await brokenCollector((socket) => socket.resetAndDestroy());
    const gateway = await gatewayWithCollector(port, 'membrane (otlp: resetting collector)');
    await callsWork(gateway, 30);
    // Every span of the 30 calls: those past the queue at once, the rest after their retries.
    await waitFor(async () => await gateway.metric('membrane_otlp_spans_dropped_total') >= 60,
      { what: 'all the spans to be dropped and counted', timeoutMs: 30_000 });
    assert.equal(await gateway.metric('membrane_otlp_spans_queued'), 0);
    assert.equal(await gateway.metric('membrane_otlp_spans_exported_total'), 0);
    const warnings = gateway.lines.filter((l) => /OTLP export to .* failed/.test(l));
    assert.equal(warnings.length, 1, `one warning per outage: ${warnings.join('\n')}`);
  });
});
