// HTTPS upstreams: the gateway verifies the upstream's certificate (against ca_file or the system
// store) and its host name. The upstream here is another Membrane serving TLS in front of
// server-everything, so the path is client -> gateway B -> (TLS) -> gateway A -> server.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  UNICODE_TEXT, callWithProgress, cleanup, connectClient, makeSelfSignedCert, rawFetch,
  initializeRequest, mcpHeaders, startEverythingHttp, startGateway, tmpDir,
} from './harness.mjs';

let front;

before(async () => {
  const upstream = await startEverythingHttp();
  const dir = tmpDir();
  const cert = makeSelfSignedCert(dir);
  const tlsGateway = await startGateway([
    '--tls-cert', cert.cert, '--tls-key', cert.key, '--upstream', `ev=${upstream.url}`,
  ], { name: 'membrane (tls upstream)' });
  const config = path.join(dir, 'front.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'upstreams:',
    '  trusted:',
    `    url: https://127.0.0.1:${tlsGateway.port}/mcp/ev`,
    `    ca_file: ${cert.cert}`,
    '  by-name:',
    `    url: https://localhost:${tlsGateway.port}/mcp/ev`,
    `    ca_file: ${cert.cert}`,
    '  untrusted:',
    `    url: https://127.0.0.1:${tlsGateway.port}/mcp/ev`,
    '',
  ].join('\n'));
  front = await startGateway(['-c', config], { name: 'membrane (front)' });
});
after(cleanup);

describe('https upstream', () => {
  for (const name of ['trusted', 'by-name']) {
    test(`${name}: tools and streamed progress work through a verified TLS upstream`, { timeout: 60_000 }, async () => {
      const c = await connectClient(front.mcp(name));
      const echo = await c.client.callTool({ name: 'echo', arguments: { message: UNICODE_TEXT } });
      assert.equal(echo.content[0].text, `Echo: ${UNICODE_TEXT}`);
      const { events, result, error } = await callWithProgress(c.client, 'trigger-long-running-operation', { duration: 1, steps: 3 });
      assert.ok(!error, `the call failed: ${error}`);
      const progress = events.filter((e) => e.type === 'progress');
      assert.ok(progress.length >= 2, `progress arrived: ${JSON.stringify(events)}`);
      assert.match(result.content[0].text, /completed/);
      await c.close();
    });
  }

  test('an upstream certificate the gateway does not trust gives 502 naming the upstream and the reason', async () => {
    const res = await rawFetch(front.mcp('untrusted'), { headers: mcpHeaders(), body: initializeRequest() });
    assert.equal(res.status, 502, res.text);
    assert.match(res.json.error.message, /untrusted/);
    assert.match(res.json.error.message, /certificate/i);
  });
});
