// deploy/kubernetes: every overlay renders with kustomize, every rendered object validates against
// the Kubernetes OpenAPI schemas (kubernetes-models, plus @kubernetes-models/cert-manager for the
// cert-manager kinds), and the objects agree with each other and with the gateway's config: the
// selectors select the pods, the grace period outlasts the drain, the NetworkPolicy lets the
// gateway reach exactly what its config names, every container runs non-root on a read-only root
// with no capabilities. deploy/Dockerfile's runtime stage installs what the binary links.
//
// The renderer is `kubectl kustomize` (any kubectl since 1.14; scripts/install-deps.sh installs
// Debian's kubernetes-client when there is none), or the command line in $MEMBRANE_KUSTOMIZE,
// e.g. "kustomize build", which gets the directory as its last argument.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Ajv2020 from 'ajv/dist/2020.js';
import YAML from 'yaml';
import * as kubernetesModels from 'kubernetes-models';
import * as certManagerModels from '@kubernetes-models/cert-manager';

const here = path.dirname(fileURLToPath(import.meta.url));
const SOURCE_DIR = path.resolve(process.env.MEMBRANE_SOURCE_DIR ?? path.join(here, '..', '..'));
const MEMBRANE_BIN = process.env.MEMBRANE_BIN;
const KUBE_DIR = path.join(SOURCE_DIR, 'deploy', 'kubernetes');
const OVERLAYS_DIR = path.join(KUBE_DIR, 'overlays');
// Named, so that an overlay that disappears fails here instead of leaving less to check.
const EXPECTED_OVERLAYS = ['agent-namespace', 'injector', 'injector-cert-manager', 'standalone', 'standalone-redis'];
// The overlays that run the standalone gateway: the checks of its config and manifests run on each.
const GATEWAY_OVERLAYS = ['standalone', 'standalone-redis'];

// ---------------------------------------------------------------------------------------------
// Rendering

function onPath(program) {
  return (process.env.PATH ?? '').split(path.delimiter).some((dir) => {
    try {
      fs.accessSync(path.join(dir, program), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function rendererCommand() {
  if (process.env.MEMBRANE_KUSTOMIZE) return process.env.MEMBRANE_KUSTOMIZE.trim().split(/\s+/);
  if (onPath('kubectl')) return ['kubectl', 'kustomize'];
  if (onPath('kustomize')) return ['kustomize', 'build'];
  return null;
}
const RENDERER = rendererCommand();

function render(directory) {
  assert.ok(RENDERER, 'no kustomize renderer: install kubectl (Debian: kubernetes-client) or set MEMBRANE_KUSTOMIZE');
  const result = spawnSync(RENDERER[0], [...RENDERER.slice(1), directory], {
    encoding: 'utf8',
    timeout: 60_000,
    // kubectl kustomize needs no cluster; pointing at no config keeps it away from the user's.
    env: { ...process.env, KUBECONFIG: path.join(os.tmpdir(), 'membrane-no-kubeconfig') },
  });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function parseDocuments(text) {
  return YAML.parseAllDocuments(text).map((document) => {
    if (document.errors.length > 0) throw document.errors[0];
    return document.toJS();
  }).filter((object) => object !== null && object !== undefined);
}

const renderedCache = new Map();
function renderOverlay(name) {
  if (!renderedCache.has(name)) {
    const { status, stdout, stderr } = render(path.join(OVERLAYS_DIR, name));
    assert.equal(status, 0, `rendering overlays/${name} failed:\n${stderr}`);
    renderedCache.set(name, parseDocuments(stdout));
  }
  return renderedCache.get(name);
}

// ---------------------------------------------------------------------------------------------
// Schema validation
//
// kubernetes-models validates types, formats, enums and required fields. The Kubernetes schemas
// themselves allow unknown fields (the API server drops them, or rejects them under strict field
// validation), so a misspelt `readinesProbe` would pass unnoticed. The compiled validators read
// every property their schema declares; watching those reads through a Proxy finds the keys no
// schema declared, as `kubectl apply --validate=strict` would.

function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const groupKey = group.replace(/[.-]([a-z])/g, (_, letter) => letter.toUpperCase());
  for (const root of [kubernetesModels, certManagerModels]) {
    const candidate = (group === '' ? root : root[groupKey])?.[version]?.[kind];
    if (candidate?.apiVersion === apiVersion && candidate?.kind === kind) return candidate;
  }
  return undefined;
}

function watched(value, reads) {
  if (value === null || typeof value !== 'object') return value;
  const record = { keys: new Set(), enumerated: false };
  reads.set(value, record);
  const children = Array.isArray(value)
    ? value.map((item) => watched(item, reads))
    : Object.fromEntries(Object.entries(value).map(([key, item]) => [key, watched(item, reads)]));
  const note = (key) => { if (typeof key === 'string') record.keys.add(key); };
  return new Proxy(value, {
    get(target, key, receiver) {
      note(key);
      return Object.hasOwn(children, key) ? children[key] : Reflect.get(target, key, receiver);
    },
    has(target, key) { note(key); return Reflect.has(target, key); },
    getOwnPropertyDescriptor(target, key) { note(key); return Reflect.getOwnPropertyDescriptor(target, key); },
    ownKeys(target) { record.enumerated = true; return Reflect.ownKeys(target); },
  });
}

function undeclaredKeys(value, reads, at = '') {
  if (value === null || typeof value !== 'object') return [];
  if (Array.isArray(value)) return value.flatMap((item, index) => undeclaredKeys(item, reads, `${at}/${index}`));
  const record = reads.get(value);
  // An object whose validator read none of its keys has a free-form schema; one whose keys were
  // enumerated is a map (labels, data, resources.limits): neither has undeclared keys.
  const checked = record && record.keys.size > 0 && !record.enumerated;
  return Object.entries(value).flatMap(([key, item]) => [
    ...(checked && !record.keys.has(key) ? [`${at}/${key} is not a field of this kind`] : []),
    ...undeclaredKeys(item, reads, `${at}/${key}`),
  ]);
}

function schemaProblems(object) {
  if (!object || typeof object !== 'object' || !object.apiVersion || !object.kind) return ['not a Kubernetes object'];
  const model = modelFor(object.apiVersion, object.kind);
  if (!model) return [`no schema for ${object.apiVersion} ${object.kind}`];
  const reads = new Map();
  const proxy = watched(object, reads);
  try {
    model.prototype.validate.call(proxy);
  } catch (error) {
    return [error.message];
  }
  return undeclaredKeys(object, reads);
}

function describe(object) {
  return `${object?.kind}/${object?.metadata?.name}`;
}

// ---------------------------------------------------------------------------------------------
// Helpers over rendered objects

const CLUSTER_SCOPED = new Set(['Namespace', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration',
  'ClusterRole', 'ClusterRoleBinding', 'ClusterIssuer', 'CustomResourceDefinition']);

function only(objects, kind, name) {
  const matches = objects.filter((object) => object.kind === kind && (name === undefined || object.metadata.name === name));
  assert.equal(matches.length, 1, `expected one ${kind}${name ? ` ${name}` : ''}, found ${matches.length}`);
  return matches[0];
}

function generated(objects, kind, prefix) {
  // kustomize names generated ConfigMaps NAME-<hash>.
  const matches = objects.filter((object) => object.kind === kind && new RegExp(`^${prefix}-[a-z0-9]{10}$`).test(object.metadata.name));
  assert.equal(matches.length, 1, `expected one generated ${kind} ${prefix}-<hash>, found ${matches.length}`);
  return matches[0];
}

function selects(selector, labels) {
  const matchLabels = selector?.matchLabels ?? {};
  const expressions = selector?.matchExpressions ?? [];
  assert.ok(Object.keys(matchLabels).length + expressions.length > 0, 'an empty selector selects everything');
  return Object.entries(matchLabels).every(([key, value]) => labels?.[key] === value) &&
    expressions.every(({ key, operator, values }) => {
      const has = Object.hasOwn(labels ?? {}, key);
      switch (operator) {
        case 'In': return has && values.includes(labels[key]);
        case 'NotIn': return !has || !values.includes(labels[key]);
        case 'Exists': return has;
        case 'DoesNotExist': return !has;
        default: throw new Error(`unknown operator ${operator}`);
      }
    });
}

function podTemplates(objects) {
  return objects.filter((object) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(object.kind))
    .map((object) => ({ owner: object, pod: object.spec.template }));
}

function containerPort(container, port) {
  const found = (container.ports ?? []).find((entry) => entry.name === port || entry.containerPort === port);
  assert.ok(found, `container ${container.name} has no port ${port}`);
  return found.containerPort;
}

function seconds(duration) {
  const match = /^(\d+)(ms|s|m|h)$/.exec(String(duration));
  assert.ok(match, `not a duration: ${duration}`);
  return Number(match[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[match[2]];
}

function portOf(address) {
  return Number(/:(\d+)$/.exec(typeof address === 'string' ? address : `:${address.port}`)[1]);
}

function configFrom(objects) {
  const configMap = generated(objects, 'ConfigMap', 'membrane-config');
  assert.ok(configMap.data?.['membrane.yaml'], 'the ConfigMap holds membrane.yaml');
  return { configMap, config: YAML.parse(configMap.data['membrane.yaml']) };
}

// ---------------------------------------------------------------------------------------------
// The renderer and the validator work, and can fail

test('a kustomize renderer is installed', () => {
  assert.ok(RENDERER, 'install kubectl (Debian 12: apt-get install kubernetes-client, as scripts/install-deps.sh does) or set MEMBRANE_KUSTOMIZE to a kustomize command line');
  const { status, stderr } = render(path.join(OVERLAYS_DIR, 'standalone'));
  assert.equal(status, 0, stderr);
});

test('the overlays are the expected ones', () => {
  const found = fs.readdirSync(OVERLAYS_DIR)
    .filter((name) => fs.existsSync(path.join(OVERLAYS_DIR, name, 'kustomization.yaml'))).sort();
  assert.deepEqual(found, EXPECTED_OVERLAYS);
});

const DEPLOYMENT = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'sample' },
  spec: {
    selector: { matchLabels: { app: 'sample' } },
    template: {
      metadata: { labels: { app: 'sample' } },
      spec: { containers: [{ name: 'sample', image: 'sample:1', ports: [{ containerPort: 8080 }] }] },
    },
  },
};

test('the validator accepts a correct Deployment', () => {
  assert.deepEqual(schemaProblems(structuredClone(DEPLOYMENT)), []);
});

const brokenObjects = {
  'a count given as text': (d) => { d.spec.replicas = 'three'; },
  'a missing required field': (d) => { delete d.spec.selector; },
  'a misspelt field': (d) => { d.spec.template.spec.containers[0].readinesProbe = { httpGet: { port: 8080 } }; },
  'a misspelt top-level spec field': (d) => { d.spec.replica = 3; },
  'a port number out of range': (d) => { d.spec.template.spec.containers[0].ports[0].containerPort = 'http'; },
  'an unknown kind': (d) => { d.kind = 'Deploymint'; },
};
for (const [description, breakIt] of Object.entries(brokenObjects)) {
  test(`the validator rejects a Deployment with ${description}`, () => {
    const object = structuredClone(DEPLOYMENT);
    breakIt(object);
    assert.notDeepEqual(schemaProblems(object), []);
  });
}

test('the validator rejects a cert-manager Certificate without an issuer', () => {
  assert.notDeepEqual(schemaProblems({
    apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: { name: 'x' }, spec: { secretName: 's' },
  }), []);
});

test('a kustomization with a broken object renders, and validation catches it; one naming a missing file fails to render', (t) => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'membrane-kustomize-'));
  t.after(() => fs.rmSync(directory, { recursive: true, force: true }));
  const broken = structuredClone(DEPLOYMENT);
  broken.spec.template.spec.containers[0].securityContex = { runAsNonRoot: true };
  fs.writeFileSync(path.join(directory, 'deployment.yaml'), YAML.stringify(broken));
  fs.writeFileSync(path.join(directory, 'kustomization.yaml'), 'resources:\n  - deployment.yaml\n');
  const rendered = render(directory);
  assert.equal(rendered.status, 0, rendered.stderr);
  const objects = parseDocuments(rendered.stdout);
  assert.equal(objects.length, 1);
  assert.match(schemaProblems(objects[0]).join('\n'), /securityContex/);

  fs.writeFileSync(path.join(directory, 'kustomization.yaml'), 'resources:\n  - deployment.yaml\n  - missing.yaml\n');
  assert.notEqual(render(directory).status, 0);
});

// ---------------------------------------------------------------------------------------------
// Every overlay

for (const overlay of EXPECTED_OVERLAYS) {
  test(`overlays/${overlay}: every rendered object validates against the Kubernetes schemas`, () => {
    const objects = renderOverlay(overlay);
    assert.ok(objects.length >= 2, `only ${objects.length} objects rendered`);
    const problems = objects.flatMap((object) => schemaProblems(object).map((problem) => `${describe(object)}: ${problem}`));
    assert.deepEqual(problems, []);
  });

  test(`overlays/${overlay}: every namespaced object has its namespace`, () => {
    // An object without one lands in whatever namespace kubectl's context names.
    const objects = renderOverlay(overlay);
    const namespaces = objects.filter((object) => object.kind === 'Namespace').map((object) => object.metadata.name);
    for (const object of objects.filter((item) => !CLUSTER_SCOPED.has(item.kind))) {
      assert.ok(namespaces.includes(object.metadata.namespace), `${describe(object)} is in namespace ${object.metadata.namespace}, not one this overlay creates`);
    }
  });

  test(`overlays/${overlay}: names are unique per kind and namespace`, () => {
    const keys = renderOverlay(overlay).map((object) => `${object.kind} ${object.metadata.namespace ?? ''}/${object.metadata.name}`);
    assert.deepEqual(keys.filter((key, index) => keys.indexOf(key) !== index), []);
  });

  test(`overlays/${overlay}: every container is non-root, read-only, without capabilities, with resources and a pinned image`, () => {
    const templates = podTemplates(renderOverlay(overlay));
    assert.equal(templates.length > 0, overlay !== 'agent-namespace', 'the overlays with workloads');
    for (const { owner, pod } of templates) {
      const podSecurity = pod.spec.securityContext ?? {};
      assert.equal(pod.spec.automountServiceAccountToken, false, `${describe(owner)}: the pod needs no API token`);
      for (const container of [...(pod.spec.initContainers ?? []), ...pod.spec.containers]) {
        const where = `${describe(owner)} container ${container.name}`;
        const security = container.securityContext ?? {};
        assert.equal(security.runAsNonRoot ?? podSecurity.runAsNonRoot, true, `${where}: runAsNonRoot`);
        assert.ok((security.runAsUser ?? podSecurity.runAsUser) > 0, `${where}: a numeric non-root user`);
        assert.equal(security.readOnlyRootFilesystem, true, `${where}: readOnlyRootFilesystem`);
        assert.equal(security.allowPrivilegeEscalation, false, `${where}: allowPrivilegeEscalation`);
        assert.deepEqual(security.capabilities?.drop, ['ALL'], `${where}: capabilities.drop [ALL]`);
        assert.equal(security.capabilities?.add, undefined, `${where}: no added capabilities`);
        assert.equal((security.seccompProfile ?? podSecurity.seccompProfile)?.type, 'RuntimeDefault', `${where}: seccomp`);
        assert.ok(container.resources?.requests?.cpu && container.resources?.requests?.memory, `${where}: requests`);
        assert.ok(container.resources?.limits?.memory, `${where}: a memory limit`);
        // The tag is after the last '/': a registry host may carry a port.
        assert.ok(/@sha256:[0-9a-f]{64}$/.test(container.image) || /:[\w][\w.-]*$/.test(container.image.split('/').at(-1)),
          `${where}: image ${container.image} has a tag or digest`);
        assert.doesNotMatch(container.image, /:latest$/, `${where}: a release tag, not latest`);
        for (const mount of container.volumeMounts ?? []) {
          assert.ok((pod.spec.volumes ?? []).some((volume) => volume.name === mount.name), `${where}: volume ${mount.name}`);
        }
        for (const probe of ['readinessProbe', 'livenessProbe']) {
          assert.ok(container[probe], `${where}: ${probe}`);
          const port = container[probe].httpGet?.port ?? container[probe].tcpSocket?.port;
          assert.ok(port !== undefined || container[probe].exec || container[probe].grpc, `${where}: ${probe} checks something`);
          if (port !== undefined) containerPort(container, port);
        }
      }
    }
  });

  test(`overlays/${overlay}: Services, PDBs, NetworkPolicies and HPAs point at the pods they are for`, () => {
    const objects = renderOverlay(overlay);
    const pods = podTemplates(objects);
    const selecting = (object, selector) => {
      const chosen = pods.filter(({ pod }) => selects(selector, pod.metadata.labels));
      assert.equal(chosen.length, 1, `${describe(object)} selects ${chosen.length} workloads`);
      return chosen[0];
    };
    for (const { owner, pod } of pods) {
      assert.ok(selects(owner.spec.selector, pod.metadata.labels), `${describe(owner)}: selector matches its own pods`);
    }
    for (const service of objects.filter((object) => object.kind === 'Service')) {
      const { pod } = selecting(service, { matchLabels: service.spec.selector });
      for (const port of service.spec.ports) {
        assert.ok(pod.spec.containers.some((container) => (container.ports ?? []).some(
          (entry) => entry.name === port.targetPort || entry.containerPort === port.targetPort)),
        `${describe(service)}: targetPort ${port.targetPort} is a container port`);
      }
    }
    for (const budget of objects.filter((object) => object.kind === 'PodDisruptionBudget')) {
      const { owner } = selecting(budget, budget.spec.selector);
      if (budget.spec.minAvailable !== undefined) {
        assert.ok(budget.spec.minAvailable < owner.spec.replicas, `${describe(budget)} leaves room to evict`);
      }
    }
    for (const policy of objects.filter((object) => object.kind === 'NetworkPolicy')) {
      selecting(policy, policy.spec.podSelector);
      assert.deepEqual([...policy.spec.policyTypes].sort(), ['Egress', 'Ingress'], `${describe(policy)}: default-deny both ways`);
    }
    for (const autoscaler of objects.filter((object) => object.kind === 'HorizontalPodAutoscaler')) {
      const target = only(objects, autoscaler.spec.scaleTargetRef.kind, autoscaler.spec.scaleTargetRef.name);
      assert.equal(autoscaler.spec.scaleTargetRef.apiVersion, target.apiVersion);
      assert.ok(autoscaler.spec.minReplicas <= target.spec.replicas, `${describe(autoscaler)}: minReplicas <= replicas`);
    }
    for (const { owner, pod } of pods) {
      for (const volume of pod.spec.volumes ?? []) {
        if (volume.configMap) only(objects, 'ConfigMap', volume.configMap.name);
      }
      assert.ok(pod.spec.containers.length > 0, describe(owner));
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The standalone gateway

test('standalone: three replicas, an HPA, a PDB and a NetworkPolicy for the gateway', () => {
  const objects = renderOverlay('standalone');
  const deployment = only(objects, 'Deployment', 'membrane');
  assert.equal(deployment.spec.replicas, 3);
  for (const kind of ['Service', 'PodDisruptionBudget', 'HorizontalPodAutoscaler', 'NetworkPolicy', 'Namespace']) {
    only(objects, kind);
  }
  assert.equal(only(objects, 'PodDisruptionBudget').apiVersion, 'policy/v1');
  assert.equal(only(objects, 'HorizontalPodAutoscaler').apiVersion, 'autoscaling/v2');
  for (const object of objects.filter((item) => item.kind !== 'Namespace')) {
    assert.equal(object.metadata.namespace, 'membrane', describe(object));
  }
});

function egressAllows(policy, { namespace, port }) {
  return policy.spec.egress.some((rule) =>
    (rule.ports ?? []).some((entry) => entry.port === port && (entry.protocol ?? 'TCP') === 'TCP') &&
    (rule.to ?? []).some((peer) => peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === namespace));
}

function inClusterTarget(url) {
  const parsed = new URL(url);
  const labels = parsed.hostname.split('.');
  assert.ok(labels.length >= 2 && (labels.length === 2 || labels[2] === 'svc'),
    `${url}: an in-cluster Service name (name.namespace[.svc...]); add an ipBlock rule and a test case for anything else`);
  const port = parsed.port ? Number(parsed.port) : (parsed.protocol === 'https:' ? 443 : 80);
  return { namespace: labels[1], port };
}

// The Service that cluster.redis.url names, in this overlay, and the one workload behind it.
function redisTarget(objects, config) {
  const url = new URL(config.cluster.redis.url);
  assert.equal(url.protocol, 'redis:');
  assert.equal(url.password, '', 'no password in cluster.redis.url');
  const [name, namespace, ...rest] = url.hostname.split('.');
  assert.ok(namespace && ['', 'svc', 'svc.cluster.local'].includes(rest.join('.')),
    `${url.hostname}: the Service's DNS name, NAME.NAMESPACE[.svc[.cluster.local]]`);
  const service = only(objects, 'Service', name);
  assert.equal(service.metadata.namespace, namespace, `${url.hostname}: the Service's namespace`);
  const port = url.port ? Number(url.port) : 6379;
  const servicePort = service.spec.ports.find((entry) => entry.port === port);
  assert.ok(servicePort, `${describe(service)} has no port ${port}`);
  const workloads = podTemplates(objects).filter(({ pod }) => selects({ matchLabels: service.spec.selector }, pod.metadata.labels));
  assert.equal(workloads.length, 1, `${describe(service)} selects one workload`);
  const { owner, pod } = workloads[0];
  const container = pod.spec.containers.find((entry) => (entry.ports ?? []).some(
    (item) => item.name === servicePort.targetPort || item.containerPort === servicePort.targetPort));
  assert.ok(container, `${describe(service)}: targetPort ${servicePort.targetPort} is a container port`);
  // NetworkPolicies see the pod's port, after the Service's translation.
  return { service, owner, pod, container, podPort: containerPort(container, servicePort.targetPort) };
}

// An egress rule to the pods with these labels in the policy's own namespace, on this TCP port.
function egressToPods(policy, labels, port) {
  return policy.spec.egress.some((rule) =>
    (rule.ports ?? []).some((entry) => entry.port === port && (entry.protocol ?? 'TCP') === 'TCP') &&
    (rule.to ?? []).some((peer) => !peer.namespaceSelector && !peer.ipBlock && peer.podSelector && selects(peer.podSelector, labels)));
}

for (const overlay of GATEWAY_OVERLAYS) {
  test(`${overlay}: the ConfigMap's membrane.yaml is valid against docs/membrane.schema.json`, () => {
    const schema = JSON.parse(fs.readFileSync(path.join(SOURCE_DIR, 'docs', 'membrane.schema.json'), 'utf8'));
    const validate = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true }).compile(schema);
    const { config } = configFrom(renderOverlay(overlay));
    assert.ok(validate(config), JSON.stringify(validate.errors, null, 2));
  });

  test(`${overlay}: the gateway container runs the mounted config, on the ports the config names`, () => {
    const objects = renderOverlay(overlay);
    const { configMap, config } = configFrom(objects);
    const pod = only(objects, 'Deployment', 'membrane').spec.template.spec;
    const container = pod.containers[0];
    const configIndex = container.args.indexOf('-c');
    assert.equal(container.args[0], 'serve');
    assert.ok(configIndex > 0, 'serve -c FILE');
    const configPath = container.args[configIndex + 1];
    const mount = container.volumeMounts.find((entry) => configPath === path.posix.join(entry.mountPath, path.posix.basename(configPath)));
    assert.ok(mount, `${configPath} is on a mounted volume`);
    assert.equal(pod.volumes.find((volume) => volume.name === mount.name).configMap.name, configMap.metadata.name);
    assert.ok(configMap.data[path.posix.basename(configPath)]);

    // ":PORT" alone means 127.0.0.1, which the Service could not reach.
    const listenHost = typeof config.listen === 'string' ? config.listen.replace(/:\d+$/, '') : config.listen.host;
    assert.ok(['0.0.0.0', '[::]', '::'].includes(listenHost), `listen on every interface, not ${listenHost || '127.0.0.1'}`);
    assert.equal(containerPort(container, 'http'), portOf(config.listen));
    assert.equal(containerPort(container, 'admin'), portOf(config.admin));
    const service = only(objects, 'Service', 'membrane');
    assert.equal(service.spec.ports.length, 1, 'the Service exposes the agent port only');
    assert.equal(containerPort(container, service.spec.ports[0].targetPort), portOf(config.listen));
  });

  test(`${overlay}: probes ask /readyz and /healthz; the grace period outlasts the preStop sleep and the drain`, () => {
    const objects = renderOverlay(overlay);
    const { config } = configFrom(objects);
    const pod = only(objects, 'Deployment', 'membrane').spec.template.spec;
    const container = pod.containers[0];
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    assert.equal(container.livenessProbe.httpGet.path, '/healthz');
    const drain = seconds(config.timeouts?.shutdown_drain ?? '15s');
    const delay = seconds(config.timeouts?.shutdown_delay ?? '0s');
    const command = container.lifecycle?.preStop?.exec?.command ?? [];
    const preStop = command[0] === 'sleep' ? Number(command[1]) : 0;
    // Either a preStop sleep or the gateway's own shutdown_delay keeps serving while the endpoint
    // removal spreads; without one, connections arriving in that window are refused.
    assert.ok(preStop + delay >= 3, `preStop sleep ${preStop}s + shutdown_delay ${delay}s: too short for endpoint removal`);
    // The gateway's own hard close after the drain deadline takes up to 2 s more.
    assert.ok(pod.terminationGracePeriodSeconds > preStop + delay + drain + 2,
      `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} <= preStop ${preStop}s + shutdown_delay ${delay}s + shutdown_drain ${drain}s + 2s`);
  });

  test(`${overlay}: the session key comes from a Secret, the same for every replica`, () => {
    const objects = renderOverlay(overlay);
    const { config } = configFrom(objects);
    const container = only(objects, 'Deployment', 'membrane').spec.template.spec.containers[0];
    const variable = config.session?.key_env ?? 'MEMBRANE_SESSION_KEY';
    const entry = (container.env ?? []).find((item) => item.name === variable);
    assert.ok(entry?.valueFrom?.secretKeyRef?.name, `${variable} is read from a Secret`);
    assert.equal(entry.value, undefined, 'no literal key in the manifest');
    assert.equal(objects.filter((object) => object.kind === 'Secret').length, 0, 'no Secret is rendered from the repository');
  });

  test(`${overlay}: security.allowed_hosts admits the Service's DNS names`, () => {
    const objects = renderOverlay(overlay);
    const { config } = configFrom(objects);
    const service = only(objects, 'Service', 'membrane');
    const { name, namespace } = service.metadata;
    const port = service.spec.ports[0].port;
    const allowed = config.security?.allowed_hosts ?? [];
    for (const host of [name, `${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.cluster.local`]) {
      assert.ok(allowed.some((pattern) => pattern === `${host}:*` || pattern === `${host}:${port}`),
        `${host}:${port} is not in security.allowed_hosts ${JSON.stringify(allowed)}`);
    }
  });

  test(`${overlay}: the NetworkPolicy allows egress to DNS, every upstream and the OTLP collector, and nothing else`, () => {
    const objects = renderOverlay(overlay);
    const { config } = configFrom(objects);
    const policy = only(objects, 'NetworkPolicy', 'membrane');
    const dns = policy.spec.egress.find((rule) => (rule.ports ?? []).some((entry) => entry.port === 53));
    assert.ok(dns, 'DNS is allowed');
    assert.deepEqual(dns.ports.map((entry) => entry.protocol).sort(), ['TCP', 'UDP']);

    const targets = Object.entries(config.upstreams).map(([name, upstream]) => {
      assert.ok(upstream.url, `upstream ${name}: the standalone gateway fronts HTTP upstreams`);
      return { what: `upstream ${name}`, ...inClusterTarget(upstream.url) };
    });
    assert.ok(config.otel?.endpoint, 'traces go to an OTLP collector');
    targets.push({ what: 'otel.endpoint', ...inClusterTarget(config.otel.endpoint) });
    for (const target of targets) {
      assert.ok(egressAllows(policy, target), `${target.what}: no egress rule for namespace ${target.namespace} port ${target.port}`);
    }
    const collector = inClusterTarget(config.otel.endpoint);
    assert.ok([4317, 4318].every((port) => egressAllows(policy, { namespace: collector.namespace, port })),
      'the collector\'s OTLP ports 4317 and 4318 are open');
    if (config.cluster?.redis) {
      const redis = redisTarget(objects, config);
      assert.equal(redis.owner.metadata.namespace, policy.metadata.namespace, 'Redis runs beside the gateway');
      assert.ok(egressToPods(policy, redis.pod.metadata.labels, redis.podPort), `cluster.redis: no egress rule to the Redis pods on ${redis.podPort}`);
    }

    for (const rule of policy.spec.egress) {
      assert.ok(rule.to?.length > 0 && rule.ports?.length > 0, 'every egress rule names its peers and ports');
      for (const peer of rule.to) assert.equal(peer.ipBlock, undefined, 'no address ranges in the base');
    }
    assert.deepEqual(policy.spec.ingress.flatMap((rule) => rule.ports.map((entry) => entry.port)), [portOf(config.listen)],
      'ingress reaches the agent port only');
  });

  test(`${overlay}: the policy ConfigMap holds every file the config loads, equal to policies/default`, () => {
    const objects = renderOverlay(overlay);
    const { config } = configFrom(objects);
    const policies = only(objects, 'ConfigMap', 'membrane-policies');
    const pod = only(objects, 'Deployment', 'membrane').spec.template.spec;
    const volume = pod.volumes.find((entry) => entry.configMap?.name === policies.metadata.name);
    const mount = pod.containers[0].volumeMounts.find((entry) => entry.name === volume.name);
    const paths = [config.policy.paths].flat();
    assert.deepEqual(paths.map((file) => path.posix.dirname(file)).filter((dir) => dir !== mount.mountPath), [],
      `policy.paths name files in ${mount.mountPath}; a directory would load each rule twice through the ConfigMap's ..data links`);
    assert.deepEqual(paths.map((file) => path.posix.basename(file)).sort(), Object.keys(policies.data).sort());

    const shipped = path.join(SOURCE_DIR, 'policies', 'default');
    const expected = fs.readdirSync(shipped).filter((name) => name.endsWith('.yaml') && !name.endsWith('.test.yaml')).sort();
    assert.deepEqual(Object.keys(policies.data).sort(), expected,
      'deploy/kubernetes/base/policies/ mirrors policies/default (copy the files over)');
    for (const name of expected) {
      assert.equal(policies.data[name], fs.readFileSync(path.join(shipped, name), 'utf8'),
        `deploy/kubernetes/base/policies/${name} differs from policies/default/${name}: copy it over`);
    }
  });

  test(`${overlay}: \`membrane config check\` accepts the rendered config and \`membrane policy check\` its policies`, { skip: !MEMBRANE_BIN && 'MEMBRANE_BIN is not set' }, (t) => {
    const objects = renderOverlay(overlay);
    const { configMap, config } = configFrom(objects);
    const policies = only(objects, 'ConfigMap', 'membrane-policies');
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'membrane-deploy-'));
    t.after(() => fs.rmSync(directory, { recursive: true, force: true }));
    for (const [name, text] of Object.entries(policies.data)) fs.writeFileSync(path.join(directory, name), text);
    const configFile = path.join(directory, 'membrane.yaml');
    fs.writeFileSync(configFile, configMap.data['membrane.yaml']);
    const checked = spawnSync(MEMBRANE_BIN, ['config', 'check', '-c', configFile], { encoding: 'utf8' });
    assert.equal(checked.status, 0, checked.stdout + checked.stderr);
    const files = [config.policy.paths].flat().map((file) => path.join(directory, path.posix.basename(file)));
    const policyChecked = spawnSync(MEMBRANE_BIN, ['policy', 'check', ...files], { encoding: 'utf8' });
    assert.equal(policyChecked.status, 0, policyChecked.stdout + policyChecked.stderr);
  });
}

// ---------------------------------------------------------------------------------------------
// The standalone gateway with Redis

// kind/name, without the hash kustomize appends to generated names.
function objectKey(object) {
  const name = object.kind === 'ConfigMap' ? object.metadata.name.replace(/-[a-z0-9]{10}$/, '') : object.metadata.name;
  return `${object.kind}/${name}`;
}

function redisObjects() {
  const objects = renderOverlay('standalone-redis');
  const { config } = configFrom(objects);
  assert.ok(config.cluster?.redis?.url, 'membrane.yaml has cluster.redis.url');
  return { objects, config, redis: redisTarget(objects, config) };
}

test('standalone-redis: the standalone objects plus a Redis Deployment, Service and NetworkPolicy; the gateway gets only the config, the password and one egress rule', () => {
  const standalone = renderOverlay('standalone');
  const objects = renderOverlay('standalone-redis');
  const added = ['Deployment/membrane-redis', 'NetworkPolicy/membrane-redis', 'Service/membrane-redis'];
  assert.deepEqual(objects.map(objectKey).sort(), [...standalone.map(objectKey), ...added].sort());
  const changed = ['ConfigMap/membrane-config', 'Deployment/membrane', 'NetworkPolicy/membrane'];
  for (const object of standalone.filter((item) => !changed.includes(objectKey(item)))) {
    assert.deepEqual(objects.find((item) => objectKey(item) === objectKey(object)), object, describe(object));
  }

  // The gateway Deployment: one more variable, and the overlay's ConfigMap.
  const deployment = structuredClone(only(objects, 'Deployment', 'membrane'));
  const original = only(standalone, 'Deployment', 'membrane');
  const pod = deployment.spec.template.spec;
  const { config } = configFrom(objects);
  const variable = config.cluster.redis.password_env ?? 'MEMBRANE_REDIS_PASSWORD';
  assert.ok(pod.containers[0].env.some((entry) => entry.name === variable), `the gateway has ${variable}`);
  pod.containers[0].env = pod.containers[0].env.filter((entry) => entry.name !== variable);
  pod.volumes.find((volume) => volume.configMap?.name === configFrom(objects).configMap.metadata.name).configMap.name =
    configFrom(standalone).configMap.metadata.name;
  assert.deepEqual(deployment, original);

  // The gateway's NetworkPolicy: the standalone rules, then one more.
  const policy = only(objects, 'NetworkPolicy', 'membrane');
  const originalPolicy = only(standalone, 'NetworkPolicy', 'membrane');
  assert.deepEqual(policy.spec.egress.slice(0, -1), originalPolicy.spec.egress);
  assert.deepEqual({ ...policy, spec: { ...policy.spec, egress: undefined } }, { ...originalPolicy, spec: { ...originalPolicy.spec, egress: undefined } });
});

test('standalone-redis: membrane.yaml is base/gateway/membrane.yaml plus the cluster block', () => {
  const { config } = configFrom(renderOverlay('standalone-redis'));
  const { config: original } = configFrom(renderOverlay('standalone'));
  assert.equal(original.cluster, undefined);
  const { cluster, ...rest } = config;
  assert.deepEqual(Object.keys(cluster), ['redis']);
  assert.deepEqual(rest, original, 'overlays/standalone-redis/membrane.yaml differs from base/gateway/membrane.yaml outside `cluster:`: edit both alike');
});

test('standalone-redis: cluster.redis.url names the Redis Service by its DNS name and port', () => {
  const { objects, config, redis } = redisObjects();
  const url = new URL(config.cluster.redis.url);
  assert.equal(redis.service.spec.type ?? 'ClusterIP', 'ClusterIP');
  assert.equal(redis.service.metadata.namespace, only(objects, 'Deployment', 'membrane').metadata.namespace);
  assert.equal(Number(url.port), redis.service.spec.ports[0].port, 'the port is spelt out');
  assert.equal(redis.podPort, 6379);
  assert.ok(!redis.container.args.includes('--port'), 'Redis listens on its default port, the container port');
  assert.ok(/^\/\d*$/.test(url.pathname), `${url.pathname}: a database number or nothing`);
});

test('standalone-redis: Redis accepts connections only from the gateway pods, on its port, and makes none', () => {
  const { objects, redis } = redisObjects();
  const policies = objects.filter((object) => object.kind === 'NetworkPolicy' && selects(object.spec.podSelector, redis.pod.metadata.labels));
  assert.equal(policies.length, 1, 'one NetworkPolicy for the Redis pods');
  const [policy] = policies;
  assert.equal(policy.metadata.namespace, redis.owner.metadata.namespace);
  assert.deepEqual([...policy.spec.policyTypes].sort(), ['Egress', 'Ingress']);
  assert.deepEqual(policy.spec.egress ?? [], [], 'no egress');

  const gatewayLabels = only(objects, 'Deployment', 'membrane').spec.template.metadata.labels;
  assert.ok(policy.spec.ingress.length > 0);
  for (const rule of policy.spec.ingress) {
    assert.deepEqual(rule.ports, [{ protocol: 'TCP', port: redis.podPort }], 'the Redis port only');
    assert.ok(rule.from?.length > 0, 'a rule without `from` admits every source');
    for (const peer of rule.from) {
      assert.deepEqual(Object.keys(peer), ['podSelector'], 'pods of this namespace only: no namespaceSelector, no ipBlock');
      assert.ok(selects(peer.podSelector, gatewayLabels), 'the peer is the gateway');
      for (const { owner, pod } of podTemplates(objects).filter((item) => item.owner.metadata.name !== 'membrane')) {
        assert.ok(!selects(peer.podSelector, pod.metadata.labels), `the peer is not ${describe(owner)}`);
      }
    }
  }
});

test('standalone-redis: the gateway\'s NetworkPolicy allows the Redis pods, on the Redis port', () => {
  const { objects, redis } = redisObjects();
  const policy = only(objects, 'NetworkPolicy', 'membrane');
  assert.equal(policy.metadata.namespace, redis.owner.metadata.namespace);
  assert.ok(egressToPods(policy, redis.pod.metadata.labels, redis.podPort));
  const rules = policy.spec.egress.filter((rule) => rule.to.some((peer) => peer.podSelector && !peer.namespaceSelector));
  assert.equal(rules.length, 1, 'one rule for pods of the gateway\'s own namespace');
  assert.deepEqual(rules[0].ports, [{ protocol: 'TCP', port: redis.podPort }]);
  for (const peer of rules[0].to) {
    assert.ok(selects(peer.podSelector, redis.pod.metadata.labels));
    assert.ok(!selects(peer.podSelector, only(objects, 'Deployment', 'membrane').spec.template.metadata.labels), 'not the gateway itself');
  }
});

test('standalone-redis: Redis and the gateway take the password from the same Secret and key, which the operator creates', () => {
  const { objects, config, redis } = redisObjects();
  assert.equal(config.cluster.redis.password_file, undefined, 'password_file would take precedence over the variable');
  const variable = config.cluster.redis.password_env ?? 'MEMBRANE_REDIS_PASSWORD';
  const gateway = only(objects, 'Deployment', 'membrane').spec.template.spec.containers[0];
  const gatewayEntry = (gateway.env ?? []).find((entry) => entry.name === variable);
  assert.ok(gatewayEntry?.valueFrom?.secretKeyRef, `the gateway's ${variable} comes from a Secret`);
  assert.equal(gatewayEntry.value, undefined);

  const args = redis.container.args;
  const requirepass = /^\$\((\w+)\)$/.exec(args[args.indexOf('--requirepass') + 1] ?? '');
  assert.ok(args.includes('--requirepass') && requirepass, 'redis-server --requirepass $(VARIABLE)');
  const redisEntry = (redis.container.env ?? []).find((entry) => entry.name === requirepass[1]);
  assert.ok(redisEntry?.valueFrom?.secretKeyRef, `Redis's ${requirepass[1]} comes from a Secret`);
  assert.equal(redisEntry.value, undefined);
  const reference = ({ name, key }) => ({ name, key });
  assert.deepEqual(reference(redisEntry.valueFrom.secretKeyRef), reference(gatewayEntry.valueFrom.secretKeyRef));
  assert.ok(!redisEntry.valueFrom.secretKeyRef.optional && !gatewayEntry.valueFrom.secretKeyRef.optional, 'no start without the password');
  assert.equal(objects.filter((object) => object.kind === 'Secret').length, 0, 'the operator creates the Secret');

  const { name, key } = redisEntry.valueFrom.secretKeyRef;
  const command = `kubectl -n ${redis.owner.metadata.namespace} create secret generic ${name} --from-literal=${key}=`;
  for (const file of [['deploy', 'README.md'], ['docs', 'kubernetes.md']]) {
    const text = fs.readFileSync(path.join(SOURCE_DIR, ...file), 'utf8').replace(/\s*\\\n\s*/g, ' ');
    assert.ok(text.includes(command), `${file.join('/')} shows \`${command}...\``);
  }
});

test('standalone-redis: Redis runs alone, with requirepass, in memory only', () => {
  const { objects, redis } = redisObjects();
  assert.equal(redis.owner.spec.replicas, 1);
  assert.equal(redis.owner.spec.strategy?.type, 'Recreate', 'never two Redis pods, each with half the buckets');
  assert.equal(objects.filter((object) => object.kind === 'PodDisruptionBudget' && selects(object.spec.selector, redis.pod.metadata.labels)).length, 0,
    'a budget for one replica would block node drains');
  assert.equal(objects.filter((object) => object.kind === 'HorizontalPodAutoscaler' && object.spec.scaleTargetRef.name === redis.owner.metadata.name).length, 0);

  const args = redis.container.args;
  const flag = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  assert.equal(args[0], 'redis-server');
  assert.equal(flag('--save'), '', 'no RDB snapshots');
  assert.equal(flag('--appendonly'), 'no', 'no AOF');
  assert.ok(!args.some((arg) => !arg.startsWith('--') && arg.endsWith('.conf')), 'no config file with settings of its own');
  for (const mount of redis.container.volumeMounts ?? []) {
    const volume = redis.pod.spec.volumes.find((entry) => entry.name === mount.name);
    assert.ok(volume.emptyDir, `${mount.mountPath}: an emptyDir, nothing kept across restarts`);
  }
  assert.ok((redis.container.volumeMounts ?? []).some((mount) => mount.mountPath === '/data'), 'the working directory /data is writable');

  const bytes = (value, units) => {
    const match = /^(\d+)([a-zA-Z]*)$/.exec(String(value));
    assert.ok(match && match[2].toLowerCase() in units, `not a size: ${value}`);
    return Number(match[1]) * units[match[2].toLowerCase()];
  };
  const maxmemory = flag('--maxmemory');
  if (maxmemory !== undefined) {
    const redisUnits = { '': 1, k: 1e3, kb: 1024, m: 1e6, mb: 1024 ** 2, g: 1e9, gb: 1024 ** 3 };
    const kubernetesUnits = { '': 1, k: 1e3, ki: 1024, m: 1e6, mi: 1024 ** 2, g: 1e9, gi: 1024 ** 3 };
    assert.ok(bytes(maxmemory, redisUnits) < bytes(redis.container.resources.limits.memory, kubernetesUnits),
      '--maxmemory below the memory limit: Redis evicts before the kernel kills it');
  }
});

// ---------------------------------------------------------------------------------------------
// The injector

for (const overlay of ['injector', 'injector-cert-manager']) {
  test(`overlays/${overlay}: the webhook calls the injector Service at /mutate over TLS, for pods only`, () => {
    const objects = renderOverlay(overlay);
    const configuration = only(objects, 'MutatingWebhookConfiguration', 'membrane-injector');
    assert.equal(configuration.webhooks.length, 1);
    const [webhook] = configuration.webhooks;
    const service = only(objects, 'Service', webhook.clientConfig.service.name);
    assert.equal(webhook.clientConfig.service.namespace, service.metadata.namespace);
    assert.equal(webhook.clientConfig.service.path, '/mutate');
    assert.equal(webhook.clientConfig.url, undefined);
    const servicePort = service.spec.ports.find((port) => port.port === (webhook.clientConfig.service.port ?? 443));
    assert.ok(servicePort, 'the webhook\'s port is a Service port');

    const deployment = only(objects, 'Deployment', 'membrane-injector');
    const container = deployment.spec.template.spec.containers[0];
    const flag = (name) => container.args[container.args.indexOf(name) + 1];
    assert.equal(container.args[0], 'inject');
    assert.equal(portOf(flag('--listen')), containerPort(container, servicePort.targetPort));
    assert.equal(container.readinessProbe.httpGet.scheme, 'HTTPS');

    assert.deepEqual(webhook.admissionReviewVersions, ['v1']);
    assert.equal(webhook.sideEffects, 'None');
    assert.equal(webhook.failurePolicy, 'Ignore');
    assert.ok(webhook.timeoutSeconds >= 1 && webhook.timeoutSeconds <= 10, 'a short timeout');
    assert.equal(webhook.reinvocationPolicy, 'IfNeeded');
    assert.deepEqual(webhook.rules, [{
      operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced',
    }]);
  });

  test(`overlays/${overlay}: only opted-in namespaces, never kube-system nor the injector itself`, () => {
    const objects = renderOverlay(overlay);
    const [webhook] = only(objects, 'MutatingWebhookConfiguration', 'membrane-injector').webhooks;
    const namespace = (name, labels = {}) => ({ 'kubernetes.io/metadata.name': name, ...labels });
    const optedIn = { 'membrane.dev/injection': 'enabled' };
    assert.ok(selects(webhook.namespaceSelector, namespace('agents', optedIn)), 'an opted-in namespace');
    assert.ok(!selects(webhook.namespaceSelector, namespace('agents')), 'a namespace without the label');
    assert.ok(!selects(webhook.namespaceSelector, namespace('agents', { 'membrane.dev/injection': 'disabled' })));
    assert.ok(!selects(webhook.namespaceSelector, namespace('kube-system', optedIn)), 'kube-system, even labelled');

    const deployment = only(objects, 'Deployment', 'membrane-injector');
    const home = deployment.metadata.namespace;
    const homeNamespace = only(objects, 'Namespace', home);
    assert.ok(!selects(webhook.namespaceSelector, namespace(home, homeNamespace.metadata.labels)), 'the injector\'s namespace as rendered');
    assert.ok(!selects(webhook.namespaceSelector, namespace(home, optedIn)), 'the injector\'s namespace, even labelled');
    const podLabels = deployment.spec.template.metadata.labels;
    assert.ok(!selects(webhook.objectSelector, podLabels), 'the injector\'s own pods');
    assert.ok(selects(webhook.objectSelector, { app: 'agent' }), 'other pods');
  });

  test(`overlays/${overlay}: the TLS files come from the Secret the certificate is kept in`, () => {
    const objects = renderOverlay(overlay);
    const pod = only(objects, 'Deployment', 'membrane-injector').spec.template.spec;
    const container = pod.containers[0];
    const flag = (name) => container.args[container.args.indexOf(name) + 1];
    const secretVolumes = pod.volumes.filter((volume) => volume.secret);
    assert.equal(secretVolumes.length, 1);
    const mount = container.volumeMounts.find((entry) => entry.name === secretVolumes[0].name);
    assert.equal(flag('--tls-cert'), `${mount.mountPath}/tls.crt`);
    assert.equal(flag('--tls-key'), `${mount.mountPath}/tls.key`);

    const configuration = only(objects, 'MutatingWebhookConfiguration', 'membrane-injector');
    const certificates = objects.filter((object) => object.kind === 'Certificate');
    if (overlay === 'injector-cert-manager') {
      const [certificate] = certificates;
      assert.equal(certificates.length, 1);
      assert.equal(certificate.spec.secretName, secretVolumes[0].secret.secretName);
      const service = only(objects, 'Service', 'membrane-injector');
      assert.ok(certificate.spec.dnsNames.includes(`${service.metadata.name}.${service.metadata.namespace}.svc`),
        'the certificate names the Service as the API server dials it');
      assert.equal(configuration.metadata.annotations?.['cert-manager.io/inject-ca-from'],
        `${certificate.metadata.namespace}/${certificate.metadata.name}`);
      const issuer = only(objects, certificate.spec.issuerRef.kind, certificate.spec.issuerRef.name);
      assert.equal(issuer.metadata.namespace, certificate.metadata.namespace);
    } else {
      assert.equal(certificates.length, 0);
      assert.equal(configuration.metadata.annotations?.['cert-manager.io/inject-ca-from'], undefined);
      // Left out so that the caBundle patched in by hand survives a re-apply.
      assert.equal(configuration.webhooks[0].clientConfig.caBundle, undefined);
    }
  });
}

function injectorConfig(objects) {
  const pod = only(objects, 'Deployment', 'membrane-injector').spec.template.spec;
  const container = pod.containers[0];
  const configPath = container.args[container.args.indexOf('-c') + 1];
  assert.ok(container.args.includes('-c'), 'inject -c FILE');
  const mount = container.volumeMounts.find((entry) => configPath === path.posix.join(entry.mountPath, path.posix.basename(configPath)));
  assert.ok(mount, `${configPath} is on a mounted volume`);
  const configMap = only(objects, 'ConfigMap', pod.volumes.find((volume) => volume.name === mount.name).configMap.name);
  const text = configMap.data[path.posix.basename(configPath)];
  assert.ok(text, `the ConfigMap holds ${path.posix.basename(configPath)}`);
  return { container, text, config: YAML.parse(text) ?? {} };
}

test('injector: the sidecar image, policy ConfigMap and excluded namespaces in inject.yaml agree with the manifests', () => {
  const objects = renderOverlay('injector');
  const { container, config } = injectorConfig(objects);
  assert.equal(config.sidecar?.image, container.image,
    'sidecar.image in base/injector/inject.yaml and the injector\'s image (kustomize `images` changes only the latter)');
  const home = only(objects, 'Deployment', 'membrane-injector').metadata.namespace;
  for (const namespace of ['kube-system', home]) {
    assert.ok(config.namespaces?.exclude?.includes(namespace), `namespaces.exclude holds ${namespace}`);
  }
  const agentPolicies = renderOverlay('agent-namespace').filter((object) => object.kind === 'ConfigMap');
  assert.deepEqual(agentPolicies.map((object) => object.metadata.name), [config.sidecar?.policy_configmap ?? 'membrane-policies'],
    'overlays/agent-namespace makes the ConfigMap the sidecars mount');
  assert.equal((config.on_error ?? 'allow') === 'allow',
    only(objects, 'MutatingWebhookConfiguration').webhooks[0].failurePolicy === 'Ignore',
    'on_error and failurePolicy make the same choice');
});

const injectCommand = MEMBRANE_BIN && /membrane inject/.test(spawnSync(MEMBRANE_BIN, ['--help'], { encoding: 'utf8' }).stdout ?? '');
test('injector: `membrane inject` accepts the rendered inject.yaml', { skip: !injectCommand && 'MEMBRANE_BIN has no inject command' }, (t) => {
  const { text } = injectorConfig(renderOverlay('injector'));
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'membrane-deploy-'));
  t.after(() => fs.rmSync(directory, { recursive: true, force: true }));
  const configFile = path.join(directory, 'inject.yaml');
  fs.writeFileSync(configFile, text);
  // The config is read before the certificate; with no certificate the injector stops there,
  // so a complaint that names the config file is the config's.
  const missing = path.join(directory, 'missing');
  const run = spawnSync(MEMBRANE_BIN, ['inject', '--listen', '127.0.0.1:0', '--tls-cert', `${missing}.crt`,
    '--tls-key', `${missing}.key`, '-c', configFile], { encoding: 'utf8', timeout: 10_000 });
  assert.notEqual(run.status, 0, 'the injector cannot start without its certificate');
  assert.ok(!`${run.stdout}${run.stderr}`.includes(configFile), run.stdout + run.stderr);
  assert.match(`${run.stdout}${run.stderr}`, /missing\.(crt|key)|certificate|tls/i);
});

test('agent-namespace: the namespace is one the webhook sends pods from, with the shipped policy', () => {
  const objects = renderOverlay('agent-namespace');
  const namespace = only(objects, 'Namespace');
  const [webhook] = only(renderOverlay('injector'), 'MutatingWebhookConfiguration').webhooks;
  assert.ok(selects(webhook.namespaceSelector, { 'kubernetes.io/metadata.name': namespace.metadata.name, ...namespace.metadata.labels }));
  const policies = only(objects, 'ConfigMap', 'membrane-policies');
  assert.equal(policies.metadata.namespace, namespace.metadata.name);
  assert.deepEqual(policies.data, only(renderOverlay('standalone'), 'ConfigMap', 'membrane-policies').data);
});

// ---------------------------------------------------------------------------------------------
// deploy/Dockerfile

function dockerfileStages() {
  const text = fs.readFileSync(path.join(SOURCE_DIR, 'deploy', 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const stages = [];
  for (const line of text.split('\n')) {
    if (/^\s*FROM\s/i.test(line)) stages.push({ from: line.trim(), lines: [] });
    else if (stages.length > 0 && line.trim() && !line.trim().startsWith('#')) stages.at(-1).lines.push(line.trim());
  }
  return stages;
}

function aptPackages(stage) {
  return stage.lines.filter((line) => /^RUN\s/.test(line) && /apt-get\s.*install/.test(line))
    .flatMap((line) => line.split(/&&|;/).filter((part) => /apt-get\s.*install/.test(part)))
    .flatMap((part) => part.replace(/.*install/, '').trim().split(/\s+/).filter((word) => word && !word.startsWith('-')));
}

test('Dockerfile: two stages, CMake options that exist, a numeric non-root user at run time', () => {
  const stages = dockerfileStages();
  assert.equal(stages.length, 2, stages.map((stage) => stage.from).join(' | '));
  const cmake = fs.readFileSync(path.join(SOURCE_DIR, 'CMakeLists.txt'), 'utf8');
  const options = [...stages[0].lines.join(' ').matchAll(/-D(MEMBRANE_\w+)=/g)].map((match) => match[1]);
  assert.ok(options.length > 0);
  for (const option of options) assert.match(cmake, new RegExp(`option\\(${option}\\b`), `${option} is not an option of CMakeLists.txt`);
  const user = stages[1].lines.filter((line) => /^USER\s/.test(line)).at(-1);
  assert.match(user ?? '', /^USER\s+[1-9]\d*(:[1-9]\d*)?$/, 'USER uid[:gid], non-zero, so runAsNonRoot can check it');
  // The pods that run this image; others (Redis) run as their own image's user.
  const deployments = EXPECTED_OVERLAYS.flatMap((overlay) => podTemplates(renderOverlay(overlay)))
    .filter(({ pod }) => pod.spec.containers.some((container) => /(^|\/)membrane[:@]/.test(container.image)));
  assert.ok(deployments.length > 0, 'the gateway and injector Deployments run the image');
  const uid = Number(user.split(/\s+/)[1].split(':')[0]);
  for (const { owner, pod } of deployments) assert.equal(pod.spec.securityContext.runAsUser, uid, `${describe(owner)} runs as the image's user`);
});

const hasTools = MEMBRANE_BIN && onPath('ldd') && onPath('dpkg');
test('Dockerfile: the runtime stage installs the Debian package of every shared library the binary links', { skip: !hasTools && 'needs MEMBRANE_BIN, ldd and dpkg' }, () => {
  const ldd = spawnSync('ldd', [MEMBRANE_BIN], { encoding: 'utf8' });
  assert.equal(ldd.status, 0, ldd.stderr);
  const libraries = [...ldd.stdout.matchAll(/^\s*(\S+) => (\S+)/gm)].map((match) => match[1]);
  // Sanitizer and profiling runtimes come from a test build, never from the release image's build.
  const shipped = libraries.filter((library) => !/^lib(asan|ubsan|tsan|lsan|clang_rt)/.test(library));
  assert.ok(shipped.length > 0);
  // debian:12-slim already holds these (they are "required" priority).
  const inBase = new Set(['libc6', 'libgcc-s1', 'libstdc++6', 'zlib1g']);
  const runtime = new Set(aptPackages(dockerfileStages()[1]));
  const missing = [];
  for (const library of shipped) {
    const owner = spawnSync('dpkg', ['-S', `*/${library}`], { encoding: 'utf8' });
    if (owner.status !== 0) continue;  // not from a Debian package: a local build's own library
    const packages = owner.stdout.split('\n').filter(Boolean).map((line) => line.split(':')[0].trim());
    if (!packages.some((name) => inBase.has(name) || runtime.has(name))) missing.push(`${library} (${packages.join(', ')})`);
  }
  assert.deepEqual(missing, [], `add these to the runtime stage of deploy/Dockerfile; it installs ${[...runtime].join(' ')}`);
});
