/**
 * `--usage` against numbers worked out from the files on disk by the test's
 * own reading (test/support/usage.ts), and the tree unchanged.
 */
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TreeWriter, type Written, seededBytes } from '../../scripts/sampleTree.js';
import { planTree } from '../../src/plan/planTree.js';
import { parseSelector } from '../../src/plan/selectors.js';
import type { ScanPool } from '../../src/storage/fs/scanPool.js';
import { snapshot, tempDir } from '../support/tmp.js';
import { blobDataPath, expectedUsage, manifestReferences } from '../support/usage.js';
import { filesystemSource } from '../../src/storage/fs/source.js';

let root: string;
let before: Record<string, string>;
/** Blobs the scenario names in its expectations. */
const blobs: Record<string, Written> = {};

beforeAll(async () => {
  root = await tempDir();
  const w = await new TreeWriter(root).init();
  const base = (blobs.base = await w.blob(seededBytes('base', 3000)));
  const oldShared = (blobs.oldShared = await w.blob(seededBytes('old-shared', 1500)));
  // app: latest pushed twice, so the first push is untagged history; both use the base layer.
  await w.image('app', { seed: 'app-old', shared: [base, oldShared], tag: 'latest' });
  await w.image('app', { seed: 'app-cur', shared: [base], tag: 'latest' });
  // team/web: a tagged index whose children are revisions, and an untagged image that shares a layer with app's old one.
  const amd = await w.image('team/web', { seed: 'web-amd', shared: [base] });
  const arm = await w.image('team/web', { seed: 'web-arm' });
  await w.index('team/web', [amd, arm], { tag: 'v1' });
  await w.image('team/web', { seed: 'web-old', shared: [oldShared] });
  // base: one image under two tags.
  blobs.baseImage = await w.image('base', { seed: 'base-img', shared: [base], tag: 'latest' });
  await w.tag('base', 'stable', blobs.baseImage.digest);
  // A repository with layer links and no revisions, and a blob nothing references.
  await w.linkLayer('links/only', base.digest);
  blobs.orphan = await w.blob(seededBytes('orphan', 700));
  before = await snapshot(root);
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const blobData = (digest: string): string => blobDataPath(root, digest);
const references = (digest: string): Promise<string[]> => manifestReferences(root, digest);

/** A pool of threads from the compiled code, so its workers can start (as scan.parallel.test.ts does). */
async function distPool(threads: number): Promise<ScanPool> {
  const compiled = '../../dist/src/storage/fs/scanPool.js';
  const { openScanPool } = (await import(compiled)) as typeof import('../../src/storage/fs/scanPool.js');
  return openScanPool(threads);
}

describe('--usage', () => {
  it('counts per repository what its revisions reference, what only it references, and what the purge reclaims', async () => {
    const planned = await planTree(filesystemSource(root), { usage: true, registryVersion: '2.8.2' });
    const expected = await expectedUsage(root);
    expect(planned.usage).toEqual(expected);
    expect(planned.usage?.totals.reclaimableBytes).toBe(planned.predicted.bytes);
    expect(planned.usage?.totals.bytes).toBe(planned.before.bytes - expected.totals.unreferencedBytes);
    expect(await snapshot(root)).toEqual(before);
  });

  it('a layer two repositories both drop counts in both rows and once in the total', async () => {
    const usage = (await planTree(filesystemSource(root), { usage: true, registryVersion: '2.8.2' })).usage;
    const row = (name: string) => usage?.repositories.find((r) => r.repository === name);
    const { oldShared, orphan } = blobs as Record<string, Written>;
    // Both app (its history) and team/web (an untagged image) drop the shared old layer: it is in both rows.
    const rows = usage?.repositories.reduce((n, r) => n + r.reclaimableBytes, 0) ?? 0;
    expect(rows - (usage?.totals.reclaimableBytes ?? 0)).toBe(oldShared!.size - orphan!.size);
    expect(row('app')?.uniqueBytes).toBeLessThan(row('app')?.bytes ?? 0);
    // The repository of layer links alone references nothing.
    expect(row('links/only')).toEqual({ repository: 'links/only', tags: 0, manifests: 0, bytes: 0, uniqueBytes: 0, reclaimableBytes: 0 });
    expect(usage?.repositories.map((r) => r.bytes)).toEqual([...(usage?.repositories.map((r) => r.bytes) ?? [])].sort((a, b) => b - a));
  });

  it('reclaimable follows the plan the other options make: -x base frees its own blobs, not the layer others keep', async () => {
    const planned = await planTree(filesystemSource(root), { usage: true, registryVersion: '2.8.2', remove: [parseSelector('base')] });
    const baseRow = planned.usage?.repositories.find((r) => r.repository === 'base');
    const { baseImage, base } = blobs as Record<string, Written>;
    const own = [baseImage!.digest, ...(await references(baseImage!.digest))].filter((d) => d !== base!.digest);
    const ownBytes = (await Promise.all(own.map((d) => fs.stat(blobData(d))))).reduce((n, s) => n + s.size, 0);
    expect(baseRow?.reclaimableBytes).toBe(ownBytes);
    expect(baseRow?.uniqueBytes).toBe(ownBytes);
    expect(planned.usage?.totals.reclaimableBytes).toBe(planned.predicted.bytes);
    expect(await snapshot(root)).toEqual(before);
  });

  it('reads the same with the scan in threads', async () => {
    const pool = await distPool(3);
    try {
      expect((await planTree(filesystemSource(root, pool), { usage: true, registryVersion: '2.8.2' })).usage).toEqual(await expectedUsage(root));
    } finally {
      await pool.close();
    }
  });

  it('is not computed without usage', async () => {
    expect((await planTree(filesystemSource(root), { registryVersion: '2.8.2' })).usage).toBeUndefined();
  });
});
