// The policy's views through the gateway: an argument's role comes from the tool's schema as the
// gateway saw it listed (per upstream), so a call is judged by what its arguments are, not by
// their names.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';

import { MEMBRANE_BIN, NODE, SOURCE_DIR, cleanup, connectClient, startGateway, stdioUpstreamFlag, tmpDir } from './harness.mjs';

const RUG_PULL_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'rug-pull-server.mjs');

after(cleanup);

test('an argument described as a file in the listed schema is judged as a path', async () => {
  const gateway = await startGateway([
    '--upstream', stdioUpstreamFlag('docs', [NODE, RUG_PULL_JS]),
    '--policy', path.join(SOURCE_DIR, 'policies', 'default'),
  ], { name: 'membrane (views)' });
  const { client } = await connectClient(gateway.mcp('docs'));
  // Before any listing the gateway knows nothing of `subject`: "id_rsa" is not path-shaped.
  const unknown = await client.callTool({ name: 'open_document', arguments: { subject: 'id_rsa' } });
  assert.ok(!unknown.isError, JSON.stringify(unknown));
  // The listing says `subject` is "Name of the file to open": from now on it is a path.
  await client.listTools();
  const known = await client.callTool({ name: 'open_document', arguments: { subject: 'id_rsa' } });
  assert.equal(known.isError, true, JSON.stringify(known));
  assert.match(known.content[0].text, /sensitive-credentials/);
  const ordinary = await client.callTool({ name: 'open_document', arguments: { subject: 'README.md' } });
  assert.ok(!ordinary.isError, JSON.stringify(ordinary));
  assert.match(ordinary.content[0].text, /opened README\.md/);
});

test('commands are judged whatever the tool and argument are called', async () => {
  const gateway = await startGateway([
    '--upstream', stdioUpstreamFlag('docs', [NODE, RUG_PULL_JS]),
    '--policy', path.join(SOURCE_DIR, 'policies', 'default'),
  ], { name: 'membrane (views, shapes)' });
  const { client } = await connectClient(gateway.mcp('docs'));
  // `add` takes numbers; a call smuggling a metadata URL or a key path in extra arguments is
  // judged on the values, which the upstream would have received.
  const metadata = await client.callTool({ name: 'add', arguments: { a: 1, b: 2, callback: 'http://169.254.169.254/latest/meta-data/' } });
  assert.equal(metadata.isError, true);
  assert.match(metadata.content[0].text, /cloud-metadata/);
  const key = await client.callTool({ name: 'add', arguments: { a: 1, b: 2, attachments: ['notes.md', '~/.ssh/id_ed25519'] } });
  assert.equal(key.isError, true);
  assert.match(key.content[0].text, /sensitive-credentials/);
  const fine = await client.callTool({ name: 'add', arguments: { a: 1, b: 2 } });
  assert.equal(fine.content[0].text, '3');
});

test('policy explain shows the views it judged a call on', () => {
  const call = { server: 'sh', params: { name: 'Bash', arguments: { command: 'echo Y2F0IH4vLnNzaC9pZF9yc2E= | base64 -d | sudo sh' } } };
  const explain = spawnSync(MEMBRANE_BIN, ['policy', 'explain', '-p', path.join(SOURCE_DIR, 'policies', 'default'),
    '--format', 'json', '--call', JSON.stringify(call)], { encoding: 'utf8' });
  assert.equal(explain.status, 0, explain.stderr);
  const out = JSON.parse(explain.stdout);
  assert.equal(out.verdict, 'deny');
  assert.deepEqual(out.views['call.code'], ['cat ~/.ssh/id_rsa']);
  assert.deepEqual(out.views['call.code.source'], ['decoded']);
  assert.ok(out.views['call.paths'].includes('~/.ssh/id_rsa'), JSON.stringify(out.views));
  assert.ok(out.views['call.commands.pipeline'].includes('echo | base64 | sh'), JSON.stringify(out.views));
  const text = spawnSync(MEMBRANE_BIN, ['policy', 'explain', '-p', path.join(SOURCE_DIR, 'policies', 'default'),
    '--call', JSON.stringify(call)], { encoding: 'utf8' });
  assert.match(text.stdout, /call\.code\.source: \["decoded"\]/);
});

test('policy test reports labelled cases per area and fails on a miss', () => {
  const dir = tmpDir('membrane-corpus-');
  fs.mkdirSync(path.join(dir, 'schemas'));
  fs.writeFileSync(path.join(dir, 'schemas', 'x.json'), JSON.stringify({
    server: 'x', tools: [{ name: 'open', inputSchema: { type: 'object', properties: { target: { type: 'string', description: 'File to open' } } } }],
  }));
  const cases = (label) => [
    '- tools: schemas/x.json',
    '- name: a key by a schema-described argument',
    '  area: sensitive-paths',
    `  label: ${label}`,
    '  call: {server: x, params: {name: open, arguments: {target: id_rsa}}}',
    '- name: an ordinary file',
    '  area: sensitive-paths',
    '  label: allow',
    '  call: {server: x, params: {name: open, arguments: {target: README.md}}}',
    '- name: a tool the recording lacks',
    '  area: ordinary',
    '  label: allow',
    '  call: {server: x, params: {name: missing, arguments: {}}}',
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'x.test.yaml'), cases('deny'));
  const run = spawnSync(MEMBRANE_BIN, ['policy', 'test', '-p', path.join(SOURCE_DIR, 'policies', 'default'), dir], { encoding: 'utf8' });
  assert.equal(run.status, 1, run.stdout);
  assert.match(run.stdout, /tool 'missing' is not in the recording of server 'x'/);
  assert.match(run.stdout, /sensitive-paths\s+1\s+1\s+100\.0%\s+1\s+0/);
  assert.match(run.stdout, /2 passed, 1 failed/);
});
