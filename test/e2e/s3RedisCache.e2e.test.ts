/**
 * The Redis blob-descriptor cache of a registry on a bucket: the real
 * registry 2.8.2 on radosgw with its descriptors in a real redis-server.
 * A real run from the registry's config clears exactly the entries of what it
 * removed before the registry serves again; the purged image pushed again the
 * way `docker push` does (HEAD first, upload what is missing) pulls whole.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RegistryClient, blobBytes, digestOf, pushImage, registryBinary } from '../../scripts/registryClient.js';
import { runCli } from '../support/cli.js';
import { DockerLikeClient } from '../support/dockerLikeClient.js';
import { RADOSGW_MISSING } from '../support/radosgw.js';
import { REDIS_SERVER, describeKeys, entriesOf, startRedisServer } from '../support/redis.js';
import { startS3Registry, withRadosgw } from '../support/s3Registry.js';
import { expectValidReport } from '../support/schema.js';

const V2_BIN = registryBinary();
const ENV = { AWS_EC2_METADATA_DISABLED: 'true' };
const skip = RADOSGW_MISSING ?? (!V2_BIN ? 'no registry 2.8.2 binary' : !REDIS_SERVER ? 'no redis-server' : undefined);

describe.skipIf(skip !== undefined)('the Redis blob cache of a registry on a bucket', () => {
  const at = withRadosgw('regsweep-s3-redis-');

  it('a real run clears the removed entries before the registry serves; the purged image pushed again pulls whole', async () => {
    const { rgw, dir } = at;
    const redis = await startRedisServer();
    try {
      const section = { addr: `127.0.0.1:${redis.port}`, db: 1 };
      const bucket = 'redis-cache';
      await rgw.createBucket(bucket);
      const base = blobBytes('s3-redis-base', 700);
      let registry = await startS3Registry(V2_BIN as string, rgw, bucket, '/reg', { redis: section });
      const config = path.join(dir, 'config.yml');
      let purged;
      try {
        const client = new RegistryClient(registry.url);
        purged = await pushImage(client, 'app', { tag: 'v1', seed: 's3-redis-a', sharedLayers: [base] });
        await pushImage(client, 'app', { tag: 'v1', seed: 's3-redis-b', sharedLayers: [base] });
        await pushImage(client, 'keep', { tag: 'latest', seed: 's3-redis-keep', sharedLayers: [base] });
        // Pulls fill the cache the way serving does.
        await client.pullWhole('app', purged.descriptor.digest);
        await fs.writeFile(config, registry.configText);
      } finally {
        await registry.stop();
      }
      const swept = [purged.descriptor, purged.config, ...purged.layers.slice(1)].map((d) => d.digest);
      const cache = redis.client(1);
      const before = await describeKeys(cache);
      const stale = entriesOf(before, swept);
      expect(stale.length).toBeGreaterThanOrEqual(swept.length * 2);

      const run = await runCli(['--config', config, '--yes', '--json', '--grace', '0s', '--registry-bin', V2_BIN as string], { env: ENV });
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const report = JSON.parse(run.stdout);
      expectValidReport(report);
      expect(report.freed.blobs).toBe(swept.length);
      expect(report.blobCache).toEqual({ where: `redis://127.0.0.1:${redis.port}/1`, cleared: stale.length });
      expect(await describeKeys(cache)).toEqual(before.filter((e) => !stale.includes(e)));

      registry = await startS3Registry(V2_BIN as string, rgw, bucket, '/reg', { redis: section });
      try {
        const client = new DockerLikeClient(registry.url);
        await pushImage(client, 'app', { tag: 'again', seed: 's3-redis-a', sharedLayers: [base] });
        expect(client.skipped).toEqual([digestOf(base)]); // only the base layer the kept images share
        await client.pullWhole('app', 'again');
        await client.pullWhole('keep', 'latest');
      } finally {
        await registry.stop();
      }
    } finally {
      await redis.stop();
    }
  }, 180_000);
});

it.skipIf(skip === undefined)(skip ?? 'radosgw, registry 2.8.2 and redis-server are installed', () => {});
