/**
 * The scan in worker threads reads exactly what the scan in one thread reads,
 * problems included. Workers run compiled code, so the thread pools come from
 * dist/ (typed as their source); everything else runs from source.
 */
import fs from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TreeWriter, seededBytes } from '../../scripts/sampleTree.js';
import { UNREFERENCED, measureTree, planTree } from '../../src/plan/planTree.js';
import { runScanWork } from '../../src/storage/fs/scan.js';
import type { ScanPool } from '../../src/storage/fs/scanPool.js';
import { keepsUntagged, planPurge, predictCollect, reclaimByRepository, scan } from '../support/inventory.js';
import { tempDir } from '../support/tmp.js';
import { filesystemSource } from '../../src/storage/fs/source.js';

/** A pool of `threads` threads from the compiled code, so its workers can start. */
async function distPool(threads: number, runHere?: Parameters<typeof import('../../src/storage/fs/scanPool.js').openScanPool>[1]): Promise<ScanPool> {
  const compiled = '../../dist/src/storage/fs/scanPool.js';
  const { openScanPool } = (await import(compiled)) as typeof import('../../src/storage/fs/scanPool.js');
  return openScanPool(threads, runHere);
}

let root: string;
beforeAll(async () => {
  root = await tempDir();
  const w = await new TreeWriter(root).init();
  for (let r = 0; r < 12; r++) {
    const name = r % 3 === 0 ? `ns/repo${r}` : `repo${r}`;
    const children = [await w.image(name, { seed: `${r}a` }), await w.image(name, { seed: `${r}b` })];
    await w.index(name, children, { tag: 'multi' });
    await w.image(name, { seed: `${r}old`, tag: 'latest' });
    await w.image(name, { seed: `${r}new`, tag: 'latest' });
  }
  await w.writeRaw({ kind: 'tagCurrentLink', name: 'repo1', tag: 'latest' }, 'garbage');
  await w.manifest('repo2', { schemaVersion: 2, mediaType: 'application/x-unknown', x: 1 }, 'x');
  await w.blob(seededBytes('orphan', 500));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

it('gives the same inventory with 1 and with 3 threads', async () => {
  const pool = await distPool(3);
  try {
    const one = await scan(root, { concurrency: 1 });
    const three = await scan(root, { pool });
    expect(three).toEqual(one);
    expect(one.repositories).toHaveLength(12);
    expect(one.repositories.find((r) => r.name === 'repo1')?.problems[0]?.message).toMatch(/current link of tag latest holds "garbage"/);
    expect(one.repositories.find((r) => r.name === 'repo2')?.problems[0]?.message).toMatch(/unknown media type/);
  } finally {
    await pool.close();
  }
});

async function healthyTree(): Promise<string> {
  const dir = await tempDir();
  const w = await new TreeWriter(dir).init();
  const base = await w.blob(seededBytes('shared base', 3000));
  for (let r = 0; r < 9; r++) {
    const name = r % 3 === 0 ? `ns/repo${r}` : `repo${r}`;
    const children = [await w.image(name, { seed: `${r}a`, shared: [base] }), await w.image(name, { seed: `${r}b` })];
    await w.index(name, children, { tag: 'multi' });
    await w.image(name, { seed: `${r}old`, tag: 'latest', shared: [base] });
    await w.image(name, { seed: `${r}new`, tag: 'latest' });
    await w.image(name, { seed: `${r}loose` });
  }
  await w.blob(seededBytes('orphan', 700));
  return dir;
}

it('plans and predicts in one streaming pass exactly what the whole-inventory functions give', async () => {
  const healthy = await healthyTree();
  const threads = await distPool(3);
  try {
    for (const tree of [root, healthy]) {
      const inventory = await scan(tree);
      const plan = planPurge(inventory);
      const predicted = predictCollect(inventory, plan, '2.8.2');
      for (const pool of [undefined, threads]) {
        const s = await planTree(filesystemSource(tree, pool), { registryVersion: '2.8.2' });
        expect(JSON.parse(JSON.stringify(s.plan))).toEqual(JSON.parse(JSON.stringify(plan)));
        expect(s.plan.manifests.length).toBeGreaterThan(0);
        expect(s.predicted).toEqual({ blobs: predicted.blobs, bytes: predicted.bytes, recent: predicted.recent, blockedBy: predicted.blockedBy });
        expect(s.perRepository).toEqual(reclaimByRepository(inventory, plan, '2.8.2'));
        expect(s.keepsUntagged).toBe(keepsUntagged(inventory, plan));
        expect(s.before).toEqual({
          repositories: inventory.repositories.length,
          tags: inventory.repositories.reduce((n, r) => n + r.tags.length, 0),
          manifests: inventory.repositories.reduce((n, r) => n + r.revisions.length, 0),
          blobs: inventory.blobs.size,
          bytes: [...inventory.blobs.values()].reduce((n, b) => n + b, 0),
        });
      }
      if (tree === healthy) {
        // The healthy tree really predicts something, split over repositories and the orphan.
        expect(predicted.blockedBy).toEqual([]);
        expect(predicted.blobs).toBeGreaterThan(9);
        const rows = reclaimByRepository(inventory, plan, '2.8.2');
        expect(rows.map((r) => r.repository)).toContain(UNREFERENCED);
        expect(rows.reduce((n, r) => n + r.predictedBytes, 0)).toBe(predicted.bytes);
      }
    }
  } finally {
    await threads.close();
    await fs.rm(healthy, { recursive: true, force: true });
  }
});

it('reuses threads the caller started for every walk, and leaves them open', async () => {
  const started = await distPool(2);
  expect(started.threads).toBe(2);
  let tasks = 0;
  let closed = 0;
  const pool: ScanPool = {
    threads: started.threads,
    repository: (...args) => (tasks++, started.repository(...args)),
    blobs: (...args) => (tasks++, started.blobs(...args)),
    rest: () => started.rest(),
    close: async () => {
      closed++;
    },
  };
  try {
    const alone = await scan(root, { concurrency: 1 });
    // Two walks through one pool, as a run does (its scan, then the rescan after garbage-collect).
    expect(await scan(root, { pool })).toEqual(alone);
    const afterFirst = tasks;
    expect(afterFirst).toBeGreaterThan(12);
    const planned = await planTree(filesystemSource(root, pool));
    expect(tasks).toBeGreaterThan(afterFirst);
    expect(await measureTree(filesystemSource(root, pool))).toEqual(planned.before);
    // Rested between walks (a real run's window), its workers start again for the next.
    await pool.rest();
    await pool.rest();
    const rested = tasks;
    expect(await measureTree(filesystemSource(root, pool))).toEqual(planned.before);
    expect(tasks).toBeGreaterThan(rested);
    expect(closed).toBe(0);
  } finally {
    await started.close();
  }
  // Closed, it refuses work instead of hanging.
  await expect(started.blobs(root, ['00'], Infinity)).rejects.toThrow();
});

it('reads in this thread too, next to the workers, and gets the same inventory', async () => {
  let local = 0;
  let all = 0;
  const pool = await distPool(2, (work) => (local++, runScanWork(work)));
  const counted: ScanPool = {
    threads: pool.threads,
    repository: (...args) => (all++, pool.repository(...args)),
    blobs: (...args) => (all++, pool.blobs(...args)),
    rest: () => pool.rest(),
    close: () => pool.close(),
  };
  let afterRest = { local: 0, all: 0 };
  try {
    expect(await scan(root, { pool: counted })).toEqual(await scan(root, { concurrency: 1 }));
    // Rested (its worker ended), the next walk starts a worker again: not everything runs here.
    await counted.rest();
    const before = { local, all };
    expect(await scan(root, { pool: counted })).toEqual(await scan(root, { concurrency: 1 }));
    afterRest = { local: local - before.local, all: all - before.all };
  } finally {
    await pool.close();
  }
  expect(local).toBeGreaterThan(0);
  // The worker took its share: at least the units handed to it before this thread took any.
  expect(local).toBeLessThan(all);
  expect(afterRest.local).toBeLessThan(afterRest.all);
});
