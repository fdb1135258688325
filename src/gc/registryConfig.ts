/**
 * What regsweep needs of a registry's configuration: which storage driver it
 * uses and, for the filesystem driver, its rootdirectory. `REGISTRY_<PATH>`
 * environment variables override the file exactly as the registry applies them.
 */
import { UsageError } from '../errors.js';
import { yaml } from '../util/lazy.js';
import { DEFAULT_ROOTDIRECTORY, type Environment, STORAGE_PARAMETERS, effectiveStorage, isMap, overrides } from '../util/registryEnv.js';
import { isV3 } from './version.js';

/** Where the official images keep their config: 2.x, then 3.x. */
export const IMAGE_CONFIG_PATHS = ['/etc/docker/registry/config.yml', '/etc/distribution/config.yml'] as const;

/** The config file of the official image of this registry version. */
export function imageConfigPath(version: string): string {
  return IMAGE_CONFIG_PATHS[isV3(version) ? 1 : 0];
}

export interface StorageConfig {
  driver: string;
  /** Only for the filesystem driver. */
  rootdirectory?: string;
}

export { DEFAULT_ROOTDIRECTORY, type Environment, isMap, overrides };

/** `storage.cache.blobdescriptor` (or the older `layerinfo`) after the environment's overrides. */
export function blobDescriptorCacheSetting(doc: Record<string, unknown>, env: Environment): unknown {
  const cache = effectiveStorage(doc, env).cache;
  if (!isMap(cache)) return undefined;
  return 'blobdescriptor' in cache ? cache.blobdescriptor : cache.layerinfo;
}

/**
 * Where the registry keeps blob descriptors, as distribution's handlers/app.go
 * decides it (2.x and 3.x alike): exactly `inmemory` or `redis`, else none
 * (an unknown or empty value, `REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=` too,
 * disables caching with a warning). Only `inmemory` lives in the registry's
 * process, so only it needs a restart to forget swept blobs.
 */
export type BlobDescriptorCache = 'inmemory' | 'redis' | 'none';

/** The blob descriptor cache of a registry with this config file (or none) and environment; throws when the file is not YAML. */
export function blobDescriptorCache(configText: string | undefined, env: Environment): BlobDescriptorCache {
  const doc = configText === undefined ? {} : yaml().load(configText);
  const setting = blobDescriptorCacheSetting(isMap(doc) ? doc : {}, env);
  return setting === 'inmemory' || setting === 'redis' ? setting : 'none';
}

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
