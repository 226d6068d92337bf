// Prometheus /metrics on the admin listener: the exposition parses under the text format's rules
// (checked line by line here), and counters and histograms move with traffic.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { cleanup, connectClient, rawFetch, startEverythingHttp, startGateway, tmpDir, waitFor } from './harness.mjs';

let gateway;
let adminBase;

// The Prometheus text exposition format 0.0.4: HELP/TYPE comments, then samples
// `name{label="value",...} value`. Returns {families: {name: {type, help, samples: [...]}}}.
function parseExposition(text) {
  const families = {};
  const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)?\})? (-?[0-9.eE+-]+|[+-]Inf|NaN)$/;
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) {
      const [, kind, name, ...rest] = line.split(' ');
      assert.match(name, metricName, line);
      families[name] ??= { samples: [] };
      if (kind === 'TYPE') {
        assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest[0]), line);
        assert.equal(families[name].samples.length, 0, `TYPE before samples: ${line}`);
        families[name].type = rest[0];
      } else {
        families[name].help = rest.join(' ');
      }
      continue;
    }
    const m = line.match(sample);
    assert.ok(m, `not a valid sample line: ${JSON.stringify(line)}`);
    const base = m[1].replace(/_(bucket|sum|count)$/, '');
    const family = families[m[1]] ?? families[base];
    assert.ok(family, `sample without a declared family: ${line}`);
    const labels = {};
    for (const [, key, value] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key] = value;
    family.samples.push({ name: m[1], labels, value: Number(m[3].replace('+Inf', 'Infinity')) });
  }
  return families;
}

async function scrape() {
  const response = await rawFetch(`${adminBase}/metrics`, { method: 'GET' });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return parseExposition(response.text);
}

function total(families, name, match = {}) {
  const family = families[name] ?? families[name.replace(/_(bucket|sum|count)$/, '')];
  return (family?.samples ?? [])
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

before(async () => {
  const upstream = await startEverythingHttp();
  const dir = tmpDir('membrane-metrics-');
  const policy = path.join(dir, 'policy.yaml');
  fs.writeFileSync(policy, '- rule: no-env\n  condition: tool.name == "get-env"\n  verdict: deny\n');
  gateway = await startGateway(['--upstream', `ev=${upstream.url}`, '--policy', policy, '--admin', '127.0.0.1:0',
    '--audit-log', path.join(dir, 'audit.log')], { name: 'membrane (metrics)' });
  adminBase = (await gateway.proc.waitForLine(/admin listening on (http:\/\/\S+)/, 10_000))[1];
});
after(cleanup);

test('the exposition is valid and every family is typed and described', async () => {
  const families = await scrape();
  for (const name of ['membrane_requests_total', 'membrane_request_duration_seconds', 'membrane_policy_decisions_total',
    'membrane_upstream_errors_total', 'membrane_streams_active', 'membrane_audit_records_written']) {
    assert.ok(families[name]?.type, `${name} is declared`);
    assert.ok(families[name]?.help, `${name} is described`);
  }
});

test('counters and histograms move with traffic', async () => {
  const before = await scrape();
  const { client } = await connectClient(gateway.mcp('ev'));
  await client.callTool({ name: 'echo', arguments: { message: 'x' } });
  await client.callTool({ name: 'echo', arguments: { message: 'y' } });
  await client.callTool({ name: 'get-env', arguments: {} });
  const calls = (families) => total(families, 'membrane_requests_total', { method: 'tools/call', upstream: 'ev' });
  // An exchange is counted when it is over, just after its response went out: poll briefly.
  let afterScrape;
  await waitFor(async () => {
    afterScrape = await scrape();
    return calls(afterScrape) - calls(before) === 3;
  }, { what: 'three tools/call counted', timeoutMs: 5_000 });
  const denied = (families) => total(families, 'membrane_policy_decisions_total', { verdict: 'deny', rule: 'no-env' });
  assert.equal(denied(afterScrape) - denied(before), 1);
  const histogramCount = (families) => total(families, 'membrane_request_duration_seconds_count', { method: 'tools/call' });
  assert.equal(histogramCount(afterScrape) - histogramCount(before), 3);
  const buckets = afterScrape.membrane_request_duration_seconds.samples
    .filter((s) => s.name.endsWith('_bucket') && s.labels.method === 'tools/call');
  assert.equal(buckets.at(-1).labels.le, '+Inf');
  for (let i = 1; i < buckets.length; i += 1) assert.ok(buckets[i].value >= buckets[i - 1].value, 'buckets are cumulative');
  assert.ok(total(afterScrape, 'membrane_upstream_duration_seconds_count') > total(before, 'membrane_upstream_duration_seconds_count'));
  assert.ok(total(afterScrape, 'membrane_audit_records_written') > total(before, 'membrane_audit_records_written'));
});

test('the admin listener answers health and readiness, and nothing else', async () => {
  assert.equal((await rawFetch(`${adminBase}/healthz`, { method: 'GET' })).status, 200);
  assert.equal((await rawFetch(`${adminBase}/readyz`, { method: 'GET' })).json.status, 'ready');
  assert.equal((await rawFetch(`${adminBase}/mcp/ev`, { method: 'GET' })).status, 404);
});
