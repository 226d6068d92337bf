// The sidecar injector over real TLS: `membrane inject` with a self-signed certificate answers
// AdmissionReviews posted with curl (as the API server would post them), and every patch it
// returns, applied to its pod, gives a pod that validates against the Kubernetes Pod schema
// (kubernetes-models' validators, plus a check that every field of the sidecar is a field the
// schema knows: the validators let unknown fields through, and a misspelt one would be dropped
// silently by the API server).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createRequire } from 'node:module';

import { Pod } from 'kubernetes-models/v1';

import {
  SOURCE_DIR, MEMBRANE_BIN, cleanup, gatewayBinaryProblem, makeSelfSignedCert, spawnManaged, tmpDir,
} from './harness.mjs';

const DATA_DIR = path.join(SOURCE_DIR, 'tests', 'data', 'inject');
const MODELS_DIR = path.dirname(createRequire(path.join(SOURCE_DIR, 'tests', 'package.json'))
  .resolve('kubernetes-models/package.json'));

let injector;  // { base, proc }
let cert;      // { cert, key, pem }

/** Runs curl; resolves { status, body, exitCode } (exitCode != 0 when curl itself failed). */
function curl(url, { method = 'GET', body, contentType = 'application/json', trust = true } = {}) {
  const args = ['--silent', '--show-error', '--max-time', '10', '-X', method,
    '--write-out', '\n%{http_code}'];
  if (trust) args.push('--cacert', cert.cert);
  if (body !== undefined) {
    const file = path.join(tmpDir('membrane-inject-body-'), 'body.json');
    fs.writeFileSync(file, body);
    args.push('-H', `Content-Type: ${contentType}`, '--data-binary', `@${file}`);
  }
  args.push(url);
  return new Promise((resolve) => {
    execFile('curl', args, { encoding: 'utf8' }, (error, stdout, stderr) => {
      const cut = stdout.lastIndexOf('\n');
      resolve({
        status: Number(stdout.slice(cut + 1)),
        body: stdout.slice(0, cut),
        exitCode: error ? error.code : 0,
        stderr,
      });
    });
  });
}

function fixture(name) {
  return fs.readFileSync(path.join(DATA_DIR, name), 'utf8');
}

async function mutate(reviewText) {
  const res = await curl(`${injector.base}/mutate`, { method: 'POST', body: reviewText });
  assert.equal(res.exitCode, 0, `curl failed: ${res.stderr}`);
  return res;
}

// ---- RFC 6902, the part the injector may use: "add" -------------------------------------------

function parsePointer(pointer) {
  assert.ok(pointer.startsWith('/'), `a JSON Pointer starts with '/': ${pointer}`);
  // RFC 6901 §4: ~1 before ~0, so "~01" stays "~1".
  return pointer.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Applies an RFC 6902 patch of "add" operations; throws where the RFC says the patch fails. */
function applyPatch(document, patch) {
  const result = structuredClone(document);
  assert.ok(Array.isArray(patch), 'a JSON Patch is an array');
  for (const operation of patch) {
    assert.equal(operation.op, 'add', `only "add" is expected, got ${JSON.stringify(operation)}`);
    assert.ok('value' in operation, '"add" needs a value');
    const tokens = parsePointer(operation.path);
    const last = tokens.pop();
    let parent = result;
    for (const token of tokens) {
      const next = Array.isArray(parent) ? parent[Number(token)] : parent?.[token];
      if (next === undefined || next === null || typeof next !== 'object') {
        throw new Error(`${operation.path}: the parent does not exist (RFC 6902 §4.1)`);
      }
      parent = next;
    }
    if (Array.isArray(parent)) {
      if (last === '-') {
        parent.push(operation.value);
      } else {
        const index = Number(last);
        if (!/^(0|[1-9][0-9]*)$/.test(last) || index > parent.length) {
          throw new Error(`${operation.path}: index out of bounds`);
        }
        parent.splice(index, 0, operation.value);
      }
    } else {
      parent[last] = operation.value;
    }
  }
  return result;
}

// ---- Schema checks --------------------------------------------------------------------------------

const knownFieldsCache = new Map();
/** Field names of a kubernetes-models core/v1 type, from its type declarations. */
function knownFields(type) {
  if (!knownFieldsCache.has(type)) {
    const declarations = fs.readFileSync(path.join(MODELS_DIR, 'v1', `${type}.d.ts`), 'utf8');
    const body = declarations.slice(declarations.indexOf(`export interface I${type} {`));
    const fields = new Set([...body.slice(0, body.indexOf('\n}')).matchAll(/^ {4}"([^"]+)"\??:/gm)]
      .map((m) => m[1]));
    assert.ok(fields.size > 0, `no fields found for ${type}`);
    knownFieldsCache.set(type, fields);
  }
  return knownFieldsCache.get(type);
}

// The nested types of the objects the injector writes.
const NESTED = {
  Container: { securityContext: 'SecurityContext', readinessProbe: 'Probe', livenessProbe: 'Probe',
    resources: 'ResourceRequirements', ports: 'ContainerPort', volumeMounts: 'VolumeMount', env: 'EnvVar' },
  SecurityContext: { capabilities: 'Capabilities', seccompProfile: 'SeccompProfile' },
  Probe: { httpGet: 'HTTPGetAction' },
  EnvVar: { valueFrom: 'EnvVarSource' },
  EnvVarSource: { secretKeyRef: 'SecretKeySelector' },
  Volume: { configMap: 'ConfigMapVolumeSource' },
};

/** Every field of `object`, recursively, is one the schema of `type` declares. */
function assertOnlyKnownFields(object, type, where = type) {
  for (const [key, value] of Object.entries(object)) {
    assert.ok(knownFields(type).has(key), `${where}.${key} is not a field of ${type}`);
    const nested = NESTED[type]?.[key];
    if (!nested) continue;
    for (const item of Array.isArray(value) ? value : [value]) {
      assertOnlyKnownFields(item, nested, `${where}.${key}`);
    }
  }
}

/** What the API server would refuse beyond the schema: duplicate names, dangling mounts. */
function assertPodConsistent(pod) {
  const containers = [...pod.spec.containers, ...(pod.spec.initContainers ?? [])];
  const names = containers.map((c) => c.name);
  assert.equal(new Set(names).size, names.length, `duplicate container names: ${names}`);
  const volumes = (pod.spec.volumes ?? []).map((v) => v.name);
  assert.equal(new Set(volumes).size, volumes.length, `duplicate volume names: ${volumes}`);
  const ports = containers.flatMap((c) => (c.ports ?? []).map((p) => p.containerPort));
  assert.equal(new Set(ports).size, ports.length, `a port is declared twice: ${ports}`);
  for (const c of containers) {
    for (const mount of c.volumeMounts ?? []) {
      assert.ok(volumes.includes(mount.name), `${c.name} mounts the missing volume ${mount.name}`);
    }
  }
}

function assertValidPod(pod) {
  new Pod(pod).validate();  // throws with the schema errors
  assertPodConsistent(pod);
  const sidecar = pod.spec.containers.find((c) => c.name === 'membrane');
  if (sidecar) assertOnlyKnownFields(sidecar, 'Container', 'membrane');
  for (const volume of pod.spec.volumes ?? []) assertOnlyKnownFields(volume, 'Volume', volume.name);
}

/** The sidecar's hardening, as the issue lists it. */
function assertHardenedSidecar(pod) {
  const sidecar = pod.spec.containers.find((c) => c.name === 'membrane');
  assert.ok(sidecar, 'the pod has a membrane container');
  const security = sidecar.securityContext;
  assert.equal(security.runAsNonRoot, true);
  assert.ok(security.runAsUser > 0);
  assert.equal(security.readOnlyRootFilesystem, true);
  assert.equal(security.allowPrivilegeEscalation, false);
  assert.deepEqual(security.capabilities.drop, ['ALL']);
  assert.equal(sidecar.readinessProbe.httpGet.path, '/readyz');
  assert.equal(sidecar.livenessProbe.httpGet.path, '/healthz');
  assert.ok(sidecar.resources.requests.cpu && sidecar.resources.limits.memory);
  const mount = sidecar.volumeMounts.find((m) => m.mountPath === '/etc/membrane/policies');
  assert.equal(mount?.readOnly, true, 'the policy ConfigMap is mounted read-only');
  assert.equal(pod.metadata.annotations['membrane.dev/injected'], 'true');
  return sidecar;
}

// ---- The webhook ------------------------------------------------------------------------------

before(async () => {
  const problem = gatewayBinaryProblem();
  if (problem) throw new Error(problem);
  cert = makeSelfSignedCert(tmpDir('membrane-inject-tls-'));
  const proc = spawnManaged('membrane inject', MEMBRANE_BIN, [
    'inject', '--listen', '127.0.0.1:0', '--tls-cert', cert.cert, '--tls-key', cert.key,
    '-c', path.join(DATA_DIR, 'injector.yaml'),
  ]);
  const m = await proc.waitForLine(/membrane inject listening on https:\/\/127\.0\.0\.1:(\d+)/, 30_000);
  injector = { base: `https://127.0.0.1:${m[1]}`, proc };
});
after(cleanup);

describe('the validators are not vacuous', () => {
  test('a broken pod is rejected by the Pod schema', () => {
    const broken = JSON.parse(fixture('review-annotated.json')).request.object;
    delete broken.spec.containers[0].name;
    broken.spec.containers[0].ports[0].containerPort = '3000';
    assert.throws(() => new Pod(broken).validate(), /name|containerPort/);
  });

  test('a misspelt sidecar field is caught', () => {
    const pod = applyPatch(JSON.parse(fixture('review-annotated.json')).request.object,
      JSON.parse(fixture('review-annotated.patch.json')));
    pod.spec.containers.at(-1).securityContext.readOnlyRootFileSystem = true;
    assert.throws(() => assertValidPod(pod), /readOnlyRootFileSystem is not a field/);
  });

  test('a patch adding to a missing array fails as RFC 6902 says', () => {
    const pod = JSON.parse(fixture('review-labelled-bare.json')).request.object;
    assert.throws(() => applyPatch(pod, [{ op: 'add', path: '/spec/volumes/-', value: {} }]),
      /parent does not exist/);
  });
});

describe('the expected patches of the unit tests', () => {
  for (const name of ['review-annotated', 'review-labelled-bare']) {
    test(`${name}: the patched pod is a valid Pod`, () => {
      const pod = applyPatch(JSON.parse(fixture(`${name}.json`)).request.object,
        JSON.parse(fixture(`${name}.patch.json`)));
      assertValidPod(pod);
      assertHardenedSidecar(pod);
    });
  }
});

describe('membrane inject over TLS, posted with curl', () => {
  for (const name of ['review-annotated', 'review-labelled-bare']) {
    test(`${name}: a base64 JSON Patch that yields a valid, hardened Pod`, async () => {
      const text = fixture(`${name}.json`);
      const review = JSON.parse(text);
      const res = await mutate(text);
      assert.equal(res.status, 200, res.body);
      const answer = JSON.parse(res.body);
      assert.equal(answer.apiVersion, 'admission.k8s.io/v1');
      assert.equal(answer.kind, 'AdmissionReview');
      assert.equal(answer.response.uid, review.request.uid);
      assert.equal(answer.response.allowed, true);
      assert.equal(answer.response.patchType, 'JSONPatch');
      const patch = JSON.parse(Buffer.from(answer.response.patch, 'base64').toString('utf8'));
      assert.deepEqual(patch, JSON.parse(fixture(`${name}.patch.json`)));
      const pod = applyPatch(review.request.object, patch);
      assertValidPod(pod);
      const sidecar = assertHardenedSidecar(pod);
      assert.equal(sidecar.image, 'registry.example.com/membrane:0.1.0');
    });
  }

  test('a pod that did not opt in is allowed unchanged', async () => {
    const res = await mutate(fixture('review-not-annotated.json'));
    assert.equal(res.status, 200);
    const { response } = JSON.parse(res.body);
    assert.equal(response.allowed, true);
    assert.equal(response.patch, undefined);
  });

  test('an already injected pod is left alone', async () => {
    const res = await mutate(fixture('review-already-injected.json'));
    const { response } = JSON.parse(res.body);
    assert.equal(response.allowed, true);
    assert.equal(response.patch, undefined);
  });

  test('bad annotations: allowed with a warning naming them (on_error: allow)', async () => {
    const res = await mutate(fixture('review-bad-annotations.json'));
    const { response } = JSON.parse(res.body);
    assert.equal(response.allowed, true);
    assert.equal(response.patch, undefined);
    assert.match(response.warnings.join('\n'), /membrane\.dev\/port 'abc'/);
    assert.match(response.warnings.join('\n'), /membrane\.dev\/upstream 'ftp:/);
  });

  test('a Deployment is the wrong kind: allowed with a warning', async () => {
    const res = await mutate(fixture('review-deployment.json'));
    const { response } = JSON.parse(res.body);
    assert.equal(response.uid, '0f9d8e7c-0000-4000-8000-00000000f001');
    assert.equal(response.allowed, true);
    assert.match(response.warnings.join('\n'), /only Pods are injected/);
  });

  test('malformed JSON gets 400 with a clear message', async () => {
    const res = await mutate(fixture('review-malformed.json'));
    assert.equal(res.status, 400);
    assert.match(JSON.parse(res.body).error, /not valid JSON/);
  });

  test('GET /healthz answers 200 JSON', async () => {
    const res = await curl(`${injector.base}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), { status: 'ok' });
  });

  test('GET /mutate is 405, another path 404, another content type 415', async () => {
    assert.equal((await curl(`${injector.base}/mutate`)).status, 405);
    assert.equal((await curl(`${injector.base}/validate`)).status, 404);
    const res = await curl(`${injector.base}/mutate`, {
      method: 'POST', body: fixture('review-annotated.json'), contentType: 'text/plain',
    });
    assert.equal(res.status, 415);
  });

  test('a body over the limit gets 413', async () => {
    const res = await curl(`${injector.base}/mutate`, { method: 'POST', body: 'x'.repeat(5 * 1024 * 1024) });
    assert.equal(res.status, 413);
  });

  test('a client that does not trust the certificate fails the handshake', async () => {
    const res = await curl(`${injector.base}/healthz`, { trust: false });
    assert.equal(res.exitCode, 60, `curl exit code ${res.exitCode}: ${res.stderr}`);
  });

  test('a renewed certificate is served without a restart', async () => {
    const renewed = makeSelfSignedCert(tmpDir('membrane-inject-tls-renewed-'));
    // What the kubelet does with a renewed Secret, minus the atomic symlink swap: the key first,
    // so the injector may see a mismatched pair for a moment and must keep the old one then.
    fs.copyFileSync(renewed.key, cert.key);
    fs.copyFileSync(renewed.cert, cert.cert + '.new');
    fs.renameSync(cert.cert + '.new', cert.cert);
    const trusting = (pem) => {
      const file = path.join(tmpDir('membrane-inject-ca-'), 'ca.pem');
      fs.writeFileSync(file, pem);
      return file;
    };
    const oldCa = trusting(cert.pem);
    const newCa = trusting(renewed.pem);
    const withCa = (ca) => new Promise((resolve) => {
      execFile('curl', ['--silent', '--max-time', '10', '--cacert', ca, '-o', '/dev/null',
        '--write-out', '%{http_code}', `${injector.base}/healthz`], (error, stdout) =>
        resolve(error ? `curl exit ${error.code}` : stdout));
    });
    let seen;
    for (let i = 0; i < 50 && seen !== '200'; i++) {
      seen = await withCa(newCa);
      if (seen !== '200') await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(seen, '200', 'the renewed certificate is served');
    assert.equal(await withCa(oldCa), 'curl exit 60', 'the old one is not');
    cert = { ...cert, pem: renewed.pem };
    await injector.proc.waitForLine(/TLS certificate reloaded/, 1_000);
  });

  test('it is still serving after all of that, and stops cleanly on SIGTERM', async () => {
    assert.ok(injector.proc.running);
    assert.equal((await curl(`${injector.base}/healthz`)).status, 200);
    const { code } = await injector.proc.stop({ signal: 'SIGTERM', timeoutMs: 15_000 });
    assert.equal(code, 0);
  });
});
