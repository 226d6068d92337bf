// The security console's JSON APIs (docs/console.md), driven the way a script or the page drives
// them: who may use it (tokens, scopes, Origin, Host), the audit search and its paging, the live
// feed while the official SDK client works through the gateway, a transaction's timeline, chain
// status with a tampered file, the charts, and approvals given at the console, also across two
// replicas sharing a real redis-server. The browser test (console_browser) drives the page itself.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  EVERYTHING_JS, MEMBRANE_BIN, NODE, cleanup, connectClient, connectV2, freePort, httpRaw, rawFetch,
  spawnManaged, startGateway, tmpDir, waitFor,
} from './harness.mjs';

const SECRET = 'sk-ABCDEF1234567890';

const POLICY = `
- rule: no-env
  condition: tool.name == "get-env"
  verdict: deny
  message: environment variables stay private
- rule: console-sums
  condition: tool.name == "get-sum"
  verdict: ask
  approver: console
  message: an operator approves sums
- rule: user-or-console-echo
  condition: tool.name == "echo" and args.message startswith "either"
  verdict: ask
  approver: [user, console]
- rule: console-echo
  condition: tool.name == "echo" and args.message startswith "approve"
  verdict: ask
  approver: console
- rule: mask-keys
  condition: "true"
  verdict: redact
  redact: ["sk-[A-Za-z0-9]{8,}"]
`;

let dir;
let gateway;
let admin;
let tokenKey;

function mint({ sub = 'alice', scope = 'membrane:audit membrane:approve', key = tokenKey, iss = 'membrane-console', aud = 'membrane-console' } = {}) {
  const args = ['token', 'mint', '--key', key, '--iss', iss, '--aud', aud, '--sub', sub,
    '--claims', JSON.stringify({ scope })];
  return execFileSync(MEMBRANE_BIN, args, { encoding: 'utf8' }).trim();
}

function consoleConfig({ name, audit, redisUrl, approvalTimeout = '20s' }) {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, [
    'listen: "127.0.0.1:0"',
    'admin: "127.0.0.1:0"',
    'policy:',
    `  paths: [${JSON.stringify(path.join(dir, 'policy.yaml'))}]`,
    'audit:',
    `  file: ${JSON.stringify(audit)}`,
    `  key_file: ${JSON.stringify(path.join(dir, `${name}-audit-key.json`))}`,
    '  checkpoint_every: 4',
    'txn:',
    `  key_file: ${JSON.stringify(path.join(dir, 'txn-key.json'))}`,
    'console:',
    `  token_key_file: ${JSON.stringify(tokenKey)}`,
    `  audit_files: [${JSON.stringify(path.join(dir, 'other', '*.jsonl'))}]`,
    `  approval_timeout: ${approvalTimeout}`,
    '  trace_link: "http://127.0.0.1:16686/trace/{trace_id}"',
    ...(redisUrl ? ['cluster:', '  redis:', `    url: ${JSON.stringify(redisUrl)}`] : []),
    'upstreams:',
    '  everything:',
    `    command: ${JSON.stringify(NODE)}`,
    `    args: [${JSON.stringify(EVERYTHING_JS)}, stdio]`,
    '',
  ].join('\n'));
  return file;
}

async function startConsoleGateway(name, options) {
  const started = await startGateway(['-c', consoleConfig({ name, ...options })], { name });
  started.admin = (await started.proc.waitForLine(/admin listening on (http:\/\/\S+)/, 10_000))[1];
  return started;
}

async function api(route, { token = mint(), method = 'GET', headers = {}, body, base = admin } = {}) {
  const response = await rawFetch(`${base}/console/api/${route}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body,
  });
  let json;
  try { json = JSON.parse(response.text); } catch { json = undefined; }
  return { ...response, json };
}

before(async () => {
  dir = tmpDir('membrane-console-');
  fs.mkdirSync(path.join(dir, 'other'));
  fs.writeFileSync(path.join(dir, 'policy.yaml'), POLICY);
  tokenKey = path.join(dir, 'console-key.json');
  gateway = await startConsoleGateway('console', { audit: path.join(dir, 'audit.jsonl') });
  admin = gateway.admin;
});
after(cleanup);

describe('who may use the console', () => {
  test('the page is served with a strict Content-Security-Policy, without a token', async () => {
    const page = await rawFetch(`${admin}/console/`, { method: 'GET' });
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type'), /text\/html/);
    const csp = page.headers.get('content-security-policy');
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    // Nothing is fetched from elsewhere: no absolute URL in the page or its script.
    const script = await rawFetch(`${admin}/console/console.js`, { method: 'GET' });
    assert.equal(script.status, 200);
    for (const text of [page.text, script.text]) {
      assert.doesNotMatch(text.replace(/http:\/\/www\.w3\.org\/2000\/svg/g, ''), /https?:\/\//);
    }
    const redirect = await httpRaw(`${admin}/console`, { method: 'GET' });
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers.location, '/console/');
  });

  test('no token, a forged or expired token, or a token without the scope is refused', async () => {
    const none = await api('records', { token: '' });
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate'), /^Bearer /);
    assert.equal(none.json.error, 'invalid_token');

    const otherKey = path.join(dir, 'not-the-console-key.json');
    const forged = await api('records', { token: mint({ key: otherKey }) });
    assert.equal(forged.status, 401);

    const wrongAudience = await api('records', { token: mint({ aud: 'someone-else' }) });
    assert.equal(wrongAudience.status, 401);

    const noScope = await api('records', { token: mint({ scope: 'mcp:tools' }) });
    assert.equal(noScope.status, 403);
    assert.equal(noScope.json.error, 'insufficient_scope');
    assert.match(noScope.headers.get('www-authenticate'), /scope="membrane:audit"/);
  });

  test('answering an approval needs the approve scope', async () => {
    const readOnly = mint({ scope: 'membrane:audit' });
    const who = await api('whoami', { token: readOnly });
    assert.equal(who.status, 200);
    assert.equal(who.json.subject, 'alice');
    assert.equal(who.json.can_approve, false);
    assert.equal(who.json.trace_link, 'http://127.0.0.1:16686/trace/{trace_id}');
    const answer = await api('approvals/ap-anything', {
      token: readOnly, method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ decision: 'approve' }),
    });
    assert.equal(answer.status, 403);
    assert.equal(answer.json.error, 'insufficient_scope');
  });

  test('requests from another Origin, or a browser marking them cross-site, are refused', async () => {
    const token = mint();
    const foreign = await api('records', { token, headers: { origin: 'http://evil.example' } });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.json.error, 'forbidden_origin');
    const crossSite = await api('records', { token, headers: { 'sec-fetch-site': 'cross-site' } });
    assert.equal(crossSite.status, 403);
    const sameOrigin = await api('records', { token, headers: { origin: admin } });
    assert.equal(sameOrigin.status, 200);
    const answer = await api('approvals/ap-x', {
      token, method: 'POST', headers: { origin: 'http://127.0.0.1:1', 'content-type': 'application/json' },
      body: '{"decision":"approve"}',
    });
    assert.equal(answer.status, 403);
  });

  test('a host name other than loopback is refused (DNS rebinding)', async () => {
    const rebound = await httpRaw(`${admin}/console/api/records`, {
      method: 'GET', headers: { host: 'attacker.example:9090', authorization: `Bearer ${mint()}` },
    });
    assert.equal(rebound.status, 403);
    assert.equal(JSON.parse(rebound.text).error, 'forbidden_host');
    const page = await httpRaw(`${admin}/console/`, { method: 'GET', headers: { host: 'attacker.example' } });
    assert.equal(page.status, 403);
  });

  test('a console without an admin listener or a way to log in is a config error at file:line', () => {
    const broken = path.join(dir, 'broken.yaml');
    fs.writeFileSync(broken, [
      'listen: "127.0.0.1:0"',
      'audit: {file: /tmp/x.jsonl}',
      'console:',
      '  approval_timeout: 1m',
      'upstreams: {e: {url: "http://127.0.0.1:1/mcp"}}',
      '',
    ].join('\n'));
    const check = () => {
      try {
        execFileSync(MEMBRANE_BIN, ['config', 'check', '-c', broken], { encoding: 'utf8', stdio: 'pipe' });
        return '';
      } catch (error) { return String(error.stderr); }
    };
    assert.match(check(), /broken\.yaml:\d+:\d+: console: .*admin listener/);
    fs.writeFileSync(broken, fs.readFileSync(broken, 'utf8').replace('audit:', 'admin: "127.0.0.1:0"\naudit:'));
    assert.match(check(), /broken\.yaml:\d+:\d+: console: .*check who opens it/);
    fs.writeFileSync(broken, fs.readFileSync(broken, 'utf8').replace('approval_timeout: 1m', 'approval_timeout: 1m\n  max_scan: lots'));
    assert.match(check(), /broken\.yaml:6:\d+: .*size/);
    fs.writeFileSync(broken, fs.readFileSync(broken, 'utf8').replace('  max_scan: lots', '  trace_link: "javascript:alert(1)"'));
    assert.match(check(), /broken\.yaml:6:\d+: .*http\(s\) URL with \{trace_id\}/);
  });
});

describe('the audit trail through the console', () => {
  let session;
  let txn;

  before(async () => {
    session = await connectClient(gateway.mcp('everything'));
    await session.client.callTool({ name: 'echo', arguments: { message: `hello ${SECRET}` } });
    await session.client.callTool({ name: 'get-tiny-image', arguments: {} });
    const denied = await session.client.callTool({ name: 'get-env', arguments: {} });
    assert.equal(denied.isError, true);
    await waitFor(async () => (await api('records?tool=get-env')).json?.records?.length === 1,
      { what: 'the denied call in the audit log' });
    txn = (await api('records?tool=get-env')).json.records[0].txn;
    assert.ok(txn, 'calls carry a transaction id');
  });

  test('search filters by verdict, rule, tool and upstream, newest first', async () => {
    const denied = await api('records?verdict=deny');
    assert.equal(denied.status, 200);
    assert.ok(denied.json.records.length >= 1);
    assert.ok(denied.json.records.every((r) => r.verdict === 'deny'));
    const byRule = await api('records?rule=no-env&upstream=everything');
    assert.deepEqual(byRule.json.records.map((r) => r.tool), ['get-env']);
    const all = await api('records?limit=50');
    const times = all.json.records.map((r) => r.time);
    assert.deepEqual([...times].sort().reverse(), times);
    assert.equal(typeof all.json.scanned_records, 'number');
    assert.equal(typeof all.json.elapsed_ms, 'number');
    assert.equal(all.json.limited, false);
  });

  test('arguments never leave the console: records carry their digest only', async () => {
    const echo = await api('records?tool=echo');
    assert.equal(echo.json.records.length, 1);
    const record = echo.json.records[0];
    const expected = crypto.createHash('sha256')
      .update(JSON.stringify({ message: `hello ${SECRET}` })).digest('hex');
    assert.equal(record.args_sha256, expected);
    assert.ok(!echo.text.includes(SECRET));
    assert.ok(!(await api('records?limit=500')).text.includes(SECRET));
  });

  test('paging with the cursor walks every record once', async () => {
    const everything = (await api('records?limit=500')).json.records.map((r) => r.seq);
    const paged = [];
    let cursor = '';
    for (let page = 0; page < 50; page += 1) {
      const { json } = await api(`records?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      paged.push(...json.records.map((r) => r.seq));
      if (!json.next) break;
      cursor = json.next;
    }
    // Calls made meanwhile (other tests) only add newer records: the walk is a suffix of them.
    assert.deepEqual(paged, everything.slice(everything.length - paged.length));
    assert.ok(paged.length >= 3);
    const bad = await api('records?cursor=forged');
    assert.equal(bad.status, 400);
    const otherFile = Buffer.from(JSON.stringify({ f: '/etc/passwd', e: 10 })).toString('base64url');
    const escape = await api(`records?cursor=${otherFile}`);
    assert.equal(escape.status, 400);
    assert.ok(!escape.text.includes('root:'));
  });

  test('bad filters get 400 with the reason', async () => {
    assert.equal((await api('records?verdict=maybe')).status, 400);
    assert.equal((await api('records?since=yesterday')).status, 400);
    assert.equal((await api('records?limit=0')).status, 400);
    assert.equal((await api(`records?tool=${'x'.repeat(2000)}`)).status, 400);
    assert.equal((await api('nothing-here')).status, 404);
    assert.equal((await api('records', { method: 'DELETE' })).status, 405);
  });

  test('the timeline of a transaction lists its calls in order', async () => {
    const timeline = await api(`transactions/${encodeURIComponent(txn)}`);
    assert.equal(timeline.status, 200);
    assert.equal(timeline.json.txn, txn);
    assert.deepEqual(timeline.json.records.map((r) => r.tool), ['echo', 'get-tiny-image', 'get-env']);
    // mask-keys holds for every call: allowed calls are `redact`.
    assert.deepEqual(timeline.json.records.map((r) => r.verdict), ['redact', 'redact', 'deny']);
    assert.equal(timeline.json.calls, 3);
    assert.equal(timeline.json.sessions.length, 1);
    assert.ok(timeline.json.records.every((r) => /^[0-9a-f]{32}$/.test(r.trace_id ?? '') || r.trace_id === undefined));
    const missing = await api('transactions/no-such-txn');
    assert.equal(missing.status, 404);
  });

  test('the live feed streams calls as they are decided, filtered', async () => {
    const controller = new AbortController();
    const response = await fetch(`${admin}/console/api/feed?tool=get-annotated-message`, {
      headers: { authorization: `Bearer ${mint()}` }, signal: controller.signal,
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type'), /text\/event-stream/);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let text = '';
    // The stream is open once its first comment arrives.
    while (!text.includes('feed open')) text += decoder.decode((await reader.read()).value, { stream: true });
    await session.client.callTool({ name: 'get-tiny-image', arguments: {} });
    await session.client.callTool({ name: 'get-annotated-message', arguments: { messageType: 'error' } });
    const records = [];
    const deadline = Date.now() + 10_000;
    while (records.length === 0 && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      for (const block of text.split('\n\n')) {
        const data = block.split('\n').find((line) => line.startsWith('data: '));
        if (block.startsWith('event: record') && data) records.push(JSON.parse(data.slice(6)));
      }
    }
    controller.abort();
    assert.deepEqual(records.map((r) => r.tool), ['get-annotated-message']);
    assert.equal(records[0].txn, txn);
  });

  test('the charts count the calls per minute, verdict and upstream', async () => {
    const stats = await api('stats?minutes=15');
    assert.equal(stats.status, 200);
    assert.equal(stats.json.buckets.length, 15);
    const sum = (list) => list.reduce((a, b) => a + b, 0);
    assert.ok(sum(stats.json.by_verdict.deny) >= 1);
    assert.ok(sum(stats.json.by_verdict.redact) >= 2);
    assert.ok(sum(stats.json.by_upstream.everything) >= 3);
    assert.deepEqual(stats.json.top_denied_rules[0], { rule: 'no-env', count: stats.json.top_denied_rules[0].count });
    const latency = stats.json.latency.find((l) => l.upstream === 'everything');
    assert.ok(latency.p50_us > 0 && latency.p99_us >= latency.p50_us);
    assert.equal((await api('stats?minutes=99999999')).status, 400);
  });

  test('chain status: the own log verifies, a tampered log is flagged at its line', async () => {
    const own = path.join(dir, 'audit.jsonl');
    const lines = fs.readFileSync(own, 'utf8').split('\n');
    // A copy of the chain's first records as another replica's file, with line 3 edited.
    const copy = lines.slice(0, 5);
    copy[2] = copy[2].replace('"method":"', '"method":"x');
    fs.writeFileSync(path.join(dir, 'other', 'replica-b.jsonl'), `${copy.join('\n')}\n`);
    const chain = await api('chain');
    assert.equal(chain.status, 200);
    assert.equal(chain.json.ok, false);
    const mine = chain.json.chains.find((c) => c.name === own);
    assert.equal(mine.ok, true, JSON.stringify(mine));
    assert.ok(mine.checkpoints >= 1, 'signed checkpoints were checked');
    assert.equal(mine.signed, true);
    const tampered = chain.json.chains.find((c) => c.name.endsWith('replica-b.jsonl'));
    assert.equal(tampered.ok, false);
    assert.equal(tampered.line, 3);
    assert.match(tampered.problem, /hash|altered|edited/i);
    fs.rmSync(path.join(dir, 'other', 'replica-b.jsonl'));
    // `fresh=1` (the page's Refresh) verifies every chain from the start.
    assert.equal((await api('chain?fresh=1')).json.ok, true);
  });
});

describe('approvals at the console', () => {
  test('a call waits until an approver approves it; another is refused with the reason', async () => {
    const { client } = await connectClient(gateway.mcp('everything'));
    const sum = client.callTool({ name: 'get-sum', arguments: { a: 20, b: 22 } });
    const secretEcho = client.callTool({ name: 'echo', arguments: { message: `approve ${SECRET}` } });
    let waiting = [];
    await waitFor(async () => {
      waiting = (await api('approvals')).json.approvals;
      return waiting.length === 2;
    }, { what: 'two calls in the approvals queue' });
    const sumEntry = waiting.find((entry) => entry.tool === 'get-sum');
    assert.equal(sumEntry.rule, 'console-sums');
    assert.equal(sumEntry.upstream, 'everything');
    assert.equal(sumEntry.method, 'tools/call');
    assert.deepEqual(sumEntry.arguments, { arguments: { a: 20, b: 22 }, name: 'get-sum' });
    assert.match(sumEntry.id, /^ap-/);
    const echoEntry = waiting.find((entry) => entry.tool === 'echo');
    // The redact rule masks the key in what the approver sees, as it would in the result.
    assert.equal(echoEntry.arguments.arguments.message, 'approve [REDACTED:mask-keys]');
    assert.ok(!JSON.stringify(waiting).includes(SECRET));

    const approve = await api(`approvals/${sumEntry.id}`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ decision: 'approve', reason: 'checked' }),
    });
    assert.equal(approve.status, 200, approve.text);
    assert.equal(approve.json.delivered, 'here');
    const result = await sum;
    assert.notEqual(result.isError, true);
    assert.match(result.content[0].text, /42/);

    const noReason = await api(`approvals/${echoEntry.id}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"decision":"refuse"}',
    });
    assert.equal(noReason.status, 400);
    const refuse = await api(`approvals/${echoEntry.id}`, {
      token: mint({ sub: 'bob' }), method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ decision: 'refuse', reason: 'no keys in echoes' }),
    });
    assert.equal(refuse.status, 200);
    const refused = await secretEcho;
    assert.equal(refused.isError, true);
    assert.match(refused.content[0].text, /security console refused this call \(reason: no keys in echoes\)/);
    // Answered once: a second answer finds nothing.
    const again = await api(`approvals/${echoEntry.id}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"decision":"approve"}',
    });
    assert.equal(again.status, 404);

    await waitFor(async () => (await api('records?tool=get-sum')).json.records.length === 1,
      { what: 'the approved call audited' });
    const approved = (await api('records?tool=get-sum')).json.records[0];
    assert.equal(approved.verdict, 'ask');
    assert.equal(approved.policy_note, 'approved');
    assert.equal(approved.approval_by, 'console');
    assert.equal(approved.approver, 'alice');
    assert.equal(approved.approval_reason, 'checked');
    await waitFor(async () => (await api('records?rule=console-echo')).json.records.length === 1,
      { what: 'the refused call audited' });
    const declined = (await api('records?rule=console-echo')).json.records[0];
    assert.equal(declined.policy_note, 'declined');
    assert.equal(declined.approver, 'bob');
    assert.equal(declined.approval_reason, 'no keys in echoes');
    assert.equal((await api('approvals')).json.approvals.length, 0);
  });

  // Each downstream revision waits its own way: an SSE response begun for the keep-alive comments
  // (Streamable HTTP, sessions or 2026-07-28), or the session's own event stream (2024-11-05).
  for (const kind of ['sse', 'stateless']) {
    test(`a ${kind === 'sse' ? '2024-11-05 HTTP+SSE' : '2026-07-28'} client's call waits for the console too`, async () => {
      const client = kind === 'sse'
        ? (await connectClient(gateway.sse('everything'), { kind: 'sse' })).client
        : (await connectV2(gateway.mcp('everything'))).client;
      const call = client.callTool({ name: 'get-sum', arguments: { a: 40, b: kind === 'sse' ? 1 : 2 } });
      let entry;
      await waitFor(async () => {
        [entry] = (await api('approvals')).json.approvals;
        return entry !== undefined;
      }, { what: `the ${kind} client's call in the queue` });
      assert.equal(entry.arguments.arguments.a, 40);
      const approve = await api(`approvals/${entry.id}`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"decision":"approve"}',
      });
      assert.equal(approve.status, 200);
      const result = await call;
      assert.match(result.content[0].text, kind === 'sse' ? /\b41\b/ : /\b42\b/);
    });
  }

  test('with [user, console], whichever answers first decides', async () => {
    let elicited;
    const asked = new Promise((resolve) => { elicited = resolve; });
    const { client } = await connectClient(gateway.mcp('everything'), {
      capabilities: { elicitation: { form: {} } },
      onElicit: () => { elicited(); return new Promise(() => {}); },
    });
    const call = client.callTool({ name: 'echo', arguments: { message: 'either way' } });
    await asked;
    let entry;
    await waitFor(async () => {
      [entry] = (await api('approvals')).json.approvals;
      return entry !== undefined;
    }, { what: 'the call in the queue while its user is asked too' });
    const approve = await api(`approvals/${entry.id}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"decision":"approve"}',
    });
    assert.equal(approve.status, 200);
    const result = await call;
    assert.equal(result.content[0].text, 'Echo: either way');
  });

  test('a call nobody answers is refused when the wait is over', async () => {
    const short = await startConsoleGateway('short', {
      audit: path.join(dir, 'short.jsonl'), approvalTimeout: '1s',
    });
    const { client } = await connectClient(short.mcp('everything'));
    const started = Date.now();
    const timedOut = await client.callTool({ name: 'get-sum', arguments: { a: 1, b: 1 } });
    assert.equal(timedOut.isError, true);
    assert.match(timedOut.content[0].text, /Nobody answered the approval request in time/);
    assert.ok(Date.now() - started < 15_000);
    assert.equal((await api('approvals', { base: short.admin })).json.approvals.length, 0);
  });
});

describe('approvals across replicas (Redis)', () => {
  test('a call waiting at one replica is listed and approved at another', async () => {
    const port = await freePort();
    const redis = spawnManaged(`redis-server:${port}`, 'redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    ]);
    await redis.waitForLine(/Ready to accept connections/, 10_000);
    const redisUrl = `redis://127.0.0.1:${port}/0`;
    const a = await startConsoleGateway('replica-a', { audit: path.join(dir, 'a.jsonl'), redisUrl });
    const b = await startConsoleGateway('replica-b', { audit: path.join(dir, 'b.jsonl'), redisUrl });
    const { client } = await connectClient(a.mcp('everything'));
    const call = client.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } });
    let entry;
    await waitFor(async () => {
      [entry] = (await api('approvals', { base: b.admin })).json.approvals;
      return entry !== undefined;
    }, { what: "replica A's waiting call listed by replica B" });
    assert.equal(entry.tool, 'get-sum');
    const answer = await api(`approvals/${entry.id}`, {
      base: b.admin, method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ decision: 'approve', reason: 'from b' }),
    });
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.json.delivered, 'relayed');
    const result = await call;
    assert.match(result.content[0].text, /\b5\b/);
    await waitFor(async () => (await api('approvals', { base: b.admin })).json.approvals.length === 0,
      { what: 'the answered call leaves the shared queue' });
    await waitFor(async () => (await api('records?tool=get-sum', { base: a.admin })).json.records.length === 1,
      { what: "replica A's audit record" });
    const record = (await api('records?tool=get-sum', { base: a.admin })).json.records[0];
    assert.equal(record.approval_by, 'console');
    assert.equal(record.approval_reason, 'from b');
  });
});
