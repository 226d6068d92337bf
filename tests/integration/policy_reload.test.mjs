// Policy hot reload: SIGHUP or a file change recompiles the policy; a broken file is logged and
// the previous policy keeps serving, without dropping traffic.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { cleanup, connectClient, startEverythingHttp, startGateway, tmpDir, waitFor } from './harness.mjs';

const denyEcho = (word) => `
- rule: no-${word}
  condition: tool.name == "echo" and args.message contains "${word}"
  verdict: deny
  message: no ${word} here
`;

let gateway;
let policyFile;
let client;

before(async () => {
  const upstream = await startEverythingHttp();
  policyFile = path.join(tmpDir(), 'policy.yaml');
  fs.writeFileSync(policyFile, denyEcho('alpha'));
  gateway = await startGateway(['--upstream', `ev=${upstream.url}`, '--policy', policyFile], { name: 'membrane (reload)' });
  client = (await connectClient(gateway.mcp('ev'))).client;
});
after(cleanup);

const denied = async (message) => (await client.callTool({ name: 'echo', arguments: { message } })).isError === true;
const logCount = (re) => gateway.lines.filter((line) => re.test(line)).length;

test('SIGHUP with a broken policy file keeps the previous policy serving', { timeout: 30_000 }, async () => {
  assert.equal(await denied('alpha one'), true);
  fs.writeFileSync(policyFile, '- rule: broken\n  condition: tool.name ==\n  verdict: deny\n');
  const failures = logCount(/policy reload .* failed/);
  process.kill(gateway.pid, 'SIGHUP');
  await waitFor(() => logCount(/policy reload .* failed/) > failures, { what: 'the failed reload to be logged' });
  assert.ok(gateway.lines.some((line) => line.includes(`${policyFile}:2:`)), 'the error names file:line:col');
  assert.equal(await denied('alpha two'), true, 'the old rule still holds');
  assert.equal(await denied('beta'), false, 'other calls still pass');
});

test('a changed policy file is picked up without a signal', { timeout: 30_000 }, async () => {
  const reloads = logCount(/policy reloaded/);
  fs.writeFileSync(policyFile, denyEcho('beta'));
  await waitFor(() => logCount(/policy reloaded/) > reloads, { timeoutMs: 10_000, what: 'the reload after the change' });
  assert.equal(await denied('beta'), true, 'the new rule holds');
  assert.equal(await denied('alpha'), false, 'the old rule is gone');
  assert.equal((await fetch(`${gateway.base}/healthz`)).status, 200);
});
