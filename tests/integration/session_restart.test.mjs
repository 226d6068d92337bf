// Sealed session ids survive a gateway restart when the same session key is used:
// initialize through gateway A, stop A (SIGTERM), start gateway B with the same
// --session-key-file on a new port, and keep using the old Mcp-Session-Id against B. For a stdio
// upstream, B transparently initializes a fresh child from what the sealed id carries. A gateway
// with a different key refuses the id with 404.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  FULL_CAPABILITIES,
  cleanup, connectClient, everythingStdioCommand, jsonRpcErrorProblems, rawRpc,
  startEverythingHttp, startGateway, stdioUpstreamFlag, tmpDir, writeSessionKeyFile,
} from './harness.mjs';

const UPSTREAMS = [['ev', 'HTTP'], ['evs', 'stdio']];

let upstream;
let keyFile;
let otherKeyFile;
let upstreamArgs;
const saved = {};  // name -> {sessionId, protocolVersion, tools, serverVersion}
let gatewayB;

async function ensureGatewayB() {
  gatewayB ??= await startGateway([...upstreamArgs, '--session-key-file', keyFile], { name: 'membrane-B' });
  return gatewayB;
}

before(async () => {
  upstream = await startEverythingHttp();
  const dir = tmpDir();
  keyFile = writeSessionKeyFile(dir, 'key-a');
  otherKeyFile = writeSessionKeyFile(dir, 'key-b');
  upstreamArgs = [
    '--upstream', `ev=${upstream.url}`,
    '--upstream', stdioUpstreamFlag('evs', everythingStdioCommand()),
  ];
});
after(cleanup);

describe('session ids across a gateway restart', () => {
  test('sessions are established through gateway A, which then exits 0 on SIGTERM', { timeout: 60_000 }, async () => {
    const gatewayA = await startGateway([...upstreamArgs, '--session-key-file', keyFile], { name: 'membrane-A' });
    for (const [name] of UPSTREAMS) {
      const c = await connectClient(gatewayA.mcp(name), { capabilities: FULL_CAPABILITIES });
      const echo = await c.client.callTool({ name: 'echo', arguments: { message: `before restart ${name} ✓` } });
      assert.equal(echo.content[0].text, `Echo: before restart ${name} ✓`);
      assert.ok(c.transport.sessionId, `${name}: a session id was issued`);
      saved[name] = {
        sessionId: c.transport.sessionId,
        protocolVersion: c.transport.protocolVersion,
        tools: await c.client.listTools(),
        serverVersion: c.client.getServerVersion(),
      };
      await c.close();  // closes the HTTP streams without DELETE: the session stays valid
    }
    const { code, signal } = await gatewayA.stop({ signal: 'SIGTERM', timeoutMs: 30_000 });
    assert.equal(signal, null, `gateway A was killed by ${signal}`);
    assert.equal(code, 0, 'gateway A exit code after SIGTERM');
  });

  for (const [name, kind] of UPSTREAMS) {
    test(`${kind} upstream: the old id works on gateway B (same key, new port) with raw fetch`, { timeout: 60_000 }, async () => {
      assert.ok(saved[name], 'the first test established the session');
      await ensureGatewayB();
      const r = await rawRpc(gatewayB.mcp(name), {
        sessionId: saved[name].sessionId, protocolVersion: saved[name].protocolVersion,
        method: 'tools/call', params: { name: 'echo', arguments: { message: `after restart ${name} ✓` } },
        timeoutMs: 30_000,
      });
      assert.equal(r.status, 200, `HTTP ${r.status}: ${r.response.text.slice(0, 300)}`);
      assert.deepEqual(r.message?.result, { content: [{ type: 'text', text: `Echo: after restart ${name} ✓` }] },
        r.response.text.slice(0, 300));
    });

    test(`${kind} upstream: an SDK client resuming with sessionId sees the same tools on gateway B`, { timeout: 60_000 }, async () => {
      assert.ok(saved[name], 'the first test established the session');
      await ensureGatewayB();
      const c = await connectClient(gatewayB.mcp(name), { capabilities: FULL_CAPABILITIES, sessionId: saved[name].sessionId });
      c.transport.setProtocolVersion(saved[name].protocolVersion);
      const echo = await c.client.callTool({ name: 'echo', arguments: { message: `resumed ${name}` } }, undefined, { timeout: 30_000 });
      assert.equal(echo.content[0].text, `Echo: resumed ${name}`);
      // The capability-gated tools are only there if the upstream session knows the client's
      // capabilities, i.e. the (re-)initialization used the original initialize parameters.
      assert.deepEqual(await c.client.listTools(), saved[name].tools);
      assert.equal(c.transport.sessionId, saved[name].sessionId);
      await c.close();
    });
  }

  test('a gateway with a different session key refuses the ids with 404', { timeout: 60_000 }, async () => {
    assert.ok(saved.ev && saved.evs, 'the first test established the sessions');
    const gatewayC = await startGateway([...upstreamArgs, '--session-key-file', otherKeyFile], { name: 'membrane-C' });
    for (const [name, kind] of UPSTREAMS) {
      const r = await rawRpc(gatewayC.mcp(name), {
        sessionId: saved[name].sessionId, protocolVersion: saved[name].protocolVersion,
        method: 'tools/call', params: { name: 'echo', arguments: { message: 'wrong key' } }, id: 900,
      });
      assert.equal(r.status, 404, `${kind}: HTTP ${r.status}: ${r.response.text.slice(0, 300)}`);
      assert.deepEqual(jsonRpcErrorProblems(r.response.json, { id: [900, null] }), [], r.response.text.slice(0, 300));
    }
    await gatewayC.stop();
  });

  test('gateway B still accepts the ids (the refusal was about the key, not the id)', { timeout: 30_000 }, async () => {
    await ensureGatewayB();
    for (const [name] of UPSTREAMS) {
      const r = await rawRpc(gatewayB.mcp(name), {
        sessionId: saved[name].sessionId, protocolVersion: saved[name].protocolVersion, method: 'ping', id: 901,
      });
      assert.equal(r.status, 200, r.response.text.slice(0, 300));
      assert.deepEqual(r.message, { jsonrpc: '2.0', id: 901, result: {} });
    }
  });
});
