/**
 * The Redis blob cache: which Redis a registry uses, read the way 2.x, 3.0 and
 * 3.1 read their config and REGISTRY_* overrides (each rule below was checked
 * against distribution's source or the real 2.8.2 and 3.0.0 binaries), and
 * forget() against a real redis-server holding keys laid out as the
 * registry's redis.go writes them.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/model.js';
import { redisBlobCache, redisSettings } from '../../src/gc/redisCache.js';
import { freePort } from '../support/docker.js';
import { REDIS_SERVER, type RunningRedis, describeKeys, setDescriptor, startRedisServer } from '../support/redis.js';
import { rejection } from '../support/rejection.js';

const REDIS_CACHE = 'storage:\n  filesystem: {rootdirectory: /var/lib/registry}\n  cache:\n    blobdescriptor: redis\n';

describe('redisSettings: when the blob-descriptor cache is Redis', () => {
  it('is undefined for the in-memory cache, no cache, or an env override away from redis', () => {
    expect(redisSettings('storage:\n  filesystem: {}\n  cache: {blobdescriptor: inmemory}\n', {})).toBeUndefined();
    expect(redisSettings('storage:\n  filesystem: {}\n', {})).toBeUndefined();
    expect(redisSettings(undefined, {})).toBeUndefined();
    expect(redisSettings(`${REDIS_CACHE}redis: {addr: r:6379}\n`, { REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: 'inmemory' })).toBeUndefined();
    // REGISTRY_STORAGE replaces the whole storage section, cache included.
    expect(redisSettings(`${REDIS_CACHE}redis: {addr: r:6379}\n`, { REGISTRY_STORAGE: 'filesystem' })).toBeUndefined();
  });

  it('is on through the env, the older layerinfo key, or a whole REGISTRY_STORAGE_CACHE', () => {
    const env = { REGISTRY_REDIS_ADDR: 'r:6379' };
    expect(redisSettings('storage:\n  filesystem: {}\n', { ...env, REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: 'redis' }, { version: '2.8.2' })?.host).toBe('r');
    expect(redisSettings('storage:\n  filesystem: {}\n  cache: {layerinfo: redis}\n', env, { version: '2.8.2' })?.host).toBe('r');
    expect(redisSettings('storage:\n  filesystem: {}\n', { ...env, REGISTRY_STORAGE_CACHE: '{blobdescriptor: redis}' }, { version: '2.8.2' })?.host).toBe('r');
    expect(redisSettings(undefined, { ...env, REGISTRY_STORAGE: 'filesystem', REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: 'redis' }, { version: '2.8.2' })?.host).toBe('r');
  });
});

describe('redisSettings: 2.x keys', () => {
  it('reads redis.addr, password and db from the file', () => {
    const yml = `${REDIS_CACHE}redis:\n  addr: redis:6380\n  password: s3cret\n  db: 2\n`;
    expect(redisSettings(yml, {}, { version: '2.8.2', source: '/etc/docker/registry/config.yml' })).toEqual({
      host: 'redis',
      port: 6380,
      db: 2,
      password: 's3cret',
      tls: false,
      tlsFiles: { rootcas: [] },
      from: 'redis.addr in /etc/docker/registry/config.yml',
    });
  });

  it('lets REGISTRY_REDIS_* override them, and names the variable', () => {
    const yml = `${REDIS_CACHE}redis:\n  addr: redis:6380\n  db: 2\n`;
    const s = redisSettings(yml, { REGISTRY_REDIS_ADDR: '10.0.0.5:6390', REGISTRY_REDIS_DB: '3', REGISTRY_REDIS_PASSWORD: 'pw' }, { version: '2.8.2' });
    expect(s).toMatchObject({ host: '10.0.0.5', port: 6390, db: 3, password: 'pw', from: 'REGISTRY_REDIS_ADDR' });
    expect(redisSettings(yml, { REGISTRY_REDIS: '{addr: "other:1", db: 4}' }, { version: '2.8.2' })).toMatchObject({ host: 'other', port: 1, db: 4, from: 'REGISTRY_REDIS' });
  });

  it('ignores what 2.x does not have: addrs, OPTIONS_*, username, tls (the registry then has no Redis and would not start)', () => {
    const yml = `${REDIS_CACHE}redis:\n  addr: redis:6379\n  username: u\n  tls: {enabled: true}\n`;
    expect(redisSettings(yml, {}, { version: '2.8.2' })).toMatchObject({ tls: false, username: undefined });
    expect(redisSettings(yml, { REGISTRY_REDIS_OPTIONS_ADDRS: '[x:1]' }, { version: '2.8.2' })?.host).toBe('redis');
    expect(() => redisSettings(`${REDIS_CACHE}redis:\n  addrs: [redis:6379]\n`, {}, { version: '2.8.2' })).toThrow(/names no Redis address \(redis\.addr\); pass --redis-url/);
  });
});

describe('redisSettings: 3.x keys', () => {
  const yml = `${REDIS_CACHE}redis:\n  addrs: [redis:6379]\n  username: registry\n  password: pw\n  db: 1\n`;

  it('reads redis.addrs, username, password and db', () => {
    expect(redisSettings(yml, {}, { version: '3.0.0' })).toMatchObject({ host: 'redis', port: 6379, db: 1, username: 'registry', password: 'pw', tls: false, from: 'redis.addrs in config' });
  });

  it('3.0 takes env overrides only as REGISTRY_REDIS_OPTIONS_* (measured: it ignores REGISTRY_REDIS_ADDRS)', () => {
    expect(redisSettings(yml, { REGISTRY_REDIS_ADDRS: '[b:2]', REGISTRY_REDIS_DB: '7' }, { version: '3.0.0' })).toMatchObject({ host: 'redis', db: 1 });
    expect(redisSettings(yml, { REGISTRY_REDIS_OPTIONS_ADDRS: '[c:3]', REGISTRY_REDIS_OPTIONS_DB: '5' }, { version: '3.0.0' })).toMatchObject({ host: 'c', port: 3, db: 5, from: 'REGISTRY_REDIS_OPTIONS_ADDRS' });
  });

  it('3.1 takes both forms; without a known version both apply too', () => {
    expect(redisSettings(yml, { REGISTRY_REDIS_ADDRS: '[b:2]', REGISTRY_REDIS_PASSWORD: 'new' }, { version: '3.1.1' })).toMatchObject({ host: 'b', port: 2, password: 'new' });
    expect(redisSettings(yml, { REGISTRY_REDIS_OPTIONS_USERNAME: 'other' }, { version: '3.1.1' })?.username).toBe('other');
    expect(redisSettings(yml, { REGISTRY_REDIS_ADDRS: '[b:2]' })).toMatchObject({ host: 'b', port: 2 });
    expect(redisSettings(`${REDIS_CACHE}redis: {addr: a:9}\n`, {})).toMatchObject({ host: 'a', port: 9, from: 'redis.addr in config' });
  });

  it('TLS: 3.0 with a client certificate or key, 3.1 also with root CAs, an unknown version also with tls.enabled', () => {
    const tls = (section: string, version?: string) => redisSettings(`${yml}  tls:\n${section}`, {}, { version })?.tls;
    expect(tls('    certificate: /c.pem\n    key: /k.pem\n', '3.0.0')).toBe(true);
    expect(tls('    rootcas: [/ca.pem]\n', '3.0.0')).toBe(false);
    expect(tls('    rootcas: [/ca.pem]\n', '3.1.1')).toBe(true);
    expect(tls('    enabled: true\n', '3.1.1')).toBe(false);
    expect(tls('    enabled: true\n')).toBe(true);
    expect(redisSettings(yml, { REGISTRY_REDIS_TLS_CERTIFICATE: '/c.pem' }, { version: '3.0.0' })).toMatchObject({ tls: true, tlsFiles: { certificate: '/c.pem' } });
  });

  it('refuses Sentinel and a cluster, which it cannot clear from their config alone', () => {
    expect(() => redisSettings(`${yml}  mastername: mymaster\n`, {}, { version: '3.0.0' })).toThrow(/through Sentinel \(master mymaster.*--redis-url/);
    expect(() => redisSettings(`${REDIS_CACHE}redis:\n  addrs: [a:1, b:2, c:3]\n`, {}, { version: '3.0.0' })).toThrow(/a cluster \(3 addresses in redis\.addrs in config\)/);
    expect(redisSettings(`${yml}  mastername: mymaster\n`, {}, { version: '3.0.0', url: 'redis://master:6379' })?.host).toBe('master');
  });
});

describe('redisSettings: --redis-url', () => {
  const yml = `${REDIS_CACHE}redis:\n  addr: redis:6379\n  password: pw\n  db: 2\n`;

  it('overrides the address, keeps the config\'s credentials and db unless it names its own', () => {
    expect(redisSettings(yml, {}, { version: '2.8.2', url: 'redis://127.0.0.1:7000' })).toMatchObject({ host: '127.0.0.1', port: 7000, db: 2, password: 'pw', tls: false, from: '--redis-url' });
    expect(redisSettings(yml, {}, { version: '2.8.2', url: 'rediss://u:p%40ss@[::1]:7001/4' })).toMatchObject({ host: '::1', port: 7001, db: 4, username: 'u', password: 'p@ss', tls: true });
  });

  it('names a cache even when the config names none', () => {
    expect(redisSettings(undefined, {}, { url: 'redis://127.0.0.1' })).toMatchObject({ host: '127.0.0.1', port: 6379, db: 0 });
  });

  it('refuses what is not a redis URL, without echoing it (it may hold a password)', () => {
    for (const url of ['http://u:secret@h:1/0', 'redis://u:secret@h:1/x', 'not a url secret']) {
      let message = '';
      try {
        redisSettings(yml, {}, { url });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/--redis-url must look like redis:\/\/\[USER:PASSWORD@\]HOST:PORT\/DB/);
      expect(message).not.toContain('secret');
    }
  });

  it('where names host, port and db, never the password', () => {
    const where = (url: string) => redisBlobCache(redisSettings(yml, {}, { url }) as NonNullable<ReturnType<typeof redisSettings>>).where;
    expect(where('redis://u:secret@127.0.0.1:7000/3')).toBe('redis://127.0.0.1:7000/3');
    expect(where('rediss://[::1]:7000')).toBe('rediss://[::1]:7000/2');
  });
});

const sha = (n: number): Digest => `sha256:${n.toString(16).padStart(64, '0')}`;

describe.skipIf(!REDIS_SERVER)('the Redis blob cache against a real redis-server', () => {
  let redis: RunningRedis;
  let db = 0;
  const cacheOn = (port: number, database: number, password?: string) =>
    redisBlobCache(redisSettings(undefined, {}, { url: `redis://${password ? `:${password}@` : ''}127.0.0.1:${port}/${database}` }) as NonNullable<ReturnType<typeof redisSettings>>);

  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis?.stop();
  });
  beforeEach(() => {
    db++;
  });

  it('forget removes exactly the swept blobs everywhere and the unlinked revisions in their repository', async () => {
    const client = redis.client(db);
    const [swept1, swept2, kept, manifest, neverCached] = [sha(1), sha(2), sha(3), sha(4), sha(5)];
    await setDescriptor(client, 'team/web', swept1, 10, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
    await setDescriptor(client, 'other', swept1, 10, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
    await setDescriptor(client, 'team/web/sub', swept2, 20, 'application/octet-stream');
    await setDescriptor(client, 'team/web', kept, 30, 'application/octet-stream');
    await setDescriptor(client, 'other', kept, 30, 'application/octet-stream');
    await setDescriptor(client, 'team/web', manifest, 40, 'application/vnd.docker.distribution.manifest.v2+json');
    await setDescriptor(client, 'other', manifest, 40, 'application/vnd.docker.distribution.manifest.v2+json');
    await client.set('unrelated', 'x');
    // The same cache in another database is not this registry's.
    const elsewhere = redis.client(db + 8);
    await setDescriptor(elsewhere, 'team/web', swept1, 10, 'x');
    const [before, beforeElsewhere] = [await describeKeys(client), await describeKeys(elsewhere)];

    const cache = cacheOn(redis.port, db);
    await cache.check();
    const cleared = await cache.forget([swept1, swept2, neverCached], new Map([['team/web', [manifest]], ['other', [neverCached]]]));

    const gone = [
      `blobs::${swept1}`,
      `blobs::${swept2}`,
      `repository::team/web::blobs::${swept1}`,
      `repository::team/web::blobs ${swept1}`,
      `repository::other::blobs::${swept1}`,
      `repository::other::blobs ${swept1}`,
      `repository::team/web/sub::blobs::${swept2}`,
      `repository::team/web/sub::blobs ${swept2}`,
      `repository::team/web::blobs::${manifest}`,
      `repository::team/web::blobs ${manifest}`,
    ];
    expect(cleared).toBe(gone.length);
    expect(await describeKeys(client)).toEqual(before.filter((e) => !gone.includes(e)));
    expect(await describeKeys(elsewhere)).toEqual(beforeElsewhere);
    await cache.close();
  });

  it('forget works in batches: thousands of digests, one SCAN', async () => {
    const client = redis.client(db);
    const swept = Array.from({ length: 2_500 }, (_, i) => sha(10_000 + i));
    const unlinked = Array.from({ length: 1_200 }, (_, i) => sha(20_000 + i));
    const kept = Array.from({ length: 1_500 }, (_, i) => sha(30_000 + i));
    const pipe = client.pipeline();
    const add = (repo: string, d: string) => {
      pipe.sadd(`repository::${repo}::blobs`, d).hset(`blobs::${d}`, 'digest', d, 'size', '1').hset(`repository::${repo}::blobs::${d}`, 'mediatype', 'x');
    };
    for (const d of swept) add('a', d);
    for (const d of unlinked) add('b', d);
    for (const d of kept) add('c', d);
    await pipe.exec();
    const cleared = await cacheOn(redis.port, db).forget(swept, new Map([['b', unlinked]]));
    expect(cleared).toBe(swept.length * 3 + unlinked.length * 2);
    expect(await client.scard('repository::a::blobs')).toBe(0);
    expect(await client.scard('repository::b::blobs')).toBe(0);
    expect(await client.scard('repository::c::blobs')).toBe(kept.length);
    expect(await client.dbsize()).toBe(unlinked.length + kept.length * 2 + 1);
  });

  it('check refuses, with exit code 2, a Redis nobody listens on, naming the address and --redis-url', async () => {
    const port = await freePort();
    const fromConfig = redisSettings(`${REDIS_CACHE}redis: {addr: "127.0.0.1:${port}", db: 3, password: hidden}\n`, {}, { version: '2.8.2', source: 'cfg.yml' });
    const error = await rejection(redisBlobCache(fromConfig as NonNullable<typeof fromConfig>).check());
    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(new RegExp(`^cannot reach the registry's Redis blob cache at redis://127\\.0\\.0\\.1:${port}/3 \\(redis\\.addr in cfg\\.yml\\): connect ECONNREFUSED`));
    expect(error.message).toMatch(/; pass --redis-url redis:\/\/\[USER:PASSWORD@\]HOST:PORT\/3 as reachable from where regsweep runs/);
    expect(error.message).not.toContain('\n');
    expect(error.message).not.toContain('hidden');
    expect((await rejection(cacheOn(port, 0).check())).message).toMatch(/\(--redis-url\): connect ECONNREFUSED .*; check --redis-url \(redis:/);
  });

  it('check refuses a wrong password without showing it, and a replica', async () => {
    const guarded = await startRedisServer(['--requirepass', 'right-one']);
    const replica = await startRedisServer(['--replicaof', '127.0.0.1', String(redis.port)]);
    try {
      const error = await rejection(cacheOn(guarded.port, 0, 'wrong-one').check());
      expect(error.exitCode).toBe(2);
      expect(error.message).toMatch(/WRONGPASS/);
      expect(error.message).not.toContain('wrong-one');
      await cacheOn(guarded.port, 0, 'right-one').check();
      expect(await cacheOn(guarded.port, 0, 'right-one').forget([sha(1)], new Map())).toBe(0);
      expect((await rejection(cacheOn(replica.port, 0).check())).message).toMatch(/is a read-only replica; pass --redis-url/);
    } finally {
      await guarded.stop();
      await replica.stop();
    }
  });

  it('a failure while forgetting is an error of the run (exit 1) that says what to clear', async () => {
    const port = await freePort();
    const error = await rejection(cacheOn(port, 0).forget([sha(1)], new Map()));
    expect(error.exitCode).toBe(1);
    expect(error.message).toMatch(/clearing the Redis blob cache at redis:\/\/127\.0\.0\.1:\d+\/0 failed: connect ECONNREFUSED .*blobs::<digest>/);
  });
});
