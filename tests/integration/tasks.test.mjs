// MCP tasks through the gateway (issue 17, item 7).
//
//   - 2025-11-25: a task-augmented tools/call (params.task), then tasks/get, tasks/result,
//     tasks/list and tasks/cancel, and a task whose tool asks the client a question (the
//     elicitation is delivered on the tasks/result stream). server-everything's
//     simulate-research-query runs as a task only (taskSupport "required"). Each test runs
//     directly against the upstream and through the gateway, over Streamable HTTP and over stdio,
//     with the same assertions, so a test that fails only through the gateway is the gateway's.
//   - Policy: a task-augmented call is judged as a call. A denied one gets the plain call's
//     refusal and creates no task, an `ask` asks first, and a redact rule masks the task's result
//     as it masks a call's.
//   - Audit and tracing: every tasks/* request leaves a record and a span, and both name the task,
//     so the task can be followed from the call that created it to its end.
//   - 2026-07-28, where the Tasks extension (io.modelcontextprotocol/tasks, SEP-2663) replaces the
//     2025 tasks: a 2026 client of a 2026 tasks server (tests/fixtures/tasks-server.mjs) is a
//     pass-through; where the two sides' tasks differ, the gateway must bridge them or refuse
//     with an error that says so.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { CallToolResultSchema, CreateTaskResultSchema } from '@modelcontextprotocol/sdk/types.js';

import {
  MEMBRANE_BIN, NODE, SOURCE_DIR, TIME_SCALE,
  cleanup, connectClient, defer, everythingStdioCommand, rawInitialize, rawRpc, setWatchdog, sleep, spawnManaged,
  startEverythingHttp, startGateway, statelessRpc, stdioUpstreamFlag, tmpDir, waitFor,
} from './harness.mjs';

setWatchdog(180_000 * TIME_SCALE);

const T = 60_000 * TIME_SCALE;                       // one test, start to end
const REQUEST = { timeout: 20_000 * TIME_SCALE };   // one SDK request
const TASK_MS = 30_000 * TIME_SCALE;                 // a task, from created to the status waited for

const RESEARCH = 'simulate-research-query';
const TASK = { ttl: 120_000 };
const INTERPRETATION = 'historical';
const ELICITATION = { elicitation: { form: {} } };
const TASKS_EXTENSION = 'io.modelcontextprotocol/tasks';
const V2_CAPABILITIES = { ...ELICITATION, extensions: { [TASKS_EXTENSION]: {} } };
const TASK_METHODS = ['tasks/get', 'tasks/result', 'tasks/list', 'tasks/cancel'];
const TASKS_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'tasks-server.mjs');

const POLICY = `
- rule: no-classified-research
  condition: tool.name in ["simulate-research-query", "research"] and args.topic contains "classified"
  verdict: deny
  message: Classified topics are not researched
- rule: sensitive-research-needs-approval
  condition: tool.name == "simulate-research-query" and args.topic contains "sensitive"
  verdict: ask
- rule: mask-codewords
  condition: mcp.method == "tools/call"
  verdict: redact
  redact: ['\\bCODEWORD-[0-9]{4}\\b']
`;

let everythingHttp;
let tasksServer;   // 2026-07-28 with the Tasks extension
let gateway;       // evh, evs, ts
let policed;       // the same upstreams, with POLICY
let observed;      // evh, evs, with POLICY, --audit-log and --otlp-endpoint
let auditFile;
const exported = [];

const KINDS = [
  { kind: 'http', upstream: 'evh', direct: (options) => connectClient(everythingHttp.url, options) },
  { kind: 'stdio', upstream: 'evs', direct: (options) => connectClient(everythingStdioCommand(), { kind: 'stdio', ...options }) },
];
// `gw` is a getter: the tests are declared before the gateways start.
const through = (gw, upstream) => (options) => connectClient(gw().mcp(upstream), options);

before(async () => {
  const dir = tmpDir('membrane-tasks-');
  const policy = path.join(dir, 'policy.yaml');
  fs.writeFileSync(policy, POLICY);
  auditFile = path.join(dir, 'audit.log');
  const collector = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    if (req.method === 'POST' && req.url === '/v1/traces') exported.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise((resolve) => collector.listen(0, '127.0.0.1', resolve));
  defer(() => new Promise((resolve) => collector.close(resolve)));

  everythingHttp = await startEverythingHttp();
  const fixture = spawnManaged('tasks-server', NODE, [TASKS_JS, '0']);
  tasksServer = { url: (await fixture.waitForLine(/listening on (\S+)/, 20_000))[1] };
  const upstreams = ['--upstream', `evh=${everythingHttp.url}`, '--upstream', stdioUpstreamFlag('evs', everythingStdioCommand())];
  [gateway, policed, observed] = await Promise.all([
    startGateway([...upstreams, '--upstream', `ts=${tasksServer.url}`], { name: 'membrane (tasks)' }),
    startGateway([...upstreams, '--upstream', `ts=${tasksServer.url}`, '--policy', policy], { name: 'membrane (tasks, policy)' }),
    startGateway([...upstreams, '--policy', policy, '--audit-log', auditFile,
      '--otlp-endpoint', `http://127.0.0.1:${collector.address().port}`], { name: 'membrane (tasks, observed)' }),
  ]);
});
after(cleanup);

// ------------------------------------------------------------------------------------------------
// 2025-11-25 tasks, with the SDK v1 client's experimental task API
// ------------------------------------------------------------------------------------------------

// A client that accepts every elicitation, answering the research tool's clarification question.
// simulate-research-query is registered once the session is initialized, so it waits for it.
async function researchClient(connect) {
  const c = await connect({
    capabilities: ELICITATION,
    onElicit: () => ({ action: 'accept', content: { interpretation: INTERPRETATION } }),
  });
  await waitFor(async () => (await c.client.listTools(undefined, REQUEST)).tools.some((t) => t.name === RESEARCH),
    { timeoutMs: 10_000 * TIME_SCALE, what: `${RESEARCH} to be listed` });
  return c;
}

async function createTask(client, args) {
  const created = await client.request({ method: 'tools/call', params: { name: RESEARCH, arguments: args } },
    CreateTaskResultSchema, { ...REQUEST, task: TASK });
  assert.equal(typeof created.task?.taskId, 'string', `a CreateTaskResult: ${JSON.stringify(created)}`);
  return created.task;
}

// Polls tasks/get until `until(task)`; resolves {task, statuses} (each status once, in order).
async function pollTask(client, taskId, until) {
  const statuses = [];
  const deadline = Date.now() + TASK_MS;
  for (;;) {
    const task = await client.experimental.tasks.getTask(taskId, REQUEST);
    assert.equal(task.taskId, taskId);
    if (statuses.at(-1) !== task.status) statuses.push(task.status);
    if (until(task)) return { task, statuses };
    if (Date.now() > deadline) throw new Error(`task ${taskId} went ${statuses.join(' → ')} and stayed there for ${TASK_MS} ms`);
    await sleep(Math.min(task.pollInterval ?? 250, 250));
  }
}

const taskResult = (client, taskId) => client.experimental.tasks.getTaskResult(taskId, CallToolResultSchema, REQUEST);
const terminal = (task) => ['completed', 'failed', 'cancelled'].includes(task.status);
const textOf = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');
const heading = (result) => textOf(result).split('\n')[0];

describe('2025-11-25 tasks, directly and through the gateway', { concurrency: true }, () => {
  for (const { kind, upstream, direct } of KINDS) {
    for (const [route, connect] of [['direct', direct], ['gateway', through(() => gateway, upstream)]]) {
      const label = `[${kind}, ${route}]`;

      test(`${label} a task runs to completed: tools/call + task, tasks/get, tasks/result, tasks/list`, { timeout: T }, async () => {
        const { client } = await researchClient(connect);
        const created = await createTask(client, { topic: 'membranes' });
        assert.equal(created.status, 'working');
        const { statuses } = await pollTask(client, created.taskId, terminal);
        assert.deepEqual(statuses, ['working', 'completed']);
        const result = await taskResult(client, created.taskId);
        assert.equal(heading(result), '# Research Report: membranes');
        assert.deepEqual(result._meta?.['io.modelcontextprotocol/related-task'], { taskId: created.taskId });
        const { tasks } = await client.experimental.tasks.listTasks(undefined, REQUEST);
        assert.deepEqual(tasks.map((t) => [t.taskId, t.status]), [[created.taskId, 'completed']]);
      });

      test(`${label} tasks/cancel cancels a working task, and tasks/get then says cancelled`, { timeout: T }, async () => {
        const { client } = await researchClient(connect);
        const created = await createTask(client, { topic: 'to be cancelled' });
        const cancelled = await client.experimental.tasks.cancelTask(created.taskId, REQUEST);
        assert.equal(cancelled.taskId, created.taskId);
        assert.equal(cancelled.status, 'cancelled');
        // Past the next research stage: the work going on in the background must not revive it.
        await sleep(1_500);
        assert.equal((await client.experimental.tasks.getTask(created.taskId, REQUEST)).status, 'cancelled');
      });

      test(`${label} a task's question (elicitation on the tasks/result stream) is answered`, { timeout: T }, async () => {
        const { client, seen } = await researchClient(connect);
        const created = await createTask(client, { topic: 'python', ambiguous: true });
        const { task, statuses } = await pollTask(client, created.taskId, (t) => t.status !== 'working');
        assert.equal(task.status, 'input_required', `statuses: ${statuses.join(' → ')}`);
        // The question is queued for the task and delivered while tasks/result waits.
        const result = await taskResult(client, created.taskId);
        assert.equal(seen.elicitation.length, 1, 'the client was asked once');
        assert.deepEqual(seen.elicitation[0].params._meta?.['io.modelcontextprotocol/related-task'], { taskId: created.taskId });
        assert.equal(heading(result), `# Research Report: python (${INTERPRETATION})`);
        assert.equal((await client.experimental.tasks.getTask(created.taskId, REQUEST)).status, 'completed');
      });
    }
  }
});

// ------------------------------------------------------------------------------------------------
// Policy: a task-augmented call is judged as a call
// ------------------------------------------------------------------------------------------------

describe('policy', { concurrency: true }, () => {
  for (const { kind, upstream } of KINDS) {
    test(`[${kind}] a denied task-augmented call gets the plain call's refusal and creates no task`, { timeout: T }, async () => {
      const url = policed.mcp(upstream);
      const { sessionId, protocolVersion } = await rawInitialize(url, { capabilities: ELICITATION });
      const rpc = (method, params) => rawRpc(url, { sessionId, protocolVersion, method, params, timeoutMs: REQUEST.timeout });
      await waitFor(async () => (await rpc('tools/list', {})).message?.result?.tools.some((t) => t.name === RESEARCH),
        { timeoutMs: 10_000 * TIME_SCALE, what: `${RESEARCH} to be listed` });
      const call = { name: RESEARCH, arguments: { topic: 'classified plans' } };
      const plain = await rpc('tools/call', call);
      const tasked = await rpc('tools/call', { ...call, task: TASK });
      assert.equal(plain.message?.result?.isError, true, `the plain call is refused: ${plain.response.text}`);
      assert.deepEqual(plain.message.result._meta?.['io.membrane/policy'], { rule: 'no-classified-research', verdict: 'deny' });
      assert.equal(tasked.status, plain.status);
      assert.deepEqual(tasked.message, { ...plain.message, id: tasked.id });
      // An allowed task on the same session is listed: the list would show a task the denied call made.
      const allowed = await rpc('tools/call', { name: RESEARCH, arguments: { topic: 'open' }, task: TASK });
      const taskId = allowed.message?.result?.task?.taskId;
      assert.ok(taskId, `the allowed call creates a task: ${allowed.response.text}`);
      assert.deepEqual((await rpc('tasks/list', {})).message?.result?.tasks?.map((t) => t.taskId), [taskId]);
    });

    test(`[${kind}] an ask rule asks the user before a task-augmented call goes on`, { timeout: T }, async () => {
      const { client, seen } = await researchClient(through(() => policed, upstream));
      const created = await createTask(client, { topic: 'sensitive matters' });
      assert.equal(seen.elicitation.length, 1, 'the user was asked');
      assert.match(seen.elicitation[0].params.message, /sensitive-research-needs-approval/);
      await pollTask(client, created.taskId, terminal);
      assert.equal(heading(await taskResult(client, created.taskId)), '# Research Report: sensitive matters');
    });

    test(`[${kind}] a redact rule masks the task's result as it masks a call's`, { timeout: T }, async () => {
      const { client } = await researchClient(through(() => policed, upstream));
      const echoed = await client.callTool({ name: 'echo', arguments: { message: 'CODEWORD-1234' } }, undefined, REQUEST);
      assert.equal(textOf(echoed), 'Echo: [REDACTED:mask-codewords]', 'the rule masks a plain call\'s result');
      const created = await createTask(client, { topic: 'CODEWORD-1234' });
      await pollTask(client, created.taskId, terminal);
      const result = await taskResult(client, created.taskId);
      assert.equal(heading(result), '# Research Report: [REDACTED:mask-codewords]', 'the task\'s result is masked');
      assert.ok(!JSON.stringify(result).includes('CODEWORD-1234'), 'the code word appears nowhere in the task\'s result');
    });
  }
});

// ------------------------------------------------------------------------------------------------
// Audit and tracing follow the task
// ------------------------------------------------------------------------------------------------

describe('audit records and spans', () => {
  // Per upstream kind: the ids of a task that completed and of one that was cancelled.
  const runs = [];

  before(async () => {
    await Promise.all(KINDS.map(async ({ upstream }) => {
      const { client } = await researchClient(through(() => observed, upstream));
      const completed = await createTask(client, { topic: 'audited' });
      await pollTask(client, completed.taskId, terminal);
      await taskResult(client, completed.taskId);
      await client.experimental.tasks.listTasks(undefined, REQUEST);
      const cancelled = await createTask(client, { topic: 'audited, then cancelled' });
      await client.experimental.tasks.cancelTask(cancelled.taskId, REQUEST);
      await client.experimental.tasks.getTask(cancelled.taskId, REQUEST);
      runs.push({ upstream, completed: completed.taskId, cancelled: cancelled.taskId });
    }));
  });

  const records = (upstream) => fs.readFileSync(auditFile, 'utf8').split('\n').filter(Boolean)
    .map((line) => JSON.parse(line)).filter((r) => r.server === upstream);
  const serverSpans = (upstream) => exported
    .flatMap((body) => body.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)))
    .filter((s) => s.kind === 2 && s.attributes.some(({ key, value }) => key === 'membrane.upstream' && value.stringValue === upstream));
  const mentions = (record, taskId) => JSON.stringify(record).includes(taskId);
  const carries = (span, taskId) => span.attributes.some(({ value }) => value.stringValue === taskId);

  test('the audit log verifies and has a record for the task-augmented call and for every tasks/* request', () => {
    const verify = spawnSync(MEMBRANE_BIN, ['audit', 'verify', auditFile], { encoding: 'utf8' });
    assert.equal(verify.status, 0, verify.stderr);
    for (const { upstream } of runs) {
      const mine = records(upstream);
      const calls = mine.filter((r) => r.method === 'tools/call' && r.tool === RESEARCH);
      assert.equal(calls.length, 2, `two task-augmented calls on ${upstream}`);
      for (const call of calls) {
        // Judged as any call: the redact rule holds for every tools/call.
        assert.equal(call.verdict, 'redact');
        assert.deepEqual(call.rules, ['mask-codewords']);
        assert.equal(call.outcome, 'ok');
      }
      for (const method of TASK_METHODS) {
        const of = mine.filter((r) => r.method === method);
        assert.ok(of.length >= 1, `a ${method} record on ${upstream}`);
        for (const record of of) {
          assert.equal(record.session, calls[0].session, `${method} is recorded in the calls' session`);
          assert.equal(record.status, 200);
          assert.equal(record.outcome, 'ok');
        }
      }
    }
  });

  test('audit records name the task, from the call that created it to its end', () => {
    const problems = [];
    for (const { upstream, completed, cancelled } of runs) {
      const mine = records(upstream);
      for (const taskId of [completed, cancelled]) {
        if (!mine.some((r) => r.method === 'tools/call' && mentions(r, taskId))) {
          problems.push(`${upstream}: no tools/call record names the task it created (${taskId})`);
        }
      }
      for (const method of ['tasks/get', 'tasks/result', 'tasks/cancel']) {
        const of = mine.filter((r) => r.method === method);
        const unnamed = of.filter((r) => ![completed, cancelled].some((taskId) => mentions(r, taskId)));
        if (unnamed.length > 0) {
          const { hash, prev, ...shown } = unnamed[0];
          problems.push(`${upstream}: ${unnamed.length} of ${of.length} ${method} records name no task, e.g. ${JSON.stringify(shown)}`);
        }
      }
      for (const [taskId, end] of [[completed, 'completed'], [cancelled, 'cancelled']]) {
        if (!mine.some((r) => mentions(r, taskId) && mentions(r, end))) {
          problems.push(`${upstream}: no record says that task ${taskId} ended ${end}`);
        }
      }
    }
    assert.deepEqual(problems, []);
  });

  test('a SERVER span per tasks/* request, and the task id on the call\'s span and on theirs', { timeout: T }, async () => {
    const spanned = () => runs.every(({ upstream }) => TASK_METHODS.every((m) => serverSpans(upstream).some((s) => s.name.startsWith(m))));
    // Spans are exported in batches; what is still missing after the wait is listed below.
    await waitFor(spanned, { timeoutMs: 15_000 * TIME_SCALE, what: 'the tasks/* spans' }).catch(() => {});
    const problems = [];
    for (const { upstream, completed, cancelled } of runs) {
      const mine = serverSpans(upstream);
      for (const method of TASK_METHODS) {
        if (!mine.some((s) => s.name.startsWith(method))) problems.push(`${upstream}: no SERVER span for ${method}`);
      }
      for (const taskId of [completed, cancelled]) {
        if (!mine.some((s) => s.name.startsWith('tools/call') && carries(s, taskId))) {
          problems.push(`${upstream}: no tools/call span carries the task id ${taskId}`);
        }
      }
      for (const method of ['tasks/get', 'tasks/result', 'tasks/cancel']) {
        const of = mine.filter((s) => s.name.startsWith(method));
        const unnamed = of.filter((s) => ![completed, cancelled].some((taskId) => carries(s, taskId)));
        if (unnamed.length > 0) {
          problems.push(`${upstream}: ${unnamed.length} of ${of.length} ${method} spans carry no task id ` +
            `(name "${unnamed[0].name}", attributes ${unnamed[0].attributes.map((a) => a.key).join(', ')})`);
        }
      }
    }
    assert.deepEqual(problems, []);
  });
});

// ------------------------------------------------------------------------------------------------
// 2026-07-28: the Tasks extension
// ------------------------------------------------------------------------------------------------

let v2Id = 0;
// A 2026-07-28 request. tasks/get, tasks/update and tasks/cancel carry the task id in Mcp-Name,
// as SEP-2663's HTTP binding requires.
function v2(url, method, params) {
  const name = method.startsWith('tasks/') ? params.taskId : undefined;
  return statelessRpc(url, { method, params, name, capabilities: V2_CAPABILITIES, id: ++v2Id, timeoutMs: REQUEST.timeout });
}

async function v2Result(url, method, params) {
  const response = await v2(url, method, params);
  assert.ok(response.message?.result, `${method} answered HTTP ${response.status}: ${response.text.slice(0, 500)}`);
  return response.message.result;
}

async function pollV2(url, taskId, until) {
  const deadline = Date.now() + TASK_MS;
  for (;;) {
    const task = await v2Result(url, 'tasks/get', { taskId });
    if (until(task)) return task;
    if (Date.now() > deadline) throw new Error(`task ${taskId} stayed ${task.status} for ${TASK_MS} ms`);
    await sleep(task.pollIntervalMs ?? 200);
  }
}

describe('2026-07-28 client -> 2026-07-28 tasks server, directly and through the gateway', { concurrency: true }, () => {
  for (const [route, url] of [['direct', () => tasksServer.url], ['gateway', () => gateway.mcp('ts')]]) {
    const label = `[${route}]`;

    test(`${label} server/discover offers the Tasks extension`, { timeout: T }, async () => {
      const discovered = await v2Result(url(), 'server/discover', {});
      assert.deepEqual(discovered.capabilities.extensions?.[TASKS_EXTENSION], {});
    });

    test(`${label} a call becomes a task that tasks/get follows to its result`, { timeout: T }, async () => {
      const created = await v2Result(url(), 'tools/call', { name: 'research', arguments: { topic: 'membranes', ms: 500 } });
      assert.equal(created.resultType, 'task');
      assert.equal(created.status, 'working');
      const task = await pollV2(url(), created.taskId, terminal);
      assert.equal(task.status, 'completed');
      assert.equal(textOf(task.result), 'report on membranes');
    });

    test(`${label} tasks/cancel cancels a working task`, { timeout: T }, async () => {
      const created = await v2Result(url(), 'tools/call', { name: 'research', arguments: { topic: 'to be cancelled', ms: 10_000 } });
      assert.equal((await v2Result(url(), 'tasks/cancel', { taskId: created.taskId })).resultType, 'complete');
      assert.equal((await v2Result(url(), 'tasks/get', { taskId: created.taskId })).status, 'cancelled');
    });

    test(`${label} a task's question (inputRequests) is answered with tasks/update`, { timeout: T }, async () => {
      const created = await v2Result(url(), 'tools/call', { name: 'clarify', arguments: { topic: 'python' } });
      const asking = await pollV2(url(), created.taskId, (t) => t.status !== 'working');
      assert.equal(asking.status, 'input_required');
      assert.equal(asking.inputRequests.interpretation.method, 'elicitation/create');
      await v2Result(url(), 'tasks/update', {
        taskId: created.taskId,
        inputResponses: { interpretation: { action: 'accept', content: { interpretation: 'snake' } } },
      });
      const task = await pollV2(url(), created.taskId, terminal);
      assert.equal(textOf(task.result), 'report on python (snake)');
    });
  }
});

describe('tasks across revisions: bridged, or refused with an error that says so', { concurrency: true }, () => {
  for (const { kind, upstream } of KINDS) {
    const label = `[2026-07-28 client -> ${kind} session server]`;

    test(`${label} server/discover offers tasks only as the 2026-07-28 extension`, { timeout: T }, async () => {
      const { capabilities } = await v2Result(gateway.mcp(upstream), 'server/discover', {});
      assert.ok(!('tasks' in capabilities), `the 2025 tasks capability is no 2026-07-28 capability: ${JSON.stringify(capabilities)}`);
    });

    test(`${label} a task-only tool's call becomes a task, or is refused with an error about tasks`, { timeout: T }, async () => {
      const url = gateway.mcp(upstream);
      await waitFor(async () => (await v2Result(url, 'tools/list', {})).tools.some((t) => t.name === RESEARCH),
        { timeoutMs: 10_000 * TIME_SCALE, what: `${RESEARCH} to be listed` });
      const response = await v2(url, 'tools/call', { name: RESEARCH, arguments: { topic: 'bridged' } });
      const { result, error } = response.message ?? {};
      if (result?.resultType === 'task') {
        const task = await pollV2(url, result.taskId, terminal);
        assert.equal(task.status, 'completed');
        assert.equal(heading(task.result), '# Research Report: bridged');
        return;
      }
      if (result?.isError) {
        // The session server's own refusal, passed on: a 2026-07-28 client cannot ask for 2025
        // task augmentation, and the server says the tool needs it.
        assert.match((result.content ?? []).map((c) => c.text ?? "").join(" "), /task/i, response.text.slice(0, 500));
        return;
      }
      assert.ok(error, `neither a task, nor a refusal, nor a JSON-RPC error: ${response.text.slice(0, 500)}`);
      assert.match(error.message, /task/i);
    });
  }

  const label = '[2025-11-25 client -> 2026-07-28 tasks server]';

  test(`${label} a task-augmented call becomes a 2025 task, or a plain call when no tasks are offered`, { timeout: T }, async () => {
    const url = gateway.mcp('ts');
    const { sessionId, protocolVersion, result: initialized } = await rawInitialize(url, { capabilities: ELICITATION });
    const rpc = (method, params) => rawRpc(url, { sessionId, protocolVersion, method, params, timeoutMs: REQUEST.timeout });
    const offered = initialized.capabilities.tasks?.requests?.tools?.call !== undefined;
    const called = await rpc('tools/call', { name: 'research', arguments: { topic: 'bridged', ms: 500 }, task: TASK });
    const result = called.message?.result;
    assert.ok(result, `tools/call answered: ${called.response.text.slice(0, 500)}`);
    assert.notEqual(result.resultType, 'task', 'a 2026-07-28 task result reaches a 2025 client');
    if (!result.task) {
      assert.ok(!offered, 'initialize offers task-augmented tools/call, but the call made no task');
      assert.equal(textOf(result), 'report on bridged');
      return;
    }
    const deadline = Date.now() + TASK_MS;
    let task;
    do {
      await sleep(200);
      task = (await rpc('tasks/get', { taskId: result.task.taskId })).message?.result;
    } while (task && !terminal(task) && Date.now() < deadline);
    assert.equal(task?.status, 'completed');
    const payload = (await rpc('tasks/result', { taskId: result.task.taskId })).message?.result;
    assert.equal(textOf(payload), 'report on bridged');
  });

  test(`${label} tasks/get, tasks/result, tasks/list and tasks/cancel are answered, or refused with an error that names tasks`, { timeout: T }, async () => {
    const url = gateway.mcp('ts');
    const { sessionId, protocolVersion } = await rawInitialize(url, { capabilities: ELICITATION });
    const problems = [];
    for (const method of TASK_METHODS) {
      const params = method === 'tasks/list' ? {} : { taskId: 'no-such-task' };
      const { message, response } = await rawRpc(url, { sessionId, protocolVersion, method, params, timeoutMs: REQUEST.timeout });
      const error = message?.error;
      if (!message) problems.push(`${method}: no JSON-RPC response (HTTP ${response.status})`);
      // A header the client never sent cannot be its fault: the gateway built the upstream request.
      else if (error?.code === -32020) problems.push(`${method}: ${error.code} ${error.message}`);
      else if (error && !/task/i.test(error.message)) problems.push(`${method}: ${error.code} "${error.message}" does not say why`);
    }
    assert.deepEqual(problems, []);
  });
});
