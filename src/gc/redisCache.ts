/**
 * The registry's Redis blob-descriptor cache (`storage.cache.blobdescriptor:
 * redis`): where it is, by the registry's own rules for its config and
 * `REGISTRY_*` overrides, and a BlobCache that makes it forget what a run
 * removed. Keys, as distribution's registry/storage/cache/redis/redis.go
 * writes them (2.x and 3.x alike):
 *
 *   blobs::<digest>                       hash: digest, size, mediatype
 *   repository::<name>::blobs             set of digests
 *   repository::<name>::blobs::<digest>   hash: mediatype
 *
 * A repository-scoped lookup needs all three; a global one `blobs::<digest>`.
 */
import fs from 'node:fs';
import type { Redis, RedisOptions } from 'ioredis';
import type { Digest } from '../model.js';
import { RegsweepError, UsageError } from '../errors.js';
import { yaml } from '../util/lazy.js';
import type { BlobCache } from './blobCache.js';
import { type Environment, blobDescriptorCacheSetting as blobDescriptorCache, isMap, overrides } from './registryConfig.js';
import { compareVersions, isV3 } from './version.js';

/** How one registry reaches its Redis, as far as regsweep needs it. */
export interface RedisSettings {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
  /** Files of `redis.tls` (3.x), used when this process can read them. */
  tlsFiles: { certificate?: string; key?: string; rootcas: string[] };
  /** What named the address, for messages: `redis.addr in <config>`, `REGISTRY_REDIS_ADDR`, `--redis-url`. */
  from: string;
}

export interface RedisSettingsOptions {
  /** The config file, for messages. */
  source?: string;
  /** The registry's version when known: 2.x, 3.0 and 3.1+ read different keys and environment variables. */
  version?: string;
  /** `--redis-url`: overrides the address (and the credentials and db it names). */
  url?: string;
}

type Doc = Record<string, unknown>;
/** 2: `addr`, `password`, `db`. 3.0: go-redis options, env only as REGISTRY_REDIS_OPTIONS_*. 3.1: inline env too. */
type Generation = '2' | '3.0' | '3.1' | undefined;

function generationOf(version: string | undefined): Generation {
  if (!version) return undefined;
  if (!isV3(version)) return '2';
  return compareVersions(version, '3.1.0') < 0 ? '3.0' : '3.1';
}

/** The `redis` section after the environment's overrides, and which variable last named the address. */
function redisSection(doc: Doc, env: Environment, generation: Generation): { section: Doc; addressVar?: string } {
  let section: Doc = isMap(doc.redis) ? { ...doc.redis } : {};
  let addressVar: string | undefined;
  for (const { name, parts, value } of overrides(env, 'REGISTRY_REDIS')) {
    let path = parts;
    // 3.x inlines go-redis's options: 3.0 reaches them only as OPTIONS_*, 3.1 also directly; 2.x has no OPTIONS.
    if (parts[0] === 'OPTIONS') {
      if (generation === '2') continue;
      path = parts.slice(1);
    } else if (parts[0] !== 'TLS' && parts.length > 0 && generation === '3.0') {
      continue;
    }
    if (path.length === 0) {
      section = parts.length === 0 ? (isMap(value) ? value : {}) : { ...(isMap(value) ? value : {}), tls: section.tls };
      addressVar = name;
    } else {
      if (path[0] === 'ADDR' || path[0] === 'ADDRS') addressVar = name;
      setPath(section, path.map((p) => p.toLowerCase()), value);
    }
  }
  return { section, addressVar };
}

function setPath(m: Doc, path: string[], value: unknown): void {
  const [head, ...rest] = path as [string, ...string[]];
  if (rest.length === 0) {
    m[head] = value;
    return;
  }
  const inner = isMap(m[head]) ? { ...(m[head] as Doc) } : {};
  setPath(inner, rest, value);
  m[head] = inner;
}

/** A scalar as Go's YAML decoder puts it in a string field. */
function text(v: unknown): string | undefined {
  return v === null || v === undefined || typeof v === 'object' ? undefined : String(v);
}

function strings(v: unknown): string[] {
  if (Array.isArray(v)) return v.map(text).filter((s): s is string => !!s);
  const one = text(v);
  return one ? [one] : [];
}

function splitAddress(address: string, what: string): { host: string; port: number } {
  const a = address.trim();
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(a);
  const colon = a.lastIndexOf(':');
  const [host, port] = bracketed ? [bracketed[1], bracketed[2]] : colon < 0 ? [a, undefined] : [a.slice(0, colon), a.slice(colon + 1)];
  const n = port === undefined ? 6379 : /^\d+$/.test(port) ? Number(port) : NaN;
  if (!host || !(n >= 1 && n <= 65535)) throw new UsageError(`${what} is not HOST:PORT: ${address}`);
  return { host, port: n };
}

function dbNumber(v: unknown, what: string): number {
  if (v === null || v === undefined) return 0;
  const n = typeof v === 'number' ? v : Number(text(v));
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${what} is not a database number: ${String(v)}`);
  return n;
}

/** The settings the config names; undefined address when it names none. */
function fromSection(section: Doc, generation: Generation, where: string): Omit<RedisSettings, 'host' | 'port' | 'from'> & { addrs: string[]; key: string; masterName?: string } {
  const tls = isMap(section.tls) ? section.tls : {};
  const db = dbNumber(section.db, `redis.db in ${where}`);
  if (generation === '2') {
    return { addrs: strings(section.addr), key: 'addr', password: text(section.password), db, tls: false, tlsFiles: { rootcas: [] } };
  }
  const listed = strings(section.addrs);
  const addrs = listed.length > 0 || generation ? listed : strings(section.addr);
  const tlsFiles = { certificate: text(tls.certificate), key: text(tls.key), rootcas: generation === '3.0' ? [] : strings(tls.rootcas) };
  // 3.0 turns TLS on with a client certificate or key, 3.1 also with root CAs; 3.0.0-alpha (addr) with tls.enabled.
  const enabled = generation === undefined && tls.enabled === true;
  return {
    addrs,
    key: listed.length > 0 ? 'addrs' : 'addr',
    username: text(section.username),
    password: text(section.password),
    db,
    masterName: text(section.mastername),
    tls: enabled || !!tlsFiles.certificate || !!tlsFiles.key || tlsFiles.rootcas.length > 0,
    tlsFiles,
  };
}

function parseUrl(url: string): Partial<RedisSettings> & { host: string; port: number; tls: boolean } {
  const usage = new UsageError('--redis-url must look like redis://[USER:PASSWORD@]HOST:PORT/DB (rediss:// for TLS)');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw usage;
  }
  const db = parsed.pathname.replace(/^\//, '');
  if (!['redis:', 'rediss:'].includes(parsed.protocol) || !parsed.hostname || !/^\d*$/.test(db) || parsed.search || parsed.hash) throw usage;
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: parsed.port ? Number(parsed.port) : 6379,
    tls: parsed.protocol === 'rediss:',
    username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
    password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
    db: db ? Number(db) : undefined,
  };
}

function loadConfig(configText: string | undefined, source: string): Doc {
  if (configText === undefined) return {};
  try {
    const doc = yaml().load(configText);
    return isMap(doc) ? doc : {};
  } catch (error) {
    throw new UsageError(`${source} is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
  }
}

/**
 * The Redis the registry keeps its blob descriptors in, from its config text
 * and environment; undefined when its blob-descriptor cache is not Redis and
 * no `--redis-url` is given. Refuses what regsweep cannot clear from here.
 */
export function redisSettings(configText: string | undefined, env: Environment, options: RedisSettingsOptions = {}): RedisSettings | undefined {
  const source = options.source ?? 'config';
  const doc = loadConfig(configText, source);
  const usesRedis = blobDescriptorCache(doc, env) === 'redis';
  if (!usesRedis && !options.url) return undefined;
  const generation = generationOf(options.version);
  const { section, addressVar } = usesRedis ? redisSection(doc, env, generation) : { section: {}, addressVar: undefined };
  const config = fromSection(section, generation, source);
  const url = options.url === undefined ? undefined : parseUrl(options.url);
  const common = { username: config.username, password: config.password, db: config.db, tls: config.tls, tlsFiles: config.tlsFiles };
  if (url) {
    const credentials = { username: url.username ?? common.username, password: url.password ?? common.password };
    return { ...common, ...credentials, host: url.host, port: url.port, tls: url.tls, db: url.db ?? common.db, from: '--redis-url' };
  }
  const from = addressVar ?? `redis.${config.key} in ${source}`;
  const hint = 'pass --redis-url redis://HOST:PORT/DB as reachable from where regsweep runs';
  if (config.addrs.length === 0) throw new UsageError(`${source} keeps blob descriptors in Redis but names no Redis address (redis.${generation === '2' ? 'addr' : 'addrs'}); ${hint}`);
  if (config.masterName) throw new UsageError(`the registry finds its Redis through Sentinel (master ${config.masterName}, ${from}); ${hint}, naming the current master`);
  if (config.addrs.length > 1) {
    throw new UsageError(`the registry's Redis is a cluster (${config.addrs.length} addresses in ${from}), which regsweep cannot clear; if it is one server, ${hint}`);
  }
  return { ...common, ...splitAddress(config.addrs[0] as string, from), from };
}

/** `redis://host:port/db`, never with credentials. */
function whereOf(s: RedisSettings): string {
  const host = s.host.includes(':') ? `[${s.host}]` : s.host;
  return `${s.tls ? 'rediss' : 'redis'}://${host}:${s.port}/${s.db}`;
}

/** A file the config names, when this process can read it (a container's own paths usually are not). */
function readable(file: string | undefined): Buffer | undefined {
  if (!file) return undefined;
  try {
    return fs.readFileSync(file);
  } catch {
    return undefined;
  }
}

function clientOptions(s: RedisSettings): RedisOptions {
  const cas = s.tlsFiles.rootcas.map(readable).filter((b): b is Buffer => b !== undefined);
  const [cert, key] = [readable(s.tlsFiles.certificate), readable(s.tlsFiles.key)];
  return {
    host: s.host,
    port: s.port,
    db: s.db,
    username: s.username,
    password: s.password,
    tls: s.tls ? { ...(cert && key ? { cert, key } : {}), ...(cas.length > 0 ? { ca: cas } : {}) } : undefined,
    lazyConnect: true,
    connectTimeout: 5_000,
    commandTimeout: 60_000,
    // A failure is reported, not retried behind the user's back; the ready check would need INFO.
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableReadyCheck: false,
  };
}

/** One line of why a connection or command failed; ioredis never puts the password in it. */
function reasonOf(error: unknown): string {
  return (((error as Error)?.message ?? String(error)).split('\n')[0] as string).replace(/\.$/, '');
}

const BATCH = 1_000;

/** Commands sent in pipelines of BATCH; adds up the integer replies (keys deleted, members removed). */
class Batches {
  private pending: Array<[string, ...string[]]> = [];
  removed = 0;
  constructor(private readonly client: Redis) {}

  async add(command: [string, ...string[]]): Promise<void> {
    this.pending.push(command);
    if (this.pending.length >= BATCH) await this.flush();
  }

  async flush(): Promise<void> {
    const commands = this.pending.splice(0);
    if (commands.length === 0) return;
    const replies = (await this.client.pipeline(commands).exec()) ?? [];
    for (const [error, reply] of replies) {
      if (error) throw error;
      this.removed += Number(reply) || 0;
    }
  }
}

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += BATCH) out.push(items.slice(i, i + BATCH));
  return out;
}

const REPOSITORY = 'repository::';
const SCOPED = '::blobs::';

/** Every `repository::<name>::blobs::<digest>` of a swept digest, in one SCAN of the keyspace: the key and its set member go. */
async function forgetScoped(client: Redis, batches: Batches, swept: ReadonlySet<string>): Promise<void> {
  const seen = new Set<string>();
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${REPOSITORY}*${SCOPED}sha256:*`, 'COUNT', BATCH);
    cursor = next;
    for (const key of keys) {
      const digest = key.slice(key.lastIndexOf('::') + 2);
      if (!swept.has(digest) || seen.has(key)) continue;
      seen.add(key);
      const repository = key.slice(REPOSITORY.length, key.length - SCOPED.length - digest.length);
      await batches.add(['del', key]);
      await batches.add(['srem', `${REPOSITORY}${repository}::blobs`, digest]);
    }
  } while (cursor !== '0');
}

class RedisBlobCache implements BlobCache {
  readonly where: string;
  private client: Redis | undefined;

  constructor(private readonly settings: RedisSettings) {
    this.where = whereOf(settings);
  }

  private async connect(): Promise<Redis> {
    await this.close();
    const { Redis } = await import('ioredis');
    const client = new Redis(clientOptions(this.settings));
    let lastError: unknown;
    client.on('error', (error: unknown) => (lastError = error));
    this.client = client;
    try {
      await client.connect();
      await client.ping();
    } catch (error) {
      await this.close();
      throw new Error(reasonOf(lastError ?? error));
    }
    return client;
  }

  async check(): Promise<void> {
    try {
      const client = await this.connect();
      const role = (await client.call('ROLE').catch(() => undefined)) as unknown[] | undefined;
      if (role?.[0] === 'slave') throw new UsageError(`the Redis at ${this.where} (${this.settings.from}) is a read-only replica; pass --redis-url redis://HOST:PORT/DB naming its master`);
      const cluster = await client.info('cluster').catch(() => '');
      if (/cluster_enabled:1/.test(cluster)) throw new UsageError(`the Redis at ${this.where} (${this.settings.from}) is a cluster node, which regsweep cannot clear`);
    } catch (error) {
      if (error instanceof UsageError) throw error;
      const url = `redis://[USER:PASSWORD@]HOST:PORT/${this.settings.db}`;
      const fix = this.settings.from === '--redis-url' ? `check --redis-url (${url})` : `pass --redis-url ${url}`;
      throw new UsageError(
        `cannot reach the registry's Redis blob cache at ${this.where} (${this.settings.from}): ${reasonOf(error)}; ` +
          `${fix} as reachable from where regsweep runs (a name such as a Docker network's service name resolves only inside that network)`,
      );
    } finally {
      await this.close();
    }
  }

  async forget(swept: readonly Digest[], unlinked: ReadonlyMap<string, readonly Digest[]>): Promise<number> {
    try {
      const client = await this.connect();
      const batches = new Batches(client);
      for (const keys of chunks(swept)) await batches.add(['del', ...keys.map((d) => `blobs::${d}`)]);
      if (swept.length > 0) await forgetScoped(client, batches, new Set(swept));
      for (const [repository, digests] of unlinked) {
        for (const d of digests) await batches.add(['del', `${REPOSITORY}${repository}${SCOPED}${d}`]);
        for (const members of chunks(digests)) await batches.add(['srem', `${REPOSITORY}${repository}::blobs`, ...members]);
      }
      await batches.flush();
      return batches.removed;
    } catch (error) {
      throw new RegsweepError(
        `clearing the Redis blob cache at ${this.where} failed: ${reasonOf(error)}; it may still list removed blobs, ` +
          'so delete their blobs::<digest> keys (or FLUSHDB, if only the registry uses that database) before anyone pushes them again',
      );
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    if (client.status === 'ready') await client.quit().catch(() => client.disconnect());
    else client.disconnect();
  }
}

/** A BlobCache on this Redis. Nothing connects until check() or forget(). */
export function redisBlobCache(settings: RedisSettings): BlobCache {
  return new RedisBlobCache(settings);
}
