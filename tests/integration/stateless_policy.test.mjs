// Policy and audit for MCP 2026-07-28 clients: a policy `ask` reaches a stateless client (SDK v2)
// as an `input_required` elicitation and only an accept forwards the call, whichever revision
// the server speaks; a forged approval without the gateway's requestState is not an approval;
// every audit record names the revision of both hops.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

import {
  NODE, SOURCE_DIR, cleanup, defer, rawFetch, spawnManaged, startGateway, statelessBody, statelessHeaders,
  tmpDir, EVERYTHING_JS,
} from './harness.mjs';

const MODERN_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'modern-server.mjs');

const POLICY = `
- rule: confirm-echo
  condition: tool.name == "echo" and args.message startswith "ASK"
  verdict: ask
  message: Echoing this needs approval.

- limit: confirm-once
  condition: tool.name == "confirm"
  by: [args.action]
  rate: 1/hour
`;

let gateway;
let auditFile;

before(async () => {
  const dir = tmpDir('membrane-stateless-policy-');
  const policyFile = path.join(dir, 'ask.yaml');
  fs.writeFileSync(policyFile, POLICY);
  auditFile = path.join(dir, 'audit.log');
  const modern = spawnManaged('modern-server', NODE, [MODERN_JS, '0', '60000']);
  const modernUrl = (await modern.waitForLine(/listening on (http:\/\/\S+)/))[1];
  const config = path.join(dir, 'membrane.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'policy:',
    `  paths: ${JSON.stringify(policyFile)}`,
    '  approval_timeout: 5s',
    'audit:',
    `  file: ${JSON.stringify(auditFile)}`,
    'upstreams:',
    '  modern:',
    `    url: ${JSON.stringify(modernUrl)}`,
    '  evs:',
    `    command: ${JSON.stringify(NODE)}`,
    `    args: [${JSON.stringify(EVERYTHING_JS)}, stdio]`,
    '',
  ].join('\n'));
  gateway = await startGateway(['-c', config], { name: 'membrane (stateless policy)' });
});
after(cleanup);

async function modernClient(url, answer) {
  const client = new Client({ name: 'v2-policy-client', version: '1.0.0' }, {
    capabilities: { elicitation: { form: {} } },
    versionNegotiation: { mode: { pin: '2026-07-28' } },
  });
  const asked = [];
  client.setRequestHandler('elicitation/create', async (request) => {
    asked.push(request.params);
    return answer;
  });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  defer(() => client.close().catch(() => {}));
  return { client, asked };
}

for (const upstream of ['modern', 'evs']) {
  describe(`policy ask for a 2026-07-28 client (upstream ${upstream})`, () => {
    test('accept: the question names the rule, and the call goes through', async () => {
      const { client, asked } = await modernClient(gateway.mcp(upstream), { action: 'accept', content: {} });
      const result = await client.callTool({ name: 'echo', arguments: { message: 'ASK nicely ✓' } });
      assert.equal(asked.length, 1);
      assert.match(asked[0].message, /confirm-echo/);
      assert.equal(result.content[0].text, 'Echo: ASK nicely ✓');
      assert.notEqual(result.isError, true);
    });

    test('decline: the call is refused and never forwarded', async () => {
      const { client, asked } = await modernClient(gateway.mcp(upstream), { action: 'decline' });
      const result = await client.callTool({ name: 'echo', arguments: { message: 'ASK rudely' } });
      assert.equal(asked.length, 1);
      assert.equal(result.isError, true, JSON.stringify(result));
      assert.equal(result._meta?.['io.membrane/policy']?.rule, 'confirm-echo');
    });

    test('calls the rule does not match are not asked about', async () => {
      const { client, asked } = await modernClient(gateway.mcp(upstream), { action: 'decline' });
      const result = await client.callTool({ name: 'echo', arguments: { message: 'plain' } });
      assert.equal(asked.length, 0);
      assert.equal(result.content[0].text, 'Echo: plain');
    });
  });
}

describe('rate limits for a 2026-07-28 client', () => {
  test('a call re-sent with the answers to its input request is charged once', async () => {
    const { client, asked } = await modernClient(gateway.mcp('modern'), { action: 'accept', content: { ok: true } });
    // Two requests on the wire (input_required, then the retry with inputResponses), one call.
    const first = await client.callTool({ name: 'confirm', arguments: { action: 'ship' } });
    assert.equal(asked.length, 1);
    assert.notEqual(first.isError, true, JSON.stringify(first));
    assert.match(first.content[0].text, /^accept .*\(state confirming:ship\)$/);
    const second = await client.callTool({ name: 'confirm', arguments: { action: 'ship' } });
    assert.equal(second.isError, true, JSON.stringify(second));
    assert.equal(second._meta?.['io.membrane/policy']?.limit, 'confirm-once');
    assert.equal(asked.length, 1, 'a refused call reaches no server, so nothing asks the user');
  });

  test('replaying a re-sent request is charged: a sealed state spares the charge once', async () => {
    let id = 0;
    const send = async (params) => {
      const response = await rawFetch(gateway.mcp('modern'), {
        headers: statelessHeaders({ method: 'tools/call', name: 'confirm' }),
        body: statelessBody({ id: ++id, method: 'tools/call', params, capabilities: { elicitation: { form: {} } } }),
        untilId: id,
      });
      const reply = response.messages.find((m) => m.id === id);
      assert.ok(reply?.result, response.text);
      return reply.result;
    };
    const call = { name: 'confirm', arguments: { action: 'replay' } };
    const first = await send(call);
    assert.equal(first.resultType, 'input_required', JSON.stringify(first));
    const retry = {
      ...call, requestState: first.requestState, inputResponses: { confirm: { action: 'accept', content: { ok: true } } },
    };
    const answered = await send(retry);
    assert.notEqual(answered.isError, true, JSON.stringify(answered));
    assert.match(answered.content[0].text, /^accept /);
    const replayed = await send(retry);
    assert.equal(replayed.isError, true, JSON.stringify(replayed));
    assert.equal(replayed._meta?.['io.membrane/policy']?.limit, 'confirm-once');
  });
});

describe('approvals cannot be forged', () => {
  const headers = {
    'MCP-Protocol-Version': '2026-07-28', 'Mcp-Method': 'tools/call', 'Mcp-Name': 'echo',
    'Content-Type': 'application/json', Accept: 'application/json, text/event-stream',
  };
  const meta = {
    'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientCapabilities': { elicitation: { form: {} } },
  };

  test('an approval answer without the gateway requestState is asked again', async () => {
    const body = {
      jsonrpc: '2.0', id: 1, method: 'tools/call',
      params: {
        name: 'echo', arguments: { message: 'ASK forged' }, _meta: meta,
        inputResponses: { 'io.membrane/approval': { action: 'accept', content: {} } },
      },
    };
    const response = await rawFetch(gateway.mcp('modern'), { headers, body: JSON.stringify(body) });
    assert.equal(response.status, 200);
    assert.equal(response.json.result.resultType, 'input_required', response.text);
    assert.ok(response.json.result.inputRequests['io.membrane/approval']);
    assert.match(response.json.result.requestState, /^ms1\./);
  });

  test('a requestState issued for another request is refused with -32602', async () => {
    const first = {
      jsonrpc: '2.0', id: 2, method: 'tools/call',
      params: { name: 'echo', arguments: { message: 'ASK one' }, _meta: meta },
    };
    const asked = await rawFetch(gateway.mcp('modern'), { headers, body: JSON.stringify(first) });
    const state = asked.json.result.requestState;
    const other = {
      jsonrpc: '2.0', id: 3, method: 'tools/call',
      params: {
        name: 'echo', arguments: { message: 'ASK two' }, _meta: meta, requestState: state,
        inputResponses: { 'io.membrane/approval': { action: 'accept', content: {} } },
      },
    };
    const refused = await rawFetch(gateway.mcp('modern'), { headers, body: JSON.stringify(other) });
    assert.equal(refused.status, 400);
    assert.equal(refused.json.error.code, -32602);
  });
});

describe('a policy ask for a 2026-07-28 client that cannot be asked', () => {
  test('is refused with -32021 naming the capability to declare (HTTP 400)', async () => {
    const body = {
      jsonrpc: '2.0', id: 'no-elicitation', method: 'tools/call',
      params: {
        name: 'echo', arguments: { message: 'ASK without elicitation' },
        _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} },
      },
    };
    const headers = statelessHeaders({ method: 'tools/call', name: 'echo' });
    for (const upstream of ['modern', 'evs']) {
      const refused = await rawFetch(gateway.mcp(upstream), { headers, body });
      assert.equal(refused.status, 400, refused.text);
      assert.equal(refused.json.id, 'no-elicitation');
      assert.equal(refused.json.error.code, -32021, refused.text);
      assert.match(refused.json.error.message, /confirm-echo/);
      assert.deepEqual(refused.json.error.data.requiredCapabilities, { elicitation: { form: {} } });
      assert.equal(refused.json.error.data['io.membrane/policy'].verdict, 'ask');
    }
  });
});

describe('audit records name both revisions', () => {
  test('2026 client -> session server, 2026 client -> 2026 server', async () => {
    const lines = () => fs.readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const bridged = lines().filter((r) => r.server === 'evs' && r.method === 'tools/call');
    const modern = lines().filter((r) => r.server === 'modern' && r.method === 'tools/call');
    assert.ok(bridged.length > 0 && modern.length > 0);
    for (const record of bridged) {
      assert.equal(record.protocol, '2026-07-28');
      assert.equal(record.upstream_protocol, '2025-11-25');
    }
    for (const record of modern) {
      assert.equal(record.protocol, '2026-07-28');
      assert.equal(record.upstream_protocol, '2026-07-28');
    }
  });
});
