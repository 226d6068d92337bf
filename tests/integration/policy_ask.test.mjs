// The `ask` verdict end to end: the gateway asks the human through an MCP elicitation on the
// caller's own session and forwards the call only when the answer is accept. Real peers: the SDK
// client answering the elicitation, @modelcontextprotocol/server-filesystem over stdio (files on
// disk prove what reached it) and server-everything over Streamable HTTP.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  NODE, SOURCE_DIR, cleanup, connectClient, startEverythingHttp, startGateway, tmpDir,
} from './harness.mjs';

const FILESYSTEM_JS = path.join(SOURCE_DIR, 'tests', 'node_modules', '@modelcontextprotocol', 'server-filesystem', 'dist', 'index.js');

const POLICY = `
- rule: confirm-writes
  description: Writing files needs a human's approval.
  condition: tool.name in ["write_file", "edit_file"]
  verdict: ask
  message: A person must approve every file write.

- rule: confirm-loud-echo
  condition: server.name == "ev" and tool.name == "echo" and args.message startswith "LOUD"
  verdict: ask
  message: Shouting needs approval.
`;

// The human's answer depends on what is being asked about, so one client covers every case.
function answerFor(request) {
  const text = request.params.message;
  if (text.includes('approve-me') || text.includes('LOUD yes')) return { action: 'accept', content: {} };
  if (text.includes('dismiss-me')) return { action: 'cancel' };
  if (text.includes('never-answer')) return new Promise(() => {});
  return { action: 'decline' };
}

let root;
let gateway;

before(async () => {
  root = fs.realpathSync(tmpDir('membrane-ask-'));
  const dir = tmpDir('membrane-ask-config-');
  const policyFile = path.join(dir, 'ask.yaml');
  fs.writeFileSync(policyFile, POLICY);
  const everything = await startEverythingHttp();
  const config = path.join(dir, 'membrane.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'policy:',
    `  paths: ${JSON.stringify(policyFile)}`,
    '  approval_timeout: 2s',
    'upstreams:',
    '  fs:',
    `    command: ${JSON.stringify(NODE)}`,
    `    args: [${JSON.stringify(FILESYSTEM_JS)}, ${JSON.stringify(root)}]`,
    '  ev:',
    `    url: ${JSON.stringify(everything.url)}`,
    '',
  ].join('\n'));
  gateway = await startGateway(['-c', config], { name: 'membrane (ask)' });
});
after(cleanup);

function writeCall(name) {
  return { name: 'write_file', arguments: { path: path.join(root, name), content: `content of ${name}` } };
}

function assertRefused(result, approval) {
  assert.equal(result.isError, true, JSON.stringify(result));
  assert.deepEqual(result._meta?.['io.membrane/policy'], { rule: 'confirm-writes', verdict: 'ask', approval });
  assert.match(result.content[0].text, /confirm-writes/);
  assert.match(result.content[0].text, /not forwarded/);
}

for (const kind of ['streamable', 'sse']) {
  describe(`ask over ${kind === 'sse' ? 'the legacy HTTP+SSE transport' : 'Streamable HTTP'} (stdio filesystem server)`, () => {
    let client;
    let seen;
    const url = () => (kind === 'sse' ? gateway.sse('fs') : gateway.mcp('fs'));

    before(async () => {
      ({ client, seen } = await connectClient(url(), { kind, capabilities: { elicitation: {} }, onElicit: answerFor }));
    });

    test('accept: the human sees the call and rule, and the write reaches the server', async () => {
      const name = `${kind}-approve-me.txt`;
      const result = await client.callTool(writeCall(name));
      assert.ok(!result.isError, JSON.stringify(result));
      assert.equal(fs.readFileSync(path.join(root, name), 'utf8'), `content of ${name}`);
      const asked = seen.elicitation.at(-1).params;
      assert.match(asked.message, /confirm-writes/);
      assert.match(asked.message, /A person must approve every file write/);
      assert.match(asked.message, /write_file/);
      assert.ok(asked.message.includes(path.join(root, name)), asked.message);
      assert.equal(asked.requestedSchema.type, 'object');
    });

    test('decline: the call is refused with the rule id and the file is never written', async () => {
      const name = `${kind}-declined.txt`;
      const before = seen.elicitation.length;
      const result = await client.callTool(writeCall(name));
      assert.equal(seen.elicitation.length, before + 1, 'the human was asked once');
      assertRefused(result, 'declined');
      assert.match(result.content[0].text, /declined/);
      assert.equal(fs.existsSync(path.join(root, name)), false, 'the upstream never received the write');
    });

    test('cancel (dismissed) is not an approval', async () => {
      const name = `${kind}-dismiss-me.txt`;
      const result = await client.callTool(writeCall(name));
      assertRefused(result, 'cancelled');
      assert.equal(fs.existsSync(path.join(root, name)), false);
    });

    test('no answer within approval_timeout: refused, and the session keeps working', async () => {
      const name = `${kind}-never-answer.txt`;
      const started = Date.now();
      const result = await client.callTool(writeCall(name));
      assert.ok(Date.now() - started >= 1_900, 'waited for the configured timeout');
      assertRefused(result, 'timed_out');
      assert.equal(fs.existsSync(path.join(root, name)), false);
      // The session keeps working afterwards.
      const read = await client.callTool({ name: 'list_allowed_directories', arguments: {} });
      assert.ok(!read.isError, JSON.stringify(read));
    });

    test('calls the policy allows are never asked about', async () => {
      const before = seen.elicitation.length;
      const result = await client.callTool({ name: 'list_allowed_directories', arguments: {} });
      assert.ok(!result.isError);
      assert.equal(seen.elicitation.length, before);
    });
  });
}

describe('ask without the elicitation capability', () => {
  test('the call is refused with an approval-required tool error and never reaches the server', async () => {
    const { client, seen } = await connectClient(gateway.mcp('fs'));
    const name = 'no-capability-approve-me.txt';
    const result = await client.callTool(writeCall(name));
    assertRefused(result, 'unavailable');
    assert.match(result.content[0].text, /approval is required/i);
    assert.match(result.content[0].text, /elicitation capability/);
    assert.equal(seen.elicitation.length, 0);
    assert.equal(fs.existsSync(path.join(root, name)), false);
  });

  test('a client that only declared URL-mode elicitation cannot be shown a form', async () => {
    const { client } = await connectClient(gateway.mcp('fs'), { capabilities: { elicitation: { url: {} } } });
    const result = await client.callTool(writeCall('url-only-approve-me.txt'));
    assertRefused(result, 'unavailable');
  });
});

describe('ask in front of a Streamable HTTP upstream (server-everything)', () => {
  test('accept forwards, decline refuses, on one session', async () => {
    const { client, seen } = await connectClient(gateway.mcp('ev'), { capabilities: { elicitation: {} }, onElicit: answerFor });
    const approved = await client.callTool({ name: 'echo', arguments: { message: 'LOUD yes please' } });
    assert.ok(!approved.isError, JSON.stringify(approved));
    assert.match(approved.content[0].text, /LOUD yes please/);
    const declined = await client.callTool({ name: 'echo', arguments: { message: 'LOUD no' } });
    assert.equal(declined.isError, true);
    assert.equal(declined._meta['io.membrane/policy'].rule, 'confirm-loud-echo');
    assert.equal(declined._meta['io.membrane/policy'].approval, 'declined');
    const quiet = await client.callTool({ name: 'echo', arguments: { message: 'quiet' } });
    assert.ok(!quiet.isError);
    assert.equal(seen.elicitation.length, 2);
  });

  test('an answer posted on another session cannot approve the call', async () => {
    // The asked client never answers; another session posts "accept" with the very same id.
    let question;
    const asked = new Promise((resolve) => { question = resolve; });
    const { client } = await connectClient(gateway.mcp('ev'), {
      capabilities: { elicitation: {} },
      onElicit: (request, extra) => { question(extra.requestId); return new Promise(() => {}); },
    });
    const pending = client.callTool({ name: 'echo', arguments: { message: 'LOUD hijack' } });
    const id = await asked;
    assert.match(String(id), /^membrane-/);
    const other = await connectClient(gateway.mcp('ev'), { capabilities: { elicitation: {} } });
    await other.transport.send({ jsonrpc: '2.0', id, result: { action: 'accept', content: {} } });
    const result = await pending;
    assert.equal(result.isError, true);
    assert.equal(result._meta['io.membrane/policy'].approval, 'timed_out');
  });
});
