// Graceful shutdown: on SIGTERM the gateway stops being ready (/readyz 503, or the listener
// refuses connections), lets in-flight calls finish (drain), exits with status 0 within the drain
// deadline (15 s by default), and leaves no stdio upstream child behind. A call that outlives
// a (short, from a YAML config file) drain deadline is cut, and the gateway still exits 0.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  EVERYTHING_JS, NODE,
  callWithProgress, cleanup, connectClient, descendantPids, childPids, everythingStdioCommand,
  pidAlive, rawFetch, startEverythingHttp, startGateway, stdioUpstreamFlag, tmpDir, waitFor, withTimeout,
} from './harness.mjs';

const DRAIN_DEADLINE_MS = 15_000;      // the gateway's default shutdown_drain
const EXIT_MARGIN_MS = 10_000;         // scheduling slack on a loaded 2-core machine

let upstream;
let upstreamArgs;

before(async () => {
  upstream = await startEverythingHttp();
  upstreamArgs = [
    '--upstream', `ev=${upstream.url}`,
    '--upstream', stdioUpstreamFlag('evs', everythingStdioCommand()),
  ];
});
after(cleanup);

/** Polls /readyz until it is not 200; resolves {at, how} or undefined after `ms`. */
async function watchReadiness(base, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      const r = await rawFetch(`${base}/readyz`, { method: 'GET', timeoutMs: 2_000 });
      if (r.status !== 200) return { at: Date.now(), how: `HTTP ${r.status}`, status: r.status };
    } catch (err) {
      return { at: Date.now(), how: `connection failed (${err.cause?.code ?? err.message})` };
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return undefined;
}

describe('SIGTERM with calls in flight', () => {
  test('readiness drops, in-flight calls complete, exit 0, no stdio child survives', { timeout: 90_000 }, async () => {
    const gw = await startGateway(upstreamArgs, { name: 'membrane (draining)' });
    const http = await connectClient(gw.mcp('ev'));
    const stdio = await connectClient(gw.mcp('evs'));
    for (const c of [http, stdio]) {
      assert.equal((await c.client.callTool({ name: 'echo', arguments: { message: 'up' } })).content[0].text, 'Echo: up');
    }
    assert.equal((await rawFetch(`${gw.base}/readyz`, { method: 'GET' })).status, 200, '/readyz before SIGTERM');

    // The stdio upstream's child (and anything it spawned), found before the SIGTERM.
    const direct = childPids(gw.pid);
    const descendants = descendantPids(gw.pid);
    assert.ok(direct.length >= 1, `the gateway has a child process for the stdio upstream (ps --ppid ${gw.pid})`);

    // Two long calls, one per upstream; SIGTERM once both have reported progress (so both are
    // surely in flight upstream). Each still has ~3 s to run.
    const firstProgress = { http: undefined, stdio: undefined };
    let signalled;
    const progressSeen = new Promise((resolve) => {
      const check = () => { if (firstProgress.http && firstProgress.stdio) resolve(); };
      signalled = check;
    });
    const args = { duration: 4, steps: 4 };
    const calls = [
      callWithProgress(http.client, 'trigger-long-running-operation', args, {
        timeoutMs: 60_000, onProgress: () => { firstProgress.http ??= Date.now(); signalled(); },
      }),
      callWithProgress(stdio.client, 'trigger-long-running-operation', args, {
        timeoutMs: 60_000, onProgress: () => { firstProgress.stdio ??= Date.now(); signalled(); },
      }),
    ];
    const callsDone = calls.map((p) => p.then((r) => ({ ...r, doneAt: Date.now() })));
    await withTimeout(progressSeen, 20_000, 'first progress on both calls');

    const sigtermAt = Date.now();
    gw.proc.proc.kill('SIGTERM');
    const readiness = await watchReadiness(gw.base, 10_000);
    const [h, s] = await Promise.all(callsDone);
    const exit = await withTimeout(gw.proc.exited, DRAIN_DEADLINE_MS + EXIT_MARGIN_MS, 'gateway exit after SIGTERM')
      .catch((err) => ({ timedOut: err.message }));
    const exitedAt = Date.now();

    // In-flight calls were drained, not cut.
    for (const [who, r] of [['HTTP upstream', h], ['stdio upstream', s]]) {
      assert.equal(r.error, undefined, `${who}: in-flight call failed during drain: ${r.error?.message}`);
      assert.equal(r.result.content[0].text, 'Long running operation completed. Duration: 4 seconds, Steps: 4.', who);
    }
    // Readiness dropped while the calls were still running.
    assert.ok(readiness, '/readyz kept answering 200 for 10 s after SIGTERM');
    assert.ok(readiness.status === undefined || readiness.status === 503, `/readyz after SIGTERM: ${readiness.how} (want 503 or refused)`);
    assert.ok(readiness.at < Math.min(h.doneAt, s.doneAt),
      `/readyz changed (${readiness.how}) ${readiness.at - sigtermAt} ms after SIGTERM, only after the in-flight calls ` +
      `had finished (${h.doneAt - sigtermAt} / ${s.doneAt - sigtermAt} ms)`);
    // Clean exit within the drain deadline.
    assert.equal(exit.timedOut, undefined, exit.timedOut);
    assert.equal(exit.signal, null, `gateway was killed by ${exit.signal}`);
    assert.equal(exit.code, 0, 'gateway exit status');
    assert.ok(exitedAt - sigtermAt <= DRAIN_DEADLINE_MS + EXIT_MARGIN_MS, `exit took ${exitedAt - sigtermAt} ms`);
    // No stdio child outlives the gateway.
    await waitFor(() => descendants.every((pid) => !pidAlive(pid)), {
      timeoutMs: 5_000, what: `stdio children ${descendants.join(', ')} to be gone after the gateway exited`,
    }).catch((err) => {
      for (const pid of descendants) if (pidAlive(pid)) try { process.kill(pid, 'SIGKILL'); } catch { /* ignore */ }
      throw err;
    });
  });
});

describe('SIGTERM when idle', () => {
  test('a gateway with connected but idle clients exits 0 promptly and reaps its children', { timeout: 60_000 }, async (t) => {
    const gw = await startGateway(upstreamArgs, { name: 'membrane (idle)' });
    const http = await connectClient(gw.mcp('ev'));
    const stdio = await connectClient(gw.mcp('evs'));
    await Promise.all([http.client.ping(), stdio.client.ping()]);
    const descendants = descendantPids(gw.pid);
    assert.ok(descendants.length >= 1, 'the stdio upstream has a child process');
    const sigtermAt = Date.now();
    gw.proc.proc.kill('SIGTERM');
    const exit = await withTimeout(gw.proc.exited, DRAIN_DEADLINE_MS + EXIT_MARGIN_MS, 'gateway exit after SIGTERM');
    t.diagnostic(`idle gateway exited ${Date.now() - sigtermAt} ms after SIGTERM`);
    assert.equal(exit.signal, null, `gateway was killed by ${exit.signal}`);
    assert.equal(exit.code, 0);
    await waitFor(() => descendants.every((pid) => !pidAlive(pid)), {
      timeoutMs: 5_000, what: `children ${descendants.join(', ')} gone`,
    });
  });
});

describe('SIGTERM when the drain deadline is shorter than an in-flight call (serve -c FILE)', () => {
  test('the gateway exits 0 at the deadline, the cut call settles, no child survives', { timeout: 60_000 }, async (t) => {
    const DRAIN_MS = 2_000;
    const file = path.join(tmpDir(), 'membrane.yaml');
    fs.writeFileSync(file, [
      'listen: "127.0.0.1:0"',
      'log_level: info',
      'timeouts:',
      '  shutdown_drain: 2s',
      'upstreams:',
      '  ev:',
      `    url: ${JSON.stringify(upstream.url)}`,
      '  evs:',
      `    command: ${JSON.stringify(NODE)}`,
      `    args: [${JSON.stringify(EVERYTHING_JS)}, "stdio"]`,
      '',
    ].join('\n'));
    const gw = await startGateway(['-c', file], { name: 'membrane (short drain)' });
    const http = await connectClient(gw.mcp('ev'));
    const stdio = await connectClient(gw.mcp('evs'));
    await Promise.all([http.client.ping(), stdio.client.ping()]);
    const descendants = descendantPids(gw.pid);
    assert.ok(descendants.length >= 1, 'the stdio upstream has a child process');

    let progressed;
    const progressSeen = new Promise((resolve) => { progressed = resolve; });
    const long = { duration: 30, steps: 30 };  // far beyond the 2 s drain deadline
    const calls = [http, stdio].map((c) => callWithProgress(c.client, 'trigger-long-running-operation', long, {
      timeoutMs: 20_000, onProgress: () => progressed(),
    }).then((r) => ({ ...r, doneAt: Date.now() })));
    await withTimeout(progressSeen, 20_000, 'first progress');

    const sigtermAt = Date.now();
    gw.proc.proc.kill('SIGTERM');
    const exit = await withTimeout(gw.proc.exited, DRAIN_MS + EXIT_MARGIN_MS, 'gateway exit after SIGTERM');
    const exitedAfter = Date.now() - sigtermAt;
    t.diagnostic(`gateway exited ${exitedAfter} ms after SIGTERM (drain deadline ${DRAIN_MS} ms)`);
    assert.equal(exit.signal, null, `gateway was killed by ${exit.signal}`);
    assert.equal(exit.code, 0, 'exit status after a drain that hit its deadline');
    assert.ok(exitedAfter >= DRAIN_MS - 500, `the gateway waited for the in-flight calls (exited after ${exitedAfter} ms)`);

    // The cut calls must not succeed; report how they ended (a JSON-RPC error is the kind answer).
    const results = await Promise.all(calls);
    for (const [who, r] of [['HTTP upstream', results[0]], ['stdio upstream', results[1]]]) {
      assert.equal(r.result, undefined, `${who}: a 30 s call cannot have completed`);
      t.diagnostic(`${who}: cut call ended ${r.doneAt - sigtermAt} ms after SIGTERM with ` +
        `${r.error?.constructor?.name} ${r.error?.code ?? ''}: ${r.error?.message}`);
    }
    await waitFor(() => descendants.every((pid) => !pidAlive(pid)), {
      timeoutMs: 5_000, what: `children ${descendants.join(', ')} gone`,
    });
  });
});
