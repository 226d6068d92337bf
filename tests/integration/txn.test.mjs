// Transaction tokens end to end: the upstream (a real SDK server that reports what it received)
// gets a Txn-Token that verifies with `jose` against the gateway's /.well-known/jwks.json, has
// `typ: txntoken+jwt` and the draft's claims; one token serves a whole transaction (the session's,
// or one the client declares), with `per: call` as the explicit other mode; an incoming token from a
// trusted service is kept (its transaction continues) and a policy on txn.tctx holds the call to
// it; untrusted tokens are refused; the signing key is created once and persisted.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import * as jose from 'jose';

import {
  NODE, SOURCE_DIR, cleanup, connectClient, initializeRequest, mcpHeaders, rawFetch, spawnManaged, startGateway,
  tmpDir,
} from './harness.mjs';

const ISSUER = 'https://issuer.membrane.test';
const AUDIENCE = 'https://mcp.membrane.test';
const TRUST_DOMAIN = 'bank.membrane.test';
const RECORDING_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'recording-server.mjs');

let dir;
let upstreamUrl;
let idp;
let bankApp;
let gateway;
let txnKeyFile;
let dbService;

async function makeKey(kid) {
  const { publicKey, privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
  return { kid, privateKey, jwk: { ...(await jose.exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

async function accessToken(sub = 'alice') {
  return new jose.SignJWT({ scope: 'mcp' }).setProtectedHeader({ alg: 'ES256', kid: idp.kid })
    .setSubject(sub).setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt().setExpirationTime('5m').sign(idp.privateKey);
}

// A transaction token as another service of the trust domain (the bank's app) would mint it.
async function bankTxnToken({ customer = 'c-1', aud = TRUST_DOMAIN, key = bankApp, exp = '2m', typ = 'txntoken+jwt' } = {}) {
  return new jose.SignJWT({ txn: 'bank-txn-42', scope: 'customer:read', req_wl: 'bank-app', tctx: { customer_id: customer } })
    .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ })
    .setSubject('alice').setAudience(aud).setIssuedAt().setExpirationTime(exp).sign(key.privateKey);
}

function writeConfig(name, extra = []) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, [
    'listen: "127.0.0.1:0"',
    'auth:',
    `  issuer: ${JSON.stringify(ISSUER)}`,
    `  audience: ${JSON.stringify(AUDIENCE)}`,
    `  jwks: ${JSON.stringify(path.join(dir, 'idp.json'))}`,
    'txn:',
    `  key_file: ${JSON.stringify(txnKeyFile)}`,
    `  trust_domain: ${JSON.stringify(TRUST_DOMAIN)}`,
    '  workload: membrane-test',
    '  context: [customer_id]',
    `  trusted_jwks: ${JSON.stringify(path.join(dir, 'bank.json'))}`,
    `  exchange_clients: ${JSON.stringify(path.join(dir, 'workloads.json'))}`,
    ...extra,
    'policy:',
    `  paths: ${JSON.stringify(path.join(dir, 'policy.yaml'))}`,
    'upstreams:',
    '  rec:',
    `    url: ${JSON.stringify(upstreamUrl)}`,
    '',
  ].join('\n'));
  return file;
}

async function headersSeenUpstream(client) {
  const result = await client.callTool({ name: 'request_headers', arguments: {} });
  return JSON.parse(result.content[0].text);
}

async function gatewayKeys(gw) {
  const response = await rawFetch(`${gw.base}/.well-known/jwks.json`, { method: 'GET' });
  assert.equal(response.status, 200);
  return jose.createLocalJWKSet(response.json);
}

before(async () => {
  dir = tmpDir('membrane-txn-');
  txnKeyFile = path.join(dir, 'txn-key.json');
  idp = await makeKey('idp-1');
  bankApp = await makeKey('bank-1');
  fs.writeFileSync(path.join(dir, 'idp.json'), JSON.stringify({ keys: [idp.jwk] }));
  fs.writeFileSync(path.join(dir, 'bank.json'), JSON.stringify({ keys: [bankApp.jwk] }));
  dbService = await makeKey('db-service');
  fs.writeFileSync(path.join(dir, 'workloads.json'), JSON.stringify({ keys: [dbService.jwk] }));
  fs.writeFileSync(path.join(dir, 'policy.yaml'), [
    '- rule: stay-in-the-transaction',
    '  description: A call may only touch the customer its transaction is about.',
    '  condition: tool.name == "lookup_customer" and args.customer_id != txn.tctx.customer_id',
    '  verdict: deny',
    '  message: This transaction is about another customer.',
    '',
  ].join('\n'));
  const recording = spawnManaged('recording upstream', NODE, [RECORDING_JS, '0']);
  upstreamUrl = (await recording.waitForLine(/listening on (\S+)/, 15_000))[1];
  gateway = await startGateway(['-c', writeConfig('membrane.yaml')], { name: 'membrane (txn)' });
});
after(cleanup);

async function callWithHeaders(client, { args = {}, meta } = {}) {
  const params = { name: 'request_headers', arguments: args };
  if (meta) params._meta = meta;
  const result = await client.callTool(params);
  return jose.decodeJwt(JSON.parse(result.content[0].text)['txn-token']);
}

describe('minted tokens (one per transaction, the default)', () => {
  test('the upstream gets a Txn-Token that verifies against the published JWKS with the draft\'s claims', async () => {
    const { client } = await connectClient(gateway.mcp('rec'), { headers: { Authorization: `Bearer ${await accessToken()}` } });
    const seen = await headersSeenUpstream(client);
    assert.ok(seen['txn-token'], 'Txn-Token header reached the upstream');
    const { payload, protectedHeader } = await jose.jwtVerify(seen['txn-token'], await gatewayKeys(gateway), {
      audience: TRUST_DOMAIN,
      typ: 'txntoken+jwt',
    });
    assert.equal(protectedHeader.alg, 'ES256');
    assert.ok(protectedHeader.kid);
    assert.equal(payload.sub, 'alice');
    assert.equal(payload.req_wl, 'membrane-test');
    assert.equal(payload.scope, 'mcp');
    assert.match(payload.txn, /^s-[A-Za-z0-9_-]{16,}$/);
    assert.ok(payload.exp - payload.iat <= 300 && payload.exp > payload.iat);
    // The transaction's context, not one call's: the call is in the message the token goes with.
    assert.deepEqual(payload.tctx, { server: 'rec' });
    assert.equal(payload.rctx.client_ip, '127.0.0.1');
    assert.equal(payload.rctx.authn, 'bearer-jwt');
    assert.equal(payload.rctx.agent, 'membrane-it', 'the client\'s declared name');
    assert.equal(seen.authorization, undefined, 'the agent\'s bearer token never reaches the upstream');
  });

  test('a session is one transaction: its calls carry the same token, another session another', async () => {
    const { client } = await connectClient(gateway.mcp('rec'), { headers: { Authorization: `Bearer ${await accessToken()}` } });
    const first = (await headersSeenUpstream(client))['txn-token'];
    const second = (await headersSeenUpstream(client))['txn-token'];
    assert.equal(first, second, 'minted once, reused for the session');
    const other = await connectClient(gateway.mcp('rec'), { headers: { Authorization: `Bearer ${await accessToken()}` } });
    assert.notEqual(jose.decodeJwt((await headersSeenUpstream(other.client))['txn-token']).txn, jose.decodeJwt(first).txn);
  });

  test('a declared transaction spans the caller\'s sessions and is the caller\'s own', async () => {
    const meta = { 'io.membrane/transaction': 'refund-4711' };
    const one = await connectClient(gateway.mcp('rec'), { headers: { Authorization: `Bearer ${await accessToken()}` } });
    const two = await connectClient(gateway.mcp('rec'), { headers: { Authorization: `Bearer ${await accessToken()}` } });
    const declaredOne = await callWithHeaders(one.client, { meta });
    const declaredTwo = await callWithHeaders(two.client, { meta });
    assert.match(declaredOne.txn, /^c-/);
    assert.equal(declaredOne.txn, declaredTwo.txn, 'the same transaction from two sessions');
    assert.notEqual((await callWithHeaders(one.client)).txn, declaredOne.txn, 'the session\'s own transaction is another');
    const other = await connectClient(gateway.mcp('rec'), { headers: { Authorization: `Bearer ${await accessToken('bob')}` } });
    const bobs = await callWithHeaders(other.client, { meta });
    assert.equal(bobs.sub, 'bob');
    assert.notEqual(bobs.txn, declaredOne.txn, 'another caller naming the same transaction gets its own');
  });

  test('a malformed declared transaction is refused with a clear error', async () => {
    const { client } = await connectClient(gateway.mcp('rec'), { headers: { Authorization: `Bearer ${await accessToken()}` } });
    for (const bad of ['', 'x'.repeat(129), 'has space', 42, { id: 1 }]) {
      await assert.rejects(
        client.callTool({ name: 'echo', arguments: { message: 'x' }, _meta: { 'io.membrane/transaction': bad } }),
        /io\.membrane\/transaction.*1 to 128 visible ASCII/,
      );
    }
  });

  test('argument values named in txn.context are added to the transaction\'s token (a replacement)', async () => {
    const { client } = await connectClient(gateway.mcp('rec'), { headers: { Authorization: `Bearer ${await accessToken()}` } });
    const plain = await callWithHeaders(client);
    const withCustomer = await callWithHeaders(client, { args: { customer_id: 'c-7' } });
    assert.equal(withCustomer.txn, plain.txn, 'still the session\'s transaction');
    assert.deepEqual(withCustomer.tctx, { server: 'rec', customer_id: 'c-7' });
    assert.deepEqual((await callWithHeaders(client, { args: { customer_id: 'c-8' } })).tctx.customer_id, 'c-8');
    const result = await client.callTool({ name: 'lookup_customer', arguments: { customer_id: 'c-7' } });
    assert.equal(result.content[0].text, 'customer c-7');
  });

  test('tokens are never logged verbatim', async () => {
    const { client } = await connectClient(gateway.mcp('rec'), { headers: { Authorization: `Bearer ${await accessToken()}` } });
    const token = (await headersSeenUpstream(client))['txn-token'];
    assert.ok(!gateway.lines.some((line) => line.includes(token.split('.')[2])));
  });
});

describe('per: call', () => {
  let perCall;
  before(async () => {
    perCall = await startGateway(['-c', writeConfig('per-call.yaml', ['  per: call'])], { name: 'membrane (txn per call)' });
  });

  test('every call is its own transaction, and its context names the call', async () => {
    const { client } = await connectClient(perCall.mcp('rec'), { headers: { Authorization: `Bearer ${await accessToken()}` } });
    const first = await callWithHeaders(client);
    const second = await callWithHeaders(client, { meta: { 'io.membrane/transaction': 'ignored-per-call' } });
    assert.notEqual(first.txn, second.txn);
    assert.match(first.txn, /^[A-Za-z0-9_-]{16,}$/);
    assert.deepEqual(first.tctx, { method: 'tools/call', server: 'rec', tool: 'request_headers' });
    const withCustomer = await callWithHeaders(client, { args: { customer_id: 'c-9' } });
    assert.equal(withCustomer.tctx.customer_id, 'c-9');
  });

  test('a listing carries no token', async () => {
    const { client } = await connectClient(perCall.mcp('rec'), { headers: { Authorization: `Bearer ${await accessToken()}` } });
    assert.ok((await client.listTools()).tools.length > 0);
  });
});

describe('incoming transaction tokens', () => {
  test('a token from a trusted service is kept as it came: its transaction continues', async () => {
    const incoming = await bankTxnToken();
    const { client } = await connectClient(gateway.mcp('rec'), {
      headers: { Authorization: `Bearer ${await accessToken()}`, 'Txn-Token': incoming },
    });
    assert.equal((await headersSeenUpstream(client))['txn-token'], incoming);
  });

  test('a policy on txn.tctx denies a call outside the transaction and allows the one inside', async () => {
    const { client } = await connectClient(gateway.mcp('rec'), {
      headers: { Authorization: `Bearer ${await accessToken()}`, 'Txn-Token': await bankTxnToken({ customer: 'c-1' }) },
    });
    const inside = await client.callTool({ name: 'lookup_customer', arguments: { customer_id: 'c-1' } });
    assert.equal(inside.content[0].text, 'customer c-1');
    const outside = await client.callTool({ name: 'lookup_customer', arguments: { customer_id: 'c-2' } });
    assert.equal(outside.isError, true);
    assert.equal(outside._meta['io.membrane/policy'].rule, 'stay-in-the-transaction');
  });

  const refused = [
    ['signed by an untrusted key', async () => bankTxnToken({ key: await makeKey('bank-1') }), /invalid signature/],
    ['for another trust domain', async () => bankTxnToken({ aud: 'other.test' }), /wrong audience/],
    ['expired', async () => bankTxnToken({ exp: Math.floor(Date.now() / 1000) - 120 }), /expired/],
    ['without typ txntoken+jwt', async () => bankTxnToken({ typ: 'JWT' }), /txntoken\+jwt/],
    ['from the agent\'s identity provider instead', async () => accessToken(), /unknown key id 'idp-1'/],
  ];
  for (const [name, token, why] of refused) {
    test(`an incoming token ${name} is refused with 401`, async () => {
      const opened = await rawFetch(gateway.mcp('rec'), {
        headers: { ...mcpHeaders({}), Authorization: `Bearer ${await accessToken()}` },
        body: initializeRequest(),
      });
      const sessionId = opened.headers.get('mcp-session-id');
      const response = await rawFetch(gateway.mcp('rec'), {
        headers: { ...mcpHeaders({ sessionId }), Authorization: `Bearer ${await accessToken()}`, 'Txn-Token': await token() },
        body: { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'echo', arguments: { message: 'x' } } },
      });
      assert.equal(response.status, 401);
      assert.match(response.json.error.message, /invalid Txn-Token/);
      assert.match(response.json.error.message, why);
    });
  }
});

describe('keys', () => {
  test('the signing key is created once (mode 0600) and kept across restarts', async () => {
    const mode = fs.statSync(txnKeyFile).mode & 0o777;
    assert.equal(mode, 0o600);
    const before = JSON.parse(fs.readFileSync(txnKeyFile, 'utf8')).keys[0].kid;
    const again = await startGateway(['-c', writeConfig('again.yaml')], { name: 'membrane (txn, restarted)' });
    const response = await rawFetch(`${again.base}/.well-known/jwks.json`, { method: 'GET' });
    assert.deepEqual(response.json.keys.map((key) => key.kid), [before]);
    assert.equal(response.json.keys[0].d, undefined, 'no private part is published');
  });
});

describe('token exchange (POST /txn/token)', () => {
  const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
  const TXN = 'urn:ietf:params:oauth:token-type:txn_token';

  async function clientAssertion({ key = dbService, iss = 'db-service', aud = TRUST_DOMAIN } = {}) {
    return new jose.SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: key.kid })
      .setIssuer(iss).setSubject(iss).setAudience(aud).setIssuedAt().setExpirationTime('1m').sign(key.privateKey);
  }

  async function receivedToken() {
    const { client } = await connectClient(gateway.mcp('rec'), { headers: { Authorization: `Bearer ${await accessToken()}` } });
    return (await headersSeenUpstream(client))['txn-token'];
  }

  async function exchange(fields) {
    return rawFetch(`${gateway.base}/txn/token`, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
  }

  async function request(overrides = {}) {
    return {
      grant_type: GRANT,
      requested_token_type: TXN,
      subject_token: await receivedToken(),
      subject_token_type: TXN,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await clientAssertion(),
      ...overrides,
    };
  }

  test('a replacement keeps txn, sub and aud, may narrow scope and add context', async () => {
    const fields = await request({ request_details: JSON.stringify({ table: 'accounts' }) });
    const original = jose.decodeJwt(fields.subject_token);
    const response = await exchange(fields);
    assert.equal(response.status, 200, response.text);
    assert.equal(response.headers.get('cache-control'), 'no-store');
    assert.equal(response.json.issued_token_type, TXN);
    assert.equal(response.json.token_type, 'N_A');
    const { payload } = await jose.jwtVerify(response.json.access_token, await gatewayKeys(gateway), { audience: TRUST_DOMAIN, typ: 'txntoken+jwt' });
    assert.equal(payload.txn, original.txn);
    assert.equal(payload.sub, original.sub);
    assert.equal(payload.aud, original.aud);
    assert.equal(payload.tctx.table, 'accounts');
    assert.equal(payload.tctx.server, original.tctx.server);
    assert.equal(payload.rctx.replaced_by, 'db-service');
    assert.ok(payload.exp <= original.exp, 'a replacement never outlives the original');
  });

  test('widening the scope is refused', async () => {
    const response = await exchange(await request({ scope: 'mcp admin' }));
    assert.equal(response.status, 400);
    assert.equal(response.json.error, 'invalid_scope');
  });

  test('changing the transaction context is refused', async () => {
    const response = await exchange(await request({ request_details: JSON.stringify({ server: 'something_else' }) }));
    assert.equal(response.status, 400);
    assert.match(response.json.error_description, /only add/);
  });

  test('an expired token is never replaced', async () => {
    const expired = await bankTxnToken({ exp: Math.floor(Date.now() / 1000) - 300 });
    const response = await exchange(await request({ subject_token: expired }));
    assert.equal(response.status, 400);
    assert.equal(response.json.error, 'invalid_grant');
    assert.match(response.json.error_description, /expired/);
  });

  test('unauthenticated or unknown requesters are refused', async () => {
    const fields = await request();
    delete fields.client_assertion;
    assert.equal((await exchange(fields)).json.error, 'invalid_client');
    const stranger = await exchange(await request({ client_assertion: await clientAssertion({ key: await makeKey('db-service') }) }));
    assert.equal(stranger.status, 401);
    assert.match(stranger.json.error_description, /invalid signature/);
    const otherAudience = await exchange(await request({ client_assertion: await clientAssertion({ aud: 'elsewhere' }) }));
    assert.equal(otherAudience.status, 401);
  });

  // The form is any bytes: a description quoting a scope that is not UTF-8 once decoded made the
  // gateway throw while writing its answer, and the client saw the connection close instead.
  test('a refusal quoting bytes that are not UTF-8 is still answered', async () => {
    const fields = await request();
    const response = await rawFetch(`${gateway.base}/txn/token`, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `${new URLSearchParams(fields).toString()}&scope=mcp%FF%FE`,
    });
    assert.equal(response.status, 400, response.text);
    assert.equal(response.json.error, 'invalid_scope');
    assert.match(response.json.error_description, /scope 'mcp\uFFFD\uFFFD'/);
  });

  test('wrong grant or token types are refused', async () => {
    assert.equal((await exchange(await request({ grant_type: 'client_credentials' }))).json.error, 'unsupported_grant_type');
    assert.equal((await exchange(await request({ requested_token_type: 'urn:ietf:params:oauth:token-type:access_token' }))).json.error, 'invalid_request');
  });
});
