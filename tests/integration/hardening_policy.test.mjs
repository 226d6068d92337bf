// Hardening, operator files: a policy that would judge nothing fails closed (at start-up and on
// reload), and files nested deeper than any real policy or config (3,000 parentheses, 20,000
// `not`, 100,000 YAML brackets) get an error naming file:line instead of crashing
// `membrane policy check`, `membrane config check` or the running gateway on reload.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  MEMBRANE_BIN, NODE, SOURCE_DIR, cleanup, rawInitialize, rawRpc, startGateway, stdioUpstreamFlag, tmpDir, waitFor,
} from './harness.mjs';

const HOSTILE_JS = path.join(SOURCE_DIR, 'tests', 'fixtures', 'hostile-stdio-server.mjs');
const upstreamFlag = stdioUpstreamFlag('hostile', [NODE, HOSTILE_JS]);
const denyWord = (word) => `- rule: no-${word}\n  condition: tool.name == "echo" and args.message contains "${word}"\n  verdict: deny\n`;
const membrane = (...args) => spawnSync(MEMBRANE_BIN, args, { encoding: 'utf8', timeout: 60_000 });

after(cleanup);

describe('an empty policy fails closed', () => {
  test('start-up with an empty policy directory is an error', { timeout: 30_000 }, () => {
    const empty = tmpDir('membrane-empty-policy-');
    const result = membrane('serve', '--listen', '127.0.0.1:0', '--upstream', upstreamFlag, '--policy', empty);
    assert.notEqual(result.status, 0);
    assert.equal(result.signal, null);
    assert.match(result.stderr, /no policy rules or limits found, which would allow every call/);
    assert.ok(result.stderr.includes(empty));
  });

  test('policy.allow_empty: true, or default_verdict: deny, lets it start', { timeout: 30_000 }, async () => {
    const empty = tmpDir('membrane-empty-policy-');
    for (const extra of ['  allow_empty: true', '  default_verdict: deny']) {
      const config = path.join(empty, `membrane-${extra.includes('deny') ? 'deny' : 'allow'}.yaml`);
      fs.writeFileSync(config, [
        'listen: 127.0.0.1:0',
        'upstreams:',
        '  hostile:',
        `    command: ${JSON.stringify(NODE)}`,
        `    args: [${JSON.stringify(HOSTILE_JS)}]`,
        'policy:',
        `  paths: [${JSON.stringify(path.join(empty, 'rules'))}]`,
        extra,
        '',
      ].join('\n'));
      fs.mkdirSync(path.join(empty, 'rules'), { recursive: true });
      const gateway = await startGateway(['-c', config], { name: `membrane (${extra.trim()})` });
      assert.equal((await fetch(`${gateway.base}/healthz`)).status, 200);
      await gateway.stop();
    }
  });

  describe('on reload', () => {
    let gateway;
    let policyDir;
    let session;
    const denied = async (message) => {
      const answer = await rawRpc(gateway.mcp('hostile'), {
        sessionId: session.sessionId, protocolVersion: session.protocolVersion,
        method: 'tools/call', params: { name: 'echo', arguments: { message } },
      });
      return answer.message.result.isError === true;
    };
    const failures = () => gateway.lines.filter((line) => /policy reload .* failed/.test(line)).length;
    const reloadAndExpectFailure = async (why) => {
      const before = failures();
      process.kill(gateway.pid, 'SIGHUP');
      await waitFor(() => failures() > before, { what: `the failed reload (${why}) to be logged` });
    };

    before(async () => {
      policyDir = path.join(tmpDir('membrane-reload-'), 'policies');
      fs.mkdirSync(policyDir);
      fs.writeFileSync(path.join(policyDir, 'words.yaml'), denyWord('alpha'));
      gateway = await startGateway(['--upstream', upstreamFlag, '--policy', policyDir], { name: 'membrane (fail closed)' });
      session = await rawInitialize(gateway.mcp('hostile'));
    });

    test('a directory that became empty keeps the previous policy', { timeout: 30_000 }, async () => {
      assert.equal(await denied('alpha'), true);
      fs.rmSync(path.join(policyDir, 'words.yaml'));
      await reloadAndExpectFailure('empty directory');
      assert.ok(gateway.lines.some((line) => /no policy rules or limits found/.test(line)));
      assert.equal(await denied('alpha again'), true, 'the old rule still holds');
    });

    test('a directory that disappeared keeps the previous policy', { timeout: 30_000 }, async () => {
      fs.rmSync(policyDir, { recursive: true, force: true });
      await reloadAndExpectFailure('missing directory');
      assert.equal(await denied('alpha once more'), true, 'the old rule still holds');
    });

    test('a condition nested 3,000 parentheses deep keeps the previous policy, and the gateway lives', { timeout: 30_000 }, async () => {
      fs.mkdirSync(policyDir, { recursive: true });
      fs.writeFileSync(path.join(policyDir, 'words.yaml'),
        `- rule: deep\n  condition: ${'('.repeat(3000)}tool.name == "echo"${')'.repeat(3000)}\n  verdict: deny\n`);
      await reloadAndExpectFailure('deep condition');
      assert.ok(gateway.lines.some((line) => /words\.yaml:2:\d+: nesting deeper than 64 levels/.test(line)));
      assert.equal(await denied('alpha'), true);
      assert.equal(await denied('beta'), false);
      assert.equal((await fetch(`${gateway.base}/healthz`)).status, 200);
    });

    test('a good policy is picked up again afterwards', { timeout: 30_000 }, async () => {
      fs.writeFileSync(path.join(policyDir, 'words.yaml'), denyWord('beta'));
      const reloads = gateway.lines.filter((line) => /policy reloaded/.test(line)).length;
      process.kill(gateway.pid, 'SIGHUP');
      await waitFor(() => gateway.lines.filter((line) => /policy reloaded/.test(line)).length > reloads,
        { what: 'the reload' });
      assert.equal(await denied('beta'), true);
      assert.equal(await denied('alpha'), false);
    });
  });
});

describe('files nested deeper than the limits', () => {
  const dir = tmpDir('membrane-deep-files-');
  const policyFile = (name, text) => {
    const file = path.join(dir, `${name}.yaml`);
    fs.writeFileSync(file, text);
    return file;
  };
  const check = (file) => {
    const result = membrane('policy', 'check', file);
    assert.equal(result.signal, null, `policy check died by ${result.signal}`);
    assert.equal(result.status, 1, result.stdout + result.stderr);
    return result.stderr;
  };

  test('3,000 parentheses: policy check names file:line', () => {
    const file = policyFile('parens', `- rule: deep\n  condition: ${'('.repeat(3000)}true${')'.repeat(3000)}\n  verdict: deny\n`);
    assert.match(check(file), new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:\\d+: nesting deeper than 64 levels`));
  });

  test('20,000 not: policy check names file:line', () => {
    const file = policyFile('nots', `- rule: deep\n  condition: ${'not '.repeat(20_000)}true\n  verdict: deny\n`);
    assert.match(check(file), /nots\.yaml:2:\d+: nesting deeper than 64 levels/);
  });

  test('a 5,000-term and-chain, and a chain of 400 macros, are too deep to evaluate', () => {
    const chain = policyFile('chain', `- rule: long\n  condition: ${Array(5000).fill('tool.name == "x"').join(' and ')}\n  verdict: deny\n`);
    assert.match(check(chain), /chain\.yaml:2:\d+: the condition is too deep/);
    const macros = ['- macro: m0\n  condition: tool.name == "x"'];
    for (let i = 1; i < 400; i++) macros.push(`- macro: m${i}\n  condition: m${i - 1} and m${i - 1}`);
    const file = policyFile('macros', `${macros.join('\n')}\n`);
    assert.match(check(file), /macros\.yaml:\d+:\d+: the condition is too deep/);
  });

  test('YAML nested 100,000 brackets deep: policy check, policy test and config check name file:line', () => {
    const deep = `- rule: x\n  condition: true\n  verdict: deny\n  tags: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`;
    assert.match(check(policyFile('yaml', deep)), /yaml\.yaml:4:1: nesting deeper than 64 levels/);
    const cases = path.join(dir, 'cases');
    fs.mkdirSync(cases);
    fs.writeFileSync(path.join(cases, 'ok.yaml'), denyWord('alpha'));
    fs.writeFileSync(path.join(cases, 'ok.test.yaml'),
      `- name: deep\n  call: ${'{a: '.repeat(50_000)}1${'}'.repeat(50_000)}\n  expect: allow\n`);
    const tested = membrane('policy', 'test', cases);
    assert.equal(tested.signal, null);
    assert.notEqual(tested.status, 0);
    assert.match(tested.stderr, /ok\.test\.yaml:2:1: nesting deeper than 64 levels/);
    const config = path.join(dir, 'membrane.yaml');
    fs.writeFileSync(config, `upstreams:\n  x:\n    command: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`);
    const checked = membrane('config', 'check', '-c', config);
    assert.equal(checked.signal, null);
    assert.notEqual(checked.status, 0);
    assert.match(checked.stderr, /membrane\.yaml:3:1: nesting deeper than 64 levels/);
  });

  test('aliases that expand into billions of values in a test case are refused', () => {
    const cases = path.join(dir, 'laughs');
    fs.mkdirSync(cases);
    fs.writeFileSync(path.join(cases, 'ok.yaml'), denyWord('alpha'));
    const lines = ['- name: laughs', '  call:', '    a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++) lines.push(`    a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
    lines.push('  expect: allow', '');
    fs.writeFileSync(path.join(cases, 'ok.test.yaml'), lines.join('\n'));
    const tested = membrane('policy', 'test', cases);
    assert.equal(tested.signal, null);
    assert.notEqual(tested.status, 0);
    assert.match(tested.stderr, /expands to more than 100000 values/);
  });
});
