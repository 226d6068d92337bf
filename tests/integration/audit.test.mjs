// The tamper-evident audit log: one hash-chained line per request, written by the gateway and
// checked by `membrane audit verify`. Editing, deleting or reordering any line makes verify fail
// at that line; a gateway killed with SIGKILL under load leaves a log whose complete lines verify.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  MEMBRANE_BIN, cleanup, connectClient, sleep, startEverythingHttp, startGateway, tmpDir,
} from './harness.mjs';

let upstream;
let dir;
let logFile;
let lines;

const verify = (...files) => spawnSync(MEMBRANE_BIN, ['audit', 'verify', ...files], { encoding: 'utf8' });

before(async () => {
  upstream = await startEverythingHttp();
  dir = tmpDir('membrane-audit-');
  logFile = path.join(dir, 'audit.log');
  const policy = path.join(dir, 'policy.yaml');
  fs.writeFileSync(policy, '- rule: no-secret-echo\n  condition: tool.name == "echo" and args.message contains "secret"\n  verdict: deny\n');
  const gateway = await startGateway(['--upstream', `ev=${upstream.url}`, '--policy', policy, '--audit-log', logFile],
    { name: 'membrane (audit)' });
  const { client } = await connectClient(gateway.mcp('ev'));
  await client.callTool({ name: 'echo', arguments: { message: 'hello' } });
  await client.callTool({ name: 'echo', arguments: { message: 'my secret' } });
  await client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } });
  await client.listTools();
  await gateway.stop({ signal: 'SIGTERM' });
  lines = fs.readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
});
after(cleanup);

function tampered(name, edit) {
  const file = path.join(dir, `${name}.log`);
  const copy = [...lines];
  edit(copy);
  fs.writeFileSync(file, `${copy.join('\n')}\n`);
  return file;
}

describe('what the gateway writes', () => {
  test('one line per request, with who, what, the decision and the chain', () => {
    const records = lines.map((line) => JSON.parse(line));
    const calls = records.filter((r) => r.method === 'tools/call');
    assert.equal(calls.length, 3);
    const denied = calls.find((r) => r.verdict === 'deny');
    assert.deepEqual(denied.rules, ['no-secret-echo']);
    assert.equal(denied.tool, 'echo');
    assert.match(denied.args_sha256, /^[0-9a-f]{64}$/);
    assert.ok(!lines.join('\n').includes('my secret'), 'arguments are digested, never written');
    assert.equal(calls.find((r) => r.tool === 'get-sum').verdict, 'allow');
    records.forEach((record, index) => {
      assert.equal(record.seq, index + 1);
      assert.match(record.hash, /^[0-9a-f]{64}$/);
      assert.equal(record.prev, index === 0 ? '0'.repeat(64) : records[index - 1].hash);
      assert.ok(record.time && record.outcome && record.latency_us >= 0);
    });
    assert.ok(records.some((r) => r.method === 'initialize') && records.some((r) => r.method === 'tools/list'));
  });

  test('verify accepts the untouched log', () => {
    const result = verify(logFile);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`ok: ${lines.length} records`));
  });
});

describe('membrane audit query', () => {
  const query = (...args) => spawnSync(MEMBRANE_BIN, ['audit', 'query', logFile, ...args], { encoding: 'utf8' });

  test('filters by verdict and prints JSON lines', () => {
    const result = query('--verdict', 'deny', '--format', 'json');
    assert.equal(result.status, 0, result.stderr);
    const records = result.stdout.trim().split('\n').map((line) => JSON.parse(line));
    assert.equal(records.length, 1);
    assert.deepEqual(records[0].rules, ['no-secret-echo']);
  });

  test('filters by tool and time, as a table', () => {
    const table = query('--tool', 'get-sum');
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /^TIME\s+IDENTITY\s+TXN/);
    assert.match(table.stdout, /get-sum/);
    assert.match(table.stdout, /1 record\(s\)/);
    assert.match(query('--since', '2999-01-01').stdout, /0 record\(s\)/);
    const all = query('--since', '2000', '--until', '2999', '--format', 'json').stdout.trim().split('\n');
    assert.equal(all.length, lines.length);
  });

  test('bad flags are usage errors', () => {
    const result = query('--format', 'xml');
    assert.equal(result.status, 2);
    assert.match(result.stderr, /--format must be json or table/);
  });
});

describe('verify fails at the line that was touched', () => {
  const cases = [
    ['an edited verdict', (copy) => { copy[2] = copy[2].replace(/"verdict":"(allow|deny)"|"outcome":"ok"/, '"outcome":"OK"'); }, 3],
    ['an edited last line', (copy) => { copy[copy.length - 1] = copy.at(-1).replace('"outcome":"ok"', '"outcome":"ko"'); }, () => lines.length],
    ['a deleted line', (copy) => { copy.splice(1, 1); }, 2],
    ['a deleted first line', (copy) => { copy.splice(0, 1); }, 1],
    ['two lines swapped', (copy) => { [copy[1], copy[2]] = [copy[2], copy[1]]; }, 2],
    ['a line inserted twice', (copy) => { copy.splice(3, 0, copy[2]); }, 4],
  ];
  for (const [name, edit, expected] of cases) {
    test(name, () => {
      const file = tampered(name.replace(/\W+/g, '-'), edit);
      const result = verify(file);
      assert.equal(result.status, 1, `verify should fail for ${name}: ${result.stdout}`);
      const line = typeof expected === 'function' ? expected() : expected;
      assert.match(result.stderr, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${line}: `));
    });
  }

  test('a chain continues across files, and a missing file is noticed', () => {
    const first = tampered('part-1', (copy) => copy.splice(3));
    const second = tampered('part-2', (copy) => copy.splice(0, 3));
    assert.equal(verify(first, second).status, 0);
    const alone = verify(second);
    assert.equal(alone.status, 1);
    assert.match(alone.stderr, /first lines \(or an earlier file\) are missing/);
  });
});

test('SIGKILL under load leaves a log whose complete lines all verify, and the chain continues', { timeout: 60_000 }, async () => {
  const file = path.join(dir, 'killed.log');
  const gateway = await startGateway(['--upstream', `ev=${upstream.url}`, '--audit-log', file], { name: 'membrane (audit, killed)' });
  const clients = await Promise.all([1, 2, 3, 4].map(() => connectClient(gateway.mcp('ev'))));
  let running = true;
  const load = clients.map(async ({ client }) => {
    while (running) {
      try { await client.callTool({ name: 'echo', arguments: { message: 'load' } }); } catch { break; }
    }
  });
  await sleep(1_500);
  await gateway.stop({ signal: 'SIGKILL' });
  running = false;
  // A call whose response stream the kill cut may wait to resume it until the SDK's own request
  // timeout (60 s): closing the clients ends such calls now.
  await Promise.allSettled(clients.map(({ client }) => client.close()));
  await Promise.allSettled(load);
  const result = verify(file);
  assert.equal(result.status, 0, result.stderr);
  const records = Number(result.stdout.match(/ok: (\d+) records/)[1]);
  assert.ok(records > 20, `records were written under load (${records})`);
  // A restarted gateway continues the same chain.
  const again = await startGateway(['--upstream', `ev=${upstream.url}`, '--audit-log', file], { name: 'membrane (audit, restarted)' });
  const { client } = await connectClient(again.mcp('ev'));
  await client.callTool({ name: 'echo', arguments: { message: 'after restart' } });
  await again.stop({ signal: 'SIGTERM' });
  const after = verify(file);
  assert.equal(after.status, 0, after.stderr);
  assert.ok(Number(after.stdout.match(/ok: (\d+) records/)[1]) > records);
});

describe('rotation and signed checkpoints', () => {
  let files;
  let keyFile;
  let rotatedDir;

  before(async () => {
    rotatedDir = tmpDir('membrane-audit-rotated-');
    keyFile = path.join(rotatedDir, 'audit-key.json');
    const config = path.join(rotatedDir, 'membrane.yaml');
    fs.writeFileSync(config, [
      'listen: "127.0.0.1:0"',
      'audit:',
      `  file: ${JSON.stringify(path.join(rotatedDir, 'audit.log'))}`,
      '  rotate: 2KiB',
      `  key_file: ${JSON.stringify(keyFile)}`,
      '  checkpoint_every: 4',
      'upstreams:',
      '  ev:',
      `    url: ${JSON.stringify(upstream.url)}`,
      '',
    ].join('\n'));
    const gateway = await startGateway(['-c', config], { name: 'membrane (audit rotation)' });
    const { client } = await connectClient(gateway.mcp('ev'));
    for (let i = 0; i < 15; i += 1) await client.callTool({ name: 'echo', arguments: { message: `call ${i}` } });
    await gateway.stop({ signal: 'SIGTERM' });
    files = fs.readdirSync(rotatedDir).filter((name) => name.startsWith('audit.log')).map((name) => path.join(rotatedDir, name));
  });

  test('the log rotates and the chain runs through the files, given in any order', () => {
    assert.ok(files.length >= 3, `rotated files: ${files.join(', ')}`);
    const result = verify(...[...files].reverse());
    assert.equal(result.status, 0, result.stderr);
  });

  test('checkpoints are signed with the gateway key and the log closes with one', () => {
    const result = verify('--jwks', keyFile, ...files);
    assert.equal(result.status, 0, result.stderr);
    const checkpoints = Number(result.stdout.match(/(\d+) signed checkpoint/)[1]);
    assert.ok(checkpoints >= 5, result.stdout);
    assert.doesNotMatch(result.stdout, /does not end with the signed checkpoint of a clean close/);
  });

  test('lines removed from the end are noticed through the missing closing checkpoint', () => {
    const current = path.join(rotatedDir, 'audit.log');
    const kept = fs.readFileSync(current, 'utf8').split('\n').filter(Boolean);
    const truncated = path.join(rotatedDir, 'truncated.log');
    fs.writeFileSync(truncated, `${kept.slice(0, -2).join('\n')}\n`);
    const result = verify('--jwks', keyFile, ...files.filter((f) => f !== current), truncated);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /does not end with the signed checkpoint of a clean close/);
  });

  test('a checkpoint signed by another key fails', () => {
    const otherKey = path.join(rotatedDir, 'other-key.json');
    spawnSync(MEMBRANE_BIN, ['token', 'mint', '--key', otherKey], { encoding: 'utf8' });
    const result = verify('--jwks', otherKey, ...files);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /checkpoint's signature does not verify/);
  });
});
