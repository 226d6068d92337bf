// Fault matrix: slowloris. Clients that trickle their headers or their body one byte at a time
// hold a connection only as long as timeouts.request_header_read / request_body_read allow (each a
// deadline for the whole part, not for each byte): then the connection closes. Meanwhile other
// clients are served as usual.
//
// Before the cut the client gets a 408 naming the part that was late: the read deadline cancels
// the read instead of closing the socket (Beast's stream timeout would close it, and the client
// would only see the connection end).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  NODE, SOURCE_DIR, cleanup, connectClient, spawnManaged, startGateway, tmpDir,
} from './harness.mjs';

const FAULTY_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'faulty-http-server.mjs');

let gateway;

before(async () => {
  const upstream = spawnManaged('faulty upstream (slowloris)', NODE, [FAULTY_JS, '0']);
  const url = (await upstream.waitForLine(/listening on (http:\/\/\S+)/, 20_000))[1];
  const config = path.join(tmpDir('membrane-faults-slowloris-'), 'membrane.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'timeouts:',
    '  request_header_read: 2s',
    '  request_body_read: 2s',
    'upstreams:',
    '  faulty:',
    `    url: ${JSON.stringify(url)}`,
    '',
  ].join('\n'));
  gateway = await startGateway(['-c', config], { name: 'membrane (faults: slowloris)' });
});
after(cleanup);

/** A 408 naming what was late. */
function assertCut(reply, what) {
  assert.match(reply, /^HTTP\/1\.1 408 /, JSON.stringify(reply.slice(0, 80)));
  assert.match(reply, what);
}

/**
 * Opens a raw connection and sends `head` then `body`, one byte every `everyMs`, until the
 * gateway closes the connection. Resolves {sent, total, reply} where `reply` is what the gateway
 * wrote back.
 */
function trickle(head, body = '', everyMs = 200) {
  const bytes = Buffer.from(head + body);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port: gateway.port, host: '127.0.0.1' });
    let sent = 0;
    let reply = '';
    let timer;
    const finish = () => {
      clearInterval(timer);
      resolve({ sent, total: bytes.length, reply });
    };
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => { reply += chunk; });
    socket.on('close', finish);
    socket.on('error', () => { /* reset after the answer: the close event follows */ });
    socket.on('connect', () => {
      timer = setInterval(() => {
        if (sent >= bytes.length) return;  // all sent: wait for the answer or the close
        socket.write(bytes.subarray(sent, sent + 1));
        sent += 1;
      }, everyMs);
    });
    setTimeout(() => {
      clearInterval(timer);
      socket.destroy();
      reject(new Error(`the gateway kept a trickling connection open for 60 s (${sent}/${bytes.length} bytes sent)`));
    }, 60_000).unref();
  });
}

const BODY = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'slow', version: '1' } } });
const HEAD = [
  'POST /mcp/faulty HTTP/1.1',
  'Host: 127.0.0.1',
  'Content-Type: application/json',
  'Accept: application/json, text/event-stream',
  'X-Padding: ' + 'p'.repeat(200),
  `Content-Length: ${Buffer.byteLength(BODY)}`,
  '', '',
].join('\r\n');

describe('a client that trickles', () => {
  test('its headers is cut at request_header_read, while others are served', { timeout: 90_000 }, async () => {
    const slow = trickle(HEAD, BODY);
    // Served meanwhile: a real client, on its own connections, call after call.
    const { client } = await connectClient(gateway.mcp('faulty'));
    let served = 0;
    let done = false;
    const busy = (async () => {
      while (!done) {
        const r = await client.callTool({ name: 'echo', arguments: { message: `n${served}` } });
        assert.equal(r.content[0].text, `Echo: n${served}`);
        served += 1;
      }
    })();
    const result = await slow;
    done = true;
    await busy;
    assertCut(result.reply, /request headers not received in time/);
    assert.ok(result.sent < Buffer.byteLength(HEAD), `cut before the headers were complete (${result.sent}/${Buffer.byteLength(HEAD)} bytes)`);
    assert.ok(served > 0, 'other calls were served while the slow client trickled');
  });

  test('its body is cut at request_body_read', { timeout: 90_000 }, async () => {
    const head = Buffer.from(HEAD);
    // Headers at once, then the body byte by byte.
    const result = await new Promise((resolve, reject) => {
      const socket = net.connect({ port: gateway.port, host: '127.0.0.1' });
      let reply = '';
      let sent = 0;
      let timer;
      socket.setEncoding('utf8');
      socket.on('data', (chunk) => { reply += chunk; });
      socket.on('error', () => {});
      socket.on('close', () => { clearInterval(timer); resolve({ reply, sent }); });
      socket.on('connect', () => {
        socket.write(head);
        timer = setInterval(() => {
          if (sent < BODY.length) socket.write(BODY[sent++]);
        }, 200);
      });
      setTimeout(() => { socket.destroy(); reject(new Error('the trickled body was never cut')); }, 60_000).unref();
    });
    assertCut(result.reply, /request body not received in time/);
    assert.ok(result.sent < BODY.length, `cut before the body was complete (${result.sent}/${BODY.length} bytes)`);
  });

  test('twenty trickling connections at once are all cut, and a new client is served meanwhile', { timeout: 90_000 }, async () => {
    const slow = Array.from({ length: 20 }, () => trickle(HEAD, BODY, 300));
    const { client } = await connectClient(gateway.mcp('faulty'));
    const r = await client.callTool({ name: 'echo', arguments: { message: 'amid the slow ones' } });
    assert.equal(r.content[0].text, 'Echo: amid the slow ones');
    const results = await Promise.all(slow);
    for (const result of results) {
      assertCut(result.reply, /request headers not received in time/);
      assert.ok(result.sent < result.total);
    }
    assert.ok(gateway.proc.running);
  });
});
