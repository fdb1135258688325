/**
 * garbage-collect in a helper container next to the registry: made from the
 * registry's own image, with its volumes, environment and config path, or
 * from an image the user names with a volume mounted where its default config
 * looks. Removed when done, whatever happens (Engine.runOnce).
 */
import { type GcRunner, parseGcSummary } from '../gc/garbageCollect.js';
import { DEFAULT_ROOTDIRECTORY, imageConfigPath } from '../gc/registryConfig.js';
import { checkSupportedVersion } from '../gc/version.js';
import { type ContainerInfo, type Engine, RUN_LABEL } from './engine.js';

function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

/**
 * A helper container from the registry container's image, with `VolumesFrom`
 * that container, its environment (so REGISTRY_* overrides apply as they do to
 * the registry) and its config path. Removed when done, whatever happens.
 */
/**
 * `reachesBucket`: the registry stores in a bucket, so the helper joins its network (its volumes alone hold no blobs).
 * `current`: the registry container is replaced in the window (a task of a service held read-only): the one that
 * runs in its stead, whose network and volumes the helper takes (with the env of `registry`, from before the hold).
 */
export function containerGcRunner(engine: Engine, registry: ContainerInfo, configPath: string | undefined, version: string, runId: string, reachesBucket = false, current?: () => Promise<ContainerInfo>): GcRunner {
  checkSupportedVersion(version);
  return {
    version,
    where: `a helper container from ${registry.imageName} with the volumes of ${registry.name}`,
    async collect({ args, signal, onOutput }) {
      const cmd = ['garbage-collect', ...args, ...(configPath ? [configPath] : [])];
      const beside = current ? await current() : registry;
      const { exitCode, output } = await engine.runOnce({
        image: registry.image,
        cmd,
        env: envList(registry.env),
        volumesFrom: [beside.id],
        labels: { 'io.regsweep.for': registry.name, [RUN_LABEL]: runId },
        ...(reachesBucket ? { network: `container:${beside.id}` } : {}),
        signal,
        onOutput,
      });
      return { ran: true, command: ['docker', 'run', '--volumes-from', registry.name, registry.imageName, ...cmd], exitCode, output, summary: parseGcSummary(output) };
    },
  };
}

/** A helper from an image named by the user, with the volume mounted where the image's default config looks. */
export function volumeGcRunner(engine: Engine, volume: string, image: string, version: string, runId: string): GcRunner {
  checkSupportedVersion(version);
  const mountAt = DEFAULT_ROOTDIRECTORY;
  return {
    version,
    where: `a helper container from ${image} with volume ${volume}`,
    async collect({ args, signal, onOutput }) {
      const config = imageConfigPath(version);
      const cmd = ['garbage-collect', ...args, config];
      const { exitCode, output } = await engine.runOnce({
        image,
        cmd,
        env: [`REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=${mountAt}`],
        binds: [`${volume}:${mountAt}`],
        labels: { 'io.regsweep.for': volume, [RUN_LABEL]: runId },
        signal,
        onOutput,
      });
      return { ran: true, command: ['docker', 'run', '-v', `${volume}:${mountAt}`, image, ...cmd], exitCode, output, summary: parseGcSummary(output) };
    },
  };
}
