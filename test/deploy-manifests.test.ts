/**
 * deploy/: the Kubernetes manifests and the docker compose file agree with the Kubernetes API
 * schemas and with the gateway's own configuration.
 *
 * Every manifest in deploy/k8s/ (the default kustomization: the gateway, with a Redis of one's own) and
 * deploy/k8s-redis/ (the overlay that adds an in-cluster Redis for test environments) is built with its
 * kubernetes-models class (by apiVersion and kind) and validated. The gateway configuration each
 * deployment mounts is loaded through the real loader (normaliseConfig) with the environment the
 * container would see, secrets replaced by valid placeholders; then ports, probes, metrics, who may reach
 * which port (NetworkPolicy), env, command lines, security settings and shutdown timing are checked against
 * it. The checks are plain functions returning a list of problems, so the tests below run them on the real
 * files (no problems) and on copies with one thing broken (that problem reported).
 */

import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { parseUnboundedDurationMs } from '../src/config/duration.js';
import { normaliseConfig } from '../src/config/normalise.js';
import type { GatewayConfig } from '../src/config/types.js';

const repoDir = fileURLToPath(new URL('../', import.meta.url));
const deployDir = join(repoDir, 'deploy');
const k8sDir = join(deployDir, 'k8s');
/** The overlay with an in-cluster Redis (kustomize refuses an overlay inside the directory of its base). */
const redisOverlayDir = join(deployDir, 'k8s-redis');
const composeFile = join(deployDir, 'docker-compose.yml');
const healthcheckScript = join(deployDir, 'docker', 'healthcheck.mjs');
/** Files in deploy/k8s/ that are not Kubernetes objects, or not meant for `kubectl apply -k`. */
const KUSTOMIZATION = 'kustomization.yaml';
const SECRET_EXAMPLE = 'secret.example.yaml';
/** Added to kustomization.yaml by a vendor whose configuration has a digdir block. */
const ROTATE_KEYS_CRONJOB = 'rotate-keys.cronjob.yaml';
/** The Dockerfile's ENV BFF_CONFIG, used when a container does not set its own. */
const IMAGE_BFF_CONFIG = '/config/gateway.yaml';

// ---------------------------------------------------------------------------------------------
// Placeholder secrets: valid enough for the loader's checks, never used for anything else.

const RSA_JWK = JSON.stringify({ ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }), kid: 'placeholder' });

function placeholderSecret(name: string): string {
  if (/SESSION_KEY/.test(name)) return randomBytes(32).toString('base64');
  if (/JWK/.test(name)) return RSA_JWK;
  if (/PASSWORD/.test(name)) return randomBytes(16).toString('hex');
  if (/REDIS_URL/.test(name)) return 'rediss://placeholder.invalid:6380';
  return `placeholder-${name.toLowerCase()}`;
}

/** `${NAME}` references in the strings of a configuration text (`$${NAME}` is an escaped literal, comments do not count). */
function configReferences(text: string): string[] {
  const names = new Set<string>();
  const visit = (value: unknown): void => {
    if (typeof value === 'string') {
      for (const match of value.matchAll(/\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) if (match[1] === '') names.add(match[2] as string);
    } else if (value !== null && typeof value === 'object') {
      Object.values(value).forEach(visit);
    }
  };
  visit(parse(text));
  return [...names];
}

/** Runs the real loader; returns the configuration or the loader's message as a problem. */
function loadGatewayConfig(text: string, env: NodeJS.ProcessEnv, baseDir: string, where: string, problems: string[]): GatewayConfig | undefined {
  try {
    return normaliseConfig(parse(text), env, baseDir);
  } catch (err) {
    problems.push(`${where}: the gateway refuses this configuration: ${(err as Error).message}`);
    return undefined;
  }
}

function secondsOf(duration: string | number | undefined): number {
  if (duration === undefined) return 0;
  if (typeof duration === 'number') return duration;
  const match = /^\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$/.exec(duration);
  if (!match) throw new Error(`cannot read the duration ${duration}`);
  return Number(match[1] ?? 0) * 60 + Number(match[2] ?? 0);
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

interface Manifest {
  file: string;
  doc: any;
}

function readManifests(dir: string): Manifest[] {
  const manifests: Manifest[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !/\.(ya?ml|json)$/.test(entry.name) || entry.name === KUSTOMIZATION) continue;
    const path = join(entry.parentPath, entry.name);
    const file = relative(dir, path);
    for (const document of parseAllDocuments(readFileSync(path, 'utf8'))) {
      if (document.errors.length > 0) throw new Error(`${file}: ${document.errors[0]?.message}`);
      const doc = document.toJS();
      if (doc !== null && doc !== undefined) manifests.push({ file, doc });
    }
  }
  return manifests.sort((a, b) => a.file.localeCompare(b.file));
}

/** The kubernetes-models class for an apiVersion and kind, e.g. apps/v1 Deployment → kubernetes-models/apps/v1. */
async function modelFor(apiVersion: string, kind: string): Promise<new (data: unknown) => { validate(): void }> {
  if (!/^([a-z0-9.-]+\/)?v\d+((alpha|beta)\d+)?$/.test(apiVersion)) throw new Error(`unknown apiVersion ${apiVersion}`);
  const module: Record<string, unknown> = await import(`kubernetes-models/${apiVersion}`);
  const model = module[kind];
  if (typeof model !== 'function') throw new Error(`kubernetes-models has no ${kind} in ${apiVersion}`);
  return model as new (data: unknown) => { validate(): void };
}

const clone = <T>(value: T): T => structuredClone(value);
const named = (manifests: Manifest[], kind: string) => manifests.filter((m) => m.doc.kind === kind).map((m) => m.doc);
const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

/** A probe's or Service's port (number or container port name) as a number, or undefined. */
function resolvePort(port: unknown, container: any): number | undefined {
  if (typeof port === 'number') return port;
  return container.ports?.find((p: any) => p.name === port)?.containerPort;
}

/**
 * The environment a container sees: `value`s with `$(NAME)` expanded from earlier entries (as the
 * kubelet does) and Secret keys replaced by placeholders. Unknown Secrets, keys and references are problems.
 */
function containerEnv(container: any, secrets: any[], where: string, problems: string[], secretValues: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const entry of container.env ?? []) {
    if (entry.value !== undefined) {
      env[entry.name] = String(entry.value).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => {
        if (env[name] === undefined) problems.push(`${where}: env ${entry.name} uses $(${name}), which no earlier env entry sets`);
        return env[name] ?? whole;
      });
      continue;
    }
    const ref = entry.valueFrom?.secretKeyRef;
    if (!ref) {
      problems.push(`${where}: env ${entry.name} is neither a value nor a secretKeyRef`);
      continue;
    }
    const secret = secrets.find((s) => s.metadata?.name === ref.name);
    if (!secret) problems.push(`${where}: env ${entry.name} reads Secret ${ref.name}, which deploy/k8s/ does not describe`);
    else if (!(ref.key in { ...secret.stringData, ...secret.data })) problems.push(`${where}: env ${entry.name} reads key ${ref.key}, which Secret ${ref.name} lacks`);
    env[entry.name] = secretValues[ref.key] ?? placeholderSecret(ref.key);
  }
  return env;
}

/**
 * A Secret's value on a command line is in every process listing, /proc/<pid>/cmdline and the pod's spec:
 * the kubelet's `$(NAME)` of a Secret-backed variable in command or args, or a password flag, is a problem.
 */
function checkCommandLines(workload: any, where: string, problems: string[]): void {
  for (const container of workload.spec.template.spec.containers) {
    const secretVars = (container.env ?? []).filter((e: any) => e.valueFrom?.secretKeyRef).map((e: any) => e.name as string);
    for (const word of [...(container.command ?? []), ...(container.args ?? [])].map(String)) {
      for (const name of secretVars) if (word.includes(`$(${name})`)) problems.push(`${where} container ${container.name}: the Secret value ${name} is on its command line`);
      if (/--requirepass\b|--masterauth\b/.test(word)) problems.push(`${where} container ${container.name}: a password flag on its command line (${word})`);
    }
  }
}

/** A NetworkPolicy peer or port list that is empty or missing admits everyone / every port. */
const admitsEveryone = (rule: any) => !Array.isArray(rule.from) || rule.from.length === 0;

/**
 * Who may reach the gateway's pods: a NetworkPolicy selects them for Ingress; every rule names its ports and
 * its peers; no rule admits both the public port and the internal listener, so the ingress controller cannot
 * reach /admin/ and the monitoring cannot reach the public port (and nothing else reaches either).
 */
function checkNetworkPolicy(manifests: Manifest[], podLabels: Record<string, string>, container: any, server: GatewayConfig['server'], problems: string[]): void {
  const policies = named(manifests, 'NetworkPolicy').filter((p) => matches(p.spec.podSelector?.matchLabels, podLabels) && (p.spec.policyTypes ?? ['Ingress']).includes('Ingress'));
  if (policies.length === 0) {
    problems.push("no NetworkPolicy selects the gateway's pods for Ingress: every pod of the cluster reaches the public port and the internal listener");
    return;
  }
  const portsOf = (rule: any): (number | undefined)[] => (rule.ports ?? []).map((p: any) => resolvePort(p.port, container));
  let publicRules = 0;
  let internalRules = 0;
  for (const policy of policies) {
    for (const [index, rule] of (policy.spec.ingress ?? []).entries()) {
      const at = `NetworkPolicy ${policy.metadata.name} ingress[${index}]`;
      const ports = portsOf(rule);
      if (ports.length === 0) problems.push(`${at} admits every port`);
      if (ports.includes(undefined)) problems.push(`${at} names a port the gateway container does not have`);
      if (admitsEveryone(rule)) problems.push(`${at} admits every peer`);
      const toPublic = ports.length === 0 || ports.includes(server.port);
      const toInternal = ports.length === 0 || ports.includes(server.metricsPort);
      if (toPublic && toInternal) problems.push(`${at} admits the same peers to the public port and the internal listener`);
      if (toPublic) publicRules++;
      if (toInternal) internalRules++;
    }
  }
  if (publicRules === 0) problems.push(`no NetworkPolicy rule admits the ingress controller to server.port ${server.port}`);
  if (internalRules === 0) problems.push(`no NetworkPolicy rule admits the monitoring to server.metricsPort ${server.metricsPort}`);
}

function checkSecurity(workload: any, where: string, problems: string[]): void {
  const pod = workload.spec.template.spec;
  for (const container of pod.containers) {
    const at = `${where} container ${container.name}`;
    const sc = { ...pod.securityContext, ...container.securityContext };
    if (sc.runAsNonRoot !== true) problems.push(`${at}: runAsNonRoot must be true`);
    if (!Number.isInteger(sc.runAsUser) || sc.runAsUser === 0) problems.push(`${at}: runAsUser must be a non-zero uid (the image's user is a name kubelet cannot verify)`);
    if (container.securityContext?.readOnlyRootFilesystem !== true) problems.push(`${at}: readOnlyRootFilesystem must be true`);
    if (container.securityContext?.allowPrivilegeEscalation !== false) problems.push(`${at}: allowPrivilegeEscalation must be false`);
    if (!container.securityContext?.capabilities?.drop?.includes('ALL')) problems.push(`${at}: must drop ALL capabilities`);
    for (const kind of ['requests', 'limits'] as const) {
      for (const resource of ['cpu', 'memory']) {
        if (container.resources?.[kind]?.[resource] === undefined) problems.push(`${at}: resources.${kind}.${resource} is not set`);
      }
    }
    const tmp = container.volumeMounts?.find((m: any) => m.mountPath === '/tmp');
    const tmpVolume = pod.volumes?.find((v: any) => v.name === tmp?.name);
    if (!tmpVolume?.emptyDir) problems.push(`${at}: /tmp must be an emptyDir (the root file system is read-only)`);
  }
}

/** Every cross-check between the manifests and the gateway configuration they mount. */
function checkKubernetes(manifests: Manifest[], secretValues: Record<string, string> = {}): string[] {
  const problems: string[] = [];
  const deployments = named(manifests, 'Deployment').filter((d) => d.metadata.name === 'idporten-bff');
  if (deployments.length !== 1) return [`expected one Deployment idporten-bff, found ${deployments.length}`];
  const deployment = deployments[0];
  const pod = deployment.spec.template.spec;
  const podLabels = deployment.spec.template.metadata?.labels;
  const container = pod.containers.find((c: any) => c.name === 'gateway');
  if (!container) return ['Deployment idporten-bff has no container named gateway'];
  const at = 'Deployment idporten-bff container gateway';
  const secrets = named(manifests, 'Secret');
  const services = named(manifests, 'Service');

  // The configuration: BFF_CONFIG names a file in a ConfigMap volume.
  const env = containerEnv(container, secrets, at, problems, secretValues);
  const configPath = env.BFF_CONFIG ?? IMAGE_BFF_CONFIG;
  const mount = container.volumeMounts?.find((m: any) => configPath.startsWith(`${m.mountPath.replace(/\/$/, '')}/`));
  const volume = pod.volumes?.find((v: any) => v.name === mount?.name);
  const configMap = named(manifests, 'ConfigMap').find((c) => c.metadata.name === volume?.configMap?.name);
  const key = mount ? posix.relative(mount.mountPath, configPath) : '';
  const text: unknown = configMap?.data?.[key];
  if (typeof text !== 'string') return [...problems, `${at}: BFF_CONFIG ${configPath} is not a key of a mounted ConfigMap`];
  if (mount.readOnly !== true) problems.push(`${at}: the configuration volume must be mounted readOnly`);

  for (const name of configReferences(text)) {
    if (env[name] === undefined) problems.push(`${at}: the configuration uses \${${name}}, which the container's env does not set`);
  }
  const config = loadGatewayConfig(text, env, k8sDir, `ConfigMap ${configMap.metadata.name} ${key}`, problems);
  if (!config) return problems;
  const { server } = config;

  if (server.host !== '0.0.0.0') problems.push(`server.host is ${server.host}; in a pod it must be 0.0.0.0`);
  const httpPort = resolvePort('http', container);
  if (httpPort !== server.port) problems.push(`${at}: containerPort "http" is ${httpPort}, server.port is ${server.port}`);
  if (server.metricsPort === undefined) problems.push('server.metricsPort is not set: /metrics would be on the public port');
  const metricsPort = resolvePort('metrics', container);
  if (metricsPort !== server.metricsPort) problems.push(`${at}: containerPort "metrics" is ${metricsPort}, server.metricsPort is ${server.metricsPort}`);
  if (server.metricsHost === undefined || /^(127\.|::1$|localhost$)/.test(server.metricsHost)) {
    problems.push(`server.metricsHost is ${server.metricsHost}: Prometheus, in another pod, cannot reach the internal listener`);
  }
  checkNetworkPolicy(manifests, podLabels, container, server, problems);

  const probes: [string, string][] = [['livenessProbe', '/healthz'], ['readinessProbe', '/readyz'], ['startupProbe', '/healthz']];
  for (const [probe, path] of probes) {
    const get = container[probe]?.httpGet;
    if (!get) {
      if (probe !== 'startupProbe') problems.push(`${at}: ${probe} must be an httpGet on ${path}`);
      continue;
    }
    if (get.path !== path) problems.push(`${at}: ${probe} asks ${get.path}, expected ${path}`);
    const port = resolvePort(get.port, container);
    if (port !== server.port) problems.push(`${at}: ${probe} asks port ${get.port} (${port}), server.port is ${server.port}`);
  }

  // SIGTERM: the kubelet's grace period covers the preStop pause plus the gateway's own shutdown.
  const preStop = container.lifecycle?.preStop;
  const pause = preStop?.sleep?.seconds ?? (preStop?.exec?.command?.[0] === 'sleep' ? Number(preStop.exec.command[1]) : 0);
  const grace = pod.terminationGracePeriodSeconds ?? 30;
  if (grace <= pause + server.shutdownTimeoutMs / 1000) {
    problems.push(`terminationGracePeriodSeconds ${grace} must exceed the preStop pause (${pause}s) plus server.shutdownTimeout (${server.shutdownTimeoutMs / 1000}s)`);
  }

  // Services: the public one carries the main port only, /metrics has its own.
  const gatewayServices = services.filter((s) => matches(s.spec.selector, podLabels));
  const exposes = (service: any, port: number | undefined) => service.spec.ports.some((p: any) => resolvePort(p.targetPort ?? p.port, container) === port);
  const publicServices = gatewayServices.filter((s) => exposes(s, server.port));
  if (publicServices.length === 0) problems.push(`no Service selects the gateway's pods on server.port ${server.port}`);
  for (const service of publicServices) {
    if (exposes(service, server.metricsPort)) problems.push(`Service ${service.metadata.name} exposes the metrics port next to the public one`);
  }
  const metricsServices = gatewayServices.filter((s) => exposes(s, server.metricsPort));
  if (metricsServices.length === 0) problems.push(`no Service selects the gateway's pods on server.metricsPort ${server.metricsPort}`);
  for (const service of metricsServices) {
    if (service.spec.type !== undefined && service.spec.type !== 'ClusterIP') problems.push(`Service ${service.metadata.name} serves /metrics as ${service.spec.type}; keep it ClusterIP`);
  }
  for (const service of services) {
    const selected = [...named(manifests, 'Deployment'), ...named(manifests, 'StatefulSet')].filter((w) => matches(service.spec.selector, w.spec.template.metadata?.labels));
    if (selected.length === 0) problems.push(`Service ${service.metadata.name} selects no workload's pods`);
  }

  // The session store: a Redis URL naming an in-cluster Service must reach a Redis container port.
  if (config.session.store.type !== 'redis') problems.push('session.store must be redis: replicas share sessions');
  else {
    const url = new URL(config.session.store.url);
    const service = services.find((s) => s.metadata.name === url.hostname);
    if (service) {
      const port = Number(url.port || 6379);
      const servicePort = service.spec.ports.find((p: any) => p.port === port);
      const workload = named(manifests, 'StatefulSet').find((w) => matches(service.spec.selector, w.spec.template.metadata?.labels));
      const redis = workload?.spec.template.spec.containers[0];
      if (!servicePort || !redis || resolvePort(servicePort.targetPort ?? servicePort.port, redis) === undefined) {
        problems.push(`session.store.url names Service ${url.hostname}:${port}, which does not lead to a Redis container port`);
      }
    }
  }

  // Scaling and disruptions.
  const hpa = named(manifests, 'HorizontalPodAutoscaler').find((h) => h.spec.scaleTargetRef.name === deployment.metadata.name);
  if (!hpa || hpa.spec.scaleTargetRef.kind !== 'Deployment') problems.push('no HorizontalPodAutoscaler targets Deployment idporten-bff');
  const minReplicas = hpa?.spec.minReplicas ?? 1;
  if (minReplicas < 2) problems.push(`HorizontalPodAutoscaler minReplicas is ${minReplicas}; at least 2 keep the gateway up through a node drain`);
  const pdb = named(manifests, 'PodDisruptionBudget').find((p) => matches(p.spec.selector?.matchLabels, podLabels));
  if (!pdb) problems.push("no PodDisruptionBudget selects the gateway's pods");
  else if (typeof pdb.spec.minAvailable === 'number' && pdb.spec.minAvailable >= minReplicas) {
    problems.push(`PodDisruptionBudget minAvailable ${pdb.spec.minAvailable} blocks every drain at ${minReplicas} replicas`);
  }

  for (const workload of [...named(manifests, 'Deployment'), ...named(manifests, 'StatefulSet')]) {
    checkSecurity(workload, `${workload.kind} ${workload.metadata.name}`, problems);
    checkCommandLines(workload, `${workload.kind} ${workload.metadata.name}`, problems);
  }
  return problems;
}

/** A kustomization file's resources (files, or directories holding a kustomization) and replaced ConfigMap files. */
interface Kustomization {
  resources: string[];
  configMapGenerator?: { name: string; behavior?: string; files?: string[] }[];
}

/**
 * What `kubectl kustomize DIR` yields for the subset of kustomize these files use: resources (files, and
 * directories built the same way) and configMapGenerator with behavior: replace (each file a data key).
 */
function buildKustomization(dir: string): Manifest[] {
  const kustomization = parse(readFileSync(join(dir, KUSTOMIZATION), 'utf8')) as Kustomization;
  const built: Manifest[] = [];
  for (const resource of kustomization.resources) {
    const path = resolve(dir, resource);
    if (statSync(path).isDirectory()) built.push(...buildKustomization(path));
    else built.push(...readManifests(dir).filter((m) => m.file === resource));
  }
  for (const generator of kustomization.configMapGenerator ?? []) {
    const target = built.find((m) => m.doc.kind === 'ConfigMap' && m.doc.metadata.name === generator.name);
    if (generator.behavior !== 'replace' || !target) throw new Error(`configMapGenerator ${generator.name}: only behavior: replace of a base ConfigMap is understood here`);
    const data = Object.fromEntries((generator.files ?? []).map((file) => [file, readFileSync(join(dir, file), 'utf8')]));
    target.doc = { ...clone(target.doc), data };
  }
  return built;
}

/** Why the kubectl cross-check cannot run here, or false when it can. */
function kubectlMissing(): string | false {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'kubectl is not installed';
  }
}

/** The REDIS_URL the example Secret tells users of the overlay to create, with a placeholder password. */
function overlayRedisUrl(): string {
  const example = readFileSync(join(k8sDir, SECRET_EXAMPLE), 'utf8');
  const url = /--from-literal=REDIS_URL="(redis:\/\/[^"]*idporten-bff-redis[^"]*)"/.exec(example)?.[1];
  if (!url) throw new Error(`${SECRET_EXAMPLE} does not show the overlay's REDIS_URL`);
  return url.replace(/\$\{?pw\}?/, randomBytes(16).toString('hex'));
}

// ---------------------------------------------------------------------------------------------
// docker compose

/**
 * Compose interpolation of one environment value as `docker compose up` would do it with the
 * required variables set: `${X:?msg}` → a placeholder secret, `${X:-default}` → the default.
 */
function composeValue(value: string, name: string, problems: string[]): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[?-])([^}]*))?\}/g, (_whole, variable: string, operator?: string, rest?: string) => {
    if (operator === ':?' || operator === '?') return placeholderSecret(variable);
    if (operator === ':-' || operator === '-') return rest ?? '';
    problems.push(`compose: gateway env ${name} uses \${${variable}} without :? (required) or :- (default)`);
    return '';
  });
}

function composeEnvironment(service: any, problems: string[]): Record<string, string> {
  const raw: Record<string, unknown> = Array.isArray(service.environment)
    ? Object.fromEntries(service.environment.map((line: string) => [line.split('=')[0], line.split('=').slice(1).join('=')]))
    : (service.environment ?? {});
  return Object.fromEntries(Object.entries(raw).map(([name, value]) => [name, composeValue(String(value ?? ''), name, problems)]));
}

/** "127.0.0.1:3000:3000", "3000:3000", "3000" or the long form → { published, target }. */
function composePorts(service: any): { published?: string; target: number }[] {
  return (service.ports ?? []).map((port: any) => {
    if (typeof port === 'object') return { published: port.published === undefined ? undefined : String(port.published), target: Number(port.target) };
    const parts = String(port).split(':');
    const target = Number(parts.at(-1)?.split('/')[0]);
    return { published: parts.length > 1 ? parts.at(-2) : undefined, target };
  });
}

function checkCompose(compose: any, dir: string): string[] {
  const problems: string[] = [];
  const gateway = compose.services?.gateway;
  if (!gateway) return ['compose: no gateway service'];
  const context = resolve(dir, gateway.build?.context ?? '.');
  if (!existsSync(join(context, gateway.build?.dockerfile ?? 'Dockerfile'))) problems.push('compose: the gateway build context has no Dockerfile');

  const env = composeEnvironment(gateway, problems);
  const configPath = env.BFF_CONFIG ?? IMAGE_BFF_CONFIG;
  const mount = (gateway.volumes ?? [])
    .map((volume: any) => (typeof volume === 'string' ? volume.split(':') : [volume.source, volume.target, volume.read_only ? 'ro' : 'rw']))
    .find((parts: string[]) => parts[1] === configPath);
  if (!mount) return [...problems, `compose: nothing is mounted at BFF_CONFIG ${configPath}`];
  if (mount[2] !== 'ro') problems.push(`compose: ${configPath} must be mounted read-only`);
  const hostFile = resolve(dir, mount[0]);
  if (!existsSync(hostFile)) return [...problems, `compose: ${mount[0]} does not exist`];
  const text = readFileSync(hostFile, 'utf8');

  for (const name of configReferences(text)) {
    if (env[name] === undefined) problems.push(`compose: ${relative(dir, hostFile)} uses \${${name}}, which the gateway service's environment does not set`);
  }
  const config = loadGatewayConfig(text, env, dirname(hostFile), `compose: ${relative(dir, hostFile)}`, problems);
  if (!config) return problems;
  const { server } = config;

  if (server.host !== '0.0.0.0') problems.push(`compose: server.host is ${server.host}; in a container it must be 0.0.0.0`);
  const ports = composePorts(gateway);
  if (!ports.some((p) => p.target === server.port && p.published !== undefined)) problems.push(`compose: no published port leads to server.port ${server.port}`);
  for (const port of ports) {
    if (port.target !== server.port) problems.push(`compose: published port ${port.published ?? ''}:${port.target} is not server.port ${server.port}`);
  }
  if (server.metricsPort === undefined) problems.push('compose: server.metricsPort is not set: /metrics would be on the published port');
  else if (!(gateway.expose ?? []).map(String).includes(String(server.metricsPort))) {
    problems.push(`compose: the metrics port ${server.metricsPort} is not exposed to the compose network`);
  } else if (server.metricsHost === undefined || /^(127\.|::1$|localhost$)/.test(server.metricsHost)) {
    problems.push(`compose: server.metricsHost is ${server.metricsHost}: the metrics port is exposed, but nothing on the compose network can reach it`);
  }
  const publicUrl = new URL(config.tenants[0]?.publicUrl ?? 'http://invalid');
  const published = ports.find((p) => p.target === server.port)?.published;
  if (publicUrl.hostname === 'localhost' && published !== undefined && publicUrl.port !== published) {
    problems.push(`compose: publicUrl ${publicUrl.origin} does not match the published port ${published}`);
  }

  if (config.session.store.type !== 'redis') problems.push('compose: session.store must be redis');
  else {
    const host = new URL(config.session.store.url).hostname;
    const redis = compose.services?.[host];
    if (!redis) problems.push(`compose: session.store.url names ${host}, which is not a compose service`);
    else {
      const shared = (gateway.networks ?? ['default']).filter((n: string) => (redis.networks ?? ['default']).includes(n));
      if (shared.length === 0) problems.push(`compose: the gateway and ${host} share no network`);
      if ((redis.ports ?? []).length > 0) problems.push(`compose: ${host} publishes ports; only the gateway should reach it`);
      if (!Object.keys(gateway.depends_on ?? {}).includes(host)) problems.push(`compose: the gateway does not depend on ${host}`);
    }
  }

  if (gateway.read_only !== true) problems.push('compose: the gateway must run with read_only: true');
  if (!(gateway.tmpfs ?? []).includes('/tmp')) problems.push('compose: the gateway needs a tmpfs on /tmp');
  const uid = String(gateway.user ?? '').split(':')[0];
  if (!/^\d+$/.test(uid ?? '') || uid === '0') problems.push('compose: the gateway must run as a non-zero numeric user');
  const grace = secondsOf(gateway.stop_grace_period ?? '10s');
  if (grace <= server.shutdownTimeoutMs / 1000) {
    problems.push(`compose: stop_grace_period ${grace}s must exceed server.shutdownTimeout ${server.shutdownTimeoutMs / 1000}s`);
  }
  return problems;
}

/** Variables compose requires (`${X:?…}`) that deploy/.env.example does not mention. */
function missingFromEnvExample(composeText: string, example: string): string[] {
  const required = [...composeText.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*):?\?/g)].map((m) => m[1] as string);
  return required.filter((name) => !new RegExp(`^#?\\s*${name}=`, 'm').test(example));
}

// ---------------------------------------------------------------------------------------------
// The tests

/** Every object in deploy/k8s/, the example Secret included. */
const manifests = readManifests(k8sDir);
const secretExample = manifests.filter((m) => m.file === SECRET_EXAMPLE);
/** What `kubectl apply -k deploy/k8s` applies, and the example Secret it expects to find. */
const defaultBuild = [...buildKustomization(k8sDir), ...secretExample];
/** What `kubectl apply -k deploy/k8s-redis` applies, and the example Secret. */
const overlayBuild = [...buildKustomization(redisOverlayDir), ...secretExample];
const overlayOwn = readManifests(redisOverlayDir).filter((m) => m.file !== 'gateway.yaml');
const compose = parse(readFileSync(composeFile, 'utf8'));

t.test('every manifest in deploy/k8s/ and deploy/k8s-redis/ validates against the Kubernetes schemas', async (t) => {
  t.ok(manifests.length >= 8, `read ${manifests.length} objects`);
  t.ok(overlayOwn.length >= 3, `read ${overlayOwn.length} objects of the overlay`);
  for (const { file, doc } of [...manifests, ...overlayOwn]) {
    const Model = await modelFor(doc.apiVersion, doc.kind);
    t.doesNotThrow(() => new Model(doc).validate(), `${file}: ${doc.kind} ${doc.metadata?.name}`);
  }
});

t.test('the schema validation catches a malformed manifest', async (t) => {
  const deployment = clone(manifests.find((m) => m.doc.kind === 'Deployment')?.doc);
  deployment.spec.template.spec.containers[0].ports[0].containerPort = '3000';
  const Model = await modelFor(deployment.apiVersion, deployment.kind);
  t.throws(() => new Model(deployment).validate(), /containerPort must be integer/);
  await t.rejects(modelFor('apps/v1', 'Deploymnet'), /no Deploymnet in apps\/v1/);
});

t.test('kustomization.yaml lists every manifest except the example Secret; the overlay adds its own and replaces the configuration', async (t) => {
  const kustomization = parse(readFileSync(join(k8sDir, KUSTOMIZATION), 'utf8'));
  const files = [...new Set(manifests.map((m) => m.file))].filter((f) => f !== SECRET_EXAMPLE && f !== ROTATE_KEYS_CRONJOB).sort();
  t.same([...kustomization.resources].sort(), files);
  t.ok(manifests.some((m) => m.file === SECRET_EXAMPLE && m.doc.kind === 'Secret'), 'the example Secret is there to check env against');
  const overlay = parse(readFileSync(join(redisOverlayDir, KUSTOMIZATION), 'utf8')) as Kustomization;
  t.same([...overlay.resources].sort(), ['../k8s', ...new Set(overlayOwn.map((m) => m.file))].sort(), 'the overlay: deploy/k8s plus each of its manifests');
  t.same(overlay.configMapGenerator?.map((g) => [g.name, g.behavior, g.files]), [['idporten-bff-config', 'replace', ['gateway.yaml']]]);
});

// Finding "edge hygiene": redis.yaml, a Redis for tests, was in the default kustomization, so `kubectl apply -k
// deploy/k8s` gave production a single Redis without TLS.
t.test('the default kustomization holds no Redis; the overlay brings one', async (t) => {
  const isRedis = (m: Manifest) => m.doc.kind === 'StatefulSet' || m.doc.metadata?.labels?.['app.kubernetes.io/component'] === 'redis';
  t.same(buildKustomization(k8sDir).filter(isRedis).map((m) => `${m.doc.kind} ${m.doc.metadata.name}`), []);
  t.ok(overlayBuild.some((m) => m.doc.kind === 'StatefulSet' && isRedis(m)), 'deploy/k8s-redis adds the StatefulSet');
});

// The overlay's gateway.yaml is a copy that only opts in to the in-cluster Redis's plain redis://.
t.test('the overlay\'s gateway configuration is the default one with session.store.allowPlaintext', async (t) => {
  const configOf = (build: Manifest[]) => parse(build.find((m) => m.doc.kind === 'ConfigMap')!.doc.data['gateway.yaml']);
  const base = configOf(defaultBuild);
  const overlay = configOf(overlayBuild);
  t.equal(base.session.store.allowPlaintext, undefined, 'the default needs TLS (rediss://) to a Redis outside the pod');
  t.equal(overlay.session.store.allowPlaintext, true);
  delete overlay.session.store.allowPlaintext;
  t.same(overlay, base, 'nothing else differs');
});

t.test('the manifests agree with the gateway configuration they mount', async (t) => {
  t.same(checkKubernetes(defaultBuild), [], 'deploy/k8s');
  t.same(checkKubernetes(overlayBuild, { REDIS_URL: overlayRedisUrl() }), [], 'deploy/k8s-redis with the REDIS_URL the example Secret shows');
});

// The overlay's files as kubectl builds them, where kubectl is installed: the subset of kustomize read above agrees.
t.test('kubectl kustomize builds the same objects', { skip: kubectlMissing() }, async (t) => {
  for (const [dir, build] of [[k8sDir, defaultBuild], [redisOverlayDir, overlayBuild]] as const) {
    const out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
    const built = parseAllDocuments(out).map((d) => d.toJS());
    const summary = (docs: any[]) => docs.map((d) => `${d.kind} ${d.metadata.name}`).sort();
    t.same(summary(built), summary(build.filter((m) => m.file !== SECRET_EXAMPLE).map((m) => m.doc)), relative(repoDir, dir));
    const configMap = built.find((d) => d.kind === 'ConfigMap');
    t.equal(configMap.data['gateway.yaml'], build.find((m) => m.doc.kind === 'ConfigMap')!.doc.data['gateway.yaml'], `${relative(repoDir, dir)}: the configuration`);
  }
});

// The vendor's scheduled `integrations rotate-keys`: the gateway's image, its configuration and keys, one run at a time.
t.test('the rotate-keys CronJob runs the gateway image on the mounted configuration, with a vendor configuration it can load', async (t) => {
  const cron = manifests.find((m) => m.file === ROTATE_KEYS_CRONJOB)?.doc;
  t.equal(cron?.kind, 'CronJob');
  const deployment = find(defaultBuild.map((m) => m.doc), 'Deployment', 'idporten-bff');
  const job = cron.spec.jobTemplate.spec;
  const container = job.template.spec.containers[0];
  const problems: string[] = [];
  checkSecurity({ spec: job }, 'CronJob', problems);
  checkCommandLines({ spec: job }, 'CronJob', problems);
  const env = containerEnv(container, named(manifests, 'Secret'), 'CronJob', problems);
  t.same(problems, [], 'hardened like the gateway; no Secret on its command line; every Secret key it reads is in the example');
  t.equal(container.image, gateway([deployment]).image, "the gateway's image");
  t.same(container.command.slice(0, 4), ['node', 'dist/main.js', 'integrations', 'rotate-keys']);
  t.equal(cron.spec.concurrencyPolicy, 'Forbid', 'never two rotations at once (the API takes at most five keys)');
  t.equal(job.template.spec.restartPolicy, 'Never');
  const overlap = parseUnboundedDurationMs(container.command[container.command.indexOf('--overlap') + 1]) / 1000;
  t.ok(job.activeDeadlineSeconds > overlap, `the run may outlast the overlap (${overlap} s) it waits before removing the old key`);

  // The configuration it reads: the ConfigMap the gateway mounts, at the path it names.
  const configPath = container.command[container.command.indexOf('--config') + 1];
  const mount = container.volumeMounts.find((m: any) => configPath.startsWith(`${m.mountPath}/`));
  t.equal(mount?.readOnly, true);
  const volume = job.template.spec.volumes.find((v: any) => v.name === mount.name);
  t.equal(volume.configMap.name, deployment.spec.template.spec.volumes.find((v: any) => v.configMap)?.configMap.name, "the gateway's ConfigMap");
  // A vendor's configuration: the default one with its digdir block and a customer awaiting its integration.
  const vendor = parse(find(defaultBuild.map((m) => m.doc), 'ConfigMap').data['gateway.yaml']);
  vendor.digdir = { environment: 'test', clientId: '${DIGDIR_ADMIN_CLIENT_ID}', key: { jwk: '${DIGDIR_ADMIN_JWK}' } };
  vendor.tenants = [{ id: 'kunde', publicUrl: 'https://mva.kunde.no', orgno: '123456789', idporten: { environment: 'test' } }];
  const text = stringify(vendor);
  t.same(configReferences(text).filter((name) => env[name] === undefined), [], 'every ${VAR} of the vendor configuration is in its env');
  const loaded = loadGatewayConfig(text, env, k8sDir, 'vendor configuration', problems);
  t.same(problems, []);
  t.same(loaded?.awaitingClient?.map((tenant) => tenant.id), ['kunde'], 'the customer awaits the integration apply makes');
});

t.test('a manifest that disagrees with the configuration is reported', async (t) => {
  const redisUrl = overlayRedisUrl();
  const cases: [string, (docs: any[]) => void, RegExp, { overlay?: boolean; redisUrl?: string }?][] = [
    ['a container port other than server.port', (d) => (find(d, 'Deployment').spec.template.spec.containers[0].ports[0].containerPort = 3001), /containerPort "http" is 3001, server\.port is 3000/],
    ['server.port changed in the ConfigMap only', (d) => editConfig(d, (c) => c.replace('port: 3000', 'port: 3100')), /containerPort "http" is 3000, server\.port is 3100/],
    ['readiness on /healthz', (d) => (gateway(d).readinessProbe.httpGet.path = '/healthz'), /readinessProbe asks \/healthz, expected \/readyz/],
    ['liveness on the metrics port', (d) => (gateway(d).livenessProbe.httpGet.port = 'metrics'), /livenessProbe asks port metrics \(9464\)/],
    ['no liveness probe', (d) => delete gateway(d).livenessProbe, /livenessProbe must be an httpGet on \/healthz/],
    ['a metrics port other than server.metricsPort', (d) => (gateway(d).ports[1].containerPort = 9000), /containerPort "metrics" is 9000, server\.metricsPort is 9464/],
    ['metrics on the public Service', (d) => find(d, 'Service', 'idporten-bff').spec.ports.push({ name: 'metrics', port: 9464, targetPort: 'metrics' }), /Service idporten-bff exposes the metrics port/],
    ['the internal listener on loopback', (d) => editConfig(d, (c) => c.replace('metricsHost: 0.0.0.0', 'metricsHost: 127.0.0.1')), /server\.metricsHost is 127\.0\.0\.1: Prometheus, in another pod, cannot reach/],
    ['no NetworkPolicy for the gateway', (d) => d.splice(d.indexOf(find(d, 'NetworkPolicy', 'idporten-bff')), 1), /no NetworkPolicy selects the gateway's pods/],
    ['the internal listener open to every peer', (d) => delete find(d, 'NetworkPolicy', 'idporten-bff').spec.ingress[1].from, /ingress\[1\] admits every peer/],
    ['the ingress controller admitted to the internal listener', (d) => find(d, 'NetworkPolicy', 'idporten-bff').spec.ingress[0].ports.push({ port: 'metrics' }), /ingress\[0\] admits the same peers to the public port and the internal listener/],
    ['a rule without ports', (d) => delete find(d, 'NetworkPolicy', 'idporten-bff').spec.ingress[0].ports, /ingress\[0\] admits every port/],
    ['a ${VAR} the env does not set', (d) => editConfig(d, (c) => c.replace('"${IDPORTEN_CLIENT_ID}"', '"${IDPORTEN_CLIENT}"')), /uses \$\{IDPORTEN_CLIENT\}, which the container's env does not set/],
    ['an env entry reading a missing Secret key', (d) => (gateway(d).env.find((e: any) => e.name === 'IDPORTEN_JWK').valueFrom.secretKeyRef.key = 'JWK'), /reads key JWK, which Secret idporten-bff lacks/],
    ['a configuration the loader refuses', (d) => editConfig(d, (c) => c.replace('absoluteLifetime: 8h', 'absoluteLifetime: 9h')), /refuses this configuration: .*session\.absoluteLifetime/],
    ['the loopback host', (d) => editConfig(d, (c) => c.replace('host: 0.0.0.0 ', 'host: 127.0.0.1 ')), /server\.host is 127\.0\.0\.1/],
    ['a grace period shorter than the shutdown', (d) => (find(d, 'Deployment').spec.template.spec.terminationGracePeriodSeconds = 15), /terminationGracePeriodSeconds 15 must exceed/],
    ['a writable root file system', (d) => (gateway(d).securityContext.readOnlyRootFilesystem = false), /gateway: readOnlyRootFilesystem must be true/],
    ['root', (d) => (find(d, 'Deployment').spec.template.spec.securityContext.runAsUser = 0), /gateway: runAsUser must be a non-zero uid/],
    ['a PDB that blocks drains', (d) => (find(d, 'PodDisruptionBudget').spec.minAvailable = 2), /minAvailable 2 blocks every drain/],
    ['no memory limit on Redis', (d) => delete find(d, 'StatefulSet').spec.template.spec.containers[0].resources.limits.memory, /container redis: resources\.limits\.memory is not set/, { overlay: true }],
    ['a Redis URL to the wrong port', () => undefined, /names Service idporten-bff-redis:6380/, { overlay: true, redisUrl: redisUrl.replace(':6379', ':6380') }],
    ['the Redis password on the command line', (d) => (find(d, 'StatefulSet').spec.template.spec.containers[0].args = ['--requirepass', '$(REDIS_PASSWORD)']), /the Secret value REDIS_PASSWORD is on its command line/, { overlay: true }],
  ];
  for (const [name, breakIt, expected, options = {}] of cases) {
    const docs = (options.overlay ? overlayBuild : defaultBuild).map((m) => ({ file: m.file, doc: clone(m.doc) }));
    const objects = docs.map((m) => m.doc);
    breakIt(objects);
    const problems = checkKubernetes(docs.filter((m) => objects.includes(m.doc)), options.overlay ? { REDIS_URL: options.redisUrl ?? redisUrl } : {});
    t.match(problems.join('\n'), expected, name);
  }
});

function find(docs: any[], kind: string, name?: string): any {
  const doc = docs.find((d) => d.kind === kind && (name === undefined || d.metadata.name === name));
  if (!doc) throw new Error(`no ${kind} ${name ?? ''}`);
  return doc;
}
function gateway(docs: any[]): any {
  return find(docs, 'Deployment', 'idporten-bff').spec.template.spec.containers[0];
}
function editConfig(docs: any[], edit: (text: string) => string): void {
  const configMap = find(docs, 'ConfigMap');
  const before = configMap.data['gateway.yaml'];
  configMap.data['gateway.yaml'] = edit(before);
  if (configMap.data['gateway.yaml'] === before) throw new Error('the edit changed nothing');
}

t.test('the compose file agrees with the gateway configuration it mounts', async (t) => {
  t.same(checkCompose(compose, deployDir), []);
  t.same(missingFromEnvExample(readFileSync(composeFile, 'utf8'), readFileSync(join(deployDir, '.env.example'), 'utf8')), [], 'deploy/.env.example names every required variable');
});

t.test('a compose file that disagrees with the configuration is reported', async (t) => {
  const cases: [string, (c: any) => void, RegExp][] = [
    ['a published port to another container port', (c) => (c.services.gateway.ports = ['127.0.0.1:3000:3001']), /no published port leads to server\.port 3000/],
    ['the metrics port published', (c) => c.services.gateway.ports.push('9464:9464'), /published port 9464:9464 is not server\.port/],
    ['a publicUrl port other than the published one', (c) => (c.services.gateway.ports = ['127.0.0.1:8080:3000']), /publicUrl http:\/\/localhost:3000 does not match the published port 8080/],
    ['a secret the config needs but compose does not pass', (c) => delete c.services.gateway.environment.IDPORTEN_JWK, /uses \$\{IDPORTEN_JWK\}, which the gateway service's environment does not set/],
    ['a required secret without :?', (c) => (c.services.gateway.environment.BFF_SESSION_KEY = '${BFF_SESSION_KEY}'), /BFF_SESSION_KEY uses \$\{BFF_SESSION_KEY\} without :\?/],
    ['the config mounted elsewhere', (c) => (c.services.gateway.environment.BFF_CONFIG = '/etc/gateway.yaml'), /nothing is mounted at BFF_CONFIG \/etc\/gateway\.yaml/],
    ['a Redis host that is no service', (c) => (c.services.gateway.environment.REDIS_URL = 'redis://cache:6379'), /names cache, which is not a compose service/],
    ['Redis on another network', (c) => (c.services.redis.networks = ['other']), /share no network/],
    ['root', (c) => (c.services.gateway.user = '0:0'), /non-zero numeric user/],
    ['a writable root file system', (c) => delete c.services.gateway.read_only, /read_only: true/],
    ['a stop grace period shorter than the shutdown', (c) => (c.services.gateway.stop_grace_period = '5s'), /stop_grace_period 5s must exceed server\.shutdownTimeout 10s/],
  ];
  for (const [name, breakIt, expected] of cases) {
    const copy = clone(compose);
    breakIt(copy);
    t.match(checkCompose(copy, deployDir).join('\n'), expected, name);
  }
  t.same(missingFromEnvExample('X: ${NEW_SECRET:?set it}', 'BFF_SESSION_KEY=\n'), ['NEW_SECRET']);
});

t.test('a compose configuration whose internal listener stays on loopback is reported', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bff-compose-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'gateway.yaml');
  const text = readFileSync(join(deployDir, 'gateway.yaml'), 'utf8');
  writeFileSync(file, text.replace(/^\s*metricsHost: .*\n/m, ''));
  t.not(readFileSync(file, 'utf8'), text, 'metricsHost removed');
  const copy = clone(compose);
  copy.services.gateway.volumes = [`${file}:/config/gateway.yaml:ro`];
  t.match(checkCompose(copy, deployDir).join('\n'), /server\.metricsHost is 127\.0\.0\.1: the metrics port is exposed, but nothing on the compose network can reach it/);
});

// ---------------------------------------------------------------------------------------------
// The image

t.test('the Dockerfile builds on Node 24, runs as a numeric non-root user, and health-checks through the script', async (t) => {
  const dockerfile = readFileSync(join(repoDir, 'Dockerfile'), 'utf8');
  const bases = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
  t.ok(bases.length > 0 && bases.every((base) => /^node:24[-.]/.test(base ?? '')), `every stage is node:24 (${bases.join(', ')})`);
  const users = [...dockerfile.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1] ?? '');
  t.match(users.at(-1), /^[1-9]\d*(:\d+)?$/, 'the last USER is a non-zero uid');
  t.match(dockerfile, /^HEALTHCHECK[^\n]*\\\n\s*CMD \["node", "\/app\/healthcheck\.mjs"\]/m);
  t.match(dockerfile, /^COPY deploy\/docker\/healthcheck\.mjs \.\/healthcheck\.mjs$/m);
  t.notMatch(dockerfile, /127\.0\.0\.1:3000/, 'no hard-coded health URL');
  const ignore = readFileSync(join(repoDir, '.dockerignore'), 'utf8');
  const sources = [...dockerfile.matchAll(/^COPY\s+(?!--from)(.+)$/gm)].flatMap((m) => (m[1] ?? '').trim().split(/\s+/).slice(0, -1));
  t.ok(sources.includes('deploy/docker/healthcheck.mjs'));
  for (const source of sources) {
    const files = statSync(join(repoDir, source)).isDirectory()
      ? readdirSync(join(repoDir, source), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => relative(repoDir, join(e.parentPath, e.name)))
      : [source];
    const ignored = files.filter((file) => dockerIgnores(ignore, file));
    t.same(ignored, [], `COPY ${source}: in the build context`);
  }
  for (const secret of ['deploy/.env', '.env', 'deploy/client.jwk.json', 'deploy/gateway.yaml', 'node_modules/yaml/package.json']) {
    t.ok(dockerIgnores(ignore, secret), `${secret} stays out of the build context`);
  }
});

/** .dockerignore semantics: the last pattern matching the path or one of its parents decides; `!` re-includes. */
function dockerIgnores(ignoreFile: string, path: string): boolean {
  const patterns = ignoreFile
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const negated = line.startsWith('!');
      const glob = (negated ? line.slice(1) : line).replace(/^\/+|\/+$/g, '');
      const source = glob
        .split(/(\*\*\/?|\*|\?)/)
        .map((part) => (part.startsWith('**') ? '(?:.*/)?' : part === '*' ? '[^/]*' : part === '?' ? '[^/]' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
        .join('');
      return { negated, regex: new RegExp(`^${source}$`) };
    });
  const segments = path.split('/');
  const candidates = segments.map((_, i) => segments.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const { negated, regex } of patterns) if (candidates.some((candidate) => regex.test(candidate))) ignored = !negated;
  return ignored;
}

/** Runs the health check script; resolves to its exit code. */
function runHealthcheck(env: NodeJS.ProcessEnv): Promise<number | null> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [healthcheckScript], { env: { PATH: process.env.PATH, ...env }, stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code) => resolvePromise(code));
  });
}

async function listen(status: number): Promise<{ server: Server; port: number; paths: string[] }> {
  const paths: string[] = [];
  const server = createServer((req, res) => {
    paths.push(req.url ?? '');
    res.writeHead(req.url === '/healthz' ? status : 404).end();
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return { server, port: (server.address() as AddressInfo).port, paths };
}

t.test('the image health check asks /healthz on the configured port', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bff-healthcheck-'));
  const healthy = await listen(200);
  const failing = await listen(503);
  t.teardown(() => {
    healthy.server.close();
    failing.server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const yamlConfig = join(dir, 'gateway.yaml');
  writeFileSync(yamlConfig, `server:\n  host: 0.0.0.0\n  port: ${healthy.port}\n`);
  const jsonConfig = join(dir, 'gateway.json');
  writeFileSync(jsonConfig, JSON.stringify({ server: { port: healthy.port } }));
  const failingConfig = join(dir, 'failing.yaml');
  writeFileSync(failingConfig, `server: { host: 0.0.0.0, port: ${failing.port} }\n`);

  t.equal(await runHealthcheck({ BFF_CONFIG: yamlConfig }), 0, 'YAML: server.port');
  t.equal(await runHealthcheck({ BFF_CONFIG: jsonConfig }), 0, 'JSON: server.port');
  t.same(healthy.paths, ['/healthz', '/healthz']);
  t.equal(await runHealthcheck({ BFF_CONFIG: failingConfig }), 1, 'a 503 is unhealthy');
  t.equal(await runHealthcheck({ BFF_CONFIG: failingConfig, BFF_HEALTH_URL: `http://127.0.0.1:${healthy.port}/healthz` }), 0, 'BFF_HEALTH_URL wins');
  t.equal(await runHealthcheck({ BFF_CONFIG: join(dir, 'missing.yaml') }), 1, 'an unreadable config is unhealthy');
  // With the file's port closed, the check must not fall back to some other port.
  const closed = await listen(200);
  await new Promise<void>((done) => closed.server.close(() => done()));
  writeFileSync(yamlConfig, `server:\n  port: ${closed.port}\n`);
  t.equal(await runHealthcheck({ BFF_CONFIG: yamlConfig }), 1, 'nothing on the configured port');
});
