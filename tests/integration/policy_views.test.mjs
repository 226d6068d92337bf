// The policy's views through the gateway: an argument's role comes from the tool's schema as the
// gateway saw it listed (per upstream), so a call is judged by what its arguments are, not by
// their names.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, test } from 'node:test';

import { NODE, SOURCE_DIR, cleanup, connectClient, startGateway, stdioUpstreamFlag } from './harness.mjs';

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
