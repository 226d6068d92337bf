// Policy rate limits and cluster-wide state (issue 8): a `limit` entry in a policy file refuses
// calls past its rate, per bucket of its `by` fields, with a tool result the model can read.
// Buckets live in the gateway process by default, or in a real redis-server (Debian's) shared by
// every replica. With Redis, the client's answer to an approval (`ask`) that reaches another
// replica than the one asking is passed on to it.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  MEMBRANE_BIN, cleanup, closedPort, connectClient, freePort, mcpHeaders, openEventStream, rawFetch, rawInitialize,
  spawnManaged, startEverythingHttp, startGateway, tmpDir, waitFor,
} from './harness.mjs';

const LIMITS = `
- limit: echo-per-session
  description: Echo calls for each session.
  condition: tool.name == "echo"
  by: [session.id]
  rate: 3/hour
  message: Echo is rationed.
`;

const SHARED_LIMIT = `
- limit: echo-shared
  condition: tool.name == "echo"
  rate: 4/hour
`;

const ASK = `
- rule: confirm-loud-echo
  condition: tool.name == "echo" and args.message startswith "LOUD"
  verdict: ask
  message: Shouting needs approval.
`;

let dir;
let everything;
let redis;
let redisPort;
const sessionKey = crypto.randomBytes(32).toString('base64');

function writeFile(name, text) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

async function startRedis(port) {
  const proc = spawnManaged(`redis-server:${port}`, 'redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
  ]);
  await proc.waitForLine(/Ready to accept connections/, 10_000);
  return proc;
}

function redisCli(...args) {
  return execFileSync('redis-cli', ['-p', String(redisPort), ...args], { encoding: 'utf8' }).trim();
}

async function gatewayWith(name, { policy, redisUrl, extraConfig = [], mode } = {}) {
  const lines = [
    'listen: "127.0.0.1:0"',
    'policy:',
    `  paths: ${JSON.stringify(policy)}`,
    '  approval_timeout: 3s',
    ...(mode ? [`  mode: ${mode}`] : []),
    ...(redisUrl ? ['cluster:', '  redis:', `    url: ${JSON.stringify(redisUrl)}`] : []),
    ...extraConfig,
    'upstreams:',
    '  ev:',
    `    url: ${JSON.stringify(everything.url)}`,
    '',
  ];
  const config = writeFile(`${name}.yaml`, lines.join('\n'));
  return startGateway(['-c', config], { name: `membrane (${name})`, env: { MEMBRANE_SESSION_KEY: sessionKey } });
}

async function echo(client, message) {
  return client.callTool({ name: 'echo', arguments: { message } });
}

function assertRateLimited(result, limit) {
  assert.equal(result.isError, true, JSON.stringify(result));
  const meta = result._meta?.['io.membrane/policy'];
  assert.equal(meta?.limit, limit, JSON.stringify(result));
  assert.equal(meta.verdict, 'deny');
  assert.ok(meta.retryAfterMs > 0 && meta.retryAfterMs <= 3_600_000, JSON.stringify(meta));
  assert.match(result.content[0].text, new RegExp(`Rate limit '${limit}'`));
  assert.match(result.content[0].text, /not forwarded; try again in \d+ seconds?\./);
}

before(async () => {
  dir = tmpDir('membrane-cluster-');
  everything = await startEverythingHttp();
  redisPort = await freePort();
  redis = await startRedis(redisPort);
});
after(cleanup);

describe('limits in the policy tools', () => {
  test('policy test checks which limits charge a case; explain names them with their bucket', () => {
    const policyDir = path.join(dir, 'tested');
    fs.mkdirSync(policyDir);
    fs.writeFileSync(path.join(policyDir, 'limits.yaml'), LIMITS);
    const cases = (expected) => [
      '- name: echo is rationed',
      '  call: {server: ev, params: {name: echo, arguments: {message: hi}}}',
      '  expect: allow',
      `  limits: ${expected}`,
      '- name: other tools are not',
      '  call: {server: ev, params: {name: add, arguments: {a: 1, b: 2}}}',
      '  expect: allow',
      '  limits: []',
      '',
    ].join('\n');
    fs.writeFileSync(path.join(policyDir, 'limits.test.yaml'), cases('[echo-per-session]'));
    const check = spawnSync(MEMBRANE_BIN, ['policy', 'check', policyDir], { encoding: 'utf8' });
    assert.equal(check.stdout.trim(), 'ok: 0 rules, 1 rate limit', check.stderr);
    const passing = spawnSync(MEMBRANE_BIN, ['policy', 'test', policyDir], { encoding: 'utf8' });
    assert.equal(passing.status, 0, passing.stdout + passing.stderr);
    assert.match(passing.stdout, /2 passed, 0 failed/);
    fs.writeFileSync(path.join(policyDir, 'limits.test.yaml'), cases('[]'));
    const failing = spawnSync(MEMBRANE_BIN, ['policy', 'test', policyDir], { encoding: 'utf8' });
    assert.equal(failing.status, 1, failing.stdout + failing.stderr);
    assert.match(failing.stdout, /FAIL .*limits\.test\.yaml:1: echo is rationed: expected limits \[\], got \[echo-per-session\]/);

    const explain = spawnSync(MEMBRANE_BIN, ['policy', 'explain', '-p', path.join(policyDir, 'limits.yaml'), '--format', 'json',
      '--call', JSON.stringify({ server: 'ev', params: { name: 'echo', arguments: {} } })], { encoding: 'utf8' });
    assert.equal(explain.status, 0, explain.stderr);
    const limits = JSON.parse(explain.stdout).limits;
    assert.deepEqual(limits.map(({ source, ...rest }) => rest),
      [{ id: 'echo-per-session', rate: '3/hour', burst: 3, bucket: { 'session.id': '' } }]);
    assert.match(limits[0].source, /limits\.yaml:2$/);
  });
});

describe('rate limits in the gateway process (no Redis)', () => {
  let gateway;
  let auditFile;
  before(async () => {
    auditFile = path.join(dir, 'audit.log');
    gateway = await gatewayWith('local', {
      policy: writeFile('limits.yaml', LIMITS), extraConfig: ['audit:', `  file: ${JSON.stringify(auditFile)}`],
    });
    await gateway.proc.waitForLine(/1 rate limit\(s\), buckets kept in this process/, 5_000);
  });

  test('a session gets its rate, then a tool result naming the limit; other tools and sessions go on', async () => {
    const { client } = await connectClient(gateway.mcp('ev'));
    for (let i = 1; i <= 3; i++) {
      const result = await echo(client, `call ${i}`);
      assert.notEqual(result.isError, true, JSON.stringify(result));
      assert.match(result.content[0].text, new RegExp(`call ${i}`));
    }
    const refused = await echo(client, 'call 4');
    assertRateLimited(refused, 'echo-per-session');
    assert.match(refused.content[0].text, /3\/hour for each session\.id/);
    assert.match(refused.content[0].text, /Echo is rationed\./);
    // A tool the limit does not cover is unaffected.
    const { tools } = await client.listTools();
    const other = tools.find((tool) => tool.name !== 'echo' && !(tool.inputSchema?.required?.length));
    assert.ok(other, 'server-everything lists a tool without required arguments');
    const otherResult = await client.callTool({ name: other.name, arguments: {} });
    assert.equal(otherResult._meta?.['io.membrane/policy'], undefined);
    // Another session has its own bucket.
    const { client: second } = await connectClient(gateway.mcp('ev'));
    assert.notEqual((await echo(second, 'fresh')).isError, true);
    await gateway.proc.waitForLine(/rate limit 'echo-per-session' refuses tools\/call echo on 'ev'/, 5_000);
    await gateway.proc.waitForLine(/method=tools\/call target=echo .*policy=deny:echo-per-session:rate_limited/, 5_000);
    // The audit trail says which limit refused the call.
    const records = await waitFor(() => {
      const found = fs.readFileSync(auditFile, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line))
        .filter((record) => record.policy_note === 'rate_limited');
      return found.length ? found : undefined;
    }, { what: 'a rate_limited audit record' });
    assert.equal(records.length, 1);
    assert.equal(records[0].verdict, 'deny');
    assert.deepEqual(records[0].rules, ['echo-per-session']);
  });

  test('shadow mode records what a limit would refuse and forwards the call', async () => {
    const shadow = await gatewayWith('shadow', {
      policy: writeFile('one.yaml', LIMITS.replace('3/hour', '1/hour')), mode: 'shadow',
    });
    const { client } = await connectClient(shadow.mcp('ev'));
    assert.notEqual((await echo(client, 'first')).isError, true);
    const second = await echo(client, 'second');
    assert.notEqual(second.isError, true, JSON.stringify(second));
    assert.match(second.content[0].text, /second/);
    await shadow.proc.waitForLine(/\(shadow\): rate limit 'echo-per-session' would refuse tools\/call echo/, 5_000);
  });
});

describe('rate limits in Redis, shared by replicas', () => {
  test('two replicas spend one budget: calls through either count, and the next is refused on both', async () => {
    const redisUrl = `redis://127.0.0.1:${redisPort}/0`;
    const policy = writeFile('shared.yaml', SHARED_LIMIT);
    const a = await gatewayWith('redis-a', { policy, redisUrl });
    const b = await gatewayWith('redis-b', { policy, redisUrl });
    await a.proc.waitForLine(/buckets kept in Redis, shared by every replica/, 5_000);
    const { client: viaA } = await connectClient(a.mcp('ev'));
    const { client: viaB } = await connectClient(b.mcp('ev'));
    for (const client of [viaA, viaB, viaA, viaB]) {
      const result = await echo(client, 'shared');
      assert.notEqual(result.isError, true, JSON.stringify(result));
    }
    assertRateLimited(await echo(viaA, 'fifth'), 'echo-shared');
    assertRateLimited(await echo(viaB, 'sixth'), 'echo-shared');
    // One bucket, in Redis, under the configured prefix, which expires once it would be full.
    const keys = redisCli('--scan', '--pattern', 'membrane:limit:*').split('\n').filter(Boolean);
    assert.deepEqual(keys, ['membrane:limit:echo-shared']);
    const ttl = Number(redisCli('PTTL', keys[0]));
    assert.ok(ttl > 0 && ttl <= 3_601_000, `PTTL ${ttl}`);
  });

  test('a bucket named by long argument values is stored under a digest, not the values', async () => {
    const policy = writeFile('per-message.yaml', [
      '- limit: per-message', '  by: [args.message]', '  rate: 100/hour', '',
    ].join('\n'));
    const gateway = await gatewayWith('redis-digest', { policy, redisUrl: `redis://127.0.0.1:${redisPort}/0` });
    const { client } = await connectClient(gateway.mcp('ev'));
    const long = 'x'.repeat(10_000);
    assert.notEqual((await echo(client, long)).isError, true);
    assert.notEqual((await echo(client, 'short')).isError, true);
    const keys = redisCli('--scan', '--pattern', 'membrane:limit:per-message*').split('\n').filter(Boolean).sort();
    assert.equal(keys.length, 2, keys.join('\n').slice(0, 500));
    assert.match(keys[0], /^membrane:limit:per-message\x1f#[0-9a-f]{32}$/);
    assert.equal(keys[1], 'membrane:limit:per-message\x1fshort');
  });

  test('Redis unreachable: limited calls are forwarded (on_error: allow, the default) or refused (deny)', async () => {
    const down = `redis://127.0.0.1:${await closedPort()}`;
    const policy = writeFile('limits-down.yaml', LIMITS);
    const open = await gatewayWith('redis-down-allow', { policy, redisUrl: down });
    const { client } = await connectClient(open.mcp('ev'));
    for (let i = 0; i < 5; i++) assert.notEqual((await echo(client, `open ${i}`)).isError, true);
    await open.proc.waitForLine(/rate-limit store did not answer .*forwarded unlimited/, 5_000);
    // An outage is reported once per interval, not once per call.
    assert.equal(open.lines.filter((line) => /rate-limit store did not answer/.test(line)).length, 1);

    const closed = await gatewayWith('redis-down-deny', {
      policy,
      extraConfig: ['cluster:', '  redis:', `    url: ${JSON.stringify(down)}`, '    on_error: deny', '    timeout: 200ms'],
    });
    const { client: refusedClient } = await connectClient(closed.mcp('ev'));
    const refused = await echo(refusedClient, 'no store');
    assert.equal(refused.isError, true, JSON.stringify(refused));
    assert.match(refused.content[0].text, /could not check them/);
    assert.deepEqual(refused._meta?.['io.membrane/policy'], { verdict: 'deny', limit: 'unavailable' });
    // Calls no limit applies to never ask the store.
    const { tools } = await refusedClient.listTools();
    assert.ok(tools.length > 0);
  });
});

describe('approval answers that reach another replica', () => {
  // Priming events (an event id, no data) carry no message.
  const message = (event) => (event.data ? JSON.parse(event.data) : undefined);

  // The question goes out on replica A's response stream; the client's answer is POSTed to
  // replica B (as a round-robin balancer would send it).
  async function askOnAAnswerOnB(a, b) {
    const init = await rawInitialize(a.mcp('ev'), { capabilities: { elicitation: {} } });
    const headers = mcpHeaders({ sessionId: init.sessionId, protocolVersion: init.protocolVersion });
    const call = await openEventStream(a.mcp('ev'), {
      method: 'POST',
      headers,
      body: { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'echo', arguments: { message: 'LOUD hello' } } },
    });
    assert.equal(call.status, 200);
    const question = await call.next((event) => message(event)?.method === 'elicitation/create', 10_000);
    const asked = JSON.parse(question.data);
    assert.match(asked.params.message, /confirm-loud-echo/);
    const answer = await rawFetch(b.mcp('ev'), {
      headers,
      body: { jsonrpc: '2.0', id: asked.id, result: { action: 'accept', content: {} } },
    });
    assert.equal(answer.status, 202);
    const reply = await call.next((event) => message(event)?.id === 7, 10_000);
    call.close();
    return JSON.parse(reply.data);
  }

  test('with Redis the asking replica gets the answer and forwards the call', async () => {
    const redisUrl = `redis://127.0.0.1:${redisPort}/0`;
    const policy = writeFile('ask.yaml', ASK);
    const admin = ['admin: "127.0.0.1:0"'];
    const a = await gatewayWith('ask-a', { policy, redisUrl, extraConfig: admin });
    const b = await gatewayWith('ask-b', { policy, redisUrl, extraConfig: admin });
    // Both replicas listen on the channel before the question is asked.
    await waitFor(() => Number(redisCli('PUBSUB', 'NUMSUB', 'membrane:approvals').split('\n')[1]) >= 2,
      { what: 'both replicas subscribed to membrane:approvals' });
    const reply = await askOnAAnswerOnB(a, b);
    assert.equal(reply.result?.isError, undefined, JSON.stringify(reply));
    assert.match(reply.result.content[0].text, /LOUD hello/);
    await a.proc.waitForLine(/the answer to gateway request membrane-\S+ arrived through another replica/, 5_000);
    // Both sides are counted.
    const metric = async (gateway, name) => {
      const admin = (await gateway.proc.waitForLine(/admin listening on (http:\/\/\S+)/, 5_000))[1];
      const text = (await rawFetch(`${admin}/metrics`, { method: 'GET' })).text;
      return Number(text.match(new RegExp(`^${name} (\\S+)$`, 'm'))?.[1]);
    };
    assert.equal(await metric(b, 'membrane_approval_answers_published_total'), 1);
    assert.equal(await metric(a, 'membrane_approval_answers_relayed_total'), 1);
    assert.equal(await metric(a, 'membrane_approval_answers_published_total'), 0);
  });

  test('without Redis the answer is lost on the other replica and the call is refused after the approval timeout', async () => {
    const policy = writeFile('ask-local.yaml', ASK);
    const a = await gatewayWith('ask-local-a', { policy });
    const b = await gatewayWith('ask-local-b', { policy });
    const reply = await askOnAAnswerOnB(a, b);
    assert.equal(reply.result?.isError, true, JSON.stringify(reply));
    assert.match(reply.result.content[0].text, /Nobody answered the approval request in time/);
  });
});
