/**
 * What happens on a bucket between the scan and the window, with the real
 * registry 2.8.2 serving the bucket meanwhile (the confirmation is where the
 * test pushes): a tag moved since the scan voids the plan (nothing removed);
 * a revision pushed since the scan into a repository the plan does not touch,
 * needing blobs the prediction sweeps, keeps them (the window's re-mark): its
 * image pulls whole after the run, and the run says it freed less.
 */
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, pushImage, registryBinary } from '../../scripts/registryClient.js';
import { TreeChangedError } from '../../src/errors.js';
import { type BucketClient, openBucketClient } from '../../src/storage/s3/client.js';
import { bucketSource } from '../../src/storage/s3/source.js';
import { sweep } from '../../src/sweep.js';
import { RADOSGW_MISSING, type Radosgw, S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, startRadosgw } from '../support/radosgw.js';
import { type S3Registry, keysOf, startS3Registry } from '../support/s3Registry.js';
import { tempDir } from '../support/tmp.js';
import { bucketRun } from '../../src/run/bucket.js';

const V2_BIN = registryBinary();
const skip = RADOSGW_MISSING ? `radosgw tests skipped: ${RADOSGW_MISSING}` : V2_BIN ? undefined : 'no registry 2.8.2 binary';

describe.skipIf(skip !== undefined)('a bucket changed between the scan and the window', () => {
  let rgw: Radosgw;
  let dir: string;
  const open: Array<{ registry?: S3Registry; client?: BucketClient }> = [];
  beforeAll(async () => {
    rgw = await startRadosgw();
    dir = await tempDir('regsweep-s3-window-');
  }, 60_000);
  afterAll(async () => {
    for (const o of open) {
      await o.registry?.stop();
      o.client?.close();
    }
    await rgw?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  async function setUp(bucket: string): Promise<{ registry: RegistryClient; client: BucketClient }> {
    await rgw.createBucket(bucket);
    const served = await startS3Registry(V2_BIN as string, rgw, bucket, '/reg');
    const client = await openBucketClient({ bucket, region: S3_REGION, endpoint: rgw.endpoint, forcePathStyle: true, rootdirectory: '/reg', credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY }, secure: false, skipVerify: false });
    open.push({ registry: served, client });
    return { registry: new RegistryClient(served.url), client };
  }

  const run = (client: BucketClient, confirm: () => Promise<boolean>) =>
    sweep({ target: { kind: 'bucket', name: client.describe, root: client.describe }, storage: bucketRun(bucketSource(client)), dryRun: false, builtin: { graceMs: 0 }, confirm });

  it('a tag moved since the scan: nothing is removed', async () => {
    const bucket = 'window-moved';
    const { registry, client } = await setUp(bucket);
    await pushImage(registry, 'app', { tag: 'latest', seed: 'moved-a' });
    await pushImage(registry, 'app', { tag: 'latest', seed: 'moved-b' });
    let keys: string[] = [];
    const error = await run(client, async () => {
      await pushImage(registry, 'app', { tag: 'latest', seed: 'moved-c' });
      keys = await keysOf(rgw, bucket);
      return true;
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TreeChangedError);
    expect((error as Error).message).toMatch(/app: tag latest moved since the scan/);
    expect(await keysOf(rgw, bucket)).toEqual(keys);
  }, 120_000);

  it('a revision pushed since the scan keeps the blobs it needs, and the run says it freed less', async () => {
    const bucket = 'window-remark';
    const { registry, client } = await setUp(bucket);
    const old = await pushImage(registry, 'app', { tag: 'latest', seed: 'remark-a' });
    await pushImage(registry, 'app', { tag: 'latest', seed: 'remark-b' });
    const report = await run(client, async () => {
      // The same image into another repository, by digest: the registry finds its blobs there already.
      await pushImage(registry, 'copy', { seed: 'remark-a' });
      return true;
    });
    expect([...report.plan.manifests].map((m) => m.digest)).toEqual([old.descriptor.digest]);
    expect(report.builtin?.remarked).toBe(1);
    // The manifest, its config and its layers: every blob the prediction swept.
    expect(report.builtin?.spared.blobs).toBe(report.predicted.blobs);
    expect(report.freed).toEqual({ blobs: 0, bytes: 0 });
    expect(report.problems.map((p) => p.message).join('\n')).toMatch(/spared \d+ that revisions pushed since the scan need/);
    await registry.pullWhole('copy', old.descriptor.digest);
    expect((await registry.getManifest('app', old.descriptor.digest)).status).toBe(404);
  }, 120_000);
});

it.skipIf(skip === undefined)(skip ?? 'radosgw and registry 2.8.2 are installed', () => {});
