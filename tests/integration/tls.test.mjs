// TLS on the listener: with --tls-cert/--tls-key the gateway serves https (and says so in its
// "listening on https://…" line); MCP clients that trust the certificate work exactly as over
// plain http, including streamed progress; plain http and untrusting clients are refused.
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';

import {
  UNICODE_TEXT,
  callWithProgress, cleanup, connectClient, everythingStdioCommand, httpsFetchWithCa, httpRaw,
  makeSelfSignedCert, startEverythingHttp, startGateway, stdioUpstreamFlag, tmpDir,
} from './harness.mjs';

let upstream;
let gateway;
let tlsFetch;
let certificate;

before(async () => {
  upstream = await startEverythingHttp();
  const cert = makeSelfSignedCert(tmpDir());
  certificate = cert.pem;
  tlsFetch = httpsFetchWithCa(cert.pem);
  gateway = await startGateway([
    '--tls-cert', cert.cert, '--tls-key', cert.key,
    '--upstream', `ev=${upstream.url}`,
    '--upstream', stdioUpstreamFlag('evs', everythingStdioCommand()),
  ], { name: 'membrane (tls)' });
});
after(cleanup);

describe('https listener', () => {
  test('the ready line says https and /healthz answers over TLS', async () => {
    assert.equal(gateway.scheme, 'https');
    const res = await tlsFetch(`${gateway.base}/healthz`);
    assert.equal(res.status, 200);
    await res.body?.cancel();
  });

  for (const name of ['ev', 'evs']) {
    test(`Streamable HTTP over TLS (${name}): echo and streamed progress`, { timeout: 60_000 }, async () => {
      const c = await connectClient(gateway.mcp(name), { fetch: tlsFetch });
      const echo = await c.client.callTool({ name: 'echo', arguments: { message: UNICODE_TEXT } });
      assert.equal(echo.content[0].text, `Echo: ${UNICODE_TEXT}`);
      const r = await callWithProgress(c.client, 'trigger-long-running-operation', { duration: 2, steps: 4 }, { timeoutMs: 45_000 });
      assert.equal(r.error, undefined, r.error?.message);
      const progress = r.events.filter((e) => e.type === 'progress');
      assert.ok(progress.length >= 3, `progress over TLS: ${JSON.stringify(r.events.map((e) => [e.type, e.at]))}`);
      assert.ok(progress[2].at - progress[0].at >= 600, `progress streamed, not buffered: ${JSON.stringify(r.events.map((e) => [e.type, e.at]))}`);
      await c.close();
    });
  }

  test('legacy SSE over TLS', { timeout: 30_000 }, async () => {
    const c = await connectClient(gateway.sse('ev'), { kind: 'sse', fetch: tlsFetch });
    const echo = await c.client.callTool({ name: 'echo', arguments: { message: 'sse+tls ✓' } });
    assert.equal(echo.content[0].text, 'Echo: sse+tls ✓');
    await c.close();
  });

  test('plain http to the TLS port gets no successful answer', async () => {
    const url = `http://127.0.0.1:${gateway.port}/healthz`;
    let status;
    try {
      status = (await httpRaw(url, { method: 'GET', timeoutMs: 10_000 })).status;
    } catch {
      status = 'connection error';
    }
    assert.notEqual(status, 200, 'a cleartext request must not be served');
  });

  test('a client that does not trust the certificate fails the handshake', async () => {
    await assert.rejects(fetch(`${gateway.base}/healthz`, { signal: AbortSignal.timeout(10_000) }));
  });

  test('a client that stops halfway through its headers gets a 408 over TLS, then the close', { timeout: 40_000 }, async () => {
    // The default request_header_read (10 s) runs out; the read is cancelled, not the socket
    // closed, so the answer can still go out through the TLS session.
    const reply = await new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: gateway.port, ca: certificate, servername: 'localhost' });
      let text = '';
      socket.setEncoding('utf8');
      socket.on('secureConnect', () => socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: '));
      socket.on('data', (chunk) => { text += chunk; });
      socket.on('error', () => {});
      socket.on('close', () => resolve(text));
      setTimeout(() => { socket.destroy(); reject(new Error(`no cut after 30 s; got ${JSON.stringify(text)}`)); }, 30_000).unref();
    });
    assert.match(reply, /^HTTP\/1\.1 408 /, JSON.stringify(reply.slice(0, 80)));
    assert.match(reply, /request headers not received in time/);
  });

  test('the gateway is still serving', async () => {
    assert.ok(gateway.proc.running);
    const res = await tlsFetch(`${gateway.base}/healthz`);
    assert.equal(res.status, 200);
    await res.body?.cancel();
  });
});
