// Policy through the gateway: a call a rule denies never reaches the upstream and comes back as
// a tool error naming the rule; allowed calls pass; tools/list hides tools a rule refuses
// outright; shadow mode records but blocks nothing; a broken policy file stops start-up with
// file:line:col.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  MEMBRANE_BIN, cleanup, connectClient, sleep, startEverythingHttp, startGateway, tmpDir, waitFor,
} from './harness.mjs';

const POLICY = `
- list: secret_words
  items: [password, secret]
- rule: no-environment
  description: The environment holds credentials
  condition: tool.name == "get-env"
  verdict: deny
- rule: no-secret-echo
  condition: tool.name == "echo" and (args.message contains "password" or args.message contains "secret")
  verdict: deny
  message: Do not send secrets through echo
- rule: big-sums-need-approval
  condition: tool.name == "get-sum" and args.a > 1000
  verdict: ask
- rule: blocked-agent
  condition: tool.name == "echo" and request.headers.x-agent-name == "blocked-agent"
  verdict: deny
- rule: sessionless-sums
  condition: tool.name == "get-sum" and not exists(session.id)
  verdict: deny
- rule: no-credentials-in-policy
  condition: tool.name == "echo" and exists(request.headers.authorization)
  verdict: deny
`;

let upstream;
let enforcing;
let shadowing;
let policyFile;

// How many MCP POSTs the upstream has received so far (server-everything logs one line each).
const upstreamPosts = () => upstream.proc.lines.filter((line) => line.includes('Received MCP POST request')).length;

before(async () => {
  upstream = await startEverythingHttp();
  policyFile = path.join(tmpDir(), 'policy.yaml');
  fs.writeFileSync(policyFile, POLICY);
  enforcing = await startGateway(['--upstream', `ev=${upstream.url}`, '--policy', policyFile], { name: 'membrane (policy)' });
  shadowing = await startGateway(['--upstream', `ev=${upstream.url}`, '--policy', policyFile, '--policy-mode', 'shadow'],
    { name: 'membrane (shadow)' });
});
after(cleanup);

describe('enforce mode', () => {
  test('a denied call never reaches the upstream and returns a tool error naming the rule', async () => {
    const c = await connectClient(enforcing.mcp('ev'));
    await sleep(200);
    const before = upstreamPosts();
    const result = await c.client.callTool({ name: 'echo', arguments: { message: 'my password is hunter2' } });
    await sleep(200);
    assert.equal(upstreamPosts(), before, 'the upstream received no request for the denied call');
    assert.equal(result.isError, true);
    assert.match(result.content[0].text, /no-secret-echo/);
    assert.match(result.content[0].text, /Do not send secrets through echo/);
    assert.deepEqual(result._meta['io.membrane/policy'], { rule: 'no-secret-echo', verdict: 'deny' });
    await c.close();
  });

  test('an allowed call reaches the upstream and returns its result', async () => {
    const c = await connectClient(enforcing.mcp('ev'));
    const before = upstreamPosts();
    const result = await c.client.callTool({ name: 'echo', arguments: { message: 'hello' } });
    assert.equal(result.content[0].text, 'Echo: hello');
    assert.ok(upstreamPosts() > before);
    await c.close();
  });

  test('tools/list hides a tool that a rule denies whatever its arguments, and only that one', async () => {
    const direct = await connectClient(upstream.url);
    const through = await connectClient(enforcing.mcp('ev'));
    const directNames = (await direct.client.listTools()).tools.map((t) => t.name);
    const throughNames = (await through.client.listTools()).tools.map((t) => t.name);
    assert.ok(directNames.includes('get-env'));
    assert.deepEqual(throughNames, directNames.filter((name) => name !== 'get-env'));
    await direct.close();
    await through.close();
  });

  test('rules see the request headers and the session id', async () => {
    const blocked = await connectClient(enforcing.mcp('ev'), { headers: { 'X-Agent-Name': 'blocked-agent' } });
    const denied = await blocked.client.callTool({ name: 'echo', arguments: { message: 'hi' } });
    assert.equal(denied._meta?.['io.membrane/policy']?.rule, 'blocked-agent');
    const other = await connectClient(enforcing.mcp('ev'), { headers: { 'X-Agent-Name': 'friendly-agent', Authorization: 'Bearer abc' } });
    // Authorization is never offered to rules (identity.* is), so the rule naming it never holds.
    const allowed = await other.client.callTool({ name: 'echo', arguments: { message: 'hi' } });
    assert.equal(allowed.content[0].text, 'Echo: hi');
    // session.id is present on every call of a session: the sessionless rule never holds.
    const sum = await other.client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } });
    assert.ok(!sum.isError, JSON.stringify(sum));
    await blocked.close();
    await other.close();
  });

  test('an ask verdict is answered with a tool error saying approval is required', async () => {
    const c = await connectClient(enforcing.mcp('ev'));
    const small = await c.client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } });
    assert.match(small.content[0].text, /3/);
    const big = await c.client.callTool({ name: 'get-sum', arguments: { a: 5000, b: 2 } });
    assert.equal(big.isError, true);
    assert.match(big.content[0].text, /approval is required/i);
    await c.close();
  });
});

describe('shadow mode', () => {
  test('a call the policy would deny is forwarded and the decision is logged', async () => {
    const c = await connectClient(shadowing.mcp('ev'));
    const result = await c.client.callTool({ name: 'echo', arguments: { message: 'secret stuff' } });
    assert.equal(result.content[0].text, 'Echo: secret stuff');
    await waitFor(() => shadowing.lines.some((line) => /shadow.*would deny.*no-secret-echo/.test(line)),
      { what: 'the shadow decision in the log' });
    await c.close();
  });
});

test('a broken policy file stops start-up with file:line:col', () => {
  const broken = path.join(tmpDir(), 'broken.yaml');
  fs.writeFileSync(broken, '- rule: r\n  condition: tool.name == 3 or bogus\n  verdict: deny\n');
  const run = spawnSync(MEMBRANE_BIN, ['serve', '--listen', '127.0.0.1:0', '--upstream', 'ev=http://127.0.0.1:9/mcp',
    '--policy', broken], { encoding: 'utf8', timeout: 10_000 });
  assert.notEqual(run.status, 0);
  assert.match(run.stderr, new RegExp(`${broken.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:\\d+: `));
  const check = spawnSync(MEMBRANE_BIN, ['policy', 'check', broken], { encoding: 'utf8' });
  assert.equal(check.status, 1);
  assert.match(check.stderr, /broken\.yaml:2:\d+: /);
});
