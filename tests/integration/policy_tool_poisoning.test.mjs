// Tool-description poisoning: the shipped ruleset hides, in tools/list, the tools whose
// descriptions carry hidden instructions, invisible Unicode or "ignore previous instructions",
// so the model never reads them. The upstream is a real SDK server (tests/fixtures) with the
// published attacks next to one honest tool; the direct listing proves what the gateway removed.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { NODE, SOURCE_DIR, cleanup, connectClient, startGateway, stdioUpstreamFlag, waitFor } from './harness.mjs';

const POISONED_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'poisoned-server.mjs');
const POISONED = ['add_with_note', 'translate', 'weather'];

let enforced;
let shadowed;
let direct;

before(async () => {
  const upstream = stdioUpstreamFlag('tools', [NODE, POISONED_JS]);
  const defaults = path.join(SOURCE_DIR, 'policies', 'default');
  enforced = await startGateway(['--upstream', upstream, '--policy', defaults], { name: 'membrane (poisoning)' });
  shadowed = await startGateway(['--upstream', upstream, '--policy', defaults, '--policy-mode', 'shadow'], { name: 'membrane (poisoning, shadow)' });
  direct = (await connectClient([NODE, POISONED_JS], { kind: 'stdio' })).client;
});
after(cleanup);

const names = (listing) => listing.tools.map((tool) => tool.name).sort();

test('the upstream really lists the poisoned tools', async () => {
  assert.deepEqual(names(await direct.listTools()), ['add', ...POISONED].sort());
});

test('through the gateway only the honest tool is listed, unchanged', async () => {
  const { client } = await connectClient(enforced.mcp('tools'));
  const listing = await client.listTools();
  assert.deepEqual(names(listing), ['add']);
  const honest = (await direct.listTools()).tools.find((tool) => tool.name === 'add');
  assert.deepEqual(listing.tools[0], honest);
  const sum = await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
  assert.equal(sum.content[0].text, '5');
});

test('each hidden tool is logged with the rule that hid it', async () => {
  const { client } = await connectClient(enforced.mcp('tools'));
  await client.listTools();
  const rules = {
    add_with_note: 'tool-poisoning-hidden-instructions',
    weather: 'tool-poisoning-instruction-override',
    translate: 'tool-poisoning-invisible-unicode',
  };
  // The gateway's log reaches this process through a pipe: wait for it rather than race it.
  for (const [tool, rule] of Object.entries(rules)) {
    await waitFor(() => enforced.lines.some((line) => line.includes(`hides tool '${tool}'`) && line.includes(`rule '${rule}'`)),
      { what: `a log line naming ${tool} and ${rule}` });
  }
});

test('shadow mode lists every tool and logs what it would hide', async () => {
  const { client } = await connectClient(shadowed.mcp('tools'));
  assert.deepEqual(names(await client.listTools()), ['add', ...POISONED].sort());
  await waitFor(() => shadowed.lines.some((line) => line.includes("would hide tool 'weather'")),
    { what: 'the shadow decision in the log' });
});
