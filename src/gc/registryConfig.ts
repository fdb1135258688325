/**
 * What regsweep needs of a registry's configuration: which storage driver it
 * uses and, for the filesystem driver, its rootdirectory. `REGISTRY_<PATH>`
 * environment variables override the file exactly as the registry applies them.
 */
import { UsageError } from '../errors.js';
import { yaml } from '../util/lazy.js';
import { isV3 } from './version.js';

/** The registry's rootdirectory when nothing configures one; also where the official images declare their VOLUME. */
export const DEFAULT_ROOTDIRECTORY = '/var/lib/registry';

/** Where the official images keep their config: 2.x, then 3.x. */
export const IMAGE_CONFIG_PATHS = ['/etc/docker/registry/config.yml', '/etc/distribution/config.yml'] as const;

/** The config file of the official image of this registry version. */
export function imageConfigPath(version: string): string {
  return IMAGE_CONFIG_PATHS[isV3(version) ? 1 : 0];
}

// Keys of `storage` that configure behaviour rather than name a driver.
const STORAGE_PARAMETERS = new Set(['maintenance', 'cache', 'delete', 'redirect', 'tag']);

export interface StorageConfig {
  driver: string;
  /** Only for the filesystem driver. */
  rootdirectory?: string;
}

export type Environment = Record<string, string | undefined>;

/** Storage settings from a config file's text (or none) and the environment the registry runs with. */
export function storageConfig(configText: string | undefined, env: Environment, source = 'config'): StorageConfig {
  let doc: unknown = {};
  if (configText !== undefined) {
    try {
      doc = yaml().load(configText) ?? {};
    } catch (error) {
      throw new UsageError(`${source} is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  const storage = (doc as { storage?: unknown }).storage;
  const section = storage && typeof storage === 'object' ? (storage as Record<string, unknown>) : {};
  const drivers = Object.keys(section).filter((k) => !STORAGE_PARAMETERS.has(k.toLowerCase()));
  if (!env.REGISTRY_STORAGE && drivers.length > 1) throw new UsageError(`${source} configures more than one storage driver: ${drivers.join(', ')}`);
  const driver = (env.REGISTRY_STORAGE ?? drivers[0] ?? '').toLowerCase();
  if (!driver) throw new UsageError(`${source} configures no storage driver`);
  if (driver !== 'filesystem') return { driver };
  const params = section.filesystem;
  const fromFile =
    params && typeof params === 'object' ? (params as Record<string, unknown>).rootdirectory : undefined;
  const rootdirectory = env.REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY ?? (typeof fromFile === 'string' ? fromFile : undefined) ?? DEFAULT_ROOTDIRECTORY;
  return { driver, rootdirectory };
}

/** The environment minus every REGISTRY_* override, so a generated config means what it says. */
export function withoutRegistryOverrides(env: Environment): Environment {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('REGISTRY_')));
}
