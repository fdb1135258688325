/**
 * How the registry applies its `REGISTRY_<PATH>` environment variables over
 * its config file (distribution's configuration/parser.go), for the sections
 * regsweep reads: the storage section (which driver, where its data is, the
 * blob descriptor cache) and the Redis cache. Here, below storage/ and gc/,
 * because both read the registry's config: gc/ for its cache and
 * garbage-collect, storage/s3/ for where a bucket is.
 */
import { yaml } from './lazy.js';

export type Environment = Record<string, string | undefined>;

/** The registry's filesystem rootdirectory when nothing configures one; also where the official images declare their VOLUME. */
export const DEFAULT_ROOTDIRECTORY = '/var/lib/registry';

type Doc = Record<string, unknown>;

export const isMap = (v: unknown): v is Doc => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Keys of `storage` that configure behaviour rather than name a driver. */
export const STORAGE_PARAMETERS = new Set(['maintenance', 'cache', 'delete', 'redirect', 'tag']);

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

/**
 * The `storage` section of a parsed config after the environment's overrides.
 * `REGISTRY_STORAGE` alone replaces the whole section (a driver name becomes
 * that driver with no parameters); `REGISTRY_STORAGE_<PATH>` sets one key.
 * The document is not changed.
 */
export function effectiveStorage(doc: Doc, env: Environment): Doc {
  let storage: Doc = isMap(doc.storage) ? structuredClone(doc.storage) : {};
  for (const { parts, value } of overrides(env, 'REGISTRY_STORAGE')) {
    if (parts.length === 0) storage = typeof value === 'string' ? { [value]: {} } : isMap(value) ? value : {};
    else overwriteMap(storage, parts, value);
  }
  return storage;
}
