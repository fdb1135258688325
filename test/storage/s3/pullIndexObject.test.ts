/**
 * The pull index in a bucket (issue 25, point 2), on a real radosgw: the
 * object `<rootdirectory>/.regsweep-pulls` beside the docker/ prefix the real
 * registry wrote and beside the run lock's key; a round trip through the
 * bucket storage the CLI picks (run/bucket.ts) gives back what was written;
 * keys that may read the bucket but not write it leave the index as it is
 * ('read-only').
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { ListObjectsV2Command, PutBucketPolicyCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, pushImage, registryBinary } from '../../../scripts/registryClient.js';
import { PullIndex } from '../../../src/plan/pullIndex.js';
import { bucketStorage } from '../../../src/run/bucket.js';
import { type BucketClient, openBucketClient } from '../../../src/storage/s3/client.js';
import type { S3Location } from '../../../src/storage/s3/location.js';
import { lockKey } from '../../../src/storage/s3/lock.js';
import { bucketSource } from '../../../src/storage/s3/source.js';
import { RADOSGW_MISSING, type Radosgw, S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, startRadosgw } from '../../support/radosgw.js';
import { startS3Registry } from '../../support/s3Registry.js';

process.env.AWS_EC2_METADATA_DISABLED = 'true';

const READER_KEY = 'REGSWEEPTESTREADERKY';
const READER_SECRET = 'regsweeptestreadersecret0000000000000000';
const bin = registryBinary();

let rgw: Radosgw;
const clients: BucketClient[] = [];

async function clientFor(bucket: string, rootdirectory: string, keys = { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY }): Promise<BucketClient> {
  const location: S3Location = { bucket, region: S3_REGION, endpoint: rgw.endpoint, forcePathStyle: true, rootdirectory, credentials: keys, secure: false, skipVerify: false };
  const client = await openBucketClient(location, { maxAttempts: 1 });
  clients.push(client);
  return client;
}

async function keysOf(bucket: string): Promise<string[]> {
  const page = await rgw.client.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (page.Contents ?? []).map((o) => o.Key as string).sort();
}

function indexOf(tags: number, since: number): string {
  const index = PullIndex.empty();
  for (let i = 0; i < tags; i++) index.record({ repository: 'team/web', tag: `v${i}`, at: since + i });
  index.advance([{ kind: 'file', id: 'registry.log', first: since }], since + tags);
  return index.serialize();
}

describe.skipIf(RADOSGW_MISSING !== undefined)('the pull index object beside docker/ in a bucket', () => {
  beforeAll(async () => {
    rgw = await startRadosgw();
  }, 90_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await rgw?.stop();
  });

  it.skipIf(!bin)('sits at <rootdirectory>/.regsweep-pulls beside the docker/ prefix the real registry wrote and the lock key, and gives back what was written', async () => {
    await rgw.createBucket('pulls-beside');
    const registry = await startS3Registry(bin as string, rgw, 'pulls-beside', '/reg');
    try {
      await pushImage(new RegistryClient(registry.url), 'team/web', { tag: 'v1', seed: 'web-1' });
    } finally {
      await registry.stop();
    }
    const client = await clientFor('pulls-beside', '/reg');
    const storage = bucketStorage(bucketSource(client));
    expect(await storage.pullIndex.read()).toBeUndefined();
    const text = indexOf(3, 1_700_000_000_000);
    expect(await storage.pullIndex.write(text)).toEqual({ state: 'written' });
    expect(await storage.pullIndex.read()).toBe(text);
    expect(PullIndex.parse((await storage.pullIndex.read()) as string).lastPull('team/web', 'v2', undefined)).toBe(1_700_000_000_002);
    expect(storage.pullIndex.where).toBe('s3://pulls-beside/reg/.regsweep-pulls');

    const keys = await keysOf('pulls-beside');
    const others = keys.filter((k) => k !== 'reg/.regsweep-pulls');
    expect(keys).toContain('reg/.regsweep-pulls');
    expect(others.length).toBeGreaterThan(0);
    for (const key of others) expect(key.startsWith('reg/docker/registry/v2/')).toBe(true);
    expect(path.posix.dirname(lockKey(client.location))).toBe(path.posix.dirname('reg/.regsweep-pulls'));

    const again = indexOf(5, 1_800_000_000_000);
    expect(await storage.pullIndex.write(again)).toEqual({ state: 'written' });
    expect(await storage.pullIndex.read()).toBe(again);
    expect(await keysOf('pulls-beside')).toEqual(keys);
  });

  it('with no rootdirectory, is the key .regsweep-pulls at the top of the bucket', async () => {
    await rgw.createBucket('pulls-top');
    const storage = bucketStorage(bucketSource(await clientFor('pulls-top', '')));
    expect(await storage.pullIndex.write(indexOf(1, 1_700_000_000_000))).toEqual({ state: 'written' });
    expect(await keysOf('pulls-top')).toEqual(['.regsweep-pulls']);
  });

  it('with keys that may read the bucket but not write it: read, not written (read-only), the object unchanged', async () => {
    await rgw.createBucket('pulls-readonly');
    const owner = bucketStorage(bucketSource(await clientFor('pulls-readonly', '/reg')));
    const before = indexOf(2, 1_700_000_000_000);
    await owner.pullIndex.write(before);
    execFileSync('radosgw-admin', ['user', 'create', '--uid=reader', '--display-name=reader', `--access-key=${READER_KEY}`, `--secret-key=${READER_SECRET}`, '-c', path.join(rgw.dir, 'ceph.conf')], { stdio: 'pipe' });
    const policy = {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { AWS: ['arn:aws:iam:::user/reader'] }, Action: ['s3:GetObject', 's3:ListBucket'], Resource: ['arn:aws:s3:::pulls-readonly', 'arn:aws:s3:::pulls-readonly/*'] }],
    };
    await rgw.client.send(new PutBucketPolicyCommand({ Bucket: 'pulls-readonly', Policy: JSON.stringify(policy) }));
    const reader = bucketStorage(bucketSource(await clientFor('pulls-readonly', '/reg', { accessKeyId: READER_KEY, secretAccessKey: READER_SECRET })));
    expect(await reader.pullIndex.read()).toBe(before);
    expect(await reader.pullIndex.write(indexOf(7, 1_900_000_000_000))).toEqual({ state: 'read-only' });
    expect(await owner.pullIndex.read()).toBe(before);
  });

  it('a write the server fails for another reason (no such bucket) is failed, with the reason, not thrown', async () => {
    const storage = bucketStorage(bucketSource(await clientFor('pulls-no-such-bucket', '/reg')));
    const result = await storage.pullIndex.write(indexOf(1, 1_700_000_000_000));
    expect(result.state).toBe('failed');
    expect(result.state === 'failed' && result.problem).toMatch(/no such bucket/);
  });
});
