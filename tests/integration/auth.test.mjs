// The gateway as an OAuth resource server, with tokens minted by an independent library (npm
// `jose`): valid RS256, ES256 and EdDSA tokens pass; expired, wrong audience, wrong issuer, bad
// signature, `alg: none`, unknown kid and missing scopes are refused with RFC 6750 challenges
// pointing at the RFC 9728 metadata; the upstream never sees the caller's token; a session only
// serves the caller who opened it; the policy sees identity.*.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import * as jose from 'jose';

import {
  MEMBRANE_BIN, NODE, SOURCE_DIR, cleanup, connectClient, initializeRequest, mcpHeaders, rawFetch, spawnManaged,
  startGateway, tmpDir,
} from './harness.mjs';

const ISSUER = 'https://issuer.membrane.test';
const AUDIENCE = 'https://mcp.membrane.test';
const RECORDING_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'recording-server.mjs');

const keys = {};
let gateway;
let jwksFile;

async function makeKey(alg, kid, options = {}) {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true, ...options });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, jwk };
}

async function mint(key, { sub = 'alice', aud = AUDIENCE, iss = ISSUER, exp = '5m', scope = 'mcp', kid = key.kid, extra = {} } = {}) {
  const jwt = new jose.SignJWT({ scope, ...extra })
    .setProtectedHeader({ alg: key.alg, kid })
    .setSubject(sub)
    .setIssuer(iss)
    .setAudience(aud)
    .setIssuedAt();
  jwt.setExpirationTime(exp);
  return jwt.sign(key.privateKey);
}

function bearer(token) {
  return { Authorization: `Bearer ${token}` };
}

async function initialize(upstream, headers = {}) {
  return rawFetch(gateway.mcp(upstream), {
    headers: { ...mcpHeaders({}), ...headers },
    body: initializeRequest(),
  });
}

function challenge(response) {
  return response.headers.get('www-authenticate') ?? '';
}

before(async () => {
  keys.rsa = await makeKey('RS256', 'rsa-1');
  keys.ec = await makeKey('ES256', 'ec-1');
  keys.ed = await makeKey('EdDSA', 'ed-1', { crv: 'Ed25519' });
  keys.retired = await makeKey('ES256', 'ec-0');
  keys.stranger = await makeKey('ES256', 'ec-1');  // same kid, different key

  const dir = tmpDir('membrane-auth-');
  jwksFile = path.join(dir, 'jwks.json');
  fs.writeFileSync(jwksFile, JSON.stringify({ keys: [keys.rsa.jwk, keys.ec.jwk, keys.ed.jwk] }));

  const recording = spawnManaged('recording upstream', NODE, [RECORDING_JS, '0']);
  const listening = await recording.waitForLine(/listening on (\S+)/, 15_000);
  const policyFile = path.join(dir, 'policy.yaml');
  fs.writeFileSync(policyFile, [
    '- rule: no-mallory',
    '  condition: identity.sub == "mallory"',
    '  verdict: deny',
    '  message: Mallory may not call tools',
    '- rule: partners-only-lookup',
    '  condition: tool.name == "lookup_customer" and not identity.claims.org == "partner"',
    '  verdict: deny',
    '',
  ].join('\n'));
  const config = path.join(dir, 'membrane.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'auth:',
    `  issuer: ${JSON.stringify(ISSUER)}`,
    `  audience: ${JSON.stringify(AUDIENCE)}`,
    `  jwks: ${JSON.stringify(jwksFile)}`,
    '  scopes: [mcp]',
    'policy:',
    `  paths: ${JSON.stringify(policyFile)}`,
    'upstreams:',
    '  rec:',
    `    url: ${JSON.stringify(listening[1])}`,
    '  admin:',
    `    url: ${JSON.stringify(listening[1])}`,
    '    scopes: [mcp:admin]',
    '',
  ].join('\n'));
  gateway = await startGateway(['-c', config], { name: 'membrane (auth)' });
});
after(cleanup);

describe('valid tokens', () => {
  for (const name of ['rsa', 'ec', 'ed']) {
    test(`${name}: an SDK client with a ${name === 'rsa' ? 'RS256' : name === 'ec' ? 'ES256' : 'EdDSA'} token works end to end`, async () => {
      const token = await mint(keys[name]);
      const { client } = await connectClient(gateway.mcp('rec'), { headers: bearer(token) });
      const result = await client.callTool({ name: 'echo', arguments: { message: 'hi' } });
      assert.equal(result.content[0].text, 'Echo: hi');
    });
  }

  test('a legacy SSE client with a token works end to end', async () => {
    const token = await mint(keys.ed);
    const { client } = await connectClient(gateway.sse('rec'), { kind: 'sse', headers: bearer(token) });
    const result = await client.callTool({ name: 'echo', arguments: { message: 'old' } });
    assert.equal(result.content[0].text, 'Echo: old');
  });

  test('the upstream never sees the caller\'s token', async () => {
    const token = await mint(keys.ec);
    const { client } = await connectClient(gateway.mcp('rec'), { headers: bearer(token) });
    const result = await client.callTool({ name: 'request_headers', arguments: {} });
    const headers = JSON.parse(result.content[0].text);
    assert.equal(headers.authorization, undefined);
    assert.ok(!JSON.stringify(headers).includes(token.split('.')[2]), 'no part of the token reached the upstream');
  });

  test('the token verified once is not logged verbatim', async () => {
    const token = await mint(keys.ec, { sub: 'log-check' });
    await initialize('rec', bearer(token));
    assert.ok(!gateway.lines.some((line) => line.includes(token.split('.')[2])));
  });
});

describe('refused tokens get 401 with a challenge naming the resource metadata', () => {
  const cases = [
    ['no token', async () => ({}), '', /authorization required/],
    ['not a bearer token', async () => ({ Authorization: 'Basic YWxpY2U6cHc=' }), 'invalid_request', /Bearer scheme/],
    ['expired', async () => bearer(await mint(keys.ec, { exp: Math.floor(Date.now() / 1000) - 600 })), 'invalid_token', /expired/],
    ['wrong audience', async () => bearer(await mint(keys.ec, { aud: 'https://other.test' })), 'invalid_token', /wrong audience/],
    ['wrong issuer', async () => bearer(await mint(keys.ec, { iss: 'https://evil.test' })), 'invalid_token', /wrong issuer/],
    ['bad signature (another key under a known kid)', async () => bearer(await mint(keys.stranger)), 'invalid_token', /invalid signature/],
    ['alg none', async () => bearer(new jose.UnsecuredJWT({ sub: 'alice', scope: 'mcp' }).setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime('5m').encode()), 'invalid_token', /'none' is not accepted/],
    ['unknown kid (a retired key)', async () => bearer(await mint(keys.retired)), 'invalid_token', /unknown key id 'ec-0'/],
    ['garbage', async () => bearer('not.a.jwt'), 'invalid_token', /malformed/],
  ];
  for (const [name, headers, error, description] of cases) {
    test(name, async () => {
      const response = await initialize('rec', await headers());
      assert.equal(response.status, 401, response.text);
      const www = challenge(response);
      assert.match(www, /^Bearer resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp\/rec"/);
      if (error) {
        assert.match(www, new RegExp(`error="${error}"`));
        assert.match(www, description);
      } else {
        assert.doesNotMatch(www, /error=/);
      }
      const body = response.json;
      assert.equal(body.jsonrpc, '2.0');
      assert.match(body.error.message, description);
    });
  }

  test('the legacy SSE endpoint is protected the same way', async () => {
    const response = await rawFetch(gateway.sse('rec'), { method: 'GET', headers: { Accept: 'text/event-stream' } });
    assert.equal(response.status, 401);
    assert.match(challenge(response), /oauth-protected-resource\/sse\/rec"/);
  });
});

describe('scopes', () => {
  test('an upstream that needs more scopes answers 403 insufficient_scope naming them', async () => {
    const response = await initialize('admin', bearer(await mint(keys.ec, { scope: 'mcp' })));
    assert.equal(response.status, 403);
    assert.match(challenge(response), /error="insufficient_scope"/);
    assert.match(challenge(response), /scope="mcp mcp:admin"/);
    const allowed = await initialize('admin', bearer(await mint(keys.ec, { scope: 'mcp mcp:admin' })));
    assert.equal(allowed.status, 200);
  });

  test('the global scope is required everywhere', async () => {
    const response = await initialize('rec', bearer(await mint(keys.ec, { scope: 'other' })));
    assert.equal(response.status, 403);
  });
});

describe('protected resource metadata (RFC 9728)', () => {
  test('per upstream path, with its scopes', async () => {
    const response = await rawFetch(`${gateway.base}/.well-known/oauth-protected-resource/mcp/admin`, { method: 'GET' });
    assert.equal(response.status, 200);
    const document = response.json;
    assert.equal(document.resource, `${gateway.base}/mcp/admin`);
    assert.deepEqual(document.authorization_servers, [ISSUER]);
    assert.deepEqual(document.bearer_methods_supported, ['header']);
    assert.deepEqual(document.scopes_supported, ['mcp', 'mcp:admin']);
  });

  test('for the gateway as a whole, and 404 for unknown paths', async () => {
    const root = await rawFetch(`${gateway.base}/.well-known/oauth-protected-resource`, { method: 'GET' });
    assert.equal(root.json.resource, gateway.base);
    const unknown = await rawFetch(`${gateway.base}/.well-known/oauth-protected-resource/mcp/nope`, { method: 'GET' });
    assert.equal(unknown.status, 404);
  });
});

describe('protected resource metadata for any Host (security.allowed_hosts: ["*"])', () => {
  let open;
  before(async () => {
    const dir = tmpDir('membrane-auth-hosts-');
    const config = path.join(dir, 'membrane.yaml');
    fs.writeFileSync(config, [
      'listen: "127.0.0.1:0"',
      'security: {allowed_hosts: ["*"]}',
      'auth:',
      `  issuer: ${JSON.stringify(ISSUER)}`,
      `  audience: ${JSON.stringify(AUDIENCE)}`,
      `  jwks: ${JSON.stringify(jwksFile)}`,
      'upstreams:',
      '  rec: {url: "http://127.0.0.1:9/mcp"}',
      '',
    ].join('\n'));
    open = await startGateway(['-c', config], { name: 'membrane (any host)' });
  });

  // The document repeats the Host header, which is any bytes: one that is not UTF-8 made the
  // gateway throw while writing it, and the client saw the connection close without an answer.
  test('a Host header that is not UTF-8 still gets the document', async () => {
    const answer = await new Promise((resolve, reject) => {
      const socket = net.connect({ port: open.port, host: '127.0.0.1' });
      const chunks = [];
      socket.on('data', (chunk) => chunks.push(chunk));
      socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      socket.on('error', reject);
      socket.setTimeout(10_000, () => reject(new Error('no answer in 10 s')));
      socket.write(Buffer.concat([
        Buffer.from('GET /.well-known/oauth-protected-resource/mcp/rec HTTP/1.1\r\nHost: gate'),
        Buffer.from([0xff, 0xfe]),
        Buffer.from('way.test\r\nConnection: close\r\n\r\n'),
      ]));
    });
    assert.match(answer, /^HTTP\/1\.1 200 /);
    const document = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
    assert.equal(document.resource, 'http://gate\uFFFD\uFFFDway.test/mcp/rec');
  });
});

describe('identity after authentication', () => {
  test('a session only serves the caller who opened it', async () => {
    const alice = await mint(keys.ec, { sub: 'alice' });
    const bob = await mint(keys.ec, { sub: 'bob' });
    const opened = await initialize('rec', bearer(alice));
    const sessionId = opened.headers.get('mcp-session-id');
    assert.ok(sessionId);
    const ping = (token) => rawFetch(gateway.mcp('rec'), {
      headers: { ...mcpHeaders({ sessionId }), ...bearer(token) },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
    });
    assert.equal((await ping(alice)).status, 200);
    assert.equal((await ping(bob)).status, 404);
  });

  test('policy rules see identity.sub and identity.claims', async () => {
    const mallory = await connectClient(gateway.mcp('rec'), { headers: bearer(await mint(keys.ec, { sub: 'mallory' })) });
    const denied = await mallory.client.callTool({ name: 'echo', arguments: { message: 'x' } });
    assert.equal(denied._meta?.['io.membrane/policy']?.rule, 'no-mallory');

    const alice = await connectClient(gateway.mcp('rec'), { headers: bearer(await mint(keys.ec)) });
    const refused = await alice.client.callTool({ name: 'lookup_customer', arguments: { customer_id: 'c-1' } });
    assert.equal(refused._meta?.['io.membrane/policy']?.rule, 'partners-only-lookup');
    const partner = await connectClient(gateway.mcp('rec'), { headers: bearer(await mint(keys.ec, { extra: { org: 'partner' } })) });
    const found = await partner.client.callTool({ name: 'lookup_customer', arguments: { customer_id: 'c-1' } });
    assert.equal(found.content[0].text, 'customer c-1');
  });
});

test('flags: --jwks, --issuer and --audience turn authorization on; one alone is a usage error', async () => {
  const flagged = await startGateway(['--upstream', 'rec=http://127.0.0.1:9/mcp', '--jwks', jwksFile, '--issuer', ISSUER, '--audience', AUDIENCE],
    { name: 'membrane (auth flags)' });
  const response = await rawFetch(flagged.mcp('rec'), { headers: mcpHeaders({}), body: JSON.stringify(initializeRequest()) });
  assert.equal(response.status, 401);
  const run = spawnSync(MEMBRANE_BIN, ['serve', '--upstream', 'rec=http://127.0.0.1:9/mcp', '--jwks', jwksFile], { encoding: 'utf8' });
  assert.notEqual(run.status, 0);
  assert.match(run.stderr, /--jwks FILE, --issuer ISS and --audience AUD together/);
});
