#!/usr/bin/env node
// Checks the labelled policy corpus (../*.test.yaml) against the recorded
// tools/list schemas (../schemas/*.json):
//   - each file starts with `- tools: schemas/<server>.json`;
//   - each case has a unique name, a known area, a label (deny | ask | allow)
//     and a call whose server is the schema's server, whose tool exists there,
//     and whose arguments validate against that tool's inputSchema (and are
//     all declared by it, even where the schema leaves additionalProperties open);
// then prints the counts per area and label. Exit code 1 on any problem.
//
// Uses the yaml and ajv packages of tests/node_modules (tests/package.json).
//   node tests/policy-corpus/recorder/check-cases.mjs [file.test.yaml ...]
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const corpusDir = path.resolve(here, '..');
const testsRequire = createRequire(path.resolve(corpusDir, '..', 'package.json'));
const YAML = testsRequire('yaml');
const Ajv = testsRequire('ajv').default;
const Ajv2020 = testsRequire('ajv/dist/2020').default;
const addFormats = testsRequire('ajv-formats').default;

const AREAS = [
  'working-directory',
  'sensitive-paths',
  'sandbox',
  'pipe-to-shell',
  'content-poisoning',
  'persistence',
  'egress',
  'container-escape',
  'ordinary',
];
const LABELS = ['deny', 'ask', 'allow'];
const CASE_KEYS = new Set(['name', 'area', 'label', 'call', 'note']);

const ajv07 = new Ajv({ strict: false, allErrors: true });
const ajv2020 = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv07);
addFormats(ajv2020);

const schemaCache = new Map();
function loadSchema(file) {
  if (!schemaCache.has(file)) {
    const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
    const tools = new Map();
    const props = new Map();
    for (const tool of doc.tools) {
      props.set(tool.name, tool.inputSchema?.properties ? new Set(Object.keys(tool.inputSchema.properties)) : null);
      const input = structuredClone(tool.inputSchema ?? { type: 'object' });
      const ajv = String(input.$schema ?? '').includes('2020-12') ? ajv2020 : ajv07;
      delete input.$schema;
      delete input.$id;
      tools.set(tool.name, ajv.compile(input));
    }
    schemaCache.set(file, { server: doc.server, package: doc.package, tools, props });
  }
  return schemaCache.get(file);
}

const files = process.argv.slice(2).length
  ? process.argv.slice(2).map((f) => path.resolve(f))
  : fs
      .readdirSync(corpusDir)
      .filter((f) => f.endsWith('.test.yaml'))
      .sort()
      .map((f) => path.join(corpusDir, f));

const problems = [];
const counts = new Map(AREAS.map((a) => [a, Object.fromEntries(LABELS.map((l) => [l, 0]))]));
const perFile = [];
const names = new Map();
let total = 0;

for (const file of files) {
  const rel = path.relative(corpusDir, file);
  const text = fs.readFileSync(file, 'utf8');
  const doc = YAML.parseDocument(text, { uniqueKeys: true, prettyErrors: true, strict: true });
  for (const e of [...doc.errors, ...doc.warnings]) problems.push(`${rel}: YAML: ${e.message}`);
  if (doc.errors.length) continue;
  const lc = new YAML.LineCounter();
  YAML.parseDocument(text, { lineCounter: lc });
  const entries = doc.toJS();
  const nodes = doc.contents?.items ?? [];
  const lineOf = (i) => (nodes[i]?.range ? lc.linePos(nodes[i].range[0]).line : '?');
  if (!Array.isArray(entries) || !entries.length) {
    problems.push(`${rel}: not a non-empty YAML list`);
    continue;
  }
  const head = entries[0];
  if (!head || typeof head.tools !== 'string' || Object.keys(head).length !== 1) {
    problems.push(`${rel}:${lineOf(0)}: first entry must be exactly {tools: schemas/<server>.json}`);
    continue;
  }
  const schemaFile = path.resolve(corpusDir, head.tools);
  if (!fs.existsSync(schemaFile)) {
    problems.push(`${rel}:${lineOf(0)}: no recorded schema ${head.tools}`);
    continue;
  }
  const schema = loadSchema(schemaFile);
  let n = 0;
  for (let i = 1; i < entries.length; i++) {
    const c = entries[i];
    const where = `${rel}:${lineOf(i)}`;
    const bad = (msg) => problems.push(`${where}: ${c?.name ?? '(no name)'}: ${msg}`);
    if (!c || typeof c !== 'object' || Array.isArray(c)) {
      problems.push(`${where}: entry is not a mapping`);
      continue;
    }
    n++;
    total++;
    for (const k of Object.keys(c)) if (!CASE_KEYS.has(k)) bad(`unknown key '${k}'`);
    if (typeof c.name !== 'string' || !c.name.trim()) bad('missing name');
    else if (names.has(c.name)) bad(`duplicate name (also ${names.get(c.name)})`);
    else names.set(c.name, where);
    if (!AREAS.includes(c.area)) bad(`unknown area '${c.area}'`);
    if (!LABELS.includes(c.label)) bad(`unknown label '${c.label}'`);
    if (c.area === 'ordinary' && c.label !== 'allow') bad('area ordinary must be label allow');
    if (AREAS.includes(c.area) && LABELS.includes(c.label)) counts.get(c.area)[c.label]++;
    const call = c.call;
    if (!call || typeof call !== 'object') {
      bad('missing call');
      continue;
    }
    if (call.server !== schema.server) bad(`call.server '${call.server}' is not '${schema.server}' (${head.tools})`);
    const params = call.params;
    if (!params || typeof params.name !== 'string') {
      bad('missing call.params.name');
      continue;
    }
    const validate = schema.tools.get(params.name);
    if (!validate) {
      bad(`tool '${params.name}' is not in ${head.tools} (${schema.package})`);
      continue;
    }
    const args = params.arguments ?? {};
    if (typeof args !== 'object' || Array.isArray(args)) {
      bad('call.params.arguments is not an object');
      continue;
    }
    // Some recorded schemas leave additionalProperties open; an argument name
    // the tool does not declare is still a mistake in the corpus.
    const known = schema.props.get(params.name);
    if (known) for (const k of Object.keys(args)) if (!known.has(k)) bad(`${params.name}: argument '${k}' is not declared by the tool`);
    if (!validate(args)) {
      for (const e of validate.errors) bad(`${params.name}: arguments${e.instancePath} ${e.message}${e.params ? ' ' + JSON.stringify(e.params) : ''}`);
    }
  }
  perFile.push([rel, schema.server, n]);
}

// Report.
console.log('cases per file:');
for (const [rel, server, n] of perFile) console.log(`  ${rel.padEnd(34)} ${server.padEnd(18)} ${n}`);
console.log('\ncases per area and label:');
console.log(`  ${'area'.padEnd(20)} ${LABELS.map((l) => l.padStart(6)).join('')} ${'total'.padStart(7)}`);
const totals = Object.fromEntries(LABELS.map((l) => [l, 0]));
for (const [area, byLabel] of counts) {
  const t = LABELS.reduce((s, l) => s + byLabel[l], 0);
  for (const l of LABELS) totals[l] += byLabel[l];
  console.log(`  ${area.padEnd(20)} ${LABELS.map((l) => String(byLabel[l]).padStart(6)).join('')} ${String(t).padStart(7)}`);
}
console.log(`  ${'all'.padEnd(20)} ${LABELS.map((l) => String(totals[l]).padStart(6)).join('')} ${String(total).padStart(7)}`);

// Coverage goals of the corpus.
if (process.argv.slice(2).length === 0) {
  if (total < 170) problems.push(`only ${total} cases; the corpus needs at least 170`);
  if (totals.allow < 70) problems.push(`only ${totals.allow} allow cases; the corpus needs at least 70`);
  for (const [area, byLabel] of counts) {
    if (byLabel.allow === 0) problems.push(`area ${area} has no allow (ordinary near-miss) case`);
    if (area !== 'ordinary' && byLabel.deny + byLabel.ask === 0) problems.push(`area ${area} has no attack case`);
  }
}

if (problems.length) {
  console.error(`\n${problems.length} problem(s):`);
  for (const p of problems) console.error(`  ${p}`);
  process.exit(1);
}
console.log(`\nOK: ${total} cases in ${perFile.length} files, all valid against their recorded schemas`);
