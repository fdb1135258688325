/**
 * Removals, writes and the server's clock on a real radosgw: batched
 * DeleteObjects (1,000 keys a request at most, the hook before each request,
 * per-key refusals reported with the server's code), a directory removed
 * through one listing, removals conditional on another key's absence, a
 * Content-MD5 write that the server checks, and the offset of a process whose
 * clock runs an hour behind (faketime), measured from the server's Date.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { DeleteBucketPolicyCommand, ListObjectsV2Command, PutBucketPolicyCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BucketClient, openBucketClient } from '../../../src/storage/s3/client.js';
import { ServerClock } from '../../../src/storage/s3/clock.js';
import type { S3Location } from '../../../src/storage/s3/location.js';
import { putAndVerify, putObject, readBack } from '../../../src/storage/s3/put.js';
import { removeDirectory, removeKeys, removeUnless } from '../../../src/storage/s3/remove.js';
import { RADOSGW_MISSING, type Radosgw, S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, startRadosgw } from '../../support/radosgw.js';

process.env.AWS_EC2_METADATA_DISABLED = 'true';

let rgw: Radosgw;
const clients: BucketClient[] = [];

function location(bucket: string): S3Location {
  return {
    bucket,
    region: S3_REGION,
    endpoint: rgw.endpoint,
    forcePathStyle: true,
    rootdirectory: '',
    credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY },
    secure: false,
    skipVerify: false,
  };
}

let bucketCount = 0;
/** A fresh bucket and a client for it. */
async function freshBucket(): Promise<BucketClient> {
  const name = `rm-${++bucketCount}`;
  await rgw.createBucket(name);
  const c = await openBucketClient(location(name));
  clients.push(c);
  return c;
}

async function put(c: BucketClient, keys: readonly string[]): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < keys.length; i = next++) await rgw.client.send(new PutObjectCommand({ Bucket: c.location.bucket, Key: keys[i], Body: keys[i] }));
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

async function listed(c: BucketClient): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await rgw.client.send(new ListObjectsV2Command({ Bucket: c.location.bucket, ContinuationToken: token }));
    keys.push(...(page.Contents ?? []).map((o) => o.Key ?? ''));
    token = page.NextContinuationToken;
  } while (token);
  return keys.sort();
}

const keysUnder = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(4, '0')}`);

const skip = RADOSGW_MISSING ? `radosgw tests skipped: ${RADOSGW_MISSING}` : undefined;

describe.skipIf(skip !== undefined)('removals and writes on a real radosgw', () => {
  beforeAll(async () => {
    rgw = await startRadosgw();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await rgw?.stop();
  });

  it('removes 2,345 keys in requests of at most 1,000, each batch handed to the hook before its request', async () => {
    const c = await freshBucket();
    const doomed = keysUnder('docker/registry/v2/blobs/sha256/aa/', 2345);
    const stays = keysUnder('docker/registry/v2/blobs/sha256/bb/', 5);
    await put(c, [...doomed, ...stays]);
    const hooked: Array<{ keys: number; presentAtHook: number }> = [];
    const before = c.requests.byOperation.DeleteObjects ?? 0;
    const result = await removeKeys(c, [...doomed, doomed[0] as string], {
      concurrency: 3,
      onBatch: async (keys) => {
        // At the hook none of this batch may be gone yet: a journal line written here precedes its removal.
        const present = new Set(await listed(c));
        hooked.push({ keys: keys.length, presentAtHook: keys.filter((k) => present.has(k)).length });
      },
    });
    expect(hooked).toEqual([
      { keys: 1000, presentAtHook: 1000 },
      { keys: 1000, presentAtHook: 1000 },
      { keys: 345, presentAtHook: 345 },
    ]);
    expect((c.requests.byOperation.DeleteObjects ?? 0) - before).toBe(3);
    expect(result.failed).toEqual([]);
    expect(result.removed).toEqual(doomed);
    expect(await listed(c)).toEqual(stays);
  });

  it('reports the keys the server refuses with its code, and removes the rest', async () => {
    const c = await freshBucket();
    const free = keysUnder('repo/_layers/', 30);
    const guarded = keysUnder('guarded/', 3);
    await put(c, [...free, ...guarded]);
    const policy = { Version: '2012-10-17', Statement: [{ Effect: 'Deny', Principal: '*', Action: 's3:DeleteObject', Resource: `arn:aws:s3:::${c.location.bucket}/guarded/*` }] };
    await rgw.client.send(new PutBucketPolicyCommand({ Bucket: c.location.bucket, Policy: JSON.stringify(policy) }));
    try {
      const result = await removeKeys(c, [...free.slice(0, 10), ...guarded, ...free.slice(10)], { batchSize: 7 });
      expect(result.failed.map((f) => [f.key, f.code])).toEqual(guarded.map((k) => [k, 'AccessDenied']));
      expect(result.removed.sort()).toEqual(free);
      expect(await listed(c)).toEqual(guarded);
    } finally {
      await rgw.client.send(new DeleteBucketPolicyCommand({ Bucket: c.location.bucket }));
    }
  });

  it('stops when the hook throws: that batch and those after it are not sent', async () => {
    const c = await freshBucket();
    const keys = keysUnder('x/', 25);
    await put(c, keys);
    let calls = 0;
    const error = await removeKeys(c, keys, {
      batchSize: 10,
      concurrency: 1,
      onBatch: () => {
        if (++calls === 2) throw new Error('journal: no space left');
      },
    }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toBe('journal: no space left');
    expect(calls).toBe(2);
    expect(await listed(c)).toEqual(keys.slice(10));
  });

  it('removes a directory: every key under the prefix, nothing beside it', async () => {
    const c = await freshBucket();
    const repo = 'docker/registry/v2/repositories/team/web/';
    const inside = [...keysUnder(`${repo}_manifests/revisions/sha256/`, 1200), `${repo}_layers/sha256/ab/link`, `${repo}_uploads/u1/data`];
    // A sibling whose name extends the directory's, and the parent namespace's own keys, stay.
    const beside = ['docker/registry/v2/repositories/team/web-2/_layers/sha256/ab/link', 'docker/registry/v2/repositories/team/_manifests/tags/t/current/link'];
    await put(c, [...inside, ...beside]);
    const result = await removeDirectory(c, repo, { concurrency: 2 });
    expect(result.failed).toEqual([]);
    expect(result.removed.sort()).toEqual([...inside].sort());
    expect(await listed(c)).toEqual([...beside].sort());
    await expect(removeDirectory(c, 'docker/registry/v2/repositories/team')).rejects.toThrow(/not a directory prefix/);
    await expect(removeDirectory(c, '/')).rejects.toThrow(/not a directory prefix/);
  });

  it('removes a link only while the blob it names is absent', async () => {
    const c = await freshBucket();
    const link = (d: string): string => `docker/registry/v2/repositories/app/_layers/sha256/${d}/link`;
    const data = (d: string): string => `docker/registry/v2/blobs/sha256/${d.slice(0, 2)}/${d}/data`;
    const back = 'aa11';
    const gone = ['bb22', 'cc33'];
    await put(c, [link(back), data(back), ...gone.map(link)]);
    const result = await removeUnless(c, [back, ...gone].map((d) => ({ key: link(d), unless: data(d) })));
    expect(result).toEqual({ removed: gone.map(link), failed: [], kept: [link(back)] });
    expect(await listed(c)).toEqual([link(back), data(back)].sort());
  });

  it('writes an object with Content-MD5 and reads it back; the server checks the digest', async () => {
    const c = await freshBucket();
    const body = Buffer.from('{"index": 1}\n');
    const written = await putObject(c, 'index.json', body);
    expect(written).toEqual({ etag: createHash('md5').update(body).digest('hex') });
    const back = await readBack(c, 'index.json');
    expect(Buffer.from(back?.body ?? []).toString()).toBe('{"index": 1}\n');
    expect(await putAndVerify(c, 'index.json', 'v2')).toBe(true);
    // A body that does not match its Content-MD5 (damaged on the way) is refused, and the object before it stays.
    const damaged = await rgw.client
      .send(new PutObjectCommand({ Bucket: c.location.bucket, Key: 'index.json', Body: 'v3', ContentMD5: createHash('md5').update('v2').digest('base64') }))
      .then(
        () => 'stored',
        (e: { name?: string }) => e.name,
      );
    expect(damaged).toBe('BadDigest');
    expect(Buffer.from((await readBack(c, 'index.json'))?.body ?? []).toString()).toBe('v2');
    expect(await putObject(c, 'index.json', 'v4', { ifNoneMatch: true })).toBe('precondition failed');
    expect(await readBack(c, 'missing.json')).toBeUndefined();
  });

  it("measures the server's clock from its Date header: close to zero here", async () => {
    const c = await freshBucket();
    const clock = ServerClock.of(c);
    expect(clock.clock).toEqual({ source: 'process', offsetMs: 0 });
    const measured = await clock.measure(3);
    expect(clock.sampleCount).toBeGreaterThanOrEqual(3);
    expect(measured.source).toBe('storage');
    // One host, one clock: the estimate lies in [-1 s, 0] (Date has whole seconds and it errs early).
    expect(measured.offsetMs).toBeLessThanOrEqual(0);
    expect(measured.offsetMs).toBeGreaterThan(-1100);
    expect(clock.uncertaintyMs).toBeLessThan(1100);
  });

  const built = path.resolve('dist/src/storage/s3/clock.js');
  const hasFaketime = spawnSync('faketime', ['-f', '+0', 'true']).status === 0;

  it.skipIf(!hasFaketime)("measures about +1 h from a process whose clock is an hour behind (faketime '-1 hour')", async () => {
    expect(existsSync(built), 'npm run build first: the script runs dist/').toBe(true);
    const bucket = (await freshBucket()).location.bucket;
    const script = `
      const { openBucketClient } = await import(${JSON.stringify(path.resolve('dist/src/storage/s3/client.js'))});
      const { ServerClock } = await import(${JSON.stringify(built)});
      const client = await openBucketClient(${JSON.stringify(location(bucket))});
      const clock = ServerClock.of(client);
      const measured = await clock.measure(3);
      process.stdout.write(JSON.stringify({ ...measured, uncertaintyMs: clock.uncertaintyMs, requests: client.requests }));
      client.close();
    `;
    const run = spawnSync('faketime', ['-1 hour', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, AWS_EC2_METADATA_DISABLED: 'true' }, timeout: 30_000 });
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { source: string; offsetMs: number; uncertaintyMs: number; requests: { total: number } };
    expect(out.source).toBe('storage');
    expect(Math.abs(out.offsetMs - 3_600_000)).toBeLessThan(2_000);
    expect(out.uncertaintyMs).toBeLessThan(1_100);
  });
});

it.skipIf(skip === undefined)(skip ?? 'radosgw is installed', () => {});
