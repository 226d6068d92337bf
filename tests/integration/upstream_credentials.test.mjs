// Credentials the gateway presents to upstreams on its own behalf: a static value from an
// environment variable or a file, or an OAuth client-credentials token fetched from a real token
// endpoint and cached. The agent never sees them, and its own token never reaches the upstream.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  NODE, SOURCE_DIR, cleanup, connectClient, rawFetch, spawnManaged, startGateway, tmpDir,
} from './harness.mjs';

const RECORDING_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'recording-server.mjs');
const TOKEN_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'token-server.mjs');

let gateway;
let tokenBase;

before(async () => {
  const dir = tmpDir('membrane-creds-');
  const recording = spawnManaged('recording upstream', NODE, [RECORDING_JS, '0']);
  const upstream = (await recording.waitForLine(/listening on (\S+)/, 15_000))[1];
  const tokens = spawnManaged('token endpoint', NODE, [TOKEN_JS, '0', 'membrane-gw', 's3cr3t:with spaces', '3600']);
  tokenBase = (await tokens.waitForLine(/listening on (\S+)/, 15_000))[1];
  fs.writeFileSync(path.join(dir, 'crm.secret'), 'file-secret-value\n');
  fs.writeFileSync(path.join(dir, 'client.secret'), 's3cr3t:with spaces\n');
  const config = path.join(dir, 'membrane.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'upstreams:',
    '  from-env:',
    `    url: ${JSON.stringify(upstream)}`,
    '    credentials: {env: MEMBRANE_TEST_UPSTREAM_TOKEN, scheme: Bearer}',
    '  from-file:',
    `    url: ${JSON.stringify(upstream)}`,
    `    credentials: {file: ${JSON.stringify(path.join(dir, 'crm.secret'))}, header: X-Api-Key}`,
    '  oauth:',
    `    url: ${JSON.stringify(upstream)}`,
    '    credentials:',
    `      token_url: ${JSON.stringify(`${tokenBase}/token`)}`,
    '      client_id: membrane-gw',
    `      client_secret_file: ${JSON.stringify(path.join(dir, 'client.secret'))}`,
    '      scope: crm.read',
    '      audience: https://crm.test',
    '',
  ].join('\n'));
  gateway = await startGateway(['-c', config], { name: 'membrane (credentials)', env: { MEMBRANE_TEST_UPSTREAM_TOKEN: 'env-secret-value' } });
});
after(cleanup);

async function headersAt(upstream, agentHeaders = {}) {
  const { client } = await connectClient(gateway.mcp(upstream), { headers: agentHeaders });
  const result = await client.callTool({ name: 'request_headers', arguments: {} });
  return JSON.parse(result.content[0].text);
}

test('a static credential from an environment variable replaces the agent\'s Authorization', async () => {
  const seen = await headersAt('from-env', { Authorization: 'Bearer agent-token' });
  assert.equal(seen.authorization, 'Bearer env-secret-value');
});

test('a static credential from a file goes in the configured header', async () => {
  const seen = await headersAt('from-file');
  assert.equal(seen['x-api-key'], 'file-secret-value');
  assert.equal(seen.authorization, undefined);
});

test('client credentials: the token endpoint is asked once and the token reused', async () => {
  const first = await headersAt('oauth', { Authorization: 'Bearer agent-token' });
  const second = await headersAt('oauth');
  assert.equal(first.authorization, 'Bearer cc-token-1');
  assert.equal(second.authorization, 'Bearer cc-token-1');
  const issued = (await rawFetch(`${tokenBase}/issued`, { method: 'GET' })).json;
  assert.equal(issued.count, 1);
  assert.deepEqual(issued.last, { grant_type: 'client_credentials', scope: 'crm.read', audience: 'https://crm.test', resource: 'https://crm.test' });
});

test('secrets never appear in the gateway log', () => {
  const log = gateway.lines.join('\n');
  for (const secret of ['env-secret-value', 'file-secret-value', 's3cr3t', 'cc-token-1']) {
    assert.ok(!log.includes(secret), `${secret} is not logged`);
  }
});

test('a missing secret stops start-up with a clear message', async () => {
  const dir = tmpDir('membrane-creds-');
  const config = path.join(dir, 'membrane.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'upstreams:',
    '  x:',
    '    url: http://127.0.0.1:9/mcp',
    '    credentials: {env: MEMBRANE_TEST_NOT_SET}',
    '',
  ].join('\n'));
  await assert.rejects(startGateway(['-c', config], { name: 'membrane (missing secret)' }),
    /environment variable MEMBRANE_TEST_NOT_SET is not set/);
});
