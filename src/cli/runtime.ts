/**
 * From the command line to what a sweep needs: the retention rules, the
 * target and its storage root, who runs garbage-collect, and what happens to
 * the registry in the maintenance window.
 */
import fs from 'node:fs/promises';
import type { ContainerInfo, Engine } from '../docker/engine.js';
import { containerGcRunner, volumeGcRunner } from '../docker/gcHelpers.js';
import { SERVICE_LABEL, type Target, containerRegistryVersion, imageRegistryVersion, locateNamed, locateVolume, reachFromHere } from '../docker/locator.js';
import { type MaintenanceWindow, type RegistryWindowOptions, containersToPause, registryWindow, whyRestart, unpausedWindow } from '../docker/maintenanceWindow.js';
import { EngineError, UsageError } from '../errors.js';
import type { BlobCache } from '../gc/blobCache.js';
import type { GcRunner } from '../gc/garbageCollect.js';
import { localBinaryVersion, localGcRunner } from '../gc/localRegistry.js';
import { openBucketClient } from '../storage/s3/client.js';
import { storageDriver } from '../storage/s3/location.js';
import { type BucketSource, bucketSource } from '../storage/s3/source.js';
import { checkSupportedVersion } from '../gc/version.js';
import { redisBlobCache, redisSettings } from '../gc/redisCache.js';
import { errnoText } from '../util/errno.js';
import { type Policy, loadPolicy, makeRules, selectsTags } from '../plan/policy.js';
import type { CliOptions } from './program.js';

export async function policyFrom(opts: CliOptions): Promise<Policy | undefined> {
  const { keep, olderThan, tags, keepTags, history, unpulledFor, keepPulledWithin } = opts;
  const rules = makeRules({ keep, olderThan, tags, keepTags, history, unpulledFor, keepPulledWithin });
  if (opts.policy) return loadPolicy(opts.policy, rules);
  if (selectsTags(rules) || rules.history > 0) return { rules: [], fallback: rules };
  if (keepPulledWithin !== undefined) throw new UsageError('--keep-pulled-within protects tags from --keep, --older-than, --tags or --unpulled-for; give one of them');
  if (opts.keepTags !== undefined) throw new UsageError('--keep-tags protects tags from --keep, --older-than or --tags; give one of them');
  return undefined;
}

export interface Resolved {
  target: Target;
  repositories: string[];
  engine?: Engine;
  /** A registry on object storage (`--config` naming the s3 driver): where its tree is read from. */
  source?: BucketSource;
}

/** `--config FILE` alone: the storage the registry's own config names, a filesystem root or an s3 bucket. */
async function fromConfig(config: string, args: string[], opts: CliOptions): Promise<Resolved> {
  let text: string;
  try {
    text = await fs.readFile(config, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read --config ${config}: ${errnoText(error)}`);
  }
  const storage = storageDriver(text, process.env, config);
  if (storage.driver === 'filesystem') return { target: { kind: 'path', name: storage.rootdirectory, root: storage.rootdirectory, containers: [] }, repositories: args };
  if (storage.driver === 'other') throw new UsageError(`${config} uses the ${storage.name} storage driver; regsweep works on filesystem and s3 storage`);
  const source = bucketSource(await openBucketClient(storage.location), opts.concurrency);
  return { target: { kind: 'bucket', name: source.where, root: source.where, containers: [] }, repositories: args, source };
}

export async function resolveTarget(opts: CliOptions, args: string[], log: (m: string) => void): Promise<Resolved> {
  if (opts.path) return { target: { kind: 'path', name: opts.path, root: opts.path, containers: [] }, repositories: args };
  if (opts.config && !opts.volume) return fromConfig(opts.config, args, opts);
  if (opts.config) throw new UsageError('--config goes with --path, or names the storage alone; a volume target uses its container\'s config');
  // Loaded only for Docker targets: dockerode costs a tenth of a second at start-up.
  const { DockerodeEngine } = await import('../docker/dockerodeEngine.js');
  const engine = new DockerodeEngine(log);
  if (opts.volume) return { target: await reachFromHere(engine, await locateVolume(engine, opts.volume)), repositories: args, engine };
  const [name, ...repositories] = args;
  if (!name) throw new UsageError('name a registry container or service, a volume (--volume), or a storage path (--path)');
  const target = await reachFromHere(engine, await locateNamed(engine, name));
  if (!target.bucket) return { target, repositories, engine };
  // On the s3 driver: the bucket its config and env name, reached from here as the registry reaches it.
  const source = bucketSource(await openBucketClient(target.bucket), opts.concurrency);
  return { target: { ...target, root: source.where }, repositories, engine, source };
}

/** How the registry comes back after the window: restart (or only unpause), or replace a swarm service's tasks. */
export function bringBackFor(opts: CliOptions, target: Target): RegistryWindowOptions {
  // A service on a bucket is held read-only, not paused: what is paused then are other containers, each restarted as itself.
  const service = target.kind === 'service' && !target.bucket;
  return { restart: !opts.unpauseOnly, ...(opts.unpauseOnly ? { because: '--unpause-only: its blob cache may still list swept blobs' } : {}), ...(service ? { service: target.name } : {}) };
}

/** After the window, a restart only where it empties a cache in the registry's memory: an unpause drops no request. */
async function afterWindow(engine: Engine, opts: CliOptions, target: Target): Promise<RegistryWindowOptions> {
  const chosen = bringBackFor(opts, target);
  if (!chosen.restart) return chosen;
  const why = await whyRestart(engine, containersToPause(target.containers, target.services));
  return why ? { ...chosen, because: why } : { ...chosen, restart: false, because: 'no blob descriptor cache in its memory to empty' };
}

interface Runtime {
  gcRunner?: GcRunner;
  registryVersion?: string;
  window: MaintenanceWindow;
  /** The registry's Redis blob cache, to clear of what the run removes; the caller closes it. */
  blobCache?: BlobCache;
}

/** How garbage-collect runs, what happens to the registry meanwhile, and which Redis cache to clear, for this kind of target. */
export async function runtimeFor(resolved: Resolved, opts: CliOptions, dryRun: boolean, runId: string): Promise<Runtime> {
  const runtime = await gcRuntimeFor(resolved, opts, dryRun, runId);
  return { ...runtime, blobCache: await blobCacheFor(resolved.target, opts, runtime.registryVersion, dryRun) };
}

/** The config and environment the registry runs with: a container's own, or `--config` and this process's. */
async function registrySetup(target: Target, opts: CliOptions): Promise<{ text?: string; env: Record<string, string | undefined>; source: string }> {
  const registry = target.containers[0];
  if (registry) return { text: target.configText, env: registry.env, source: `${target.configPath ?? 'the config'} of container ${registry.name}` };
  if ((target.kind !== 'path' && target.kind !== 'bucket') || !opts.config) return { env: {}, source: 'no config' };
  try {
    return { text: await fs.readFile(opts.config, 'utf8'), env: process.env, source: opts.config };
  } catch (error) {
    throw new UsageError(`cannot read --config ${opts.config}: ${errnoText(error)}`);
  }
}

/**
 * The registry's Redis blob-descriptor cache, when its config uses one or `--redis-url` names it.
 * A real run checks here that it answers, so an unreachable cache is refused before anything changes.
 */
async function blobCacheFor(target: Target, opts: CliOptions, version: string | undefined, dryRun: boolean): Promise<BlobCache | undefined> {
  const { text, env, source } = await registrySetup(target, opts);
  const settings = redisSettings(text, env, { source, version, url: opts.redisUrl });
  if (!settings) return undefined;
  const cache = redisBlobCache(settings);
  if (!dryRun) await cache.check();
  return cache;
}

/**
 * A registry container that is a task of a service held read-only is replaced
 * by the hold: garbage-collect then reaches the bucket through the task that
 * runs here in its stead, found when it starts.
 */
function currentTask(engine: Engine, registry: ContainerInfo, held: readonly string[]): (() => Promise<ContainerInfo>) | undefined {
  const service = registry.labels[SERVICE_LABEL];
  if (!service || !held.includes(service)) return undefined;
  return async () => {
    const task = (await engine.serviceContainers(service))?.find((c) => c.running && !c.paused);
    if (!task) throw new EngineError(`no task of service ${service} runs on this Docker host now, to run garbage-collect beside: its tasks moved to other hosts`);
    return task;
  };
}

/** How garbage-collect runs and what happens to the registry meanwhile, for this kind of target. */
async function gcRuntimeFor(resolved: Resolved, opts: CliOptions, dryRun: boolean, runId: string): Promise<Runtime> {
  const { target, engine } = resolved;
  if (target.kind === 'bucket') {
    // The registry's own config names the bucket: garbage-collect runs with it, as the registry would.
    if (opts.gc === 'registry' && !dryRun) {
      const local = await localGcRunner({ registryBin: opts.registryBin, config: opts.config });
      if (!local) throw new UsageError(`no way to run garbage-collect for ${target.name}: install a registry binary, pass --registry-bin, or leave out --gc registry (regsweep's own sweep needs none)`);
      return { gcRunner: local, registryVersion: local.version, window: unpausedWindow() };
    }
    // The version (how the registry enumerates repositories) from a local binary where there is one.
    const version = await localBinaryVersion(opts.registryBin);
    if (version) checkSupportedVersion(version);
    return { registryVersion: version, window: unpausedWindow() };
  }
  const registry = target.containers[0];
  if (target.swarmConfig && opts.gc === 'registry' && !dryRun) {
    throw new UsageError(`the config of ${target.kind} ${target.name} (${target.configPath}) is a swarm config, which a garbage-collect helper container does not get: leave out --gc registry (regsweep's own sweep needs none)`);
  }
  const withLocalBinary = async (window: MaintenanceWindow): Promise<Runtime> => {
    const local = await localGcRunner({ registryBin: opts.registryBin, root: target.root, config: opts.config });
    if (!local && opts.gc === 'registry' && !dryRun) {
      const image = target.kind === 'volume' ? ', --registry-image' : '';
      throw new UsageError(`no way to run garbage-collect for ${target.kind} ${target.name}: install a registry binary, pass --registry-bin${image}, or leave out --gc registry (regsweep's own sweep needs none)`);
    }
    return { gcRunner: opts.gc === 'registry' ? local : undefined, registryVersion: local?.version, window };
  };
  if (!engine) return withLocalBinary(unpausedWindow());
  const held = target.services ?? [];
  const window = containersToPause(target.containers, held).length > 0 || held.length > 0
    ? registryWindow(engine, target.containers, { ...(await afterWindow(engine, opts, target)), ...(held.length > 0 ? { readOnly: held } : {}) })
    : unpausedWindow('no registry container is running: nothing to pause');
  if (registry) {
    // --gc builtin creates no container: a registry that is not running (asked through a helper otherwise) counts as of unknown version.
    const asked = opts.gc !== 'builtin' || (registry.running && !registry.paused);
    const version = asked ? await containerRegistryVersion(engine, registry) : undefined;
    // Refused whoever sweeps: regsweep's own sweep reads the same layout garbage-collect does.
    if (version) checkSupportedVersion(version);
    const gcRunner = opts.gc === 'registry' && version ? containerGcRunner(engine, registry, target.configPath, version, runId, target.bucket !== undefined, currentTask(engine, registry, held)) : undefined;
    return { gcRunner, registryVersion: version, window };
  }
  // A volume no container uses: a named image, else the local binary.
  if (opts.registryImage && target.volume) {
    const version = await imageRegistryVersion(engine, opts.registryImage);
    return { gcRunner: opts.gc === 'registry' ? volumeGcRunner(engine, target.volume, opts.registryImage, version, runId) : undefined, registryVersion: version, window };
  }
  return withLocalBinary(window);
}
