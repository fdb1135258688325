/**
 * From the command line to what a sweep needs: the retention rules, the
 * target and its storage root, who runs garbage-collect, and what happens to
 * the registry in the maintenance window.
 */
import type { Engine } from '../docker/engine.js';
import { containerGcRunner, volumeGcRunner } from '../docker/gcHelpers.js';
import { type Target, containerRegistryVersion, imageRegistryVersion, locateNamed, locateVolume, reachFromHere } from '../docker/locator.js';
import { type MaintenanceWindow, registryWindow, unpausedWindow } from '../docker/maintenanceWindow.js';
import { UsageError } from '../errors.js';
import type { GcRunner } from '../gc/garbageCollect.js';
import { localGcRunner } from '../gc/localRegistry.js';
import { type Policy, loadPolicy, makeRules, selectsTags } from '../plan/policy.js';
import type { CliOptions } from './program.js';

export async function policyFrom(opts: CliOptions): Promise<Policy | undefined> {
  const rules = makeRules({ keep: opts.keep, olderThan: opts.olderThan, tags: opts.tags, keepTags: opts.keepTags, history: opts.history });
  if (opts.policy) return loadPolicy(opts.policy, rules);
  if (selectsTags(rules) || rules.history > 0) return { rules: [], fallback: rules };
  if (opts.keepTags !== undefined) throw new UsageError('--keep-tags protects tags from --keep, --older-than or --tags; give one of them');
  return undefined;
}

export interface Resolved {
  target: Target;
  repositories: string[];
  engine?: Engine;
}

export async function resolveTarget(opts: CliOptions, args: string[], log: (m: string) => void): Promise<Resolved> {
  if (opts.path) return { target: { kind: 'path', name: opts.path, root: opts.path, containers: [] }, repositories: args };
  if (opts.config) throw new UsageError('--config goes with --path; a container target uses its own config');
  // Loaded only for Docker targets: dockerode costs a tenth of a second at start-up.
  const { DockerodeEngine } = await import('../docker/dockerodeEngine.js');
  const engine = new DockerodeEngine(log);
  if (opts.volume) return { target: await reachFromHere(engine, await locateVolume(engine, opts.volume)), repositories: args, engine };
  const [name, ...repositories] = args;
  if (!name) throw new UsageError('name a registry container or service, a volume (--volume), or a storage path (--path)');
  return { target: await reachFromHere(engine, await locateNamed(engine, name)), repositories, engine };
}

interface Runtime {
  gcRunner?: GcRunner;
  registryVersion?: string;
  window: MaintenanceWindow;
}

/** How garbage-collect runs and what happens to the registry meanwhile, for this kind of target. */
export async function runtimeFor(resolved: Resolved, opts: CliOptions, dryRun: boolean): Promise<Runtime> {
  const { target, engine } = resolved;
  const registry = target.containers[0];
  const withLocalBinary = async (window: MaintenanceWindow): Promise<Runtime> => {
    const local = await localGcRunner({ registryBin: opts.registryBin, root: target.root, config: opts.config });
    if (!local && opts.gc && !dryRun) {
      throw new UsageError(`no way to run garbage-collect for ${target.kind} ${target.name}: install a registry binary, pass --registry-bin or --registry-image, or use --no-gc`);
    }
    return { gcRunner: opts.gc ? local : undefined, registryVersion: local?.version, window };
  };
  if (!engine) return withLocalBinary(unpausedWindow());
  const window = target.containers.some((c) => c.running)
    ? registryWindow(engine, target.containers, { restart: !opts.unpauseOnly, service: target.kind === 'service' ? target.name : undefined })
    : unpausedWindow('no registry container is running: nothing to pause');
  if (registry) {
    const version = await containerRegistryVersion(engine, registry);
    return { gcRunner: opts.gc ? containerGcRunner(engine, registry, target.configPath, version) : undefined, registryVersion: version, window };
  }
  // A volume no container uses: a named image, else the local binary.
  if (opts.registryImage && target.volume) {
    const version = await imageRegistryVersion(engine, opts.registryImage);
    return { gcRunner: opts.gc ? volumeGcRunner(engine, target.volume, opts.registryImage, version) : undefined, registryVersion: version, window };
  }
  return withLocalBinary(window);
}
