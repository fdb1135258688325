/**
 * Taking most of a directory's entries out in a few renames, and undoing a
 * swap a dead run left halfway, on a real filesystem.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TreeWriter, seededBytes } from '../../scripts/sampleTree.js';
import { applyPlan } from '../../src/apply/apply.js';
import { restoreJournal } from '../../src/apply/restore.js';
import { Remover, trashFor } from '../../src/apply/trash.js';
import { planTree } from '../../src/plan/planTree.js';
import { swapOut, undoSwaps, worthSwapping } from '../../src/storage/swap.js';
import { snapshot, tempDir } from '../support/tmp.js';

let root: string;

beforeEach(async () => {
  root = await tempDir();
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function dirWith(names: string[]): Promise<string> {
  const dir = path.join(root, 'dir');
  await fs.mkdir(dir, { mode: 0o750 });
  for (const n of names) await fs.writeFile(path.join(dir, n), n);
  return dir;
}

describe('swapOut', () => {
  it('leaves exactly the kept entries in a directory of the same mode, the rest aside, and no marker', async () => {
    const names = Array.from({ length: 20 }, (_, i) => `e${i}`);
    const dir = await dirWith(names);
    const before = await fs.stat(dir);
    const aside = path.join(root, 'aside');
    swapOut(dir, aside, ['e3', 'e7']);
    expect((await fs.readdir(dir)).sort()).toEqual(['e3', 'e7']);
    expect((await fs.readdir(aside)).length).toBe(18);
    const after = await fs.stat(dir);
    expect({ mode: after.mode, uid: after.uid, gid: after.gid }).toEqual({ mode: before.mode, uid: before.uid, gid: before.gid });
    expect(await fs.readFile(path.join(dir, 'e3'), 'utf8')).toBe('e3');
    await expect(fs.stat(`${aside}.origin`)).rejects.toThrow();
  });

  it('is worth it only when a directory loses many more entries than it keeps', async () => {
    const dir = await dirWith(['a']);
    expect(worthSwapping(dir, 100, 90)).toBe(true);
    expect(worthSwapping(dir, 100, 50)).toBe(false);
    expect(worthSwapping(dir, 10, 9)).toBe(true);
    expect(worthSwapping(dir, 8, 8)).toBe(true);
    expect(worthSwapping(dir, 7, 7)).toBe(false);
    expect(worthSwapping(path.join(root, 'nope'), 100, 100)).toBe(false);
  });
});

describe('undoSwaps', () => {
  it('puts back every entry of a swap a run died in, before its kept entries came back', async () => {
    const dir = await dirWith(['a', 'b', 'c', 'keep']);
    const trash = path.join(root, 'trash');
    await fs.mkdir(path.join(trash, 'swept'), { recursive: true });
    const aside = path.join(trash, 'swept', '0');
    // What swapOut does up to a SIGKILL: the intent, the directory aside, the new one, one kept entry back of two.
    await fs.writeFile(`${aside}.origin`, dir);
    await fs.rename(dir, aside);
    await fs.mkdir(dir);
    await fs.rename(path.join(aside, 'keep'), path.join(dir, 'keep'));

    expect(undoSwaps(trash)).toBe(1);

    expect((await fs.readdir(dir)).sort()).toEqual(['a', 'b', 'c', 'keep']);
    expect(await fs.readdir(path.join(trash, 'swept'))).toEqual(['0']);
    expect(await fs.readdir(aside)).toEqual([]);
    expect(undoSwaps(trash)).toBe(0);
  });

  it('does nothing for a finished swap or without a trash', async () => {
    const dir = await dirWith(Array.from({ length: 12 }, (_, i) => `e${i}`));
    const trash = path.join(root, 'trash');
    await fs.mkdir(trash);
    swapOut(dir, path.join(trash, 'x'), ['e1']);
    expect(undoSwaps(trash)).toBe(0);
    expect(await fs.readdir(dir)).toEqual(['e1']);
    expect(undoSwaps(undefined)).toBe(0);
  });
});

describe('the apply and the builtin sweep take most of a directory at once', () => {
  it('removes 30 of 31 revisions and their blobs by swaps, journals them, and a restore gives the same tree back', async () => {
    const w = await new TreeWriter(root).init();
    for (let i = 0; i < 30; i++) await w.image('app', { seed: `old ${i}`, layers: 1 });
    await w.image('app', { seed: 'new', tag: 'latest', layers: 1 });
    await w.blob(seededBytes('orphan', 100));
    const before = await snapshot(path.join(root, 'docker'));
    const planned = await planTree(root, { registryVersion: '2.8.2', builtin: true, recentAfter: Infinity });
    const quarantine = trashFor(root, 3_600_000);
    const remover = Remover.open(root, { trash: quarantine });
    const revisions = w.layout.pathFor({ kind: 'revisions', name: 'app' });
    const layers = w.layout.pathFor({ kind: 'layerAlgorithm', name: 'app' });
    try {
      const applied = await applyPlan(root, planned.plan, { remover });
      expect(applied.manifests).toHaveLength(30);
      const { sweepBlobs } = await import('../../src/apply/blobSweep.js');
      const swept = await sweepBlobs(root, { swept: planned.sweptDigests(), isMarked: planned.isMarked, sizeOf: planned.sizeOf, remover });
      expect(swept.blobs).toBe(planned.predicted.blobs);
      expect(swept.layerLinks).toBeGreaterThan(30);
    } finally {
      remover.close();
    }
    // The swaps: one aside directory each for the revisions and for the _layers links, and the kept entries back.
    expect(await fs.readdir(revisions)).toHaveLength(1);
    expect((await fs.readdir(layers)).length).toBeLessThan(5);
    expect((await fs.readdir(path.join(quarantine, 'swept'))).filter((n) => n.endsWith('.origin'))).toEqual([]);

    await restoreJournal(root, quarantine);
    expect(await snapshot(path.join(root, 'docker'))).toEqual(before);
  });
});
