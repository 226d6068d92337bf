// Hardening, sessions: an id the client ended with DELETE stays dead. It used to come back to
// life after a restart with the same session key (the sealed id holds the whole session, and the
// record of the deletion lived only in the process). With session.ended_file the deletion
// survives a restart; with cluster.redis every replica refuses the id at once, and a replica
// started later loads the deletions.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  NODE, SOURCE_DIR, cleanup, freePort, mcpHeaders, rawFetch, rawInitialize, rawRpc, spawnManaged, startGateway,
  tmpDir, waitFor,
} from './harness.mjs';

const HOSTILE_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'hostile-stdio-server.mjs');
const sessionKey = Buffer.from('membrane-hardening-sessions-key-32b').toString('base64');
const env = { MEMBRANE_SESSION_KEY: sessionKey };
let dir;

before(() => { dir = tmpDir('membrane-ended-'); });
after(cleanup);

function config(name, lines) {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, [
    'listen: 127.0.0.1:0',
    ...lines,
    'upstreams:',
    '  hostile:',
    `    command: ${JSON.stringify(NODE)}`,
    `    args: [${JSON.stringify(HOSTILE_JS)}]`,
    '',
  ].join('\n'));
  return file;
}

const ping = (gateway, session) => rawRpc(gateway.mcp('hostile'), {
  sessionId: session.sessionId, protocolVersion: session.protocolVersion, method: 'ping',
});
const end = (gateway, session) => rawFetch(gateway.mcp('hostile'), {
  method: 'DELETE', headers: mcpHeaders({ sessionId: session.sessionId, protocolVersion: session.protocolVersion }),
});

describe('session.ended_file', () => {
  test('an id ended with DELETE stays dead after a restart with the same key', { timeout: 60_000 }, async () => {
    const file = config('ended-file', ['session:', `  ended_file: ${JSON.stringify(path.join(dir, 'ended.txt'))}`]);
    const first = await startGateway(['-c', file], { name: 'membrane (ended file)', env });
    const ended = await rawInitialize(first.mcp('hostile'));
    const kept = await rawInitialize(first.mcp('hostile'));
    assert.equal((await end(first, ended)).status, 200);
    assert.equal((await ping(first, ended)).status, 404);
    await first.stop();

    const second = await startGateway(['-c', file], { name: 'membrane (ended file, restarted)', env });
    const refused = await ping(second, ended);
    assert.equal(refused.status, 404);
    assert.equal(refused.response.json.error.code, -32001);
    assert.match(refused.response.json.error.message, /Session terminated/);
    const alive = await ping(second, kept);
    assert.equal(alive.status, 200, 'a session that was not ended survives the restart');
    assert.deepEqual(alive.message.result, {});
  });

  test('without it, a fixed session key makes the gateway say what a restart forgets', { timeout: 30_000 }, async () => {
    const gateway = await startGateway(['-c', config('no-ended-file', [])], { name: 'membrane (no ended file)', env });
    assert.ok(gateway.lines.some((line) => /ids ended with DELETE are refused until this process stops/.test(line)));
  });

  test('an unwritable ended_file stops start-up with a clear error', { timeout: 30_000 }, async () => {
    const file = config('bad-ended-file', ['session:', '  ended_file: /proc/membrane-nonexistent/ended.txt']);
    await assert.rejects(startGateway(['-c', file], { name: 'membrane (bad ended file)', env, startTimeoutMs: 10_000 }));
  });
});

describe('cluster.redis', () => {
  let redisPort;
  before(async () => {
    redisPort = await freePort();
    const redis = spawnManaged(`redis-server:${redisPort}`, 'redis-server', [
      '--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    ]);
    await redis.waitForLine(/Ready to accept connections/, 10_000);
  });

  test('every replica refuses an id ended on one of them, and a replica started later does too', { timeout: 60_000 }, async () => {
    const lines = ['cluster:', '  redis:', `    url: redis://127.0.0.1:${redisPort}`];
    const a = await startGateway(['-c', config('replica-a', lines)], { name: 'membrane (replica a)', env });
    const b = await startGateway(['-c', config('replica-b', lines)], { name: 'membrane (replica b)', env });
    const session = await rawInitialize(a.mcp('hostile'));
    assert.equal((await ping(b, session)).status, 200, 'the session works on both replicas');
    assert.equal((await end(a, session)).status, 200);
    await waitFor(async () => (await ping(b, session)).status === 404, { what: 'replica b to refuse the ended id' });
    const c = await startGateway(['-c', config('replica-c', lines)], { name: 'membrane (replica c)', env });
    await waitFor(async () => (await ping(c, session)).status === 404, { what: 'replica c to load the deletion' });
  });
});
