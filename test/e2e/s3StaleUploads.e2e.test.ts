/**
 * `--stale-uploads AGE` on a bucket, with the real registry 2.8.2 on radosgw:
 * an upload's bytes there are not an object but the parts of a multipart
 * upload the s3 driver completes only with the blob. A stale upload goes
 * whole (its keys, and its multipart upload aborted, so its bytes go too),
 * counted with those bytes; a newer one stays and can still be finished; a
 * dry run only counts.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { ListMultipartUploadsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { RegistryClient, blobBytes, pushImage, registryBinary } from '../../scripts/registryClient.js';
import { runCli } from '../support/cli.js';
import { RADOSGW_MISSING } from '../support/radosgw.js';
import { keysOf, startS3Registry, withRadosgw } from '../support/s3Registry.js';
import { expectValidReport } from '../support/schema.js';
import { expectUploadsAfter, startUpload } from '../support/uploads.js';

const V2_BIN = registryBinary();
const ENV = { AWS_EC2_METADATA_DISABLED: 'true' };
const skip = RADOSGW_MISSING ?? (V2_BIN ? undefined : 'no registry 2.8.2 binary');

describe.skipIf(skip !== undefined)('--stale-uploads on a bucket', () => {
  const at = withRadosgw('regsweep-s3-uploads-');

  it('removes the uploads started before AGE with their multipart bytes; a newer one stays and finishes', async () => {
    const { rgw, dir } = at;
    const bucket = 'stale-uploads';
    await rgw.createBucket(bucket);
    const old = blobBytes('s3-stale-upload', 1500);
    const fresh = blobBytes('s3-fresh-upload', 700);
    const secret = 's3-stale-uploads-test';
    let registry = await startS3Registry(V2_BIN as string, rgw, bucket, '/reg', { secret });
    const config = path.join(dir, 'config.yml');
    let stale = { location: '', id: '' };
    let recent = { location: '', id: '' };
    try {
      await pushImage(new RegistryClient(registry.url), 'app', { tag: 'v1', seed: 's3-uploads-app' });
      stale = await startUpload(registry.url, 'app', old);
      recent = await startUpload(registry.url, 'app', fresh);
      await fs.writeFile(config, registry.configText);
    } finally {
      await registry.stop();
    }
    const uploads = 'reg/docker/registry/v2/repositories/app/_uploads/';
    // Two days pass for the first upload: its start as the registry writes it (RFC 3339, seconds).
    const twoDaysAgo = `${new Date(Date.now() - 2 * 86_400_000).toISOString().slice(0, 19)}Z`;
    await rgw.client.send(new PutObjectCommand({ Bucket: bucket, Key: `${uploads}${stale.id}/startedat`, Body: twoDaysAgo }));
    const multipart = async (): Promise<string[]> => ((await rgw.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).map((u) => u.Key as string).sort();
    expect(await multipart()).toEqual([`${uploads}${stale.id}/data`, `${uploads}${recent.id}/data`].sort());
    const keys = await keysOf(rgw, bucket);

    const dry = await runCli(['--config', config, '--dry-run', '--json', '--stale-uploads', '1d'], { env: ENV });
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout).staleUploads).toEqual({ uploads: 1, bytes: old.length });
    expect(await keysOf(rgw, bucket)).toEqual(keys);

    const run = await runCli(['--config', config, '--yes', '--json', '--stale-uploads', '1d', '--grace', '0s'], { env: ENV });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expectValidReport(report);
    expect(report.staleUploads).toEqual({ uploads: 1, bytes: old.length });
    expect(await multipart()).toEqual([`${uploads}${recent.id}/data`]);
    const left = await keysOf(rgw, bucket);
    expect(left.filter((k) => k.includes(stale.id))).toEqual([]);
    expect(left.filter((k) => k.includes(recent.id)).length).toBeGreaterThan(0);

    registry = await startS3Registry(V2_BIN as string, rgw, bucket, '/reg', { secret });
    try {
      await expectUploadsAfter(registry.url, { stale: stale.location, recent: recent.location, fresh }, 'app', 'v1');
    } finally {
      await registry.stop();
    }
  }, 180_000);
});

it.skipIf(skip === undefined)(skip ?? 'radosgw and registry 2.8.2 are installed', () => {});
