/**
 * From what users name (a container, a swarm service, a volume) to the
 * registry's storage root as this process can reach it, and the containers
 * that serve it. Reads only; the engine is asked, never told.
 */
import path from 'node:path';
import { UsageError } from '../errors.js';
import { DEFAULT_ROOTDIRECTORY, IMAGE_CONFIG_PATHS, storageConfig } from '../gc/registryConfig.js';
import { parseRegistryVersion } from '../gc/version.js';
import { type S3Location, keyPrefix, storageDriver } from '../storage/s3/location.js';
import type { ContainerInfo, Engine, MountInfo, ServiceInfo } from './engine.js';

export type TargetKind = 'container' | 'service' | 'volume' | 'path' | 'bucket';

export interface Target {
  kind: TargetKind;
  name: string;
  /** The storage root as this process reaches it. */
  root: string;
  /** The storage root on the Docker host. */
  hostRoot?: string;
  /** The registry containers serving this storage: paused, collected from, restarted. */
  containers: ContainerInfo[];
  /** Inside the registry container: its rootdirectory and config file. */
  containerRoot?: string;
  configPath?: string;
  /** The text of that config file, as read out of the container (the Redis blob cache is configured there). */
  configText?: string;
  /** That config is a swarm config of the registry's service: a helper container with its volumes does not have it. */
  swarmConfig?: boolean;
  /** For a volume: its name, so a helper can mount it. */
  volume?: string;
  /** A registry on the s3 driver: its bucket, as its config and env name it (root is then the bucket's description). */
  bucket?: S3Location;
  /** On a bucket: the swarm services serving it, held read-only for the window (their task containers here are not paused). */
  services?: string[];
  /** On a bucket: why a window cannot hold every registry serving it (a real run is refused with it, exit 2). */
  unholdable?: string;
}

/** The label swarm gives each task container: the name of its service. */
export const SERVICE_LABEL = 'com.docker.swarm.service.name';

/** The config file a registry container (or a service's task) was started with, by the rules its entrypoint follows. */
export function configPathCandidates(container: Pick<ContainerInfo, 'args' | 'env'>): string[] {
  const args = container.args[0] === 'serve' ? container.args.slice(1) : container.args;
  const first = args[0];
  if (first && /\.ya?ml$/.test(first)) return [first];
  const fromEnv = container.env.REGISTRY_CONFIGURATION_PATH;
  if (fromEnv) return [fromEnv];
  return [...IMAGE_CONFIG_PATHS];
}

/** Maps a path across mounts, through the deepest mount whose `from` side holds it. */
function acrossMounts(mounts: readonly MountInfo[], p: string, from: 'source' | 'destination'): string | undefined {
  const to = from === 'source' ? 'destination' : 'source';
  const target = path.posix.normalize(p);
  const holding = mounts
    .filter((m) => target === m[from] || target.startsWith(`${m[from].replace(/\/$/, '')}/`))
    .sort((a, b) => b[from].length - a[from].length)[0];
  return holding && path.posix.join(holding[to], path.posix.relative(holding[from], target));
}

/** The host path behind a path inside a container. */
export function hostPathFor(mounts: readonly MountInfo[], containerPath: string): string | undefined {
  return acrossMounts(mounts, containerPath, 'destination');
}

/** The path inside a container behind a host path. */
export function containerPathFor(mounts: readonly MountInfo[], hostPath: string): string | undefined {
  return acrossMounts(mounts, hostPath, 'source');
}

interface ContainerStorage {
  containerRoot: string;
  configPath?: string;
  configText?: string;
  /** The config is a swarm config of the container's service. */
  swarmConfig?: boolean;
  hostRoot: string;
  bucket?: S3Location;
}

/**
 * `swarmFiles`: the swarm configs of the service the container is a task of.
 * They are mounted where the engine's archive API does not look: reading the
 * path out of the container gives the image's file beneath them.
 */
async function storageOf(engine: Engine, container: ContainerInfo, swarmFiles: Readonly<Record<string, string>> = {}): Promise<ContainerStorage> {
  let configPath: string | undefined;
  let text: string | undefined;
  for (const candidate of configPathCandidates(container)) {
    text = swarmFiles[candidate] ?? (await engine.readFile(container.id, candidate));
    if (text !== undefined) {
      configPath = candidate;
      break;
    }
  }
  const swarmConfig = configPath !== undefined && swarmFiles[configPath] !== undefined ? { swarmConfig: true } : {};
  const where = `container ${container.name}${configPath ? ` (${configPath})` : ''}`;
  // Without a readable config the registry would not start, unless the environment configures it all.
  const storage = text === undefined
    ? { driver: (container.env.REGISTRY_STORAGE ?? 'filesystem').toLowerCase(), rootdirectory: container.env.REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY ?? DEFAULT_ROOTDIRECTORY }
    : storageConfig(text, container.env, where);
  if (storage.driver === 's3' || storage.driver === 's3aws') {
    const found = storageDriver(text, container.env, where);
    if (found.driver === 's3') return { containerRoot: '', hostRoot: '', configPath, configText: text, ...swarmConfig, bucket: found.location };
  }
  if (storage.driver !== 'filesystem') {
    throw new UsageError(`${where} uses the ${storage.driver} storage driver; regsweep works on filesystem and s3 storage`);
  }
  const containerRoot = storage.rootdirectory ?? DEFAULT_ROOTDIRECTORY;
  const hostRoot = hostPathFor(container.mounts, containerRoot);
  if (!hostRoot) {
    throw new UsageError(`the storage root ${containerRoot} of container ${container.name} is not on a volume or bind mount, so it cannot be reached from outside the container`);
  }
  return { containerRoot, configPath, configText: text, ...swarmConfig, hostRoot };
}

/** The swarm config files of the service each container is a task of (none where it is no task, or this engine is no manager): one inspection per service. */
function swarmFilesOf(engine: Engine): (container: ContainerInfo) => Promise<Record<string, string>> {
  const asked = new Map<string, Promise<Record<string, string>>>();
  return (container) => {
    const service = container.labels[SERVICE_LABEL];
    if (!service) return Promise.resolve({});
    if (!asked.has(service)) asked.set(service, engine.service(service).then((s) => s?.files ?? {}));
    return asked.get(service) as Promise<Record<string, string>>;
  };
}

async function fromContainers(engine: Engine, kind: TargetKind, name: string, containers: ContainerInfo[]): Promise<Target> {
  const first = containers[0];
  if (!first) throw new UsageError(`${kind} ${name} has no container on this Docker host`);
  const filesOf = swarmFilesOf(engine);
  const storages = await Promise.all(containers.map(async (c) => storageOf(engine, c, await filesOf(c))));
  const roots = new Set(storages.map((s) => (s.bucket ? JSON.stringify(s.bucket) : s.hostRoot)));
  if (roots.size > 1) throw new UsageError(`the containers of ${kind} ${name} store at different places: ${[...roots].join(', ')}`);
  const { configPath, configText, swarmConfig, ...storage } = storages[0] as ContainerStorage;
  const config = { configPath, configText, ...(swarmConfig ? { swarmConfig } : {}) };
  if (storage.bucket) return { kind, name, root: `s3://${storage.bucket.bucket}`, containers, ...config, bucket: storage.bucket };
  return { kind, name, root: storage.hostRoot, hostRoot: storage.hostRoot, containers, containerRoot: storage.containerRoot, ...config };
}

/** Where a bucket's tree is, for comparing two registries' storage. */
const sameTree = (a: S3Location, b: S3Location): boolean => a.bucket === b.bucket && a.endpoint === b.endpoint && a.region === b.region && keyPrefix(a) === keyPrefix(b);

/**
 * The other running registry containers of this engine that serve the same
 * bucket tree: the window must hold them too, as a volume's target holds every
 * container using it. A container whose storage cannot be read is no registry
 * of this bucket. Also the swarm services with a running task here, whatever
 * they serve: what their task says decides for them.
 */
async function bucketPeers(engine: Engine, target: Target, services: readonly ServiceInfo[]): Promise<{ peers: ContainerInfo[]; seen: Set<string> }> {
  const bucket = target.bucket as S3Location;
  const known = new Set(target.containers.map((c) => c.id));
  const peers: ContainerInfo[] = [];
  const seen = new Set<string>();
  for (const other of await engine.runningContainers()) {
    const service = other.labels[SERVICE_LABEL];
    if (service) seen.add(service);
    if (known.has(other.id)) continue;
    const files = services.find((s) => s.name === service)?.files;
    const storage = await storageOf(engine, other, files).catch(() => undefined);
    if (storage?.bucket && sameTree(storage.bucket, bucket)) peers.push(other);
  }
  return { peers, seen };
}

/** Looks like a registry: its image is one (`registry`, `distribution`), or its env configures one. */
const looksLikeRegistry = (s: ServiceInfo): boolean =>
  /(^|\/)(registry|distribution)(:[^/]*)?(@.*)?$/.test(s.image) || Object.keys(s.env).some((k) => k.startsWith('REGISTRY_'));

/**
 * Where a service with no task on this engine stores, from its spec alone: a
 * config among its swarm configs, else an env that names the driver
 * (`REGISTRY_STORAGE`). `unknown` where neither says (a config in a bind
 * mount or the image's default, on hosts this engine cannot read).
 */
function specStorage(s: ServiceInfo): S3Location | 'unknown' | undefined {
  const text = configPathCandidates(s).map((p) => s.files[p]).find((t) => t !== undefined);
  if (text === undefined && s.env.REGISTRY_STORAGE === undefined) return 'unknown';
  try {
    const found = storageDriver(text, s.env, `service ${s.name}`);
    return found.driver === 's3' ? found.location : undefined;
  } catch {
    return undefined; // a registry does not start with storage it cannot parse
  }
}

const UPDATING = new Set(['updating', 'paused', 'rollback_started', 'rollback_paused']);

/** Why the services that must be held cannot be, if they cannot: a real run's refusal. */
function whyUnholdable(services: ServiceInfo[] | undefined, held: ReadonlySet<string>, where: string): string | undefined {
  if (!services) {
    const many = held.size > 1;
    return `swarm service${many ? 's' : ''} ${[...held].join(', ')} serve${many ? '' : 's'} ${where}, and this engine is not a swarm manager: regsweep cannot hold ${many ? 'their' : 'its'} replicas (on any host) read-only; run it on a manager node (nothing changed)`;
  }
  const updating = services.find((s) => held.has(s.name) && UPDATING.has(s.updateState ?? ''));
  if (updating) return `service ${updating.name} is in the middle of an update (${updating.updateState?.replace('_', ' ')}): let it finish or roll it back, then run again (nothing changed)`;
  return undefined;
}

/**
 * What a window on a bucket must hold: every running registry container of
 * this engine on the same tree (paused), and every swarm service on it (set
 * read-only): the target's own, the services of task containers among those,
 * and services whose spec names the tree, whose tasks may all run on other
 * hosts. Where it cannot hold them all (services on an engine that is no
 * swarm manager, a service mid-update, a registry service whose storage it
 * cannot see from here), `unholdable` says why: a real run is refused, a dry
 * run goes on.
 */
async function bucketHolders(engine: Engine, target: Target): Promise<Target> {
  const bucket = target.bucket as S3Location;
  const services = await engine.services();
  const { peers, seen } = await bucketPeers(engine, target, services ?? []);
  const containers = [...target.containers, ...peers];
  const held = new Set(containers.map((c) => c.labels[SERVICE_LABEL]).filter((s): s is string => s !== undefined));
  if (target.kind === 'service') held.add(target.name);
  if (!services && held.size === 0) return { ...target, containers };
  let unseen: string | undefined;
  for (const s of services ?? []) {
    if (held.has(s.name) || seen.has(s.name)) continue;
    const storage = specStorage(s);
    if (storage === 'unknown' && looksLikeRegistry(s)) {
      unseen ??= `service ${s.name} (${s.image}) runs no task on this engine and its spec does not say where it stores (no config among its swarm configs, no REGISTRY_STORAGE): regsweep cannot tell whether it serves ${target.root}; run regsweep on a node that runs one of its tasks (nothing changed)`;
    }
    if (storage !== 'unknown' && storage && sameTree(storage, bucket)) held.add(s.name);
  }
  const unholdable = whyUnholdable(services, held, target.root) ?? unseen;
  return { ...target, containers, services: [...held].sort(), ...(unholdable ? { unholdable } : {}) };
}

/** A container by name or id, else a swarm service by name. */
export async function locateNamed(engine: Engine, name: string): Promise<Target> {
  await engine.ping();
  const container = await engine.container(name);
  if (container) {
    const target = await fromContainers(engine, 'container', name, [container]);
    return target.bucket ? bucketHolders(engine, target) : target;
  }
  const tasks = await engine.serviceContainers(name);
  if (tasks === undefined) throw new UsageError(`no container or service named ${name}`);
  if (tasks.length === 0) throw new UsageError(`service ${name} has no running task container on this Docker host`);
  const target = await fromContainers(engine, 'service', name, tasks);
  return target.bucket ? bucketHolders(engine, target) : target;
}

/** A volume, with the registry containers that use it (running or stopped). */
export async function locateVolume(engine: Engine, name: string): Promise<Target> {
  await engine.ping();
  const volume = await engine.volume(name);
  if (!volume) throw new UsageError(`no volume named ${name}`);
  if (volume.driver !== 'local') throw new UsageError(`volume ${name} uses the ${volume.driver} driver; only local volumes have files to reach`);
  const users = await engine.containersUsingVolume(name);
  if (users.length > 0) {
    const target = await fromContainers(engine, 'volume', name, users);
    if (target.bucket) throw new UsageError(`the registry containers using volume ${name} store in bucket ${target.bucket.bucket}, not in the volume: name the container or service`);
    const inside = path.posix.relative(volume.mountpoint, target.hostRoot as string);
    if (inside.startsWith('..') || path.posix.isAbsolute(inside)) {
      throw new UsageError(`the registry containers using volume ${name} store outside it, at ${target.hostRoot}`);
    }
    return { ...target, volume: name };
  }
  return { kind: 'volume', name, root: volume.mountpoint, hostRoot: volume.mountpoint, containers: [], volume: name, containerRoot: DEFAULT_ROOTDIRECTORY };
}

/**
 * When regsweep itself runs in a container, the host path of the storage is
 * reached through its own mounts (`--volumes-from` the registry, or `-v`).
 */
export async function reachFromHere(engine: Engine, target: Target): Promise<Target> {
  const self = await engine.self();
  if (!self || !target.hostRoot) return target;
  const here = containerPathFor(self.mounts, target.hostRoot);
  if (!here) {
    const hint = target.containers[0] ? `--volumes-from ${target.containers[0].name}` : `-v ${target.hostRoot}:${target.hostRoot}`;
    throw new UsageError(`the storage (${target.hostRoot} on the host) is not mounted into this container: run regsweep with ${hint}`);
  }
  return { ...target, root: here };
}

function versionFrom(result: { exitCode: number; output: string }, what: string): string {
  const version = parseRegistryVersion(result.output);
  if (result.exitCode !== 0 || !version) {
    throw new UsageError(`cannot read the registry version of ${what}: ${result.output.trim().split('\n')[0] ?? ''}`);
  }
  return version;
}

/** The registry version of an image: the entrypoint maps `--version` to `registry --version`. */
export async function imageRegistryVersion(engine: Engine, image: string): Promise<string> {
  return versionFrom(await engine.runOnce({ image, cmd: ['--version'] }), `image ${image}`);
}

/** The registry version of a container: asked of the running binary, else of its image. */
export async function containerRegistryVersion(engine: Engine, container: ContainerInfo): Promise<string> {
  if (!container.running || container.paused) return imageRegistryVersion(engine, container.image);
  return versionFrom(await engine.exec(container.id, ['registry', '--version']), `container ${container.name}`);
}
