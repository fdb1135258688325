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
import type { ContainerInfo, Engine, MountInfo } from './engine.js';

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
  /** For a volume: its name, so a helper can mount it. */
  volume?: string;
  /** A registry on the s3 driver: its bucket, as its config and env name it (root is then the bucket's description). */
  bucket?: S3Location;
}

/** The config file a registry container was started with, by the rules its entrypoint follows. */
export function configPathCandidates(container: ContainerInfo): string[] {
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
  hostRoot: string;
  bucket?: S3Location;
}

async function storageOf(engine: Engine, container: ContainerInfo): Promise<ContainerStorage> {
  let configPath: string | undefined;
  let text: string | undefined;
  for (const candidate of configPathCandidates(container)) {
    text = await engine.readFile(container.id, candidate);
    if (text !== undefined) {
      configPath = candidate;
      break;
    }
  }
  const where = `container ${container.name}${configPath ? ` (${configPath})` : ''}`;
  // Without a readable config the registry would not start, unless the environment configures it all.
  const storage = text === undefined
    ? { driver: (container.env.REGISTRY_STORAGE ?? 'filesystem').toLowerCase(), rootdirectory: container.env.REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY ?? DEFAULT_ROOTDIRECTORY }
    : storageConfig(text, container.env, where);
  if (storage.driver === 's3' || storage.driver === 's3aws') {
    const found = storageDriver(text, container.env, where);
    if (found.driver === 's3') return { containerRoot: '', hostRoot: '', configPath, configText: text, bucket: found.location };
  }
  if (storage.driver !== 'filesystem') {
    throw new UsageError(`${where} uses the ${storage.driver} storage driver; regsweep works on filesystem and s3 storage`);
  }
  const containerRoot = storage.rootdirectory ?? DEFAULT_ROOTDIRECTORY;
  const hostRoot = hostPathFor(container.mounts, containerRoot);
  if (!hostRoot) {
    throw new UsageError(`the storage root ${containerRoot} of container ${container.name} is not on a volume or bind mount, so it cannot be reached from outside the container`);
  }
  return { containerRoot, configPath, configText: text, hostRoot };
}

async function fromContainers(engine: Engine, kind: TargetKind, name: string, containers: ContainerInfo[]): Promise<Target> {
  const first = containers[0];
  if (!first) throw new UsageError(`${kind} ${name} has no container on this Docker host`);
  const storages = await Promise.all(containers.map((c) => storageOf(engine, c)));
  const roots = new Set(storages.map((s) => (s.bucket ? JSON.stringify(s.bucket) : s.hostRoot)));
  if (roots.size > 1) throw new UsageError(`the containers of ${kind} ${name} store at different places: ${[...roots].join(', ')}`);
  const storage = storages[0] as ContainerStorage;
  if (storage.bucket) return { kind, name, root: `s3://${storage.bucket.bucket}`, containers, configPath: storage.configPath, configText: storage.configText, bucket: storage.bucket };
  return { kind, name, root: storage.hostRoot, hostRoot: storage.hostRoot, containers, containerRoot: storage.containerRoot, configPath: storage.configPath, configText: storage.configText };
}

/** Where a bucket's tree is, for comparing two registries' storage. */
const sameTree = (a: S3Location, b: S3Location): boolean => a.bucket === b.bucket && a.endpoint === b.endpoint && a.region === b.region && keyPrefix(a) === keyPrefix(b);

/**
 * The other running registry containers of this engine that serve the same
 * bucket tree: the window must hold them too, as a volume's target holds every
 * container using it. A container whose storage cannot be read is no registry
 * of this bucket.
 */
async function bucketPeers(engine: Engine, target: Target): Promise<ContainerInfo[]> {
  const bucket = target.bucket as S3Location;
  const known = new Set(target.containers.map((c) => c.id));
  const peers: ContainerInfo[] = [];
  for (const other of await engine.runningContainers()) {
    if (known.has(other.id)) continue;
    const storage = await storageOf(engine, other).catch(() => undefined);
    if (storage?.bucket && sameTree(storage.bucket, bucket)) peers.push(other);
  }
  return peers;
}

/** A container by name or id, else a swarm service by name. */
export async function locateNamed(engine: Engine, name: string): Promise<Target> {
  await engine.ping();
  const container = await engine.container(name);
  if (container) {
    const target = await fromContainers(engine, 'container', name, [container]);
    return target.bucket ? { ...target, containers: [...target.containers, ...(await bucketPeers(engine, target))] } : target;
  }
  const tasks = await engine.serviceContainers(name);
  if (tasks === undefined) throw new UsageError(`no container or service named ${name}`);
  if (tasks.length === 0) throw new UsageError(`service ${name} has no running task container on this Docker host`);
  return fromContainers(engine, 'service', name, tasks);
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
