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

type Doc = Record<string, unknown>;

export const isMap = (v: unknown): v is Doc => typeof v === 'object' && v !== null && !Array.isArray(v);

/** An environment value as the registry reads it: YAML, else the text itself. */
function envValue(text: string | undefined): unknown {
  try {
    return yaml().load(text ?? '') ?? null;
  } catch {
    return text;
  }
}

/** The env vars under a prefix, in the order the registry applies them (sorted: `REGISTRY_STORAGE` before `..._CACHE`). */
export function overrides(env: Environment, prefix: string): Array<{ name: string; parts: string[]; value: unknown }> {
  return Object.keys(env)
    .filter((k) => k === prefix || k.startsWith(`${prefix}_`))
    .sort()
    .map((name) => ({ name, parts: name.slice(prefix.length + 1).split('_').filter(Boolean), value: envValue(env[name]) }));
}

/** distribution's overwriteMap: an existing key matches case-insensitively, a new one is lower-cased. */
function overwriteMap(m: Doc, parts: string[], value: unknown): void {
  const [head, ...rest] = parts as [string, ...string[]];
  if (rest.length > 0) {
    const existing = Object.keys(m).find((k) => k.toUpperCase() === head);
    const inner = existing === undefined ? undefined : m[existing];
    if (isMap(inner)) return overwriteMap(inner, rest, value);
  }
  let next = value;
  if (rest.length > 0) {
    next = {};
    overwriteMap(next as Doc, rest, value);
  }
  m[head.toLowerCase()] = next;
}

/** `storage.cache.blobdescriptor` (or the older `layerinfo`) after the environment's overrides. */
export function blobDescriptorCacheSetting(doc: Doc, env: Environment): unknown {
  let storage: Doc = isMap(doc.storage) ? doc.storage : {};
  for (const { parts, value } of overrides(env, 'REGISTRY_STORAGE')) {
    if (parts.length === 0) storage = typeof value === 'string' ? { [value]: {} } : isMap(value) ? value : {};
    else overwriteMap(storage, parts, value);
  }
  const cache = storage.cache;
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
