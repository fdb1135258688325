/**
 * A real run on object storage, from the registry's own config (`--config`):
 * the real registry 2.8.2 and 3.0.0 wrote the mixed scenario into a radosgw
 * bucket with the s3 driver, and the same scenario onto a filesystem root.
 * The run on the bucket must remove what its dry run planned, free exactly
 * what it predicted, and leave the bucket as the run on the filesystem leaves
 * the tree: every kept digest pulls whole through the registry again, every
 * purged one is gone. A second run finds nothing; a run while another holds
 * the bucket's lock exits 75; what is not built for buckets is refused with
 * exit 2, the bucket unchanged. `--gc registry` runs the registry's own
 * garbage-collect on the bucket, with the registry's config.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RegistryClient, registryBinary } from '../../scripts/registryClient.js';
import { openBucketClient } from '../../src/storage/s3/client.js';
import { BucketLock } from '../../src/storage/s3/lock.js';
import { runCli } from '../support/cli.js';
import { RADOSGW_MISSING, S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY } from '../support/radosgw.js';
import { keysOf, pushOnBucket, pushOnBucketAndDisk, registryVersions, startS3Registry, withRadosgw } from '../support/s3Registry.js';
import type { Scenario } from '../support/scenario.js';
import { expectValidReport } from '../support/schema.js';

const V2_BIN = registryBinary();
const ENV = { AWS_EC2_METADATA_DISABLED: 'true' };

interface Report {
  target: { kind: string; root: string };
  plan: { manifests: Array<{ repository: string; digest: string; reason: string }>; tags: Array<{ repository: string; tag: string }>; indexEntries: unknown[]; repositories: unknown[] };
  predicted: { blobs: number; bytes: number };
  freed: { blobs: number; bytes: number } | null;
  before: Record<string, number>;
  after: Record<string, number>;
  gc: { mode: string; ran: boolean; skipped: string | null };
  builtin: { layerLinks: number; remarked: number } | null;
  requests: { total: number; byOperation: Record<string, number> } | null;
  problems: unknown[];
}

const sorted = <T>(xs: T[]): string[] => xs.map((x) => JSON.stringify(x)).sort();

/** What a run did, storage aside. */
function outcomeOf(r: Report): object {
  return { manifests: sorted(r.plan.manifests), tags: sorted(r.plan.tags), indexEntries: sorted(r.plan.indexEntries), predicted: r.predicted, freed: r.freed, before: r.before, after: r.after, problems: r.problems };
}

/** Every kept digest pulls whole, every purged one is gone, every kept tag is listed. */
async function expectPurged(client: RegistryClient, scenario: Scenario): Promise<void> {
  for (const { repository, digest } of scenario.kept) await client.pullWhole(repository, digest);
  for (const { repository, digest } of scenario.removed) expect((await client.getManifest(repository, digest)).status, `${repository}@${digest}`).toBe(404);
  for (const { repository, tag } of scenario.tags) expect(await client.tags(repository)).toContain(tag);
}

const skip = RADOSGW_MISSING ? `radosgw tests skipped: ${RADOSGW_MISSING}` : undefined;

describe.skipIf(skip !== undefined)('a real run on a bucket, from the registry config', () => {
  const at = withRadosgw('regsweep-s3-real-');
  const versions = registryVersions('real');
  for (const [version, bin, bucket] of versions) {
    it.skipIf(bin === undefined)(`${version}: removes what the dry run planned, frees what it predicted, as a run on a filesystem does; kept images pull whole`, async () => {
      const { rgw, dir } = at;
      const { config, root, scenario } = await pushOnBucketAndDisk(bin as string, rgw, bucket, dir);
      const common = ['--json', '--grace', '0s', '--registry-bin', bin as string];
      const dry = JSON.parse((await runCli(['--config', config, '--dry-run', ...common], { env: ENV })).stdout) as Report;
      const before = await keysOf(rgw, bucket);

      const real = await runCli(['--config', config, '--yes', ...common], { env: ENV });
      expect(real.stderr).toBe('');
      expect(real.code).toBe(0);
      const report = JSON.parse(real.stdout) as Report;
      expectValidReport(report);
      expect(report.problems).toEqual([]);
      expect(report.gc).toMatchObject({ mode: 'builtin', ran: true, skipped: null });
      expect(sorted(report.plan.manifests)).toEqual(sorted(dry.plan.manifests));
      expect(sorted(report.plan.manifests.map((m) => ({ repository: m.repository, digest: m.digest })))).toEqual(sorted(scenario.removed));
      expect(report.predicted).toEqual(dry.predicted);
      expect(report.predicted.blobs).toBeGreaterThan(0);
      expect(report.freed).toEqual(report.predicted);
      expect(report.builtin?.layerLinks).toBeGreaterThan(0);
      expect(report.requests?.byOperation.DeleteObjects).toBeGreaterThan(0);
      const after = await keysOf(rgw, bucket);
      expect(after.length).toBeLessThan(before.length);
      // Nothing added but what the lock wrote and took away again.
      expect(after.every((k) => before.includes(k))).toBe(true);

      // The same scenario on a filesystem: the same removals, the same bytes freed, the same totals after.
      const onDisk = JSON.parse((await runCli(['--path', root, '--yes', ...common], { env: ENV })).stdout) as Report;
      // But one repository: uploads/only held nothing but its blob's `_layers` link; a filesystem keeps its empty directories, a bucket has none.
      expect(report.after.repositories).toBe((onDisk.after.repositories as number) - 1);
      expect(outcomeOf({ ...report, after: { ...report.after, repositories: onDisk.after.repositories as number } })).toEqual(outcomeOf(onDisk));

      const registry = await startS3Registry(bin as string, rgw, bucket, '/reg');
      try {
        await expectPurged(new RegistryClient(registry.url), scenario);
      } finally {
        await registry.stop();
      }
      // A second run finds nothing more to remove.
      const again = JSON.parse((await runCli(['--config', config, '--yes', ...common], { env: ENV })).stdout) as Report;
      expect(again.problems).toEqual([]);
      expect(again.plan.manifests).toEqual([]);
      expect(again.predicted.blobs).toBe(0);
      expect(again.freed).toEqual({ blobs: 0, bytes: 0 });
      expect(await keysOf(rgw, bucket)).toEqual(after);
    }, 300_000);
  }

  for (const [version, bin, bucket] of registryVersions('gc')) {
    it.skipIf(bin === undefined)(`${version}: --gc registry runs the registry's garbage-collect on the bucket with its own config, and frees what was predicted`, async () => {
      const { rgw, dir } = at;
      const { config, scenario } = await pushOnBucket(bin as string, rgw, bucket, dir);
      const run = await runCli(['--config', config, '--yes', '--json', '--grace', '0s', '--gc', 'registry', '--registry-bin', bin as string], { env: ENV });
      expect(run.code, run.stderr).toBe(0);
      const report = JSON.parse(run.stdout) as Report & { gc: { exitCode: number | null; command: string[] | null } };
      expectValidReport(report);
      expect(report.gc).toMatchObject({ mode: 'registry', ran: true, exitCode: 0 });
      expect(report.gc.command).toContain(config);
      expect(report.predicted.blobs).toBeGreaterThan(0);
      expect(report.freed).toEqual(report.predicted);
      expect(report.problems).toEqual([]);
      const registry = await startS3Registry(bin as string, rgw, bucket, '/reg');
      try {
        await expectPurged(new RegistryClient(registry.url), scenario);
      } finally {
        await registry.stop();
      }
    }, 240_000);
  }

  it.skipIf(V2_BIN === undefined)('one run at a time: a second run exits 75 while the lock is held; options not built for buckets exit 2; nothing changes', async () => {
    const { rgw, dir } = at;
    const bucket = 'real-lock';
    const { config } = await pushOnBucket(V2_BIN as string, rgw, bucket, dir);
    const keys = await keysOf(rgw, bucket);
    const location = { bucket, region: S3_REGION, endpoint: rgw.endpoint, forcePathStyle: true, rootdirectory: '/reg', credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY }, secure: false, skipVerify: false };
    const client = await openBucketClient(location);
    const lock = await BucketLock.acquire(client, { target: { kind: 'bucket', name: `s3://${bucket}/reg` }, bringBack: { restart: false } });
    try {
      const busy = await runCli(['--config', config, '--yes', '--grace', '0s'], { env: ENV });
      expect(busy.code).toBe(75);
      expect(busy.stderr.trim().split('\n')).toHaveLength(1);
      expect(busy.stderr).toMatch(/busy/);
    } finally {
      await lock.release();
      client.close();
    }
    for (const [option, words] of [
      [['--quarantine', '1d'], '--quarantine'],
      [['--journal', path.join(dir, 'journal')], '--journal'],
    ] as const) {
      const refused = await runCli(['--config', config, '--yes', ...option], { env: ENV });
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
      expect(refused.stderr).toContain(words);
      expect(refused.stderr).toMatch(/not built for object storage yet/);
    }
    expect(await keysOf(rgw, bucket)).toEqual(keys);
  }, 180_000);
});

it.skipIf(skip === undefined)(skip ?? 'radosgw is installed', () => {});
