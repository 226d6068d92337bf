// Resumption through the gateway (MCP 2025-11-25 transports §resumability): a client that loses
// the SSE stream of a request reconnects with GET + Last-Event-ID and receives the events it
// missed, exactly as it would from the upstream directly. (server-everything's example event
// store replays the missed events but then loses track of the stream, so the comparison is with
// the direct behaviour rather than with an ideal one.)
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  MCP_ACCEPT, cleanup, openEventStream, parseSse, rawInitialize, sleep, startEverythingHttp,
  startGateway, withTimeout,
} from './harness.mjs';

let upstream;
let gateway;

before(async () => {
  upstream = await startEverythingHttp();
  gateway = await startGateway(['--upstream', `ev=${upstream.url}`], { name: 'membrane (resumption)' });
});
after(cleanup);

// Starts a long call, drops its stream after the first progress notification, resumes with
// Last-Event-ID and returns the progress values the resumed stream delivers.
async function dropAndResume(url) {
  const session = await rawInitialize(url);
  const headers = {
    'content-type': 'application/json',
    accept: MCP_ACCEPT,
    'mcp-session-id': session.sessionId,
    'mcp-protocol-version': session.protocolVersion,
  };
  const abort = new AbortController();
  const response = await fetch(url, {
    method: 'POST',
    headers,
    signal: abort.signal,
    body: JSON.stringify({
      jsonrpc: '2.0', id: 77, method: 'tools/call',
      params: { name: 'trigger-long-running-operation', arguments: { duration: 4, steps: 4 }, _meta: { progressToken: 'resume-me' } },
    }),
  });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /text\/event-stream/);

  let lastEventId;
  let text = '';
  const decoder = new TextDecoder();
  const reader = response.body.getReader();
  while (!lastEventId) {
    const { value, done } = await withTimeout(reader.read(), 10_000, 'first progress event');
    assert.ok(!done, `the stream ended before any progress: ${text}`);
    text += decoder.decode(value, { stream: true });
    for (const event of parseSse(text)) {
      if (event.id && event.data && JSON.parse(event.data).method === 'notifications/progress') lastEventId = event.id;
    }
  }
  abort.abort();
  // Let the gateway notice the client is gone and release the upstream stream (next event, ~1 s).
  await sleep(1500);

  const resumed = await openEventStream(url, { headers: { ...headers, 'last-event-id': lastEventId } });
  assert.equal(resumed.status, 200);
  await sleep(3500);
  resumed.close();
  return resumed.events
    .filter((event) => event.data)
    .map((event) => JSON.parse(event.data))
    .filter((message) => message.method === 'notifications/progress')
    .map((message) => message.params.progress);
}

test('a dropped request stream resumed with Last-Event-ID replays the missed events, as direct', { timeout: 60_000 }, async () => {
  const [direct, through] = await Promise.all([dropAndResume(upstream.url), dropAndResume(gateway.mcp('ev'))]);
  assert.ok(direct.includes(2), `direct replays the missed progress: ${direct}`);
  assert.ok(through.includes(2), `the gateway replays the missed progress: ${through}`);
  assert.ok(!through.includes(1), 'events up to Last-Event-ID are not sent again');
  assert.deepEqual(through, direct);
});
