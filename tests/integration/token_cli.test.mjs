// `membrane token mint` and `membrane token verify`, checked against an independent JOSE
// implementation (npm `jose`) in both directions.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import * as jose from 'jose';

import { MEMBRANE_BIN, tmpDir } from './harness.mjs';

const membrane = (args, input) => spawnSync(MEMBRANE_BIN, args, { encoding: 'utf8', input });

test('a token minted by membrane verifies with jose against the key file\'s public key', async () => {
  const keyFile = path.join(tmpDir('membrane-token-'), 'key.json');
  const minted = membrane(['token', 'mint', '--key', keyFile, '--sub', 'alice', '--aud', 'bank.test',
    '--typ', 'txntoken+jwt', '--lifetime', '2m', '--claims', '{"txn":"t-1","tctx":{"customer_id":"c-1"}}']);
  assert.equal(minted.status, 0, minted.stderr);
  const privateJwk = JSON.parse(fs.readFileSync(keyFile, 'utf8')).keys[0];
  const { d, ...publicJwk } = privateJwk;
  assert.ok(d, 'the key file holds the private key');
  const { payload, protectedHeader } = await jose.jwtVerify(minted.stdout.trim(), await jose.importJWK(publicJwk, 'ES256'),
    { audience: 'bank.test', typ: 'txntoken+jwt' });
  assert.equal(protectedHeader.kid, privateJwk.kid);
  assert.equal(payload.sub, 'alice');
  assert.deepEqual(payload.tctx, { customer_id: 'c-1' });
  assert.equal(payload.exp - payload.iat, 120);
});

test('membrane token verify accepts what jose signs and explains what it refuses', async () => {
  const dir = tmpDir('membrane-token-');
  const { publicKey, privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwks = path.join(dir, 'jwks.json');
  fs.writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await jose.exportJWK(publicKey)), kid: 'r1', alg: 'RS256' }] }));
  const sign = (exp) => new jose.SignJWT({ scope: 'mcp' }).setProtectedHeader({ alg: 'RS256', kid: 'r1' })
    .setSubject('bob').setIssuer('https://idp.test').setAudience('gw').setIssuedAt().setExpirationTime(exp).sign(privateKey);

  const good = membrane(['token', 'verify', await sign('5m'), '--jwks', jwks, '--issuer', 'https://idp.test', '--audience', 'gw']);
  assert.equal(good.status, 0, good.stderr);
  const shown = JSON.parse(good.stdout);
  assert.equal(shown.valid, true);
  assert.equal(shown.claims.sub, 'bob');

  const fromStdin = membrane(['token', 'verify', '-', '--jwks', jwks], `${await sign('5m')}\n`);
  assert.equal(fromStdin.status, 0, fromStdin.stderr);

  const expired = membrane(['token', 'verify', await sign(Math.floor(Date.now() / 1000) - 600), '--jwks', jwks]);
  assert.equal(expired.status, 1);
  assert.match(expired.stderr, /^invalid: the token expired/);
  assert.match(expired.stderr, /unverified contents/);

  const wrongAudience = membrane(['token', 'verify', await sign('5m'), '--jwks', jwks, '--audience', 'other']);
  assert.equal(wrongAudience.status, 1);
  assert.match(wrongAudience.stderr, /wrong audience/);

  const usage = membrane(['token', 'verify', 'x']);
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /needs --jwks FILE/);
});
