// Fault matrix: kill -9 under load. Many clients call at once (answers as one JSON body, and as
// the last event of an SSE stream); the gateway is SIGKILLed mid-flight. Afterwards `membrane
// audit verify` passes on the file, and every call a client saw answered is in it: the gateway
// writes a call's record (write(2) done, so in the kernel's hands) before the answer goes out
// (docs/observability.md, "When a record is written").
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';

import {
  MEMBRANE_BIN, NODE, SOURCE_DIR, cleanup, connectClient, sleep, spawnManaged, startGateway, tmpDir,
} from './harness.mjs';

const FAULTY_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'faulty-http-server.mjs');
const CLIENTS = 12;

after(cleanup);

const digest = (args) => crypto.createHash('sha256').update(JSON.stringify(args)).digest('hex');

test('after SIGKILL under load the chain verifies and no answered call is missing', { timeout: 90_000 }, async (t) => {
  const upstream = spawnManaged('faulty upstream (kill)', NODE, [FAULTY_JS, '0']);
  const url = (await upstream.waitForLine(/listening on (http:\/\/\S+)/, 20_000))[1];
  const file = path.join(tmpDir('membrane-faults-kill-'), 'audit.log');
  const gateway = await startGateway(['--upstream', `faulty=${url}`, '--audit-log', file], { name: 'membrane (kill -9)' });
  const clients = await Promise.all(Array.from({ length: CLIENTS }, () => connectClient(gateway.mcp('faulty'))));

  const answered = [];
  let running = true;
  const load = clients.map(async ({ client }, n) => {
    for (let i = 0; running; i += 1) {
      // Half the clients get their answer as a JSON body, half as an event of a stream that the
      // upstream keeps open a while after the answer (as it may).
      const call = n % 2 === 0
        ? { name: 'echo', arguments: { message: `c${n} call ${i}` } }
        : { name: 'slow-progress', arguments: { linger: 1000, message: `c${n} call ${i}`, seconds: 0 } };
      try {
        const result = await client.callTool(call, undefined, { timeout: 20_000 });
        if (result.content?.[0]?.text) answered.push(call.arguments);
      } catch {
        return;  // the gateway is gone
      }
    }
  });
  await sleep(2_500);
  await gateway.stop({ signal: 'SIGKILL' });
  running = false;
  await Promise.allSettled(load);

  t.diagnostic(`${answered.length} calls answered before the SIGKILL`);
  const verify = spawnSync(MEMBRANE_BIN, ['audit', 'verify', file], { encoding: 'utf8' });
  assert.equal(verify.status, 0, verify.stderr);
  const recorded = new Set(fs.readFileSync(file, 'utf8').split('\n')
    .filter((line) => line.endsWith('"}') && line.includes('"hash"'))
    .map((line) => JSON.parse(line).args_sha256));
  assert.ok(answered.length > 5 * CLIENTS, `the clients were answered under load (${answered.length} calls)`);
  const missing = answered.filter((args) => !recorded.has(digest(args)));
  assert.deepEqual(missing, [], `${missing.length} of ${answered.length} answered calls have no audit record`);
});
