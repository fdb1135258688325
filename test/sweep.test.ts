/**
 * One run, start to end, on a tree written file by file (no registry): what
 * the report says when a part after the removals fails.
 */
import fs from 'node:fs/promises';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { TreeWriter } from '../scripts/sampleTree.js';
import type { BlobCache } from '../src/gc/blobCache.js';
import { sweep } from '../src/sweep.js';
import { tempDir } from './support/tmp.js';
import { filesystemRun } from '../src/run/filesystem.js';

let root: string;
beforeEach(async () => {
  root = await tempDir();
  const w = await new TreeWriter(root).init();
  await w.image('app', { seed: 'old', tag: 'latest' });
  await w.image('app', { seed: 'new', tag: 'latest' });
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

it('reports a blob cache that fails to forget as a problem, after the registry is back, with the purge done', async () => {
  const seen: string[][] = [];
  const failing: BlobCache = {
    where: 'redis://127.0.0.1:1/0',
    check: async () => {},
    forget: async (swept) => {
      seen.push([...swept]);
      throw new Error('cannot clear the Redis blob cache at redis://127.0.0.1:1/0: connection lost; delete blobs::<digest> of the swept blobs by hand');
    },
    close: async () => {},
  };
  const report = await sweep({ target: { kind: 'path', name: root, root }, storage: filesystemRun(root), dryRun: false, builtin: { graceMs: 0 }, blobCache: failing });
  expect(seen).toHaveLength(1);
  expect(seen[0]?.length).toBe(report.predicted.blobs);
  expect(report.problems.map((p) => p.message)).toEqual([expect.stringMatching(/cannot clear the Redis blob cache .*by hand/)]);
  expect(report.blobCache).toBeNull();
  expect(report.freed).toEqual(report.predicted);
  expect(report.plan.manifests.length).toBe(1);
});
