// Transparency through the gateway for a stdio upstream: a client connected through /mcp/<name>
// (gateway spawning `node server-everything stdio`) must see exactly what a client connected
// directly to its own `node server-everything stdio` child sees.
import { after, before, describe } from 'node:test';

import {
  cleanup, connectClient, everythingStdioCommand, startGateway, stdioUpstreamFlag,
} from './harness.mjs';
import { parityTests, streamableRawTests } from './parity_suite.mjs';

let gateway;

before(async () => {
  gateway = await startGateway(['--upstream', stdioUpstreamFlag('evs', everythingStdioCommand())]);
});
after(cleanup);

describe('Streamable HTTP client -> gateway -> stdio upstream', () => {
  parityTests({
    label: 'through /mcp/evs (stdio upstream)',
    makeDirect: (capabilities) => connectClient(everythingStdioCommand(), { kind: 'stdio', capabilities }),
    makeThrough: (capabilities) => connectClient(gateway.mcp('evs'), { capabilities }),
  });
});

describe('raw Streamable HTTP through the gateway (stdio upstream)', () => {
  streamableRawTests({ throughUrl: () => gateway.mcp('evs') });
});
