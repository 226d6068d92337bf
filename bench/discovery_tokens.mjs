#!/usr/bin/env node
// What a virtual server's tool list costs the model's context, with every tool listed and with
// progressive discovery (tool_discovery: search), on a real catalogue: the reference
// server-everything and server-filesystem behind one gateway, through the official SDK client.
//
//   node bench/discovery_tokens.mjs [--write-results]     (after cmake --build build)
//
// Tokens are counted with gpt-tokenizer (o200k_base) over each tool definition as the client
// hands it to a model API (name, description, input schema, as JSON). Anthropic's tokenizer is
// not public: read the figures as a ratio between the two modes, which any BPE tokenizer gives
// alike. Prints a Markdown table; --write-results appends it to bench/RESULTS.md.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const modules = path.join(root, 'tests', 'node_modules');
const { Client } = await import(path.join(modules, '@modelcontextprotocol/sdk/dist/esm/client/index.js'));
const { StreamableHTTPClientTransport } = await import(
  path.join(modules, '@modelcontextprotocol/sdk/dist/esm/client/streamableHttp.js'));
const { ToolListChangedNotificationSchema, CallToolResultSchema } = await import(
  path.join(modules, '@modelcontextprotocol/sdk/dist/esm/types.js'));
const { encode } = await import(path.join(modules, 'gpt-tokenizer/esm/main.js'));

// Tasks an agent might be given, one search each.
const TASKS = [
  'read the contents of a text file',
  'list the files in a directory',
  'add two numbers',
  'echo a message back',
  'search for files matching a pattern',
];

const tokensOf = (tools) =>
  tools.reduce((sum, t) => sum + encode(JSON.stringify({ name: t.name, description: t.description ?? '', input_schema: t.inputSchema })).length, 0);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'membrane-discovery-'));
fs.writeFileSync(path.join(dir, 'notes.txt'), 'notes\n');
const config = path.join(dir, 'membrane.yaml');
const everything = path.join(modules, '@modelcontextprotocol/server-everything/dist/index.js');
const filesystem = path.join(modules, '@modelcontextprotocol/server-filesystem/dist/index.js');
fs.writeFileSync(config, `listen: "127.0.0.1:0"
log_level: warn
upstreams:
  everything: {command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(everything)}, stdio]}
  files: {command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(filesystem)}, ${JSON.stringify(dir)}]}
virtual_servers:
  listed: {upstreams: [everything, files]}
  searched: {tool_discovery: search, upstreams: [everything, files]}
`);
const gateway = spawn(path.join(root, 'build', 'membrane'), ['serve', '-c', config, '--log-level', 'info'],
  { stdio: ['ignore', 'ignore', 'pipe'] });
const base = await new Promise((resolve, reject) => {
  let text = '';
  gateway.stderr.on('data', (chunk) => {
    text += chunk;
    const found = text.match(/membrane listening on (http:\/\/\S+)/);
    if (found) resolve(found[1]);
  });
  gateway.on('exit', (code) => reject(new Error(`membrane exited (${code}): ${text}`)));
});

const connect = async (name) => {
  const client = new Client({ name: 'discovery-tokens', version: '1' }, { capabilities: { sampling: {}, elicitation: {}, roots: {} } });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp/${name}`)));
  return client;
};

try {
  const listed = await connect('listed');
  const all = (await listed.listTools()).tools;
  const listTokens = tokensOf(all);
  await listed.close();

  const searched = await connect('searched');
  let changed = 0;
  searched.setNotificationHandler(ToolListChangedNotificationSchema, () => { changed++; });
  const start = (await searched.listTools()).tools;
  const startTokens = tokensOf(start);
  const rows = [];
  for (const task of TASKS) {
    const result = await searched.callTool({ name: 'search_tools', arguments: { query: task, limit: 3 } }, CallToolResultSchema);
    const resultTokens = encode(result.content.map((c) => c.text).join('\n')).length;
    const now = (await searched.listTools()).tools;
    rows.push({ task, found: result.structuredContent.tools, resultTokens, listTokens: tokensOf(now), listed: now.length });
  }
  await searched.close();

  const perTool = listTokens / all.length;
  const lines = [
    '',
    '## Progressive discovery: tool-list tokens (issue 20)',
    '',
    `- command: \`node bench/discovery_tokens.mjs\` (${new Date().toISOString().slice(0, 10)})`,
    '- catalogue: server-everything and server-filesystem (both over stdio) as one virtual server, every tool published;' +
      ' tokens: gpt-tokenizer o200k_base over each definition as JSON (name, description, input schema)',
    '',
    '| mode | tools in the list | tokens of the list |',
    '|---|---:|---:|',
    `| every tool listed (\`tool_discovery: list\`) | ${all.length} | ${listTokens} |`,
    `| search, before any search (\`tool_discovery: search\`) | ${start.length} | ${startTokens} |`,
    ...rows.map((row, i) => `| search, after ${i + 1} search${i ? 'es' : ''} (limit 3): "${row.task}" → ${row.found.join(', ')} | ${row.listed} | ${row.listTokens} (+${row.resultTokens} for the search's answer) |`),
    '',
    `- ${all.length} tools cost ${listTokens} tokens listed, ${perTool.toFixed(0)} per tool on average: a 200-tool catalogue of the same kind would cost about ${Math.round(perTool * 200)} tokens in every request.` +
      ` With search the list starts at ${startTokens} tokens and grows only by what the agent looks for (${rows.at(-1).listTokens} after ${rows.length} searches here).`,
    `- \`notifications/tools/list_changed\` the client received: ${changed} (one per search that found something, and the members' own).`,
    '',
  ];
  const table = lines.join('\n');
  process.stdout.write(table);
  if (process.argv.includes('--write-results')) fs.appendFileSync(path.join(root, 'bench', 'RESULTS.md'), table);
} finally {
  gateway.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
}
