/**
 * The run lock on a bucket, on a real radosgw: one holder at a time (the
 * second fails with BusyError, exit 75, the filesystem lock's message; of
 * eight racing at once exactly one wins), `waitMs`, a holder on another host
 * kept alive by its heartbeat and taken over (and reported) once it stops,
 * a dead holder on this host taken over at once, a lock lost to a takeover
 * found at the next write and left alone at release, and what this server
 * does with conditional writes.
 */
import { spawnSync } from 'node:child_process';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BusyError } from '../../../src/errors.js';
import { type HolderRecord, placeHere, processRef } from '../../../src/storage/lockRecord.js';
import { type BucketClient, openBucketClient } from '../../../src/storage/s3/client.js';
import { BucketLock, inspectBucketLock, lockKey } from '../../../src/storage/s3/lock.js';
import type { S3Location } from '../../../src/storage/s3/location.js';
import { readBack } from '../../../src/storage/s3/put.js';
import { RADOSGW_MISSING, type Radosgw, S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, startRadosgw } from '../../support/radosgw.js';

process.env.AWS_EC2_METADATA_DISABLED = 'true';

let rgw: Radosgw;
const clients: BucketClient[] = [];
const locks: BucketLock[] = [];

const ROOT = '/registry/root';

async function clientFor(bucket: string): Promise<BucketClient> {
  const location: S3Location = {
    bucket,
    region: S3_REGION,
    endpoint: rgw.endpoint,
    forcePathStyle: true,
    rootdirectory: ROOT,
    credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY },
    secure: false,
    skipVerify: false,
  };
  const c = await openBucketClient(location);
  clients.push(c);
  return c;
}

let bucketCount = 0;
async function freshBucket(): Promise<BucketClient> {
  const name = `lock-${++bucketCount}`;
  await rgw.createBucket(name);
  return clientFor(name);
}

const options = { target: { kind: 'path', name: 's3://bucket' }, bringBack: { restart: true } };

async function acquire(c: BucketClient, over: Parameters<typeof BucketLock.acquire>[1] | object = {}): Promise<BucketLock> {
  const lock = await BucketLock.acquire(c, { ...options, ...over });
  locks.push(lock);
  return lock;
}

const failure = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

/** A holder's record as another run writes it, on another host (`remote`) or here with a process that has exited. */
function foreignRecord(token: string, remote: boolean): HolderRecord {
  const exited = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const here = placeHere();
  return {
    regsweep: 'lock',
    token,
    startedAt: new Date().toISOString(),
    place: remote ? { hostname: 'elsewhere', bootId: 'another-boot', pidNamespace: 'pid:[1]' } : here,
    process: remote ? { pid: 1, startTicks: 1 } : { ...processRef(Number(exited.stdout)), startTicks: 12345 },
    target: { kind: 'container', name: 'registry' },
    paused: [{ id: 'abc', name: 'registry' }],
    bringBack: { restart: true },
  };
}

async function writeLock(c: BucketClient, record: HolderRecord): Promise<void> {
  await rgw.client.send(new PutObjectCommand({ Bucket: c.location.bucket, Key: lockKey(c.location), Body: `${JSON.stringify(record)}\n` }));
}

const skip = RADOSGW_MISSING ? `radosgw tests skipped: ${RADOSGW_MISSING}` : undefined;

describe.skipIf(skip !== undefined)('the run lock on a real radosgw bucket', () => {
  beforeAll(async () => {
    rgw = await startRadosgw();
  });
  afterEach(async () => {
    for (const lock of locks.splice(0)) await lock.release().catch(() => undefined);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await rgw?.stop();
  });

  it('lets one run hold it beside docker/; the second fails with BusyError (exit 75); release frees it', async () => {
    const c = await freshBucket();
    const first = await acquire(c);
    expect(lockKey(c.location)).toBe('registry/root/.regsweep.lock');
    const stored = await readBack(c, 'registry/root/.regsweep.lock');
    expect(JSON.parse(Buffer.from(stored?.body ?? []).toString()).token).toBe(first.token);
    // This radosgw refuses both conditional writes, and takes If-Match's ETag only bare.
    expect(first.conditions).toEqual({ ifNoneMatch: true, ifMatch: 'bare' });

    const second = await failure(acquire(await clientFor(c.location.bucket)));
    expect(second).toBeInstanceOf(BusyError);
    expect((second as BusyError).exitCode).toBe(75);
    expect((second as Error).message).toMatch(new RegExp(`^busy: another regsweep run, pid ${process.pid} on .+, started .+, holds this registry$`));
    expect((await inspectBucketLock(c))?.alive).toBe(true);

    await first.release();
    expect(await inspectBucketLock(c)).toBeUndefined();
    const third = await acquire(await clientFor(c.location.bucket));
    expect(third.previous).toBeUndefined();
  });

  it('of eight runs racing for it, exactly one holds it', async () => {
    const c = await freshBucket();
    const racers = await Promise.all(Array.from({ length: 8 }, () => clientFor(c.location.bucket)));
    const results = await Promise.allSettled(racers.map((r) => acquire(r)));
    const won = results.filter((r): r is PromiseFulfilledResult<BucketLock> => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected').every((r) => (r as PromiseRejectedResult).reason instanceof BusyError)).toBe(true);
    expect((await inspectBucketLock(c))?.record.token).toBe(won[0]?.value.token);
  });

  it('waits for a holder that releases within waitMs', async () => {
    const c = await freshBucket();
    const first = await acquire(c);
    setTimeout(() => void first.release(), 1500);
    const started = Date.now();
    const second = await acquire(await clientFor(c.location.bucket), { waitMs: 10_000 });
    expect(Date.now() - started).toBeGreaterThan(1400);
    expect(second.previous).toBeUndefined();
  });

  it("keeps a remote holder's lock while its heartbeat runs, and takes it over after its expiry, saying whose", async () => {
    const c = await freshBucket();
    const remote = foreignRecord('remote-run', true);
    await writeLock(c, remote);
    // The remote run's heartbeat: its record rewritten every 500 ms, for 4 s.
    const beat = setInterval(() => void writeLock(c, remote), 500);
    try {
      const refused = await failure(acquire(c, { staleMs: 2_000, waitMs: 3_000 }));
      expect(refused).toBeInstanceOf(BusyError);
      expect((refused as Error).message).toMatch(/^busy: another regsweep run, pid 1 on elsewhere, started .+, holds this registry$/);
    } finally {
      clearInterval(beat);
    }
    const started = Date.now();
    const taker = await acquire(c, { staleMs: 2_000, waitMs: 10_000 });
    // Taken only once the heartbeat had been silent for staleMs (by the server's clock, whole seconds).
    expect(Date.now() - started).toBeGreaterThan(800);
    expect(taker.previous?.record).toEqual(remote);
    expect(taker.previous?.heartbeatAgeMs).toBeGreaterThanOrEqual(2_000);
    expect((await inspectBucketLock(c))?.record.token).toBe(taker.token);
  });

  it('takes over at once the lock of a run on this host whose process is gone', async () => {
    const c = await freshBucket();
    const dead = foreignRecord('dead-here', false);
    await writeLock(c, dead);
    expect((await inspectBucketLock(c))?.alive).toBe(false);
    const taker = await acquire(c);
    expect(taker.previous?.record.token).toBe('dead-here');
    expect(taker.previous?.record.paused).toEqual([{ id: 'abc', name: 'registry' }]);
  });

  it('records updates, finds a lock taken over at its next write, and leaves the new holder alone at release', async () => {
    const c = await freshBucket();
    const lock = await acquire(c, { heartbeatMs: 300 });
    await lock.save({ paused: [{ id: 'c1', name: 'registry' }] });
    expect((await inspectBucketLock(c))?.record.paused).toEqual([{ id: 'c1', name: 'registry' }]);
    const before = (await readBack(c, lock.key))?.modified ?? 0;
    await new Promise((r) => setTimeout(r, 1_600));
    // The heartbeat rewrote it (LastModified has whole seconds).
    expect((await readBack(c, lock.key))?.modified ?? 0).toBeGreaterThan(before);

    const usurper = foreignRecord('usurper', true);
    await writeLock(c, usurper);
    const lost = await failure(lock.save({ journal: '/tmp/j' }));
    expect(lost).toBeInstanceOf(BusyError);
    expect((lost as Error).message).toMatch(/^the lock at s3:\/\/lock-\d+\/registry\/root\/\.regsweep\.lock was taken over by another run: stopping$/);
    await lock.release();
    expect((await inspectBucketLock(c))?.record.token).toBe('usurper');
  });

  it('refuses an object at the lock key that is not a regsweep lock', async () => {
    const c = await freshBucket();
    await rgw.client.send(new PutObjectCommand({ Bucket: c.location.bucket, Key: lockKey(c.location), Body: 'not json' }));
    const error = await failure(acquire(c));
    expect(error).toBeInstanceOf(BusyError);
    expect((error as Error).message).toMatch(/^s3:\/\/lock-\d+\/registry\/root\/\.regsweep\.lock is not a regsweep lock; remove it if no regsweep run is at work$/);
  });
});

it.skipIf(skip === undefined)(skip ?? 'radosgw is installed', () => {});
