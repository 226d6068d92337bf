// Virtual servers: four real servers published as one URL (server-everything over stdio and over
// HTTP, server-filesystem over stdio, and the SDK v2 test server that speaks 2026-07-28 and
// sessions), driven by the official SDK v1 and v2 clients and a legacy HTTP+SSE client. Merged
// lists with prefixes, renames, filters and overrides; calls, progress, sampling and elicitation
// routed to the member that owns them; list_changed from one member; policy, audit and the
// refusal of unpublished names by their real upstream names; one member killed mid-session.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { CallToolResultSchema, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

import {
  FULL_CAPABILITIES,
  MEMBRANE_BIN,
  NODE,
  EVERYTHING_JS,
  MODERN_JS,
  SOURCE_DIR,
  cleanup,
  connectClient,
  connectV2,
  mcpHeaders,
  rawFetch,
  rawInitialize,
  rawRpc,
  samplingAnswer,
  startEverythingHttp,
  startGateway,
  startModernServer,
  tmpDir,
  waitFor,
} from './harness.mjs';

const FILESYSTEM_JS = path.join(SOURCE_DIR, 'tests', 'node_modules', '@modelcontextprotocol', 'server-filesystem', 'dist', 'index.js');
const CALL_TIMEOUT = { timeout: 30_000 };

let dir;
let root;
let auditLog;
let gateway;
let everythingHttp;
let modern;
let modernOnly;
let silent;
const silentSockets = new Set();

const yamlList = (items) => `[${items.map((item) => JSON.stringify(item)).join(', ')}]`;

before(async () => {
  dir = tmpDir('membrane-virtual-');
  root = fs.realpathSync(tmpDir('membrane-virtual-files-'));
  fs.writeFileSync(path.join(root, 'notes.txt'), 'virtual notes\n');
  auditLog = path.join(dir, 'audit.log');
  everythingHttp = await startEverythingHttp({ name: 'everything-http (virtual)' });
  // An upstream that accepts connections and never answers: a member that is down without saying so.
  silent = net.createServer((socket) => { silentSockets.add(socket); socket.on('error', () => {}); });
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
  modern = await startModernServer({ name: 'dual v2 server (virtual)', sessions: true });
  modernOnly = await startModernServer({ name: '2026-07-28-only v2 server (virtual)' });
  const policyDir = path.join(dir, 'policy');
  fs.mkdirSync(policyDir);
  // Written against the upstreams' own names: they must hold through the virtual server.
  fs.writeFileSync(path.join(policyDir, 'rules.yaml'), [
    '- rule: no-writes-to-files',
    '  condition: server.name == "files" and tool.name == "write_file"',
    '  verdict: deny',
    '  message: the files server is read-only here',
    '- rule: no-tiny-images-through-workbench',
    '  condition: virtual.name == "workbench" and tool.name == "get-tiny-image"',
    '  verdict: deny',
    '',
  ].join('\n'));
  const config = path.join(dir, 'membrane.yaml');
  fs.writeFileSync(config, [
    'listen: "127.0.0.1:0"',
    'upstreams:',
    '  ev:',
    `    command: ${JSON.stringify(NODE)}`,
    `    args: ${yamlList([EVERYTHING_JS, 'stdio'])}`,
    '  evh:',
    `    url: ${everythingHttp.url}`,
    '  files:',
    `    command: ${JSON.stringify(NODE)}`,
    `    args: ${yamlList([FILESYSTEM_JS, root])}`,
    '  modern:',
    `    url: ${modern.url}`,
    '  stateless:',
    `    url: ${modernOnly.url}`,
    '    protocol: 2026-07-28',
    '  silent:',
    `    url: http://127.0.0.1:${silent.address().port}/mcp`,
    'policy:',
    `  paths: [${JSON.stringify(policyDir)}]`,
    'audit:',
    `  file: ${JSON.stringify(auditLog)}`,
    'virtual_servers:',
    '  workbench:',
    '    instructions: "One URL for four servers."',
    '    member_timeout: 5s',
    '    upstreams:',
    '      ev:',
    '        tools:',
    '          include: [echo, get-sum, get-tiny-image, trigger-*]',
    '          rename: {get-sum: add}',
    '          descriptions: {echo: "Says it back."}',
    '          annotations: {echo: {title: "Echo (virtual)", readOnlyHint: true}}',
    '        prompts: {include: [simple-prompt]}',
    '      evh:',
    '        prefix: remote',
    '        tools: {include: [echo, trigger-sampling-request]}',
    '      files:',
    '        tools: {exclude: [move_file]}',
    '      modern:',
    '        prefix: ""',
    '        tools: {include: [echo, long_task, confirm, ask_model, announce_change]}',
    '  patient:',
    '    member_timeout: 1s',
    '    upstreams: [modern, silent]',
    '  mixed:',
    '    upstreams: [ev, stateless]',
    '  finder:',
    '    tool_discovery: search',
    '    upstreams: [ev, files]',
    '',
  ].join('\n'));
  gateway = await startGateway(['-c', config], { name: 'membrane (virtual servers)' });
});
after(async () => {
  for (const socket of silentSockets) socket.destroy();
  silent?.close();
  await cleanup();
});

describe('SDK v1 client (2025-11-25 sessions)', () => {
  let client;
  let seen;
  let toolChanges;
  before(async () => {
    ({ client, seen } = await connectClient(gateway.mcp('workbench'), { capabilities: FULL_CAPABILITIES }));
    toolChanges = [];
    client.setNotificationHandler(ToolListChangedNotificationSchema, (n) => toolChanges.push(n.method));
  });

  test('initialize merges capabilities and instructions under the virtual server name', () => {
    assert.equal(client.getServerVersion().name, 'workbench');
    const capabilities = client.getServerCapabilities();
    assert.ok(capabilities.tools && capabilities.prompts && capabilities.resources, JSON.stringify(capabilities));
    assert.equal(capabilities.tools.listChanged, true);
    const instructions = client.getInstructions();
    assert.match(instructions, /^One URL for four servers\./);
    assert.match(instructions, /## modern\nA 2026-07-28 test server\./);
  });

  test('tools/list merges every member with prefixes, renames, filters and overrides', async () => {
    const { tools, nextCursor } = await client.listTools();
    assert.equal(nextCursor, undefined);
    const names = tools.map((t) => t.name);
    for (const name of ['ev_echo', 'add', 'ev_trigger-sampling-request', 'ev_trigger-elicitation-request',
      'remote_echo', 'files_read_text_file', 'files_edit_file', 'echo', 'long_task', 'confirm', 'announce_change']) {
      assert.ok(names.includes(name), `${name} in ${names.join(' ')}`);
    }
    for (const name of ['ev_get-sum', 'ev_get-env', 'remote_get-sum', 'files_move_file', 'wait_for_cancel']) {
      assert.ok(!names.includes(name), `${name} is not published`);
    }
    // Hidden by the policy, whose rules name the upstreams' own tools: write_file of 'files', and
    // get-tiny-image through this virtual server. Neither could ever be called.
    for (const name of ['files_write_file', 'ev_get-tiny-image']) {
      assert.ok(!names.includes(name), `${name} is hidden by the policy`);
    }
    assert.equal(new Set(names).size, names.length, 'no name twice');
    const echo = tools.find((t) => t.name === 'ev_echo');
    assert.equal(echo.description, 'Says it back.');
    assert.equal(echo.annotations.title, 'Echo (virtual)');
    assert.equal(echo.annotations.readOnlyHint, true);
    assert.equal(tools.find((t) => t.name === 'remote_echo').description, 'Echoes back the input string');
  });

  test('prompts/list publishes only the included prompts, prefixed', async () => {
    const { prompts } = await client.listPrompts();
    const names = prompts.map((p) => p.name);
    assert.deepEqual(names.filter((name) => name.startsWith('ev_')), ['ev_simple-prompt']);
    assert.ok(names.includes('remote_args-prompt') && names.includes('greeting'), names.join(' '));
    const got = await client.getPrompt({ name: 'ev_simple-prompt' });
    assert.ok(got.messages.length > 0);
  });

  test('calls reach the member that owns the name, under its own name', async () => {
    const stdio = await client.callTool({ name: 'ev_echo', arguments: { message: 'to stdio' } }, undefined, CALL_TIMEOUT);
    assert.equal(stdio.content[0].text, 'Echo: to stdio');
    const remote = await client.callTool({ name: 'remote_echo', arguments: { message: 'to http' } }, undefined, CALL_TIMEOUT);
    assert.equal(remote.content[0].text, 'Echo: to http');
    const modernEcho = await client.callTool({ name: 'echo', arguments: { message: 'to v2' } }, undefined, CALL_TIMEOUT);
    assert.equal(modernEcho.content[0].text, 'Echo: to v2');
    const sum = await client.callTool({ name: 'add', arguments: { a: 2, b: 40 } }, undefined, CALL_TIMEOUT);
    assert.match(sum.content[0].text, /42/);
    const file = await client.callTool({ name: 'files_read_text_file', arguments: { path: path.join(root, 'notes.txt') } }, undefined, CALL_TIMEOUT);
    assert.equal(file.content[0].text, 'virtual notes\n');
  });

  test('a name that is not published cannot be called, whatever the member has', async () => {
    for (const name of ['ev_get-sum', 'ev_get-env', 'files_move_file', 'get-sum', 'wait_for_cancel', 'nobody_echo']) {
      await assert.rejects(client.callTool({ name, arguments: {} }, undefined, CALL_TIMEOUT),
        (error) => error.code === -32602 && /Unknown tool/.test(error.message), name);
    }
  });

  test('progress of a routed call reaches the client', async () => {
    const progress = [];
    const result = await client.callTool({ name: 'long_task', arguments: { steps: 3 } }, undefined,
      { ...CALL_TIMEOUT, onprogress: (p) => progress.push(p.progress) });
    assert.equal(result.content[0].text, 'done after 3 steps');
    assert.deepEqual(progress, [1, 2, 3]);
  });

  test('sampling and elicitation from the stdio member and from the HTTP members reach the client and back', async () => {
    const sampled = await client.callTool({ name: 'ev_trigger-sampling-request', arguments: { prompt: 'hi', maxTokens: 5 } }, undefined, CALL_TIMEOUT);
    const request = seen.sampling.at(-1);
    assert.ok(sampled.content[0].text.includes(samplingAnswer(request).content.text), JSON.stringify(sampled));
    const confirmed = await client.callTool({ name: 'confirm', arguments: { action: 'ship' } }, undefined, CALL_TIMEOUT);
    assert.match(confirmed.content[0].text, /^accept/);
    assert.match(seen.elicitation.at(-1).params.message, /Really ship\?/);
    const elicited = await client.callTool({ name: 'ev_trigger-elicitation-request', arguments: {} }, undefined, CALL_TIMEOUT);
    assert.ok(!elicited.isError, JSON.stringify(elicited));
    assert.equal(seen.elicitation.length, 2);
    const asked = await client.callTool({ name: 'ask_model', arguments: { question: 'and you?' } }, undefined, CALL_TIMEOUT);
    assert.match(asked.content[0].text, /^model said: sampled\(8\)/);
    const remote = await client.callTool({ name: 'remote_trigger-sampling-request', arguments: { prompt: 'over http', maxTokens: 5 } }, undefined, CALL_TIMEOUT);
    assert.ok(remote.content[0].text.includes(samplingAnswer(seen.sampling.at(-1)).content.text), JSON.stringify(remote));
    assert.equal(seen.sampling.length, 3);
  });

  test('list_changed from one member reaches the client on the session stream', async () => {
    const before = toolChanges.length;
    await client.callTool({ name: 'announce_change', arguments: { kind: 'tools' } }, undefined, CALL_TIMEOUT);
    await waitFor(() => toolChanges.length > before, { timeoutMs: 15_000, what: 'notifications/tools/list_changed' });
  });

  test('policy rules written against upstream names hold through the virtual server', async () => {
    const target = path.join(root, 'written.txt');
    const denied = await client.callTool({ name: 'files_write_file', arguments: { path: target, content: 'x' } }, undefined, CALL_TIMEOUT);
    assert.equal(denied.isError, true);
    assert.match(denied.content[0].text, /no-writes-to-files/);
    assert.equal(fs.existsSync(target), false, 'the write never reached the server');
    const image = await client.callTool({ name: 'ev_get-tiny-image', arguments: {} }, undefined, CALL_TIMEOUT);
    assert.equal(image.isError, true);
    assert.match(image.content[0].text, /no-tiny-images-through-workbench/);
  });

  test('audit records name the real upstream and tool, and the virtual server and published name', async () => {
    await waitFor(() => fs.existsSync(auditLog) && fs.readFileSync(auditLog, 'utf8').includes('"published_name":"add"'),
      { timeoutMs: 10_000, what: 'the audit record of add' });
    const records = fs.readFileSync(auditLog, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    const add = records.find((r) => r.published_name === 'add');
    assert.equal(add.server, 'ev');
    assert.equal(add.tool, 'get-sum');
    assert.equal(add.virtual_server, 'workbench');
    const denied = records.find((r) => r.published_name === 'files_write_file');
    assert.equal(denied.server, 'files');
    assert.equal(denied.tool, 'write_file');
    assert.equal(denied.verdict, 'deny');
    const verified = spawnSync(MEMBRANE_BIN, ['audit', 'verify', auditLog], { encoding: 'utf8' });
    assert.equal(verified.status, 0, verified.stdout + verified.stderr);
  });
});

test('a forged listing cursor is refused with -32602', async () => {
  const { sessionId } = await rawInitialize(gateway.mcp('workbench'));
  const answer = await rawRpc(gateway.mcp('workbench'), { sessionId, method: 'tools/list', params: { cursor: 'bm90LWEtY3Vyc29y' } });
  assert.equal(answer.message?.error?.code, -32602, JSON.stringify(answer.response));
});

test('requests with members of the wrong type get an error, not a crash', async () => {
  const url = gateway.mcp('workbench');
  const { sessionId } = await rawInitialize(url);
  const odd = [
    ['completion/complete', { ref: { type: 5, name: 'x' }, argument: { name: 'a', value: 'b' } }],
    ['completion/complete', { ref: 'ref/prompt' }],
    ['tools/call', { name: 7, arguments: {} }],
    ['tools/call', { name: ['ev_echo'] }],
    ['resources/read', { uri: { href: 'x' } }],
    ['prompts/get', {}],
    ['tools/list', { cursor: 12 }],
  ];
  for (const [method, params] of odd) {
    const answer = await rawRpc(url, { sessionId, method, params });
    assert.ok(answer.message?.error, `${method} ${JSON.stringify(params)}: ${JSON.stringify(answer.response.json ?? answer.response.text)}`);
  }
  const { client } = await connectClient(url);
  const echo = await client.callTool({ name: 'ev_echo', arguments: { message: 'still up' } }, undefined, CALL_TIMEOUT);
  assert.equal(echo.content[0].text, 'Echo: still up');
});

test('an answer to a request no member made is refused with 400, and reaches no member', async () => {
  const url = gateway.mcp('workbench');
  const { sessionId } = await rawInitialize(url);
  for (const id of ['via:nobody:1', 'via:ev:{"a":1}', 'via:ev', 'plain-id', 7]) {
    const answer = await rawFetch(url, {
      headers: mcpHeaders({ sessionId, protocolVersion: '2025-11-25' }),
      body: { jsonrpc: '2.0', id, result: {} },
    });
    assert.equal(answer.status, 400, `${JSON.stringify(id)}: ${answer.text}`);
    assert.equal(answer.json?.error?.code, -32600, answer.text);
    assert.match(answer.json.error.message, /no request of virtual server 'workbench' has this id/);
  }
});

test('SDK v2 client (2026-07-28) through the gateway bridge: merged list and routed calls', async () => {
  const { client } = await connectV2(gateway.mcp('workbench'));
  const { tools } = await client.listTools();
  assert.ok(tools.some((t) => t.name === 'add') && tools.some((t) => t.name === 'remote_echo'), tools.map((t) => t.name).join(' '));
  const sum = await client.callTool({ name: 'add', arguments: { a: 1, b: 1 } });
  assert.match(sum.content[0].text, /2/);
  const echo = await client.callTool({ name: 'echo', arguments: { message: 'v2 to v2' } });
  assert.equal(echo.content[0].text, 'Echo: v2 to v2');
});

test('legacy HTTP+SSE client at /sse/<virtual>: merged list and routed calls', async () => {
  const { client } = await connectClient(gateway.sse('workbench'), { kind: 'sse' });
  const { tools } = await client.listTools();
  assert.ok(tools.some((t) => t.name === 'files_read_text_file'));
  const echo = await client.callTool({ name: 'remote_echo', arguments: { message: 'legacy' } }, undefined, CALL_TIMEOUT);
  assert.equal(echo.content[0].text, 'Echo: legacy');
});

test('one member killed mid-session: the others keep working and its calls fail clearly', async () => {
  const { client } = await connectClient(gateway.mcp('workbench'));
  const first = await client.callTool({ name: 'remote_echo', arguments: { message: 'alive' } }, undefined, CALL_TIMEOUT);
  assert.equal(first.content[0].text, 'Echo: alive');
  await everythingHttp.stop({ signal: 'SIGKILL' });
  const others = await client.callTool({ name: 'ev_echo', arguments: { message: 'still here' } }, undefined, CALL_TIMEOUT);
  assert.equal(others.content[0].text, 'Echo: still here');
  const file = await client.callTool({ name: 'files_read_text_file', arguments: { path: path.join(root, 'notes.txt') } }, undefined, CALL_TIMEOUT);
  assert.equal(file.content[0].text, 'virtual notes\n');
  await assert.rejects(client.callTool({ name: 'remote_echo', arguments: { message: 'gone' } }, undefined, CALL_TIMEOUT),
    (error) => /evh/.test(error.message), 'the error names the upstream that is down');
  const { tools } = await client.listTools();
  assert.ok(!tools.some((t) => t.name === 'remote_echo'), 'the dead member is left out of the list');
  assert.ok(tools.some((t) => t.name === 'ev_echo') && tools.some((t) => t.name === 'echo'));
  // A new session opens without it.
  const late = await connectClient(gateway.mcp('workbench'));
  const echo = await late.client.callTool({ name: 'echo', arguments: { message: 'new session' } }, undefined, CALL_TIMEOUT);
  assert.equal(echo.content[0].text, 'Echo: new session');
  await assert.rejects(late.client.callTool({ name: 'remote_echo', arguments: { message: 'x' } }, undefined, CALL_TIMEOUT),
    (error) => /evh/.test(error.message) && /unavailable|did not answer/.test(error.message));
});

describe('progressive discovery (tool_discovery: search)', () => {
  let client;
  let changes;
  before(async () => {
    ({ client } = await connectClient(gateway.mcp('finder'), { capabilities: FULL_CAPABILITIES }));
    changes = [];
    client.setNotificationHandler(ToolListChangedNotificationSchema, (n) => changes.push(n.method));
  });

  test('tools/list offers only the search tool until something is found', async () => {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name), ['search_tools']);
    assert.deepEqual(tools[0].inputSchema.required, ['query']);
  });

  test('a search adds its matches to the list, announces it, and they can be called', async () => {
    const before = changes.length;
    const found = await client.callTool({ name: 'search_tools', arguments: { query: 'read the contents of a text file' } },
      CallToolResultSchema, CALL_TIMEOUT);
    assert.ok(!found.isError, JSON.stringify(found));
    const names = found.structuredContent.tools;
    assert.equal(names[0], 'files_read_text_file', names.join(' '));
    assert.ok(names.length <= 8);
    assert.match(found.content[0].text, /files_read_text_file/);
    await waitFor(() => changes.length > before, { what: 'notifications/tools/list_changed' });
    const { tools } = await client.listTools();
    const listed = tools.map((t) => t.name);
    assert.equal(listed[0], 'search_tools');
    assert.ok(listed.includes('files_read_text_file'), listed.join(' '));
    assert.ok(!listed.includes('ev_echo'), 'only what was found is listed');
    const file = await client.callTool({ name: 'files_read_text_file', arguments: { path: path.join(root, 'notes.txt') } }, undefined, CALL_TIMEOUT);
    assert.equal(file.content[0].text, 'virtual notes\n');
  });

  test('a found tool the policy hides stays out of the list; one never searched for can still be called', async () => {
    const found = await client.callTool({ name: 'search_tools', arguments: { query: 'write file', limit: 25 } }, CallToolResultSchema, CALL_TIMEOUT);
    assert.ok(found.structuredContent.tools.includes('files_write_file'));
    const { tools } = await client.listTools();
    assert.ok(!tools.some((t) => t.name === 'files_write_file'), 'hidden by no-writes-to-files');
    const echo = await client.callTool({ name: 'ev_echo', arguments: { message: 'unlisted' } }, undefined, CALL_TIMEOUT);
    assert.equal(echo.content[0].text, 'Echo: unlisted');
  });

  test('a search without a query, or with a bad limit, is refused with -32602', async () => {
    for (const args of [{}, { query: '' }, { query: 'file', limit: 0 }, { query: 'file', limit: 'x' }]) {
      await assert.rejects(client.callTool({ name: 'search_tools', arguments: args }, undefined, CALL_TIMEOUT),
        (error) => error.code === -32602, JSON.stringify(args));
    }
  });
});

test('examples/virtual-servers.yaml works as it is', async () => {
  const example = await startGateway(['-c', path.join(SOURCE_DIR, 'examples', 'virtual-servers.yaml'), '--listen', '127.0.0.1:0'],
    { name: 'membrane (examples/virtual-servers.yaml)' });
  const { client } = await connectClient(example.mcp('workbench'), { capabilities: FULL_CAPABILITIES });
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  for (const name of ['demo_echo', 'add', 'docs_read_text_file', 'docs_list_directory']) assert.ok(names.includes(name), names.join(' '));
  assert.ok(!names.some((name) => /write_file|edit_file|move_file/.test(name)), 'the writing tools are not published');
  const echo = await client.callTool({ name: 'demo_echo', arguments: { message: 'example' } }, undefined, CALL_TIMEOUT);
  assert.equal(echo.content[0].text, 'Echo: example');
  const listing = await client.callTool({ name: 'docs_list_directory', arguments: { path: path.join(SOURCE_DIR, 'examples') } }, undefined, CALL_TIMEOUT);
  assert.match(listing.content[0].text, /virtual-servers\.yaml/);
});

test('a member that never answers is left out after member_timeout; the others serve the session', async () => {
  const started = Date.now();
  const { client } = await connectClient(gateway.mcp('patient'), { capabilities: FULL_CAPABILITIES });
  assert.ok(Date.now() - started < 10_000, `initialize took ${Date.now() - started} ms`);
  const { tools } = await client.listTools();
  assert.ok(tools.some((t) => t.name === 'modern_echo'));
  assert.ok(!tools.some((t) => t.name.startsWith('silent_')));
  const echo = await client.callTool({ name: 'modern_echo', arguments: { message: 'patient' } }, undefined, CALL_TIMEOUT);
  assert.equal(echo.content[0].text, 'Echo: patient');
  await assert.rejects(client.callTool({ name: 'silent_anything', arguments: {} }, undefined, CALL_TIMEOUT),
    (error) => /upstream 'silent' of virtual server 'patient' is unavailable/.test(error.message));
  assert.ok(gateway.lines.some((line) => /upstream 'silent' is left out of this session: did not answer within 1000 ms/.test(line)),
    'the gateway says why');
});

describe('a member that speaks only 2026-07-28, next to a session member', () => {
  let client;
  let seen;
  before(async () => {
    ({ client, seen } = await connectClient(gateway.mcp('mixed'), { capabilities: FULL_CAPABILITIES }));
  });

  test('its tools are listed and called, each request carrying the client', async () => {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    assert.ok(names.includes('stateless_echo') && names.includes('ev_echo'), names.join(' '));
    const echo = await client.callTool({ name: 'stateless_echo', arguments: { message: 'to 2026' } }, undefined, CALL_TIMEOUT);
    assert.equal(echo.content[0].text, 'Echo: to 2026');
    const info = await client.callTool({ name: 'stateless_request_info', arguments: {} }, undefined, CALL_TIMEOUT);
    const { headers, meta } = JSON.parse(info.content[0].text);
    assert.equal(headers['mcp-method'], 'tools/call');
    assert.equal(headers['mcp-name'], 'request_info', 'the member sees its own name');
    assert.equal(headers['mcp-protocol-version'], '2026-07-28');
    // The SDK keeps the reserved envelope to itself (a request without it is refused outright);
    // the client's capabilities in it are what let the member ask for elicitation below.
    assert.equal(typeof meta, 'object');
  });

  test('its progress, and its input_required questions asked of the client as requests', async () => {
    const progress = [];
    const long = await client.callTool({ name: 'stateless_long_task', arguments: { steps: 3 } }, undefined,
      { ...CALL_TIMEOUT, onprogress: (p) => progress.push(p.progress) });
    assert.equal(long.content[0].text, 'done after 3 steps');
    assert.deepEqual(progress, [1, 2, 3]);
    const confirmed = await client.callTool({ name: 'stateless_confirm', arguments: { action: 'deploy' } }, undefined, CALL_TIMEOUT);
    assert.match(confirmed.content[0].text, /^accept .*\(state confirming:deploy\)$/);
    assert.match(seen.elicitation.at(-1).params.message, /Really deploy\?/);
    const asked = await client.callTool({ name: 'stateless_ask_model', arguments: { question: 'why?' } }, undefined, CALL_TIMEOUT);
    assert.match(asked.content[0].text, /^model said: sampled\(4\)/);
  });

  test('its list changes reach the session stream', async () => {
    const changes = [];
    client.setNotificationHandler(ToolListChangedNotificationSchema, (n) => changes.push(n.method));
    // The session stream opens with the session; the member's listen may still be starting.
    await waitFor(async () => {
      await client.callTool({ name: 'stateless_announce_change', arguments: { kind: 'tools' } }, undefined, CALL_TIMEOUT);
      return changes.length > 0;
    }, { timeoutMs: 15_000, intervalMs: 500, what: 'notifications/tools/list_changed from the 2026-07-28 member' });
  });

  test('its listing marked cacheable is kept until it announces a change (SEP-2549)', async () => {
    const listsSeen = async () => {
      const stats = await client.callTool({ name: 'stateless_stats', arguments: {} }, undefined, CALL_TIMEOUT);
      return JSON.parse(stats.content[0].text).methods['tools/list'] ?? 0;
    };
    await client.listTools();
    const before = await listsSeen();
    await client.listTools();
    await client.listTools();
    assert.equal(await listsSeen(), before, 'two more listings came from the cache');
    const changes = [];
    client.setNotificationHandler(ToolListChangedNotificationSchema, (n) => changes.push(n.method));
    await client.callTool({ name: 'stateless_announce_change', arguments: { kind: 'tools' } }, undefined, CALL_TIMEOUT);
    await waitFor(() => changes.length > 0, { what: 'the change notification' });
    await client.listTools();
    assert.equal(await listsSeen(), before + 1, 'the change dropped the kept listing');
  });
});

describe('configuration errors name the line', () => {
  const check = (yaml) => {
    const file = path.join(dir, `bad-${Math.random().toString(36).slice(2)}.yaml`);
    fs.writeFileSync(file, yaml);
    const result = spawnSync(MEMBRANE_BIN, ['config', 'check', '-c', file], { encoding: 'utf8' });
    return { status: result.status, text: result.stdout + result.stderr, file };
  };
  const base = [
    'upstreams:',
    '  a: {url: "http://127.0.0.1:1/mcp"}',
    '  b: {url: "http://127.0.0.1:2/mcp"}',
    'virtual_servers:',
    '  v:',
    '    upstreams:',
  ];

  test('two renames to one name', () => {
    const { status, text, file } = check([...base,
      '      a: {tools: {rename: {x: same}}}',
      '      b: {tools: {rename: {y: same}}}', ''].join('\n'));
    assert.notEqual(status, 0);
    assert.ok(text.includes(`${file}:8:`), text);
    assert.match(text, /renamed 'same', which is already the name of tool 'x' of a/);
  });

  test('two members without a prefix, and an unknown member', () => {
    const twoBare = check([...base, '      a: {prefix: ""}', '      b: {prefix: ""}', ''].join('\n'));
    assert.notEqual(twoBare.status, 0);
    assert.match(twoBare.text, /:8:\d+: .*both publish their names without a prefix/);
    const unknown = check([...base, '      a:', '      c:', ''].join('\n'));
    assert.match(unknown.text, /:8:\d+: .*upstream 'c' is not configured/);
  });

  test('a rename into another member\'s prefix, and prefixes that overlap', () => {
    const into = check([...base, '      a: {tools: {rename: {x: b_x}}}', '      b:', ''].join('\n'));
    assert.match(into.text, /renamed 'b_x', which starts with 'b_'/);
    const overlap = check([...base, '      a: {prefix: x}', '      b: {prefix: x_y}', ''].join('\n'));
    assert.match(overlap.text, /:8:\d+: .*also start with 'x_'/);
  });
});
