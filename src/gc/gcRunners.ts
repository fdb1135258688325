/**
 * Who runs the registry's garbage-collect: the local registry binary on a
 * storage path, or a sibling container made from the registry's own image,
 * with its volumes, environment and config path.
 */
import type { ContainerInfo, Engine } from '../docker/engine.js';
import { UsageError } from '../errors.js';
import { type GcResult, checkConfigMatchesRoot, compareVersions, checkSupportedVersion, findRegistryBinary, localRegistryVersion, parseGcSummary, runLocalGc } from './garbageCollect.js';
import type { Target } from '../docker/locator.js';

export interface Collector {
  /** The registry version garbage-collect runs as. */
  readonly version: string;
  /** Where it runs, for the report. */
  readonly where: string;
  collect(args: string[], signal?: AbortSignal, onOutput?: (text: string) => void): Promise<GcResult>;
}

export interface LocalCollectorOptions {
  registryBin?: string;
  root: string;
  config?: string;
}

/** The local binary, or undefined when there is none and none was asked for. */
export async function localCollector(options: LocalCollectorOptions): Promise<Collector | undefined> {
  const bin = await findRegistryBinary(options.registryBin);
  if (!bin) return undefined;
  const version = await localRegistryVersion(bin);
  checkSupportedVersion(version);
  if (options.config) await checkConfigMatchesRoot(options.config, options.root, process.env);
  return {
    version,
    where: bin,
    collect: (args, signal, onOutput) => runLocalGc({ bin, root: options.root, config: options.config, args, signal, onOutput }),
  };
}

function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

/**
 * A helper container from the registry container's image, with `VolumesFrom`
 * that container, its environment (so REGISTRY_* overrides apply as they do to
 * the registry) and its config path. Removed when done, whatever happens.
 */
export function containerCollector(engine: Engine, registry: ContainerInfo, configPath: string | undefined, version: string): Collector {
  checkSupportedVersion(version);
  return {
    version,
    where: `a helper container from ${registry.imageName} with the volumes of ${registry.name}`,
    async collect(args, signal, onOutput) {
      const cmd = ['garbage-collect', ...args, ...(configPath ? [configPath] : [])];
      const { exitCode, output } = await engine.runOnce({
        image: registry.image,
        cmd,
        env: envList(registry.env),
        volumesFrom: [registry.id],
        labels: { 'io.regsweep.for': registry.name },
        signal,
        onOutput,
      });
      return { ran: true, command: ['docker', 'run', '--volumes-from', registry.name, registry.imageName, ...cmd], exitCode, output, summary: parseGcSummary(output) };
    },
  };
}

/** A helper from an image named by the user, with the volume mounted where the image's default config looks. */
export function volumeCollector(engine: Engine, volume: string, image: string, version: string): Collector {
  checkSupportedVersion(version);
  const mountAt = '/var/lib/registry';
  return {
    version,
    where: `a helper container from ${image} with volume ${volume}`,
    async collect(args, signal, onOutput) {
      // The official images keep their default config here (2.x) or in /etc/distribution (3.x).
      const config = compareVersions(version, '3.0.0') < 0 ? '/etc/docker/registry/config.yml' : '/etc/distribution/config.yml';
      const cmd = ['garbage-collect', ...args, config];
      const { exitCode, output } = await engine.runOnce({
        image,
        cmd,
        env: [`REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=${mountAt}`],
        binds: [`${volume}:${mountAt}`],
        labels: { 'io.regsweep.for': volume },
        signal,
        onOutput,
      });
      return { ran: true, command: ['docker', 'run', '-v', `${volume}:${mountAt}`, image, ...cmd], exitCode, output, summary: parseGcSummary(output) };
    },
  };
}

export function noCollectorError(target: Target): UsageError {
  return new UsageError(`no way to run garbage-collect for ${target.kind} ${target.name}: install a registry binary, pass --registry-bin or --registry-image, or use --no-gc`);
}
