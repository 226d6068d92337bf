// The shipped examples, the JSON Schema for editors and the gateway's own loader must agree:
// every examples/*.yaml validates against docs/membrane.schema.json, known-wrong documents do
// not, and `membrane config check` accepts the examples and reports a broken file as
// file:line:col.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Ajv2020 from 'ajv/dist/2020.js';
import YAML from 'yaml';

const here = path.dirname(fileURLToPath(import.meta.url));
const SOURCE_DIR = path.resolve(process.env.MEMBRANE_SOURCE_DIR ?? path.join(here, '..', '..'));
const MEMBRANE_BIN = process.env.MEMBRANE_BIN;
const EXAMPLES_DIR = path.join(SOURCE_DIR, 'examples');

const schema = JSON.parse(fs.readFileSync(path.join(SOURCE_DIR, 'docs', 'membrane.schema.json'), 'utf8'));
// strict mode makes Ajv reject unknown keywords and ambiguous constructs in the schema itself;
// union types ("string or number") are intended.
const ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
const validateConfig = ajv.compile(schema);

// Every config under examples/ (policy files, lists of rules, are not configs).
const exampleFiles = fs.readdirSync(EXAMPLES_DIR, { recursive: true })
  .filter((name) => name.endsWith('.yaml') && !YAML.parse(fs.readFileSync(path.join(EXAMPLES_DIR, name), 'utf8'))?.[0])
  .sort()
  .map((name) => path.join(EXAMPLES_DIR, name));

function schemaErrors(document) {
  return validateConfig(document) ? [] : validateConfig.errors;
}

const MINIMAL_UPSTREAMS = { everything: { url: 'http://127.0.0.1:3001/mcp' } };

test('there is at least one example config', () => {
  assert.ok(exampleFiles.length >= 2, `found only ${exampleFiles.join(', ')}`);
});

for (const file of exampleFiles) {
  test(`${path.basename(file)} is valid against the schema`, () => {
    const document = YAML.parse(fs.readFileSync(file, 'utf8'));
    assert.deepEqual(schemaErrors(document), []);
  });
}

test('a minimal document with one upstream is valid against the schema', () => {
  assert.deepEqual(schemaErrors({ upstreams: MINIMAL_UPSTREAMS }), []);
});

const wrongDocuments = {
  'a document without upstreams': { listen: '127.0.0.1:8080' },
  'an empty upstreams map': { upstreams: {} },
  'an unknown top-level key': { upstreams: MINIMAL_UPSTREAMS, colour: 'blue' },
  'an unknown key inside an upstream': { upstreams: { a: { command: 'node', comand: 'x' } } },
  'an upstream with both url and command': {
    upstreams: { a: { url: 'http://127.0.0.1:3001/mcp', command: 'node' } },
  },
  'an upstream with neither url nor command': { upstreams: { a: { args: ['x'] } } },
  'an upstream name with a slash': { upstreams: { 'a/b': { command: 'node' } } },
  'an ftp upstream URL': { upstreams: { a: { url: 'ftp://example.com/mcp' } } },
  'a duration without a unit': { upstreams: MINIMAL_UPSTREAMS, timeouts: { sse_keep_alive: 15 } },
  'a duration with an unknown unit': { upstreams: MINIMAL_UPSTREAMS, timeouts: { upstream_connect: '5sec' } },
  'a size with an unknown unit': { upstreams: MINIMAL_UPSTREAMS, limits: { max_request_body: '4mb' } },
  'an unknown log level': { upstreams: MINIMAL_UPSTREAMS, log_level: 'verbose' },
  'a listen port out of range': { upstreams: MINIMAL_UPSTREAMS, listen: { port: 70000 } },
  'a TLS listener without a private key': {
    upstreams: MINIMAL_UPSTREAMS, listen: { port: 8443, tls: { certificate: 'cert.pem' } },
  },
  'an origin with a path': {
    upstreams: MINIMAL_UPSTREAMS, security: { allowed_origins: ['https://app.example.com/'] },
  },
};

for (const [description, document] of Object.entries(wrongDocuments)) {
  test(`the schema rejects ${description}`, () => {
    assert.notDeepEqual(schemaErrors(document), [], JSON.stringify(document));
  });
}

// ---- The real binary ---------------------------------------------------------------------------

const binarySkip = (() => {
  if (!MEMBRANE_BIN) return 'MEMBRANE_BIN is not set (run through ctest)';
  if (!fs.existsSync(MEMBRANE_BIN)) return `gateway binary ${MEMBRANE_BIN} does not exist`;
  return false;
})();

function configCheck(file) {
  return spawnSync(MEMBRANE_BIN, ['config', 'check', '-c', file], {
    cwd: SOURCE_DIR, encoding: 'utf8', timeout: 30_000,
  });
}

function describeRun(result) {
  return `exit ${result.status} signal ${result.signal}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
}

function withBrokenFile(name, contents, check) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'membrane-config-check-'));
  try {
    const file = path.join(dir, name);
    fs.writeFileSync(file, contents);
    check(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// One list of top-level keys: the loader's (its section readers, named in its "allowed keys"
// message) and the schema's must be the same set, so neither can gain a section alone.
test('the loader and the schema know the same top-level keys', { skip: binarySkip }, () => {
  withBrokenFile('unknown-key.yaml', YAML.stringify({ upstreams: MINIMAL_UPSTREAMS, colour: 'blue' }), (file) => {
    const result = configCheck(file);
    const listed = /allowed keys: ([^\n]+)/.exec(result.stderr + result.stdout);
    assert.ok(listed, describeRun(result));
    const loaderKeys = listed[1].trim().split(', ').sort();
    assert.deepEqual(loaderKeys, Object.keys(schema.properties).sort());
  });
});

for (const file of exampleFiles) {
  const relative = path.relative(SOURCE_DIR, file);
  test(`membrane config check accepts ${relative}`, { skip: binarySkip }, () => {
    const result = configCheck(relative);
    assert.equal(result.status, 0, describeRun(result));
  });
}

// The loader must be at least as strict as the schema: what editors flag, the gateway refuses.
for (const [description, document] of Object.entries(wrongDocuments)) {
  test(`membrane config check rejects ${description}`, { skip: binarySkip }, () => {
    withBrokenFile('wrong.yaml', YAML.stringify(document), (file) => {
      const result = configCheck(file);
      assert.notEqual(result.status, 0, describeRun(result));
      assert.match(result.stderr, new RegExp(`${escapeRegExp(file)}(:\\d+:\\d+)?: `), describeRun(result));
    });
  });
}

test('membrane config check reports an unknown key as file:line:col', { skip: binarySkip }, () => {
  withBrokenFile('unknown-key.yaml',
    'listen: "127.0.0.1:8080"\nupstreams:\n  everything:\n    url: http://127.0.0.1:3001/mcp\n    verify: false\n',
    (file) => {
      const result = configCheck(file);
      assert.notEqual(result.status, 0, describeRun(result));
      assert.match(result.stderr, new RegExp(`${escapeRegExp(file)}:5:5: .*unknown key 'verify'`),
        describeRun(result));
    });
});

test('membrane config check reports a YAML syntax error as file:line:col', { skip: binarySkip }, () => {
  withBrokenFile('syntax-error.yaml', 'upstreams:\n  everything: {url: [\n', (file) => {
    const result = configCheck(file);
    assert.notEqual(result.status, 0, describeRun(result));
    assert.match(result.stderr, new RegExp(`${escapeRegExp(file)}:\\d+:\\d+: `), describeRun(result));
  });
});

test('membrane config check reports a duration without a unit as file:line:col', { skip: binarySkip }, () => {
  withBrokenFile('bare-duration.yaml',
    'timeouts:\n  sse_keep_alive: 15\nupstreams:\n  everything:\n    command: node\n',
    (file) => {
      const result = configCheck(file);
      assert.notEqual(result.status, 0, describeRun(result));
      assert.match(result.stderr, new RegExp(`${escapeRegExp(file)}:2:19: .*expected a duration like 15s`),
        describeRun(result));
    });
});
