// Transparency through the gateway for an HTTP (Streamable HTTP) upstream: the same operations
// on a client connected directly to server-everything and on a client connected through
// /mcp/<name> must give the same answers, with server-to-client requests, progress and logging
// flowing live.
import { after, before, describe } from 'node:test';

import { cleanup, connectClient, startEverythingHttp, startGateway } from './harness.mjs';
import { parityTests, streamableRawTests } from './parity_suite.mjs';

let upstream;
let gateway;

before(async () => {
  upstream = await startEverythingHttp();
  gateway = await startGateway(['--upstream', `ev=${upstream.url}`]);
});
after(cleanup);

describe('Streamable HTTP client -> gateway -> HTTP upstream', () => {
  parityTests({
    label: 'through /mcp/ev (HTTP upstream)',
    makeDirect: (capabilities) => connectClient(upstream.url, { capabilities }),
    makeThrough: (capabilities) => connectClient(gateway.mcp('ev'), { capabilities }),
  });
});

describe('raw Streamable HTTP through the gateway (HTTP upstream)', () => {
  streamableRawTests({ throughUrl: () => gateway.mcp('ev'), directUrl: () => upstream.url });
});
