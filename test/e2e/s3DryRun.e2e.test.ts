/**
 * A dry run on object storage, from the registry's own config (`--config`):
 * the real registry 2.8.2 and 3.0.0 serve a radosgw bucket with the s3
 * driver, and the same scenario is pushed through a registry on a filesystem
 * root. regsweep's dry run must plan and predict the same on both (the
 * storage below is not the planner's business), count the requests it sent,
 * and refuse a driver it does not know and a bucket it cannot reach with exit
 * 2, changing nothing. Real runs: s3RealRun.e2e.test.ts.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RegistryClient, pushImage, registryBinary } from '../../scripts/registryClient.js';
import { freePort } from '../support/docker.js';
import { runCli } from '../support/cli.js';
import { RADOSGW_MISSING } from '../support/radosgw.js';
import { keysOf, pushOnBucketAndDisk, registryVersions, startS3Registry, withRadosgw } from '../support/s3Registry.js';
import { expectValidReport } from '../support/schema.js';

const V2_BIN = registryBinary();
const ENV = { AWS_EC2_METADATA_DISABLED: 'true' };

interface Report {
  target: { kind: string; root: string };
  plan: { manifests: Array<{ repository: string; digest: string; reason: string }>; tags: Array<{ repository: string; tag: string }>; indexEntries: unknown[] };
  predicted: { blobs: number; bytes: number };
  before: Record<string, number>;
  perRepository: unknown[];
  requests: { total: number; byOperation: Record<string, number> } | null;
  problems: unknown[];
}

/** What a plan says, storage aside. */
function planOf(r: Report): object {
  const sorted = <T>(xs: T[]): string[] => xs.map((x) => JSON.stringify(x)).sort();
  return { manifests: sorted(r.plan.manifests), tags: sorted(r.plan.tags), indexEntries: sorted(r.plan.indexEntries), predicted: r.predicted, before: r.before, perRepository: r.perRepository, problems: r.problems };
}

const skip = RADOSGW_MISSING ? `radosgw tests skipped: ${RADOSGW_MISSING}` : undefined;

describe.skipIf(skip !== undefined)('a dry run on a bucket, from the registry config', () => {
  const at = withRadosgw('regsweep-s3-dry-');
  const versions = registryVersions('dry');
  for (const [version, bin, bucket] of versions) {
    it.skipIf(bin === undefined)(`${version}: the same plan and prediction as on a filesystem, the requests counted, the bucket unchanged`, async () => {
      const { rgw, dir } = at;
      const { config, root } = await pushOnBucketAndDisk(bin as string, rgw, bucket, dir);
      const keys = await keysOf(rgw, bucket);
      const onBucket = await runCli(['--config', config, '--dry-run', '--json', '--grace', '0s', '--registry-bin', bin as string], { env: ENV });
      expect(onBucket.stderr).toBe('');
      expect(onBucket.code).toBe(0);
      const onDisk = await runCli(['--path', root, '--dry-run', '--json', '--grace', '0s', '--registry-bin', bin as string], { env: ENV });
      expect(onDisk.code).toBe(0);
      const s3 = JSON.parse(onBucket.stdout) as Report;
      const fsReport = JSON.parse(onDisk.stdout) as Report;
      expectValidReport(s3);
      expect(s3.target.kind).toBe('bucket');
      expect(s3.target.root).toContain(`s3://${bucket}`);
      expect(planOf(s3)).toEqual(planOf(fsReport));
      expect(s3.plan.manifests.length).toBeGreaterThan(0);
      expect(s3.predicted.blobs).toBeGreaterThan(0);
      expect(fsReport.requests).toBeNull();
      // Flat listings and reads: no request per directory.
      expect(s3.requests?.total).toBeGreaterThan(0);
      expect(Object.keys(s3.requests?.byOperation ?? {}).sort()).toEqual(expect.arrayContaining(['GetObject', 'ListObjectsV2']));
      expect(await keysOf(rgw, bucket)).toEqual(keys);
      // --usage: where the bytes go, the same on both.
      const usage = async (where: string[]): Promise<unknown> => (JSON.parse((await runCli([...where, '--usage', '--json', '--grace', '0s', '--registry-bin', bin as string], { env: ENV })).stdout) as { usage: unknown }).usage;
      const usageOnBucket = await usage(['--config', config]);
      expect(usageOnBucket).toBeTruthy();
      expect(usageOnBucket).toEqual(await usage(['--path', root]));
      // The human report names the bucket and the requests.
      const human = await runCli(['--config', config, '--dry-run', '--registry-bin', bin as string], { env: ENV });
      expect(human.stdout.split('\n')[0]).toMatch(new RegExp(`^Dry run on s3://${bucket}.* \\(registry ${version.replace(/\./g, '\\.')}\\), read in \\d+ requests$`));

    }, 240_000);
  }

  it.skipIf(V2_BIN === undefined)("the grace on the S3 server's clock: a process clock two hours fast does not make fresh blobs look old", async () => {
    const { rgw, dir } = at;
    const bucket = 'dry-clock';
    await rgw.createBucket(bucket);
    const registry = await startS3Registry(V2_BIN as string, rgw, bucket, '/reg');
    const config = path.join(dir, `${bucket}.yml`);
    try {
      const client = new RegistryClient(registry.url);
      // Pushed twice: the first image's blobs are unreferenced, and fresh.
      await pushImage(client, 'app', { tag: 'latest', seed: 'clock-a' });
      await pushImage(client, 'app', { tag: 'latest', seed: 'clock-b' });
      await fs.writeFile(config, registry.configText);
    } finally {
      await registry.stop();
    }
    const args = ['--config', config, '--dry-run', '--json', '--grace', '30m', '--registry-bin', V2_BIN as string];
    const skewed = await runCli(args, { env: ENV, wrap: ['faketime', '-f', '+2h'] });
    expect(skewed.code, skewed.stderr).toBe(0);
    const report = JSON.parse(skewed.stdout) as Report & { builtin: { recent: { blobs: number }; clock: { source: string; offsetMs: number } } };
    expect(report.plan.manifests).toHaveLength(1);
    // On this process's clock the blobs would be two hours old, past the grace, and predicted swept.
    expect(report.predicted.blobs).toBe(0);
    expect(report.builtin.recent.blobs).toBeGreaterThan(0);
    expect(report.builtin.clock.source).toBe('storage');
    expect(Math.abs(report.builtin.clock.offsetMs + 2 * 3_600_000)).toBeLessThan(60_000);
    // Without the skew the same: nothing fresh is predicted swept, the offset about 0.
    const plain = JSON.parse((await runCli(args, { env: ENV })).stdout) as typeof report;
    expect(plain.predicted.blobs).toBe(0);
    expect(Math.abs(plain.builtin.clock.offsetMs)).toBeLessThan(5_000);
  }, 120_000);

  it('refuses a driver it does not know, and a bucket it cannot reach: exit 2, one line', async () => {
    const { dir } = at;
    const azure = path.join(dir, 'azure.yml');
    await fs.writeFile(azure, 'version: 0.1\nstorage:\n  azure:\n    accountname: a\n    accountkey: b\n    container: c\n');
    const other = await runCli(['--config', azure, '--dry-run'], { env: ENV });
    expect(other.code).toBe(2);
    expect(other.stderr).toBe(`regsweep: ${azure} uses the azure storage driver; regsweep works on filesystem and s3 storage\n`);

    const closed = path.join(dir, 'closed.yml');
    const port = await freePort();
    await fs.writeFile(closed, `version: 0.1\nstorage:\n  s3:\n    region: us-east-1\n    regionendpoint: http://127.0.0.1:${port}\n    bucket: nowhere\n    accesskey: a\n    secretkey: b\n    secure: false\n`);
    const unreachable = await runCli(['--config', closed, '--dry-run'], { env: ENV });
    expect(unreachable.code).toBe(2);
    expect(unreachable.stderr.trim().split('\n')).toHaveLength(1);
    expect(unreachable.stderr).toMatch(/nowhere/);

    const missing = await runCli(['--config', path.join(dir, 'nope.yml'), '--dry-run'], { env: ENV });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^regsweep: cannot read --config .*nope\.yml: /);
  }, 120_000);
});

it.skipIf(skip === undefined)(skip ?? 'radosgw is installed', () => {});
