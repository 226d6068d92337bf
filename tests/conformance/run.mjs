#!/usr/bin/env node
// The official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
// tests/package.json) run against real MCP servers twice: directly, and through a Membrane
// gateway in front of each. Every server scenario that a revision's requirement set names
// (`--requirements 2025-11-25`, `--requirements 2026-07-28`, scored or not) is compared. A
// scenario that passes directly but fails through Membrane is a gateway bug and fails the run;
// one that fails both ways is the server's business and is only reported.
//
//   node tests/conformance/run.mjs [--table FILE] [--results DIR] [--jobs N]
//                                  [--requirements REV]... [--upstream NAME]...
//
// --table writes the report (markdown) to FILE as well; --results keeps the suite's checks.json
// files; --jobs is how many suite runs go at once (default 3); --requirements and --upstream
// narrow the run. MEMBRANE_BIN names the gateway binary (default build/membrane). Exit status 0,
// or 1 when a scenario fails only through Membrane or a run could not be made.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import YAML from 'yaml';

import {
  EVERYTHING_JS,
  NODE,
  SOURCE_DIR,
  cleanup,
  defer,
  setWatchdog,
  spawnManaged,
  startEverythingHttp,
  startGateway,
  tmpDir,
  withTimeout,
} from '../integration/harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CONFORMANCE_DIR = path.join(SOURCE_DIR, 'tests', 'node_modules', '@modelcontextprotocol', 'conformance');
const CONFORMANCE_CLI = path.join(CONFORMANCE_DIR, 'dist', 'index.js');
const NODE20_COMPAT = path.join(here, 'node20-compat.mjs');
const FIXTURE_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'conformance-server.mjs');

const REVISIONS = ['2025-11-25', '2026-07-28'];

// Checks that fail through Membrane for a reason docs/protocol-versions.md names as a limit of
// bridging a 2026-07-28 client onto a session server (the fixture pinned to sessions): what only
// the server could say. A scenario counts as expected only when every check it failed is listed
// here for its column: any other failure in it, or in any other column, still fails the run. The
// stdio fixture columns need no entry: 2026-07-28 clients pass through to the shared process (the
// gateway checks the Mcp-Param-* headers a stdio server cannot see), and their 2025-11-25 runs
// get sessions of their own or the session bridge.
const BRIDGED = ['fixture-sessions'];
const KNOWN_BRIDGE_LIMITS = [
  {
    revision: '2026-07-28', scenario: 'server-stateless', upstreams: BRIDGED,
    checks: ['sep-2575-server-rejects-undeclared-capability', 'sep-2575-missing-capability-http-400'],
    why: 'a session server answers a question the client cannot take with an isError result of its own; the gateway never sees the question',
  },
  {
    revision: '2026-07-28', scenario: 'input-required-result-basic-elicitation', upstreams: BRIDGED,
    checks: ['sep-2322-elicitation-incomplete'],
    why: 'a session server\'s question has no inputRequests key: the gateway names it <method>:<request id>',
  },
  {
    revision: '2026-07-28', scenario: 'input-required-result-capability-check', upstreams: BRIDGED,
    checks: ['sep-2322-respect-client-capabilities'],
    why: 'a session server drops the inputs the session cannot answer itself and completes the call',
  },
];

function knownLimit(revision, scenario, upstream, failures) {
  const known = KNOWN_BRIDGE_LIMITS.filter((k) => k.revision === revision && k.scenario === scenario && k.upstreams.includes(upstream));
  if (known.length === 0 || failures.length === 0) return undefined;
  const checks = new Set(known.flatMap((k) => k.checks));
  const failed = failures.map((f) => f.split(':')[0].trim());
  return failed.every((check) => checks.has(check)) ? known.map((k) => k.why).join('; ') : undefined;
}

// The whole run has to fit ctest's budget even when the gateway hangs on every request: a hung
// scenario gives up after SCENARIO_TIMEOUT_MS, a suite run after RUN_TIMEOUT_MS, and past
// TOTAL_BUDGET_MS no further run starts (its scenarios are reported as not run).
const SCENARIO_TIMEOUT_MS = 30_000;
const RUN_TIMEOUT_MS = 150_000;
const TOTAL_BUDGET_MS = 240_000;

// The servers under test. Every column of the table gets an instance of its own, so that runs
// can go in parallel: the fixture's listen triggers reach every listener of its process.
const SERVERS = {
  everything: {
    start: async (name) => (await startEverythingHttp({ name })).url,
  },
  fixture: {
    start: async (name) => {
      const proc = spawnManaged(name, NODE, [FIXTURE_JS, '0']);
      return (await proc.waitForLine(/listening on (http:\/\/\S+)/, 20_000))[1];
    },
  },
};

// Each upstream is one of those servers behind a gateway of its own, and is compared with the same
// server reached directly over HTTP (a stdio server has no URL of its own).
const UPSTREAMS = [
  {
    name: 'everything-http',
    server: 'everything',
    label: 'server-everything, HTTP',
    config: (url) => ({ url }),
  },
  {
    name: 'everything-stdio',
    server: 'everything',
    label: 'server-everything, stdio ¹',
    stdio: true,
    // A scenario that fails leaves its session, and the session's GET stream, open until the suite
    // exits; each such session keeps a child busy. server-everything fails enough of them to reach
    // the default cap of 8 per caller, and every later scenario would then get 429.
    config: () => ({ command: NODE, args: [EVERYTHING_JS, 'stdio'], max_processes: 64, max_processes_per_caller: 64 }),
  },
  {
    name: 'fixture-auto',
    server: 'fixture',
    label: 'fixture, HTTP, protocol auto ²',
    config: (url) => ({ url }),
  },
  {
    name: 'fixture-sessions',
    server: 'fixture',
    label: 'fixture, HTTP, protocol 2025-11-25 ³',
    config: (url) => ({ url, protocol: '2025-11-25' }),
  },
  {
    name: 'fixture-stdio',
    server: 'fixture',
    label: 'fixture, stdio, protocol auto ⁴',
    stdio: true,
    config: () => ({ command: NODE, args: [FIXTURE_JS, '--stdio'] }),
  },
  {
    name: 'fixture-stdio-modern',
    server: 'fixture',
    label: 'fixture, stdio, 2026-07-28 only ⁵',
    stdio: true,
    config: () => ({ command: NODE, args: [FIXTURE_JS, '--stdio', '--modern-only'] }),
  },
];

const FOOTNOTES = [
  '¹ over stdio: a session server, so the gateway starts one process per session, and bridges 2026-07-28 clients onto pooled sessions (a process each); the direct column is the same server over HTTP.',
  '² `protocol: auto`: the gateway finds that the fixture speaks both revisions, so every client speaks its own revision to it (2025-11-25 clients get sessions of their own, 2026-07-28 clients pass through).',
  '³ `protocol: 2025-11-25`: 2025-11-25 clients pass through to the fixture\'s sessions; 2026-07-28 clients are bridged onto pooled sessions.',
  '⁴ `--stdio`, `protocol: auto`: the probe finds that the fixture speaks 2026-07-28, and it takes sessions too, so 2025-11-25 clients get a process of their own per session and every 2026-07-28 request passes through to one shared process; the direct column is the fixture over HTTP.',
  '⁵ `--stdio --modern-only` (2026-07-28 only, initialize refused), `protocol: auto`: 2026-07-28 requests pass through to one shared process; 2025-11-25 clients go through the session bridge, onto the same process; the direct column is the fixture over HTTP (both revisions).',
];

const startedAt = Date.now();
const elapsed = () => Date.now() - startedAt;
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

function options() {
  const { values } = parseArgs({
    options: {
      table: { type: 'string' },
      results: { type: 'string' },
      jobs: { type: 'string', default: '3' },
      requirements: { type: 'string', multiple: true },
      upstream: { type: 'string', multiple: true },
    },
  });
  const revisions = values.requirements ?? REVISIONS;
  const upstreams = values.upstream ? UPSTREAMS.filter((u) => values.upstream.includes(u.name)) : UPSTREAMS;
  const unknown = [
    ...revisions.filter((r) => !REVISIONS.includes(r)),
    ...(values.upstream ?? []).filter((n) => !UPSTREAMS.some((u) => u.name === n)),
  ];
  if (unknown.length > 0) throw new Error(`unknown --requirements or --upstream: ${unknown.join(', ')}`);
  const jobs = Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) throw new Error(`--jobs wants a positive integer, not ${values.jobs}`);
  return { table: values.table, results: values.results, jobs, revisions, upstreams };
}

/** The server scenarios a requirement set runs, scored ones first, as the suite orders them. */
function requiredScenarios(revision) {
  const set = YAML.parse(fs.readFileSync(path.join(CONFORMANCE_DIR, 'requirements', `${revision}.yaml`), 'utf8'));
  const notScored = (set.not_scored ?? []).filter((e) => e.leg === 'server');
  return [
    ...set.server.map((name) => ({ name })),
    ...notScored.map((e) => ({ name: e.scenario, notScored: e.reason })),
  ];
}

function conformanceVersion() {
  return JSON.parse(fs.readFileSync(path.join(CONFORMANCE_DIR, 'package.json'), 'utf8')).version;
}

async function startGatewayFor(upstream, url, dir) {
  const config = path.join(dir, `${upstream.name}.yaml`);
  // JSON is YAML, and needs no quoting rules for the paths and URLs in it.
  fs.writeFileSync(config, JSON.stringify({ listen: '127.0.0.1:0', upstreams: { [upstream.name]: upstream.config(url) } }, null, 2));
  const gateway = await startGateway(['-c', config], { name: `membrane (${upstream.name})` });
  return { url: gateway.mcp(upstream.name), gateway };
}

/**
 * One `conformance server --requirements REV` run against URL. Resolves {results, problem, ms}:
 * results maps each scenario that reported to {pass, failures}, failures being the failed checks
 * as "check-id: message".
 */
async function runSuite(revision, url, outDir) {
  fs.mkdirSync(outDir, { recursive: true });
  const timeoutMs = Math.min(RUN_TIMEOUT_MS, TOTAL_BUDGET_MS - elapsed());
  if (timeoutMs < 10_000) return { results: new Map(), problem: 'not run: the time budget was spent', ms: 0 };
  const runStart = Date.now();
  // Not a harness-managed process: when this file fails, the harness prints the log tails of the
  // servers and gateways it manages, and the suite's own output is already in the report.
  const child = spawn(NODE, [
    '--import', NODE20_COMPAT, CONFORMANCE_CLI, 'server',
    '--url', url, '--requirements', revision, '--output-dir', outDir, '--timeout', String(SCENARIO_TIMEOUT_MS),
  ], { cwd: outDir, stdio: ['ignore', 'pipe', 'pipe'] });
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  defer(kill);
  process.once('exit', kill);
  let text = '';
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => { text += chunk; });
  }
  const exited = new Promise((resolve) => {
    child.once('close', resolve);
    child.once('error', (err) => { text += `\n${err.message}`; resolve(); });
  });
  let problem;
  try {
    await withTimeout(exited, timeoutMs, 'the conformance run');
  } catch {
    problem = `stopped after ${seconds(timeoutMs)}`;
    kill();
  }
  process.removeListener('exit', kill);
  const output = text.split('\n');
  const results = new Map();
  for (const line of output) {
    const summary = line.match(/^([✓✗]) (\S+): \d+ passed, \d+ failed$/u);
    if (summary) results.set(summary[2], { pass: summary[1] === '✓', failures: [] });
  }
  // A run that was stopped printed no summary: what it finished is in checks.json.
  for (const entry of fs.readdirSync(outDir)) {
    const scenario = entry.match(/^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$/)?.[1];
    const file = path.join(outDir, entry, 'checks.json');
    if (!scenario || !fs.existsSync(file)) continue;
    const checks = JSON.parse(fs.readFileSync(file, 'utf8'));
    // A check id can repeat within a scenario (one per case it loops over); one line each is enough.
    const failures = [...new Set(checks.filter((c) => c.status === 'FAILURE').map((c) => `${c.id}: ${c.errorMessage ?? c.description}`))];
    results.set(scenario, { pass: results.get(scenario)?.pass ?? failures.length === 0, failures });
  }
  // A scenario that throws leaves no checks.json, only this line.
  for (const line of output) {
    const thrown = line.match(/^Failed to run scenario (\S+): (.*)$/);
    if (thrown && results.has(thrown[1])) results.get(thrown[1]).failures.push(`(threw) ${thrown[2]}`);
  }
  if (!problem && results.size === 0) problem = `no results (exit ${child.exitCode}):\n${output.slice(-15).join('\n')}`;
  return { results, problem, ms: Date.now() - runStart };
}

/** Runs the async functions in `tasks`, at most `limit` at once. */
async function inParallel(tasks, limit) {
  const queue = [...tasks];
  const worker = async () => {
    while (queue.length > 0) await queue.shift()();
  };
  await Promise.all(Array.from({ length: Math.min(limit, queue.length) }, worker));
}

const mark = (r) => (r === undefined ? '–' : r.pass ? '✓' : '✗');

function cell(direct, membrane) {
  const text = `${mark(direct)} / ${mark(membrane)}`;
  return direct?.pass && !membrane?.pass ? `**${text}**` : text;
}

function render({ revisions, upstreams, scenarios, runs, problems, regressions, limits }) {
  const out = [
    '# MCP conformance: direct / through Membrane',
    '',
    `@modelcontextprotocol/conformance ${conformanceVersion()}, the server scenarios of each requirement set. Each cell is ` +
      '*direct / through Membrane*; **bold** marks a scenario that passes directly but fails through Membrane; ' +
      '– a scenario that did not report. The fixture is tests/fixtures/conformance-server.mjs.',
    '',
    `| requirements | scenario | ${upstreams.map((u) => u.label).join(' | ')} |`,
    `|---|---|${upstreams.map(() => '---').join('|')}|`,
  ];
  for (const revision of revisions) {
    for (const s of scenarios[revision]) {
      const name = s.notScored ? `${s.name} (not scored: ${s.notScored})` : s.name;
      const cells = upstreams.map((u) =>
        cell(runs[revision][`direct-${u.server}`].results.get(s.name), runs[revision][u.name].results.get(s.name)));
      out.push(`| ${revision} | ${name} | ${cells.join(' | ')} |`);
    }
  }
  out.push('', ...FOOTNOTES.map((f) => `${f}  `), '');
  if (regressions.length > 0) {
    out.push('## Pass directly, fail through Membrane', '');
    for (const r of regressions) {
      out.push(`- ${r.revision} · ${r.scenario} · ${r.upstream}`);
      for (const f of r.failures.length > 0 ? r.failures : ['(no failed check recorded)']) out.push(`  - ${f.replace(/\s*\n\s*/g, ' ')}`);
    }
    out.push('');
  }
  if (limits.length > 0) {
    out.push('## Fail through Membrane for a documented limit (not counted)', '');
    for (const l of limits) {
      out.push(`- ${l.revision} · ${l.scenario} · ${l.upstream}: ${l.why}`);
      for (const f of l.failures) out.push(`  - ${f.replace(/\s*\n\s*/g, ' ')}`);
    }
    out.push('');
  }
  if (problems.length > 0) out.push('## Runs that could not be made', '', ...problems.map((p) => `- ${p.replace(/\n/g, '\n  ')}`), '');
  const runTimes = revisions.flatMap((r) => Object.entries(runs[r]).map(([column, run]) => `${r} ${column} ${seconds(run.ms)}`));
  out.push(`Suite runs: ${runTimes.join(', ')}.`, '');
  const pairs = revisions.flatMap((r) => scenarios[r]).length * upstreams.length;
  out.push(`${pairs} scenario × upstream pairs, ${regressions.length} failing only through Membrane, ${limits.length} for a documented limit; ${seconds(elapsed())} in all.`);
  return out.join('\n');
}

async function main() {
  const opts = options();
  setWatchdog(TOTAL_BUDGET_MS + 45_000);
  const work = tmpDir('membrane-conformance-');
  const resultsDir = opts.results ? path.resolve(opts.results) : path.join(work, 'results');

  // The columns: each server reached directly, then each upstream through its gateway.
  const directServers = [...new Set(opts.upstreams.map((u) => u.server))];
  const columns = await Promise.all([
    ...directServers.map(async (s) => ({ id: `direct-${s}`, url: await SERVERS[s].start(`${s} (direct)`) })),
    ...opts.upstreams.map(async (u) => {
      const serverUrl = u.stdio ? undefined : await SERVERS[u.server].start(`${u.server} (for ${u.name})`);
      return { id: u.name, stdio: u.stdio, ...await startGatewayFor(u, serverUrl, work) };
    }),
  ]);

  const scenarios = Object.fromEntries(opts.revisions.map((r) => [r, requiredScenarios(r)]));
  const runs = Object.fromEntries(opts.revisions.map((r) => [r, {}]));
  const problems = [];
  // A column's revisions run one after the other, against one server; stdio columns start first,
  // being the slowest (a process per session).
  const ordered = [...columns.filter((c) => c.stdio), ...columns.filter((c) => !c.stdio)];
  await inParallel(ordered.map((column) => async () => {
    for (const revision of opts.revisions) {
      const run = await runSuite(revision, column.url, path.join(resultsDir, revision, column.id));
      if (run.problem) problems.push(`${revision} ${column.id}: ${run.problem}`);
      runs[revision][column.id] = run;
    }
  }), opts.jobs);
  for (const { id, gateway } of columns) {
    if (gateway && !gateway.proc.running) {
      problems.push(`the gateway of ${id} exited (code ${gateway.proc.exitCode}, signal ${gateway.proc.exitSignal}):\n${gateway.proc.logTail(20)}`);
    }
  }

  const regressions = [];
  const limits = [];
  for (const revision of opts.revisions) {
    for (const s of scenarios[revision]) {
      for (const u of opts.upstreams) {
        const direct = runs[revision][`direct-${u.server}`].results.get(s.name);
        const membrane = runs[revision][u.name].results.get(s.name);
        if (direct?.pass && !membrane?.pass) {
          const failures = membrane?.failures ?? ['did not report through Membrane'];
          const why = knownLimit(revision, s.name, u.name, failures);
          (why ? limits : regressions).push({ revision, scenario: s.name, upstream: u.name, failures, why });
        }
      }
    }
  }
  const report = render({ ...opts, scenarios, runs, problems, regressions, limits });
  console.log(report);
  if (opts.table) fs.writeFileSync(opts.table, `${report}\n`);
  return regressions.length === 0 && problems.length === 0 ? 0 : 1;
}

let status = 1;
try {
  status = await main();
} catch (err) {
  console.error(`conformance run failed: ${err?.stack ?? err}`);
}
await cleanup();
process.exit(status);
