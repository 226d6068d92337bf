// Fault matrix: the audit log cannot be written (disk full, file too large). For real, never a
// mock: the log lives on a tiny tmpfs that the test fills (ENOSPC), when the test may mount one
// (root); otherwise, and for the `log` case always, the gateway's RLIMIT_FSIZE is lowered under
// it with prlimit(1) (EFBIG), cutting a line in the middle.
//
//   audit.on_error: refuse (the default): the answer whose record cannot be written is withheld
//   (503 + a JSON-RPC error saying the audit trail is unavailable), later calls are refused before
//   they reach the upstream, /readyz answers 503; once a write succeeds, calls go on and the chain
//   carries a "gap" record saying what happened.
//   audit.on_error: log: calls go on; the failure is logged (rate-limited) and counted in
//   /metrics, records are held back and written when the log works again.
// Either way `membrane audit verify` passes on the file afterwards.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  MEMBRANE_BIN, NODE, SOURCE_DIR, cleanup, defer, jsonRpcErrorProblems, rawFetch, rawInitialize,
  rawRpc, spawnManaged, startGateway, tmpDir, waitFor,
} from './harness.mjs';

const FAULTY_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'faulty-http-server.mjs');

let upstreamUrl;

before(async () => {
  const upstream = spawnManaged('faulty upstream (audit)', NODE, [FAULTY_JS, '0']);
  upstreamUrl = (await upstream.waitForLine(/listening on (http:\/\/\S+)/, 20_000))[1];
});
after(cleanup);

async function upstreamCalls() {
  const stats = await (await fetch(new URL('/stats', upstreamUrl))).json();
  return stats.calls.echo ?? 0;
}

/** A directory whose audit file can be made unwritable for real: {kind, dir, fail(), heal()}. */
function failableAuditDir({ allowMount = true } = {}) {
  const base = tmpDir('membrane-faults-audit-');
  const mnt = path.join(base, 'mnt');
  fs.mkdirSync(mnt);
  if (allowMount) {
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', mnt], { encoding: 'utf8' });
    if (mounted.status === 0) {
      defer(() => spawnSync('umount', ['-l', mnt]));
      const filler = path.join(mnt, 'filler');
      return {
        kind: 'tmpfs (ENOSPC)',
        dir: mnt,
        // Each line in a file of its own (rotation): a full disk then fails every write at once,
        // instead of leaving room in the last page of a file that is already there.
        auditConfig: ['  rotate: 1B'],
        fail() {
          const fd = fs.openSync(filler, 'w');
          const block = Buffer.alloc(4096, 0x61);
          try {
            for (;;) fs.writeSync(fd, block);
          } catch (err) {
            assert.equal(err.code, 'ENOSPC');
          } finally {
            fs.closeSync(fd);
          }
        },
        heal() { fs.rmSync(filler); },
      };
    }
  }
  // RLIMIT_FSIZE of the running gateway: writes past `limit` fail with EFBIG (the gateway ignores
  // SIGXFSZ, which would otherwise kill it).
  return {
    kind: 'RLIMIT_FSIZE (EFBIG)',
    dir: mnt,
    auditConfig: [],
    fail(pid, file, slack = 0) {
      const limit = fs.statSync(file).size + slack;
      execFileSync('prlimit', ['--pid', String(pid), `--fsize=${limit}:unlimited`]);
    },
    heal(pid) { execFileSync('prlimit', ['--pid', String(pid), '--fsize=unlimited:unlimited']); },
  };
}

async function startAudited(file, onError, name, auditConfig = []) {
  const config = path.join(tmpDir('membrane-faults-audit-cfg-'), 'membrane.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'admin: "127.0.0.1:0"',
    'audit:',
    `  file: ${JSON.stringify(file)}`,
    ...(onError ? [`  on_error: ${onError}`] : []),
    ...auditConfig,
    'upstreams:',
    '  faulty:',
    `    url: ${JSON.stringify(upstreamUrl)}`,
    '',
  ].join('\n'));
  const gateway = await startGateway(['-c', config], { name });
  gateway.admin = (await gateway.proc.waitForLine(/admin listening on (http:\/\/\S+)/, 10_000))[1];
  gateway.session = await rawInitialize(gateway.mcp('faulty'));
  gateway.echo = (message) => rawRpc(gateway.mcp('faulty'), {
    sessionId: gateway.session.sessionId,
    protocolVersion: gateway.session.protocolVersion,
    method: 'tools/call',
    params: { name: 'echo', arguments: { message } },
  });
  gateway.metric = async (name) => {
    const text = (await rawFetch(`${gateway.admin}/metrics`, { method: 'GET' })).text;
    return Number(text.match(new RegExp(`^${name} (\\S+)$`, 'm'))?.[1]);
  };
  return gateway;
}

/** Verifies the chain through the log and its rotated files; returns its records in order. */
function verify(file) {
  const dir = path.dirname(file);
  const files = fs.readdirSync(dir).filter((f) => f.startsWith(path.basename(file))).map((f) => path.join(dir, f));
  const result = spawnSync(MEMBRANE_BIN, ['audit', 'verify', ...files], { encoding: 'utf8' });
  assert.equal(result.status, 0, `audit verify failed: ${result.stderr}`);
  return files.flatMap((f) => fs.readFileSync(f, 'utf8').split('\n'))
    .filter((l) => l.includes('"hash"')).map((l) => JSON.parse(l)).sort((a, b) => a.seq - b.seq);
}

const argsDigest = (message) => crypto.createHash('sha256').update(JSON.stringify({ message })).digest('hex');

describe('audit.on_error: refuse (the default)', () => {
  test('no call goes on without its record; the chain says what happened', { timeout: 90_000 }, async (t) => {
    const disk = failableAuditDir();
    t.diagnostic(`making the audit log unwritable with ${disk.kind}`);
    const file = path.join(disk.dir, 'audit.log');
    const gateway = await startAudited(file, undefined, 'membrane (audit refuse)', disk.auditConfig);
    assert.equal((await gateway.echo('before')).message?.result?.content?.[0]?.text, 'Echo: before');

    disk.fail(gateway.pid, file);
    // The call was already at the upstream when its record failed: the answer is withheld.
    const withheld = await gateway.echo('withheld');
    assert.equal(withheld.status, 503, withheld.response.text);
    assert.deepEqual(jsonRpcErrorProblems(withheld.message, { id: withheld.id }), []);
    assert.match(withheld.message.error.message, /audit trail is unavailable/);
    assert.match(withheld.message.error.message, /withheld/);
    assert.doesNotMatch(withheld.response.text, /Echo: withheld/);

    // Later calls never reach the upstream.
    const before = await upstreamCalls();
    for (let i = 0; i < 5; i += 1) {
      const refused = await gateway.echo(`refused ${i}`);
      assert.equal(refused.status, 503);
      assert.match(refused.message?.error?.message ?? '', /audit trail is unavailable .*calls are refused until it can be written again \(audit\.on_error: refuse\)/);
    }
    assert.equal(await upstreamCalls(), before, 'the refused calls did not reach the upstream');
    for (const url of [`${gateway.base}/readyz`, `${gateway.admin}/readyz`]) {
      const ready = await rawFetch(url, { method: 'GET' });
      assert.equal(ready.status, 503, url);
      assert.equal(ready.json?.status, 'audit_unavailable');
    }
    assert.ok(await gateway.metric('membrane_audit_write_failures_total') >= 2);
    // Loud, not one line per call.
    const loud = gateway.lines.filter((l) => /audit log .* (write failed|still cannot be written)/.test(l));
    assert.ok(loud.length >= 1 && loud.length <= 2, loud.join('\n'));

    disk.heal(gateway.pid);
    await waitFor(async () => (await rawFetch(`${gateway.base}/readyz`, { method: 'GET' })).status === 200,
      { what: '/readyz to recover' });
    assert.equal((await gateway.echo('after')).message?.result?.content?.[0]?.text, 'Echo: after');
    await gateway.stop();

    const records = verify(file);
    const gap = records.find((r) => r.type === 'gap');
    assert.ok(gap, 'a gap record marks the outage');
    assert.equal(gap.refused, 5);
    assert.equal(gap.lost, 0);
    assert.equal(gap.late, 1);
    assert.match(gap.error, /No space left on device|File too large/);
    const byArgs = (m) => records.filter((r) => r.args_sha256 === argsDigest(m));
    assert.equal(byArgs('before').length, 1);
    assert.equal(byArgs('after').length, 1);
    assert.deepEqual(byArgs('withheld').map((r) => r.answer_withheld), [true], 'the withheld call is recorded, late');
    for (let i = 0; i < 5; i += 1) assert.equal(byArgs(`refused ${i}`).length, 0);
  });
});

describe('audit.on_error: log', () => {
  test('calls go on, the failure is loud and counted, the records arrive late', { timeout: 90_000 }, async () => {
    const disk = failableAuditDir({ allowMount: false });
    const file = path.join(disk.dir, 'audit.log');
    const gateway = await startAudited(file, 'log', 'membrane (audit log)');
    assert.equal((await gateway.echo('first')).message?.result?.content?.[0]?.text, 'Echo: first');

    // Room for a few bytes more: the next line is cut in the middle, and must be taken back.
    disk.fail(gateway.pid, file, 10);
    for (let i = 0; i < 5; i += 1) {
      const r = await gateway.echo(`during ${i}`);
      assert.equal(r.message?.result?.content?.[0]?.text, `Echo: during ${i}`);
    }
    assert.ok(await gateway.metric('membrane_audit_write_failures_total') >= 5);
    assert.equal(await gateway.metric('membrane_audit_records_held_back'), 5);
    assert.equal((await rawFetch(`${gateway.base}/readyz`, { method: 'GET' })).status, 200, 'calls are served: ready');
    const loud = gateway.lines.filter((l) => /audit log .*write failed: File too large; calls go on/.test(l));
    assert.equal(loud.length, 1, gateway.lines.slice(-20).join('\n'));

    disk.heal(gateway.pid);
    assert.equal((await gateway.echo('healed')).message?.result?.content?.[0]?.text, 'Echo: healed');
    assert.equal(await gateway.metric('membrane_audit_records_held_back'), 0);
    await gateway.stop();

    const records = verify(file);
    const gap = records.find((r) => r.type === 'gap');
    assert.deepEqual([gap?.late, gap?.lost, gap?.refused], [5, 0, 0]);
    for (const m of ['first', 'during 0', 'during 4', 'healed']) {
      assert.equal(records.filter((r) => r.args_sha256 === argsDigest(m)).length, 1, m);
    }
  });
});
