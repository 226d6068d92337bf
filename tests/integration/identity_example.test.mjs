// examples/identity/verify-txn-token.mjs behind the gateway: the example server verifies every
// Txn-Token against the gateway's published keys, and refuses calls that did not come through it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import * as jose from 'jose';

import {
  NODE, SOURCE_DIR, cleanup, connectClient, defer, freePort, mcpHeaders, rawFetch, spawnManaged,
  startGateway, tmpDir,
} from './harness.mjs';

let gateway;
let example;

before(async () => {
  // The example resolves jose and the SDK from tests/node_modules when it runs from under tests/.
  const runDir = fs.mkdtempSync(path.join(SOURCE_DIR, 'tests', '.example-run-'));
  defer(() => fs.rmSync(runDir, { recursive: true, force: true }));
  const script = path.join(runDir, 'verify-txn-token.mjs');
  fs.copyFileSync(path.join(SOURCE_DIR, 'examples', 'identity', 'verify-txn-token.mjs'), script);
  const gatewayPort = await freePort();
  const server = spawnManaged('identity example', NODE, [script, '0'],
    { env: { GATEWAY: `http://127.0.0.1:${gatewayPort}`, TRUST_DOMAIN: 'membrane' } });
  example = (await server.waitForLine(/listening on (\S+)/, 15_000))[1];
  gateway = await startGateway(['--listen', `127.0.0.1:${gatewayPort}`, '--upstream', `crm=${example}`,
    '--txn-key', path.join(tmpDir('membrane-example-'), 'txn-key.json')], { name: 'membrane (identity example)' });
});
after(cleanup);

test('through the gateway, the example verifies the transaction token and sees the call', async () => {
  const { client } = await connectClient(gateway.mcp('crm'));
  const result = await client.callTool({ name: 'whoami', arguments: {} });
  const seen = JSON.parse(result.content[0].text);
  assert.equal(seen.sub, 'anonymous');
  assert.match(seen.txn, /^s-[A-Za-z0-9_-]{16,}$/, 'the session\'s transaction');
  assert.deepEqual(seen.tctx, { server: 'crm' });
  assert.equal(seen.rctx.client_ip, '127.0.0.1');
});

test('calls that bypass the gateway are refused by the example', async () => {
  const call = { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'whoami', arguments: {} } };
  const direct = await rawFetch(example, { headers: mcpHeaders({}), body: call });
  assert.equal(direct.status, 401);
  const { privateKey } = await jose.generateKeyPair('ES256');
  const forged = await new jose.SignJWT({ txn: 't', scope: 'mcp' }).setProtectedHeader({ alg: 'ES256', kid: 'x', typ: 'txntoken+jwt' })
    .setSubject('mallory').setAudience('membrane').setIssuedAt().setExpirationTime('1m').sign(privateKey);
  const withForgery = await rawFetch(example, { headers: { ...mcpHeaders({}), 'Txn-Token': forged }, body: call });
  assert.equal(withForgery.status, 401);
});
