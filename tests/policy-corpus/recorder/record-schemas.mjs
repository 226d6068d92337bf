#!/usr/bin/env node
// Records the real `tools/list` answer of each MCP server pinned in package.json
// into ../schemas/<short-name>.json, for the policy corpus (../*.test.yaml).
//
// Every server runs over stdio in a throw-away temp directory that is also its
// HOME, with dummy credentials, and is killed after listing. No server needs
// the network to list its tools.
//
//   cd tests/policy-corpus/recorder && npm install && node record-schemas.mjs [short-name ...]
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const schemasDir = path.resolve(here, '..', 'schemas');
const TIMEOUT_MS = Number(process.env.RECORD_TIMEOUT_MS || 90_000);

function pkgInfo(name) {
  // Read the installed package.json directly: some packages' "exports" maps
  // do not expose it.
  const dir = path.join(here, 'node_modules', name);
  const pj = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  return { dir, version: pj.version, bin: pj.bin };
}

function binPath(name, binName) {
  const { dir, bin } = pkgInfo(name);
  const rel = typeof bin === 'string' ? bin : bin[binName ?? Object.keys(bin)[0]];
  return path.join(dir, rel);
}

// Each entry: short name, npm package, how to start it (given a temp work dir).
const SERVERS = [
  {
    server: 'filesystem',
    pkg: '@modelcontextprotocol/server-filesystem',
    start: (work) => ({ command: process.execPath, args: [binPath('@modelcontextprotocol/server-filesystem'), work] }),
  },
  {
    server: 'everything',
    pkg: '@modelcontextprotocol/server-everything',
    start: () => ({ command: process.execPath, args: [binPath('@modelcontextprotocol/server-everything'), 'stdio'] }),
  },
  {
    server: 'memory',
    pkg: '@modelcontextprotocol/server-memory',
    start: (work) => ({
      command: process.execPath,
      args: [binPath('@modelcontextprotocol/server-memory')],
      env: { MEMORY_FILE_PATH: path.join(work, 'memory.jsonl') },
    }),
  },
  {
    server: 'desktop-commander',
    pkg: '@wonderwhy-er/desktop-commander',
    prepare: (work) => {
      // Opt out of telemetry before first start (config lives under $HOME).
      const dir = path.join(work, '.claude-server-commander');
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ telemetryEnabled: false }, null, 2));
    },
    start: () => ({
      command: process.execPath,
      args: [binPath('@wonderwhy-er/desktop-commander', 'desktop-commander'), '--no-onboarding'],
    }),
  },
  {
    server: 'kubernetes',
    pkg: 'mcp-server-kubernetes',
    // It loads a kubeconfig at start-up; give it a dummy one whose cluster is
    // never contacted (listing tools talks to no cluster).
    prepare: (work) => {
      fs.writeFileSync(
        path.join(work, 'kubeconfig'),
        [
          'apiVersion: v1',
          'kind: Config',
          'clusters: [{name: dummy, cluster: {server: "https://127.0.0.1:1"}}]',
          'users: [{name: dummy, user: {token: dummy}}]',
          'contexts: [{name: dummy, context: {cluster: dummy, user: dummy, namespace: default}}]',
          'current-context: dummy',
          '',
        ].join('\n'),
      );
    },
    start: (work) => ({
      command: process.execPath,
      args: [binPath('mcp-server-kubernetes')],
      env: { KUBECONFIG: path.join(work, 'kubeconfig') },
    }),
  },
  {
    server: 'playwright',
    pkg: '@playwright/mcp',
    start: () => ({ command: process.execPath, args: [binPath('@playwright/mcp'), '--headless', '--isolated'] }),
  },
  {
    server: 'fetch',
    pkg: 'mcp-fetch-server',
    start: () => ({ command: process.execPath, args: [binPath('mcp-fetch-server', 'mcp-fetch-server')] }),
  },
  {
    server: 'github',
    pkg: '@modelcontextprotocol/server-github',
    start: () => ({
      command: process.execPath,
      args: [binPath('@modelcontextprotocol/server-github')],
      env: { GITHUB_PERSONAL_ACCESS_TOKEN: 'dummy' },
    }),
  },
  {
    server: 'git',
    pkg: '@cyanheads/git-mcp-server',
    start: (work) => ({
      command: process.execPath,
      args: [binPath('@cyanheads/git-mcp-server')],
      env: {
        MCP_TRANSPORT_TYPE: 'stdio',
        MCP_LOG_LEVEL: 'error',
        LOGS_DIR: path.join(work, 'logs'),
        GIT_BASE_DIR: work,
      },
    }),
  },
  {
    server: 'claude-code',
    pkg: '@anthropic-ai/claude-code',
    // The npm wrapper's postinstall only links the platform binary; with
    // ignore-scripts we start the platform package's native binary directly.
    start: () => {
      const plat = `@anthropic-ai/claude-code-${process.platform}-${process.arch}`;
      return {
        command: path.join(pkgInfo(plat).dir, 'claude'),
        args: ['mcp', 'serve'],
        env: {
          DISABLE_AUTOUPDATER: '1',
          DISABLE_TELEMETRY: '1',
          DISABLE_ERROR_REPORTING: '1',
          CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
        },
      };
    },
  },
];

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function record(spec) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `mcp-record-${spec.server}-`));
  spec.prepare?.(work);
  const { command, args, env = {} } = spec.start(work);
  const transport = new StdioClientTransport({
    command,
    args,
    cwd: work,
    stderr: 'pipe',
    env: {
      PATH: process.env.PATH,
      HOME: work,
      USERPROFILE: work,
      TMPDIR: work,
      LANG: 'C.UTF-8',
      NO_COLOR: '1',
      CI: '1',
      ...env,
    },
  });
  let stderr = '';
  transport.stderr?.on('data', (d) => {
    if (stderr.length < 20_000) stderr += d.toString();
  });
  const client = new Client({ name: 'membrane-policy-corpus-recorder', version: '1.0.0' });
  const tools = [];
  try {
    await withTimeout(
      (async () => {
        await client.connect(transport);
        let cursor;
        do {
          const page = await client.listTools(cursor ? { cursor } : {});
          tools.push(...page.tools);
          cursor = page.nextCursor;
        } while (cursor);
      })(),
      TIMEOUT_MS,
      spec.server,
    );
  } catch (err) {
    err.message += `\n--- ${spec.server} stderr ---\n${stderr.slice(-4000)}`;
    throw err;
  } finally {
    const pid = transport.pid;
    await client.close().catch(() => {});
    if (pid && isAlive(pid)) {
      await new Promise((r) => setTimeout(r, 500));
      if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    fs.rmSync(work, { recursive: true, force: true, maxRetries: 3 });
  }
  const { version } = pkgInfo(spec.pkg);
  const out = {
    server: spec.server,
    package: `${spec.pkg}@${version}`,
    recorded: new Date().toISOString(),
    tools,
  };
  fs.mkdirSync(schemasDir, { recursive: true });
  fs.writeFileSync(path.join(schemasDir, `${spec.server}.json`), JSON.stringify(out, null, 2) + '\n');
  return out;
}

const only = process.argv.slice(2);
let failed = 0;
for (const spec of SERVERS) {
  if (only.length && !only.includes(spec.server)) continue;
  try {
    const out = await record(spec);
    if (!out.tools.length) throw new Error(`${spec.server}: tools/list returned no tools`);
    console.log(`${spec.server.padEnd(18)} ${out.package.padEnd(48)} ${out.tools.length} tools`);
  } catch (err) {
    failed++;
    console.error(`FAILED ${spec.server}: ${err.message}`);
  }
}
process.exit(failed ? 1 : 0);
