// The security console in a real browser: headless Chromium (Debian's, driven with playwright-core)
// signs in at the admin listener's /console/ while the official MCP SDK client calls tools through
// the gateway. It checks what an operator sees: the live feed (and its pause), search by
// transaction, the transaction timeline, a tampered replica's audit chain flagged at its line, the
// charts, and approvals answered at the console that release or refuse calls waiting in the
// gateway, with the redacted arguments and the read-only scope. Screenshots of every view are left
// as test artefacts; any error the page logs (a CSP violation included) fails the test.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

import {
  EVERYTHING_JS, MEMBRANE_BIN, NODE, TIME_SCALE, cleanup, closedPort, connectClient, defer, rawFetch,
  setWatchdog, startGateway, tmpDir, waitFor, withTimeout,
} from './harness.mjs';

setWatchdog(180_000);

// scripts/install-deps.sh installs Debian's chromium; a missing browser is a failure, not a skip.
const CHROMIUM = process.env.MEMBRANE_CHROMIUM ?? '/usr/bin/chromium';
// Beside the binary under test: the default and sanitizer trees keep their own screenshots.
const ARTIFACTS = path.join(path.resolve(process.env.MEMBRANE_TEST_ARTIFACTS
  ?? path.join(path.dirname(MEMBRANE_BIN), 'test-artifacts')), 'console');
const WAIT_MS = 15_000 * TIME_SCALE;

const SECRET = 'sk-ABCDEFGH12345678';
const AGENT = 'agent-7';            // the caller the MCP clients authenticate as
const AGENT_ISSUER = 'https://agents.membrane.test';
const AGENT_AUDIENCE = 'membrane-gateway';
const REFUSAL_REASON = 'secrets stay out of echo (ticket SEC-42)';

const POLICY = `
- rule: deny-get-env
  condition: tool.name == "get-env"
  verdict: deny
  message: environment variables stay private
- rule: console-approves-sum
  condition: tool.name == "get-sum"
  verdict: ask
  approver: console
# Only echo: with "true" every allowed call's verdict would read redact instead of allow.
- rule: mask-secrets
  condition: tool.name == "echo"
  verdict: redact
  redact: ["sk-[A-Za-z0-9]{8,}"]
- rule: console-approves-echo
  condition: tool.name == "echo"
  verdict: ask
  approver: console
`;

let dir;
let gateway;
let admin;                 // http://127.0.0.1:PORT of the admin listener
let auditFile;
let tampered;              // {file, line}: the replica log with one altered record
let agentToken;
let aliceToken;            // membrane:audit membrane:approve
let bobToken;              // membrane:audit only
let browser;
let context;
let page;
const pageProblems = [];   // errors the page logged that no step expected
const expectedErrors = []; // {what, match(message), seen}

function membrane(...args) {
  return execFileSync(MEMBRANE_BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

function consoleToken(keyFile, sub, scope) {
  return membrane('token', 'mint', '--key', keyFile, '--iss', 'membrane-console', '--aud', 'membrane-console',
    '--sub', sub, '--lifetime', '10m', '--claims', JSON.stringify({ scope }));
}

async function api(route, token = aliceToken, init = {}) {
  const response = await rawFetch(`${admin}/console/api/${route}`, {
    method: 'GET', ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) },
  });
  return response;
}

async function apiJson(route, token = aliceToken) {
  const response = await api(route, token);
  assert.equal(response.status, 200, `GET /console/api/${route}: ${response.text.slice(0, 300)}`);
  return response.json;
}

async function screenshot(name, p = page) {
  const file = path.join(ARTIFACTS, `${name}.png`);
  await p.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
}

// Errors a step provokes on purpose (a rejected token answers 401, which Chromium logs).
function expectError(what, match) {
  const entry = { what, match, seen: 0 };
  expectedErrors.push(entry);
  return entry;
}

function watchPage(p, label) {
  p.on('console', (message) => {
    if (message.type() !== 'error' && message.type() !== 'assert') return;
    const text = `${message.text()} (${message.location()?.url ?? ''})`;
    const expected = expectedErrors.find((e) => e.match(text));
    if (expected) expected.seen += 1;
    else pageProblems.push(`[${label}] console ${message.type()}: ${text}`);
  });
  p.on('pageerror', (err) => pageProblems.push(`[${label}] uncaught: ${err.message}`));
  p.on('crash', () => pageProblems.push(`[${label}] the page crashed`));
}

// Records CSP violations from inside the page (they are also logged as console errors).
const CSP_WATCH = () => {
  window.__cspViolations = [];
  document.addEventListener('securitypolicyviolation', (event) => {
    window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI || '(inline)'}`);
  });
};

async function newConsolePage(label) {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 }, timezoneId: 'UTC' });
  await ctx.addInitScript(CSP_WATCH);
  const p = await ctx.newPage();
  p.setDefaultTimeout(WAIT_MS);
  watchPage(p, label);
  return { ctx, p };
}

async function signIn(p, token) {
  await p.goto(`${admin}/console/`);
  await p.waitForSelector('#login', { state: 'visible' });
  await p.fill('#token-input', token);
  await p.click('#login-button');
  await p.waitForSelector('#app', { state: 'visible' });
}

// The rows of a record table as the operator reads them.
function tableRows(p, table) {
  return p.$$eval(`${table} tbody tr.record-row`, (rows) => rows.map((row) => {
    const cells = [...row.cells].map((c) => c.textContent.trim());
    return {
      verdict: row.dataset.verdict,
      caller: cells[1],
      upstream: cells[2],
      tool: cells[3],
      method: cells[4],
      rule: cells[6],
      txn: cells[7],
    };
  }));
}

function describeRows(rows) {
  return rows.map((r) => `${r.method} ${r.tool || '-'} ${r.verdict || '-'} ${r.txn}`).join('\n');
}

// Polls until `fn()` (on the page's rows) holds; the message lists what the table showed.
async function waitForRows(p, table, fn, what) {
  let last = [];
  try {
    return await waitFor(async () => {
      last = await tableRows(p, table);
      return fn(last) ? last : null;
    }, { timeoutMs: WAIT_MS, intervalMs: 100, what });
  } catch (err) {
    throw new Error(`${err.message}; ${table} shows:\n${describeRows(last)}`);
  }
}

async function auditLines() {
  return fs.readFileSync(auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

before(async () => {
  // Fails here, with the reason, rather than skipping: the browser is a declared dependency.
  assert.ok(fs.existsSync(CHROMIUM),
    `${CHROMIUM} does not exist: the console's browser test needs Debian's chromium (scripts/install-deps.sh installs it)`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });

  dir = tmpDir('membrane-console-');
  fs.mkdirSync(path.join(dir, 'other'));
  auditFile = path.join(dir, 'audit.jsonl');
  const policyFile = path.join(dir, 'policy.yaml');
  fs.writeFileSync(policyFile, POLICY);

  // The agents' issuer: a key the mint command creates, published to the gateway without `d`.
  const agentKey = path.join(dir, 'agent-key.json');
  agentToken = membrane('token', 'mint', '--key', agentKey, '--iss', AGENT_ISSUER, '--aud', AGENT_AUDIENCE,
    '--sub', AGENT, '--lifetime', '10m');
  const jwks = JSON.parse(fs.readFileSync(agentKey, 'utf8'));
  const agentJwks = path.join(dir, 'agent-jwks.json');
  fs.writeFileSync(agentJwks, JSON.stringify({ keys: jwks.keys.map(({ d, ...pub }) => pub) }));

  const consoleKey = path.join(dir, 'console-key.json');
  const config = path.join(dir, 'membrane.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'admin: "127.0.0.1:0"',
    'auth:',
    `  issuer: ${JSON.stringify(AGENT_ISSUER)}`,
    `  audience: ${JSON.stringify(AGENT_AUDIENCE)}`,
    `  jwks: ${JSON.stringify(agentJwks)}`,
    'policy:',
    `  paths: [${JSON.stringify(policyFile)}]`,
    'audit:',
    `  file: ${JSON.stringify(auditFile)}`,
    `  key_file: ${JSON.stringify(path.join(dir, 'audit-key.json'))}`,
    '  checkpoint_every: 5',
    'txn:',
    `  key_file: ${JSON.stringify(path.join(dir, 'txn-key.json'))}`,
    'console:',
    `  token_key_file: ${JSON.stringify(consoleKey)}`,
    `  audit_files: [${JSON.stringify(path.join(dir, 'other', '*.jsonl'))}]`,
    '  approval_timeout: 60s',
    '  trace_link: "http://127.0.0.1:16686/trace/{trace_id}"',
    // Tracing on (to a collector that is not there: spans are dropped) gives records a trace id.
    'otel:',
    `  endpoint: "http://127.0.0.1:${await closedPort()}/v1/traces"`,
    'upstreams:',
    '  everything:',
    `    command: ${JSON.stringify(NODE)}`,
    `    args: [${JSON.stringify(EVERYTHING_JS)}, stdio]`,
    '',
  ].join('\n'));
  gateway = await startGateway(['-c', config], { name: 'membrane (console)' });
  const listening = await gateway.proc.waitForLine(/admin listening on (http:\/\/127\.0\.0\.1:\d+)/, WAIT_MS);
  admin = listening[1];
  aliceToken = consoleToken(consoleKey, 'alice', 'membrane:audit membrane:approve');
  bobToken = consoleToken(consoleKey, 'bob', 'membrane:audit');

  // Another replica's log: a copy of this one's first records with one value altered.
  const seed = await connectClient(gateway.mcp('everything'), {
    name: 'seed-client', headers: { Authorization: `Bearer ${agentToken}` },
  });
  await seed.client.listTools();
  await seed.client.callTool({ name: 'get-tiny-image', arguments: {} });
  await seed.client.callTool({ name: 'get-structured-content', arguments: { location: 'Chicago' } });
  await seed.close();
  const lines = await waitFor(async () => {
    const records = await auditLines();
    return records.filter((r) => r.method === 'tools/call').length >= 2 ? records : null;
  }, { timeoutMs: WAIT_MS, what: 'the seed calls in the audit log' });
  const index = lines.findIndex((r) => r.tool === 'get-tiny-image');
  assert.ok(index >= 0, 'the audit log has the get-tiny-image call');
  const text = fs.readFileSync(auditFile, 'utf8').split('\n').filter(Boolean);
  const altered = text[index].replace('"tool":"get-tiny-image"', '"tool":"get-tiny-imagE"');
  assert.notEqual(altered, text[index]);
  text[index] = altered;
  tampered = { file: path.join(dir, 'other', 'replica-b.jsonl'), line: index + 1 };
  fs.writeFileSync(tampered.file, `${text.join('\n')}\n`);

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  defer(() => browser.close());
  ({ ctx: context, p: page } = await newConsolePage('alice'));
});
after(cleanup);

test('sign-in: the login screen refuses a bad token and admits a good one', async () => {
  const response = await page.goto(`${admin}/console/`);
  assert.equal(response.status(), 200);
  // The CSP the page runs under: no inline script or style, so a violation would show below.
  assert.match(response.headers()['content-security-policy'] ?? '', /script-src 'self'; style-src 'self'/);
  await page.waitForSelector('#login', { state: 'visible' });
  assert.equal(await page.isHidden('#app'), true);
  assert.equal(await page.isHidden('#login-error'), true);

  // A well-formed token signed by a key the console does not know.
  const stranger = consoleToken(path.join(dir, 'stranger-key.json'), 'mallory', 'membrane:audit membrane:approve');
  const refused = expectError('the stranger token answered 401',
    (m) => /status of 401/.test(m) && m.includes('/console/api/whoami'));
  await page.fill('#token-input', stranger);
  await page.click('#login-button');
  await page.waitForSelector('#login-error', { state: 'visible' });
  const error = (await page.textContent('#login-error')).trim();
  assert.ok(error.length > 0, 'the login error says why');
  assert.equal(await page.isHidden('#app'), true, 'a refused token does not open the console');
  await screenshot('login');
  await waitFor(() => refused.seen === 1, { timeoutMs: WAIT_MS, what: 'the 401 of the refused sign-in in the page log' });

  await page.fill('#token-input', aliceToken);
  await page.click('#login-button');
  await page.waitForSelector('#app', { state: 'visible' });
  assert.equal(await page.isHidden('#login'), true);
  assert.equal((await page.textContent('#whoami')).trim(), 'alice');
  assert.equal(await page.inputValue('#token-input'), '', 'the token does not stay in the input');
});

let liveTxn;

test('live feed: calls appear as they happen, pause holds them, resume shows them', async () => {
  await page.waitForSelector('#view-live', { state: 'visible' });
  // The feed starts at the newest record when it connects: calls before that are not in it.
  await page.waitForFunction(() => document.getElementById('live-status').textContent === 'connected');

  const { client } = await connectClient(gateway.mcp('everything'), {
    name: 'live-client', headers: { Authorization: `Bearer ${agentToken}` },
  });
  const tools = (await client.listTools()).tools.map((t) => t.name);
  assert.ok(tools.includes('get-tiny-image') && tools.includes('get-structured-content'), tools.join(' '));

  await client.callTool({ name: 'get-tiny-image', arguments: {} });
  let rows = await waitForRows(page, '#live-table', (r) => r.some((x) => x.tool === 'get-tiny-image'),
    'the get-tiny-image call in the live table');
  const image = rows.find((x) => x.tool === 'get-tiny-image');
  assert.equal(image.verdict, 'allow');
  assert.equal(image.caller, AGENT);
  assert.equal(image.upstream, 'everything');
  assert.match(image.txn, /\S/, 'the call has a transaction id');
  liveTxn = image.txn;

  const structured = await client.callTool({ name: 'get-structured-content', arguments: { location: 'Chicago' } });
  assert.notEqual(structured.isError, true);
  const denied = await client.callTool({ name: 'get-env', arguments: {} });
  assert.equal(denied.isError, true, 'get-env is denied');
  rows = await waitForRows(page, '#live-table',
    (r) => r.some((x) => x.tool === 'get-env') && r.some((x) => x.tool === 'get-structured-content'),
    'the get-structured-content and get-env calls in the live table');
  assert.equal(rows.find((x) => x.tool === 'get-structured-content').verdict, 'allow');
  const env = rows.find((x) => x.tool === 'get-env');
  assert.equal(env.verdict, 'deny');
  assert.equal(env.rule, 'deny-get-env');
  assert.equal(env.txn, liveTxn, 'one session, one transaction');
  // Newest first.
  assert.deepEqual(rows.filter((x) => x.method === 'tools/call').map((x) => x.tool),
    ['get-env', 'get-structured-content', 'get-tiny-image']);
  // The tools/list of this session came through the feed too.
  assert.ok(rows.some((x) => x.method === 'tools/list' && x.txn === liveTxn), describeRows(rows));

  // Paused: new records are counted, not shown.
  await page.click('#live-pause');
  assert.equal(await page.getAttribute('#live-pause', 'aria-pressed'), 'true');
  await page.waitForSelector('#live-held', { state: 'visible' });
  assert.equal((await page.textContent('#live-held')).trim(), '0 new');
  const before = (await tableRows(page, '#live-table')).length;
  await client.callTool({ name: 'get-annotated-message', arguments: { messageType: 'success' } });
  await client.callTool({ name: 'get-structured-content', arguments: { location: 'New York' } });
  await page.waitForFunction(() => document.getElementById('live-held').textContent.trim() === '2 new');
  assert.equal((await tableRows(page, '#live-table')).length, before, 'a paused table does not grow');

  await page.click('#live-pause');
  assert.equal(await page.getAttribute('#live-pause', 'aria-pressed'), 'false');
  assert.equal(await page.isHidden('#live-held'), true);
  rows = await tableRows(page, '#live-table');
  assert.equal(rows.length, before + 2, describeRows(rows));
  assert.deepEqual(rows.slice(0, 2).map((x) => [x.tool, x.verdict]),
    [['get-structured-content', 'allow'], ['get-annotated-message', 'allow']]);
  await screenshot('live');
});

test('search by transaction, then its timeline', async () => {
  assert.ok(liveTxn, 'the live-feed step found a transaction id');
  // What the audit trail holds for this transaction: the session's tools/list and its five calls.
  const listed = await apiJson(`records?txn=${encodeURIComponent(liveTxn)}&limit=100`);
  assert.equal(listed.records.length, 6, JSON.stringify(listed.records.map((r) => [r.method, r.tool])));
  assert.ok(listed.records.every((r) => r.txn === liveTxn));

  await page.click('#tab-search');
  await page.waitForSelector('#view-search', { state: 'visible' });
  await page.fill('#search-filter-txn', liveTxn);
  await page.click('#search-button');
  await page.waitForFunction(() => /records shown/.test(document.getElementById('search-summary').textContent));
  const rows = await tableRows(page, '#search-table');
  assert.equal(rows.length, 6, describeRows(rows));
  assert.ok(rows.every((x) => x.txn === liveTxn), describeRows(rows));
  assert.deepEqual(rows.filter((x) => x.method === 'tools/call').map((x) => x.tool).sort(),
    ['get-annotated-message', 'get-env', 'get-structured-content', 'get-structured-content', 'get-tiny-image']);
  assert.match(await page.textContent('#search-summary'), /^6 records shown/);
  await screenshot('search');

  // The transaction link of a row opens its timeline.
  await page.click(`#search-table tbody tr.record-row a.txn-link`);
  await page.waitForSelector('#view-timeline', { state: 'visible' });
  await page.waitForFunction((n) => document.querySelectorAll('#timeline-list .timeline-item').length === n, 6);
  assert.equal(await page.inputValue('#timeline-txn'), liveTxn);
  const summary = await page.textContent('#timeline-summary');
  assert.ok(summary.includes(liveTxn), `the timeline summary names the transaction: ${summary}`);
  assert.match(summary, /Calls\s*6/);
  assert.ok(summary.includes(AGENT), `the summary names the caller: ${summary}`);
  const items = await page.$$eval('#timeline-list .timeline-item', (list) => list.map((li) => li.dataset.verdict));
  assert.deepEqual(items.filter((v) => v === 'deny').length, 1, items.join(','));
  await page.waitForSelector('#timeline-chart svg');
  // Each call links to its trace in the tracing UI (console.trace_link).
  const traces = await page.$$eval('#timeline-list .timeline-item a.trace-id', (links) => links.map((a) => a.href));
  assert.ok(traces.length >= 5, `trace links: ${traces.join(' ')}`);
  for (const href of traces) assert.match(href, /^http:\/\/127\.0\.0\.1:16686\/trace\/[0-9a-f]{32}$/);

  // The same through the input: a transaction id typed in and opened.
  await page.fill('#timeline-txn', liveTxn);
  await page.click('#timeline-open');
  await page.waitForFunction((n) => document.querySelectorAll('#timeline-list .timeline-item').length === n, 6);
  await screenshot('timeline');
});

test('audit chain: the tampered replica log is flagged at its line', async () => {
  const chain = await apiJson('chain');
  const own = chain.chains.find((c) => c.name === auditFile);
  const other = chain.chains.find((c) => c.name === tampered.file);
  assert.ok(own && other, JSON.stringify(chain));
  assert.equal(own.ok, true, JSON.stringify(own));
  assert.equal(other.ok, false, JSON.stringify(other));
  assert.equal(other.file, tampered.file);
  assert.equal(other.line, tampered.line);
  assert.equal(chain.ok, false);

  await page.click('#tab-chain');
  await page.waitForSelector('#view-chain', { state: 'visible' });
  await page.waitForSelector('#chain-banner.broken');
  const banner = await page.textContent('#chain-banner');
  assert.ok(banner.includes(`${tampered.file} line ${tampered.line}`), `the banner names file and line: ${banner}`);
  assert.match(banner, /BROKEN/);
  await page.waitForFunction(() => document.querySelectorAll('#chain-table .chain-row').length === 2);
  const rows = await page.$$eval('#chain-table .chain-row', (list) => list.map((tr) => ({
    name: tr.cells[0].textContent, ok: tr.dataset.ok, status: tr.cells[4].textContent,
  })));
  const ownRow = rows.find((r) => r.name === auditFile);
  const otherRow = rows.find((r) => r.name === tampered.file);
  assert.equal(ownRow?.ok, 'true', JSON.stringify(rows));
  assert.match(ownRow.status, /verified/);
  assert.equal(otherRow?.ok, 'false', JSON.stringify(rows));
  assert.ok(otherRow.status.includes(`${tampered.file}:${tampered.line}`), otherRow.status);
  // The banner is on every view, not only this one.
  await page.click('#tab-live');
  assert.equal(await page.isVisible('#chain-banner.broken'), true);
  await page.click('#tab-chain');
  await page.waitForSelector('#view-chain', { state: 'visible' });
  await screenshot('chain');
});

test('charts: calls by verdict, upstream, denying rule and latency', async () => {
  await page.click('#tab-charts');
  await page.waitForSelector('#view-charts', { state: 'visible' });
  await page.waitForSelector('#chart-verdicts svg');
  const legend = await page.textContent('#chart-verdicts .legend');
  assert.match(legend, /allow \(\d+\)/);
  assert.match(legend, /deny \(1\)/);
  await page.waitForSelector('#chart-upstreams svg');
  assert.match(await page.textContent('#chart-upstreams .legend'), /everything \(\d+\)/);
  assert.match(await page.textContent('#chart-denied'), /deny-get-env/);
  await page.waitForSelector('#chart-latency svg');
  assert.match(await page.textContent('#charts-range'), /\d+ calls/);
  await screenshot('charts');
});

test('approvals: waiting calls are approved or refused at the console', async () => {
  const { client } = await connectClient(gateway.mcp('everything'), {
    name: 'approval-client', headers: { Authorization: `Bearer ${agentToken}` },
  });
  const options = { timeout: 90_000 * TIME_SCALE };
  const sum = client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } }, undefined, options)
    .then((value) => ({ value }), (error) => ({ error }));
  const echo = client.callTool({ name: 'echo', arguments: { message: `token ${SECRET}` } }, undefined, options)
    .then((value) => ({ value }), (error) => ({ error }));

  // The badge counts waiting calls on every view (the page polls every 2 s).
  await page.waitForFunction(() => document.getElementById('approvals-count').textContent === '2');
  await page.click('#tab-approvals');
  await page.waitForSelector('#view-approvals', { state: 'visible' });
  await page.waitForFunction(() => document.querySelectorAll('#approvals-list .approval').length === 2);
  assert.equal(await page.isHidden('#approvals-scope-note'), true, 'alice may approve');

  const sumCard = page.locator('#approvals-list .approval', { has: page.locator('.approval-tool', { hasText: /^get-sum$/ }) });
  const echoCard = page.locator('#approvals-list .approval', { has: page.locator('.approval-tool', { hasText: /^echo$/ }) });
  assert.equal(await sumCard.count(), 1);
  assert.equal(await echoCard.count(), 1);
  const sumText = await sumCard.textContent();
  assert.ok(sumText.includes(AGENT), `the card names the caller: ${sumText}`);
  assert.ok(sumText.includes('console-approves-sum'), `the card names the rule: ${sumText}`);
  assert.ok(sumText.includes('everything'), `the card names the upstream: ${sumText}`);
  assert.deepEqual(JSON.parse(await sumCard.locator('.approval-arguments').textContent()),
    { arguments: { a: 1, b: 2 }, name: 'get-sum' });
  const echoArgs = await echoCard.locator('.approval-arguments').textContent();
  assert.ok(echoArgs.includes('[REDACTED:mask-secrets]'), `the secret is masked: ${echoArgs}`);
  assert.ok(!echoArgs.includes(SECRET));
  assert.ok((await echoCard.textContent()).includes('console-approves-echo'));
  assert.ok(!(await page.content()).includes(SECRET), 'the secret is nowhere in the page');
  await screenshot('approvals');

  // A read-only operator sees the calls but cannot answer them, in the page or at the API.
  const readOnly = await newConsolePage('bob');
  try {
    await signIn(readOnly.p, bobToken);
    assert.equal((await readOnly.p.textContent('#whoami')).trim(), 'bob');
    await readOnly.p.click('#tab-approvals');
    await readOnly.p.waitForFunction(() => document.querySelectorAll('#approvals-list .approval').length === 2);
    await readOnly.p.waitForSelector('#approvals-scope-note', { state: 'visible' });
    const buttons = await readOnly.p.$$eval('#approvals-list .approve-button, #approvals-list .refuse-button',
      (list) => list.map((b) => b.disabled));
    assert.deepEqual(buttons, [true, true, true, true]);
    await screenshot('approvals-read-only', readOnly.p);
    assert.ok(!(await readOnly.p.content()).includes(SECRET));
    const pending = await apiJson('approvals', bobToken);
    const sumId = pending.approvals.find((a) => a.tool === 'get-sum').id;
    const forbidden = await api(`approvals/${encodeURIComponent(sumId)}`, bobToken, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: { decision: 'approve' },
    });
    assert.equal(forbidden.status, 403, forbidden.text);
    assert.equal(forbidden.json?.error, 'insufficient_scope');
    assert.equal((await apiJson('approvals')).approvals.length, 2, 'the refused answer changed nothing');
    assert.deepEqual(await readOnly.p.evaluate(() => window.__cspViolations), []);
  } finally {
    await readOnly.ctx.close();
  }

  // Approve get-sum: the waiting call goes on to the server and the agent gets the sum.
  await sumCard.locator('.approve-button').click();
  const approved = await withTimeout(sum, WAIT_MS, 'get-sum after its approval');
  assert.equal(approved.error, undefined, `get-sum failed: ${approved.error?.message}`);
  assert.notEqual(approved.value.isError, true, JSON.stringify(approved.value));
  assert.match(approved.value.content[0].text, /The sum of 1 and 2 is 3/);
  await page.waitForSelector('#approvals-notice', { state: 'visible' });
  assert.match(await page.textContent('#approvals-notice'), /Approved get-sum for agent-7/);
  assert.equal(await sumCard.count(), 0);

  // Refuse echo: a reason is required, and the agent is told it.
  await echoCard.locator('.refuse-button').click();
  await echoCard.locator('.approval-message', { hasText: /Give a reason/ }).waitFor();
  await echoCard.locator('.approval-reason').fill(REFUSAL_REASON);
  await echoCard.locator('.refuse-button').click();
  const refused = await withTimeout(echo, WAIT_MS, 'echo after its refusal');
  assert.equal(refused.error, undefined, `echo rejected instead of answering: ${refused.error?.message}`);
  assert.equal(refused.value.isError, true, JSON.stringify(refused.value));
  assert.equal(refused.value.content[0].text,
    `An approver at the security console refused this call (reason: ${REFUSAL_REASON}); it was not ` +
    "forwarded. Approval is required by policy rule 'console-approves-echo'.");
  assert.deepEqual(refused.value._meta?.['io.membrane/policy'],
    { rule: 'console-approves-echo', verdict: 'ask', approval: 'declined' });
  assert.ok(!JSON.stringify(refused.value).includes(SECRET));
  await page.waitForFunction(() => document.getElementById('approvals-count').textContent === '0');
  await page.waitForSelector('#approvals-empty', { state: 'visible' });
  assert.match(await page.textContent('#approvals-notice'), /Refused echo for agent-7/);

  // The audit trail says who answered, at the console, and why.
  const sumRecord = await waitFor(async () => (await apiJson('records?tool=get-sum&limit=1')).records[0],
    { timeoutMs: WAIT_MS, what: 'the audit record of get-sum' });
  assert.equal(sumRecord.approval_by, 'console');
  assert.equal(sumRecord.approver, 'alice');
  assert.equal(sumRecord.identity, AGENT);
  assert.equal(sumRecord.verdict, 'ask');
  assert.equal(sumRecord.outcome, 'ok');
  assert.equal(sumRecord.approval_reason, undefined);
  const echoRecord = await waitFor(async () => (await apiJson('records?tool=echo&limit=1')).records[0],
    { timeoutMs: WAIT_MS, what: 'the audit record of echo' });
  assert.equal(echoRecord.approval_by, 'console');
  assert.equal(echoRecord.approver, 'alice');
  assert.equal(echoRecord.approval_reason, REFUSAL_REASON);
  assert.equal(echoRecord.policy_note, 'declined');
  assert.ok(!JSON.stringify(echoRecord).includes(SECRET));
});

test('the page logged no errors and no CSP violations', async () => {
  const violations = await page.evaluate(() => window.__cspViolations);
  assert.deepEqual(violations, []);
  assert.deepEqual(pageProblems, []);
  assert.ok(expectedErrors.every((e) => e.seen === 1), JSON.stringify(expectedErrors.map((e) => [e.what, e.seen])));
  await context.close();
});
