// Tool pinning (the rug-pull defence) with a real SDK server whose tool definition changes after
// it was listed, through the gateway and the default ruleset:
// - pinned at first sight: the change (announced by notifications/tools/list_changed) hides the
//   tool from the next tools/list, refuses its calls, and logs an ALERT naming what changed;
// - pinned by a committed pins file (`membrane policy pin`): a server that changed before the
//   gateway ever saw it is caught on the first listing, and re-pinning (a reload) brings it back.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';

import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

import {
  MEMBRANE_BIN, NODE, SOURCE_DIR, cleanup, connectClient, freePort, spawnManaged, startGateway,
  stdioUpstreamFlag, tmpDir, waitFor, withTimeout,
} from './harness.mjs';

const RUG_PULL_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'rug-pull-server.mjs');
const DEFAULT_POLICY = path.join(SOURCE_DIR, 'policies', 'default');

after(cleanup);

const names = (listing) => listing.tools.map((tool) => tool.name).sort();

function recordTools(...flags) {
  return execFileSync(NODE, [RUG_PULL_JS, '--print-tools', ...flags], { cwd: path.join(SOURCE_DIR, 'tests') });
}

// A gateway config serving the fixture as upstream `rug` under the default ruleset.
function writeConfig(dir, name, { flags = [], pins, redisPort } = {}) {
  const config = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'upstreams:',
    '  rug:',
    `    command: ${JSON.stringify(NODE)}`,
    `    args: [${[RUG_PULL_JS, ...flags].map((arg) => JSON.stringify(arg)).join(', ')}]`,
    'policy:',
    `  paths: [${JSON.stringify(DEFAULT_POLICY)}]`,
    ...(pins ? [`  pins: ${JSON.stringify(pins)}`] : []),
    ...(redisPort ? ['cluster:', '  redis:', `    url: "redis://127.0.0.1:${redisPort}/0"`] : []),
    '',
  ].join('\n'));
  return config;
}

function pin(pinsFile, recording) {
  return execFileSync(MEMBRANE_BIN, ['policy', 'pin', '--pins', pinsFile, '-'], { input: recording }).toString();
}

test('a tool that changes after it was listed is hidden, refused and alerted', async () => {
  const gateway = await startGateway([
    '--upstream', stdioUpstreamFlag('rug', [NODE, RUG_PULL_JS]),
    '--policy', DEFAULT_POLICY,
  ], { name: 'membrane (pinning, first sight)' });
  const { client } = await connectClient(gateway.mcp('rug'));
  assert.deepEqual(names(await client.listTools()), ['add', 'open_document', 'publish_update', 'weather']);
  const before = await client.callTool({ name: 'weather', arguments: { city: 'Paris' } });
  assert.ok(!before.isError, JSON.stringify(before));

  let announced;
  const listChanged = new Promise((resolve) => { announced = resolve; });
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => announced());
  const update = await client.callTool({ name: 'publish_update', arguments: {} });
  assert.ok(!update.isError, JSON.stringify(update));
  await withTimeout(listChanged, 10_000, 'notifications/tools/list_changed through the gateway');

  // The client re-lists, as it does on list_changed: the changed tool is gone, the others stay.
  assert.deepEqual(names(await client.listTools()), ['add', 'open_document', 'publish_update']);
  await waitFor(() => gateway.lines.some((line) => /ALERT tool 'weather' of upstream 'rug' changed since it was pinned \(description, inputSchema\)/.test(line)),
    { what: 'the pinning alert in the gateway log' });

  // A client that kept the old list still cannot call it.
  const after = await client.callTool({ name: 'weather', arguments: { city: 'Paris', notes: 'x' } });
  assert.equal(after.isError, true);
  assert.match(after.content[0].text, /tool-definition-changed/);
  assert.equal(after._meta?.['io.membrane/policy']?.rule, 'tool-definition-changed');
  const other = await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
  assert.equal(other.content[0].text, '5');

  // One alert per change, not one per listing.
  await client.listTools();
  const alerts = gateway.lines.filter((line) => /ALERT tool 'weather'/.test(line));
  assert.equal(alerts.length, 1, alerts.join('\n'));
});

test('a committed pins file catches a server that changed before the gateway saw it, and re-pinning restores the tool', async () => {
  const dir = tmpDir('membrane-pins-');
  const pins = path.join(dir, 'pins.yaml');
  const output = pin(pins, recordTools());
  assert.match(output, /added {5}rug\/weather sha256:[0-9a-f]{64}/);
  assert.match(output, /4 tools pinned, 4 changes/);
  const config = writeConfig(dir, 'membrane', { flags: ['--changed'], pins });
  const gateway = await startGateway(['-c', config], { name: 'membrane (pinning, pins file)' });
  const { client } = await connectClient(gateway.mcp('rug'));
  assert.deepEqual(names(await client.listTools()), ['add', 'open_document', 'publish_update']);
  const refused = await client.callTool({ name: 'weather', arguments: { city: 'Oslo' } });
  assert.equal(refused.isError, true);

  // The operator reviews the change and pins it: the file watcher reloads the pins.
  const repinned = pin(pins, recordTools('--changed'));
  assert.match(repinned, /changed {3}rug\/weather \(description, inputSchema\)/);
  await waitFor(async () => names(await client.listTools()).includes('weather'),
    { timeoutMs: 15_000, what: 'the re-pinned tool listed again after the reload' });
  const allowed = await client.callTool({ name: 'weather', arguments: { city: 'Oslo' } });
  assert.ok(!allowed.isError, JSON.stringify(allowed));
});

test('replicas sharing Redis share first-seen pins: the first replica to list a tool pins it for all', async () => {
  const port = await freePort();
  const redis = spawnManaged(`redis-server:${port}`, 'redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
  ]);
  await redis.waitForLine(/Ready to accept connections/, 10_000);
  const dir = tmpDir('membrane-pins-redis-');
  const replica = async (name, flags) => {
    const config = writeConfig(dir, name, { flags, redisPort: port });
    const gateway = await startGateway(['-c', config], { name: `membrane (pinning, ${name})` });
    return (await connectClient(gateway.mcp('rug'))).client;
  };
  // Replica A sees the original definition first; replica B's server already changed it.
  const a = await replica('a', []);
  assert.deepEqual(names(await a.listTools()), ['add', 'open_document', 'publish_update', 'weather']);
  const key = 'membrane:pin:rug/weather';
  await waitFor(() => execFileSync('redis-cli', ['-p', String(port), 'EXISTS', key]).toString().trim() === '1',
    { what: 'replica A pinning weather in Redis' });
  const b = await replica('b', ['--changed']);
  await waitFor(async () => !names(await b.listTools()).includes('weather'),
    { what: 'replica B adopting the pin replica A took first' });
  const refused = await b.callTool({ name: 'weather', arguments: { city: 'Rome' } });
  assert.equal(refused.isError, true);
  assert.match(refused.content[0].text, /tool-definition-changed/);
});

test('a broken pins file is refused by the pin command and at start-up, with file:line', async () => {
  const dir = tmpDir('membrane-pins-bad-');
  const pins = path.join(dir, 'pins.yaml');
  fs.writeFileSync(pins, 'upstreams:\n  rug:\n    weather: {digest: "md5:abc"}\n');
  let failure = '';
  try {
    execFileSync(MEMBRANE_BIN, ['policy', 'pin', '--pins', pins, '-'], { input: recordTools(), stdio: 'pipe' });
  } catch (error) {
    failure = error.stderr.toString();
  }
  assert.match(failure, /pins\.yaml:3:\d+: tool 'weather': a digest is 'sha256:' and 64 hex digits/);

  const config = writeConfig(dir, 'membrane', { pins });
  const started = spawnSync(MEMBRANE_BIN, ['serve', '-c', config], { timeout: 20_000 });
  assert.notEqual(started.status, 0, 'the gateway must not start with a broken pins file');
  assert.match(started.stderr.toString(), /pins\.yaml:3:\d+: tool 'weather'/);
});
