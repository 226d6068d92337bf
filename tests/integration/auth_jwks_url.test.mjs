// auth.jwks as a URL (the issuer's jwks_uri): the keys are fetched on first use, fetched again
// when a token names a key the set lacks (the issuer rotated), and never more often than the
// refresh interval, so made-up key ids cannot make the gateway hammer the issuer.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { after, before, test } from 'node:test';

import * as jose from 'jose';

import {
  cleanup, defer, initializeRequest, makeSelfSignedCert, mcpHeaders, rawFetch, sleep, startGateway, startEverythingHttp, tmpDir, waitFor,
} from './harness.mjs';

const ISSUER = 'https://issuer.membrane.test';
const AUDIENCE = 'https://mcp.membrane.test';

let gateway;
let published = [];
let fetches = 0;
const keys = {};

async function makeKey(kid) {
  const { publicKey, privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
  return { kid, privateKey, jwk: { ...(await jose.exportJWK(publicKey)), kid, alg: 'ES256' } };
}

async function tokenFrom(key) {
  return new jose.SignJWT({ scope: 'mcp' }).setProtectedHeader({ alg: 'ES256', kid: key.kid })
    .setSubject('alice').setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt().setExpirationTime('5m').sign(key.privateKey);
}

async function initializeWith(key) {
  return rawFetch(gateway.mcp('ev'), {
    headers: { ...mcpHeaders({}), Authorization: `Bearer ${await tokenFrom(key)}` },
    body: initializeRequest(),
  });
}

before(async () => {
  keys.first = await makeKey('2026-11-a');
  keys.second = await makeKey('2026-11-b');
  keys.made_up = await makeKey('nobody-published-this');
  published = [keys.first.jwk];
  const issuer = http.createServer((req, res) => {
    fetches += 1;
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
    res.end(JSON.stringify({ keys: published }));
  });
  await new Promise((resolve) => issuer.listen(0, '127.0.0.1', resolve));
  defer(() => new Promise((resolve) => issuer.close(resolve)));
  const upstream = await startEverythingHttp();
  const config = path.join(tmpDir('membrane-jwks-url-'), 'membrane.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'auth:',
    `  issuer: ${JSON.stringify(ISSUER)}`,
    `  audience: ${JSON.stringify(AUDIENCE)}`,
    `  jwks: http://127.0.0.1:${issuer.address().port}/.well-known/jwks.json`,
    '  jwks_refresh_interval: 1s',
    'upstreams:',
    '  ev:',
    `    url: ${JSON.stringify(upstream.url)}`,
    '',
  ].join('\n'));
  gateway = await startGateway(['-c', config], { name: 'membrane (jwks url)' });
});
after(cleanup);

test('the keys are fetched on first use', async () => {
  assert.equal(fetches, 0);
  assert.equal((await initializeWith(keys.first)).status, 200);
  assert.equal(fetches, 1);
  assert.equal((await initializeWith(keys.first)).status, 200);
  assert.equal(fetches, 1, 'known keys are not fetched again');
});

test('a rotated key is picked up when a token names it', async () => {
  await sleep(1_100);  // past the refresh interval
  published = [keys.second.jwk, keys.first.jwk];
  assert.equal((await initializeWith(keys.second)).status, 200);
  assert.equal(fetches, 2);
  assert.equal((await initializeWith(keys.first)).status, 200, 'the old key still verifies while published');
});

test('made-up key ids are refused without fetching more than once per interval', async () => {
  await sleep(1_100);
  const before = fetches;
  for (let i = 0; i < 5; i += 1) {
    const response = await initializeWith(keys.made_up);
    assert.equal(response.status, 401);
    assert.match(response.headers.get('www-authenticate'), /unknown key id 'nobody-published-this'/);
  }
  assert.equal(fetches, before + 1);
});

test('an https jwks_uri is verified against jwks_ca_file, and an untrusted one is never used', async () => {
  const dir = tmpDir('membrane-jwks-https-');
  const cert = makeSelfSignedCert(dir);
  const issuer = https.createServer({ cert: fs.readFileSync(cert.cert), key: fs.readFileSync(cert.key) }, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
    res.end(JSON.stringify({ keys: [keys.first.jwk] }));
  });
  await new Promise((resolve) => issuer.listen(0, '127.0.0.1', resolve));
  defer(() => new Promise((resolve) => issuer.close(resolve)));
  const upstream = await startEverythingHttp();
  const start = async (name, caLine) => {
    const config = path.join(dir, `${name.replace(/\W+/g, '-')}.yaml`);
    fs.writeFileSync(config, [
      'listen: "127.0.0.1:0"',
      'auth:',
      `  issuer: ${JSON.stringify(ISSUER)}`,
      `  audience: ${JSON.stringify(AUDIENCE)}`,
      `  jwks: https://localhost:${issuer.address().port}/jwks.json`,
      ...caLine,
      'upstreams:',
      '  ev:',
      `    url: ${JSON.stringify(upstream.url)}`,
      '',
    ].join('\n'));
    return startGateway(['-c', config], { name: `membrane (${name})` });
  };
  const trusting = await start('jwks over https', [`  jwks_ca_file: ${JSON.stringify(cert.cert)}`]);
  const ok = await rawFetch(trusting.mcp('ev'), {
    headers: { ...mcpHeaders({}), Authorization: `Bearer ${await tokenFrom(keys.first)}` }, body: initializeRequest(),
  });
  assert.equal(ok.status, 200, ok.text);
  const untrusting = await start('jwks over untrusted https', []);
  const refused = await rawFetch(untrusting.mcp('ev'), {
    headers: { ...mcpHeaders({}), Authorization: `Bearer ${await tokenFrom(keys.first)}` }, body: initializeRequest(),
  });
  assert.equal(refused.status, 401);
  await waitFor(() => untrusting.lines.some((line) => /cannot fetch the issuer's keys .*certificate/i.test(line)),
    { what: 'the log saying why' });
});
