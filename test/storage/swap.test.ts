/**
 * Taking most of a directory's entries out in a few renames, and undoing a
 * swap a dead run left halfway, on a real filesystem.
 */
import type { Stats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TreeWriter, seededBytes } from '../../scripts/sampleTree.js';
import { applyPlan } from '../../src/apply/apply.js';
import { restoreJournal } from '../../src/apply/restore.js';
import { Remover, trashFor } from '../../src/apply/trash.js';
import { planTree } from '../../src/plan/planTree.js';
import { SwapLog, undoSwaps, worthSwapping } from '../../src/storage/fs/swap.js';
import { snapshot, tempDir } from '../support/tmp.js';
import { linksOfTaken } from '../support/layerLinks.js';
import { filesystemSource } from '../../src/storage/fs/source.js';

let root: string;

beforeEach(async () => {
  root = await tempDir();
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function dirWith(names: string[], mode = 0o750): Promise<string> {
  const dir = path.join(root, 'dir');
  await fs.mkdir(dir);
  await fs.chmod(dir, mode);
  for (const n of names) await fs.writeFile(path.join(dir, n), n);
  return dir;
}

/** Swaps `dir` into `trash`, keeping `keep`, as the Remover does; returns where the rest went. */
async function swap(dir: string, trash: string, keep: string[]): Promise<string> {
  const names = await fs.readdir(dir);
  const stat = worthSwapping(dir, names.length, names.length - keep.length);
  if (!stat) throw new Error('not worth swapping');
  const log = new SwapLog(trash);
  try {
    return path.join(trash, log.swapOut(dir, stat, keep) as string);
  } finally {
    log.close();
  }
}

describe('SwapLog.swapOut', () => {
  it.each([0o750, 0o2775, 0o700])('leaves exactly the kept entries in a directory of the same owner and mode (%o), the rest aside', async (mode) => {
    const names = Array.from({ length: 20 }, (_, i) => `e${i}`);
    const dir = await dirWith(names, mode);
    const before = await fs.stat(dir);
    const trash = path.join(root, 'trash');
    await fs.mkdir(trash);
    const aside = await swap(dir, trash, ['e3', 'e7']);
    expect((await fs.readdir(dir)).sort()).toEqual(['e3', 'e7']);
    expect((await fs.readdir(aside)).length).toBe(18);
    const after = await fs.stat(dir);
    expect({ mode: after.mode, uid: after.uid, gid: after.gid }).toEqual({ mode: before.mode, uid: before.uid, gid: before.gid });
    expect(await fs.readFile(path.join(dir, 'e3'), 'utf8')).toBe('e3');
    // Announced and finished in the log: nothing for a recovery to undo.
    expect((await fs.readFile(path.join(trash, 'swaps.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([
      ['swap', aside, dir],
      ['done', aside],
    ]);
    expect(undoSwaps(trash)).toBe(0);
  });

  it('puts a spare made before the window into place instead of a mkdir, of the same owner and mode', async () => {
    const dir = await dirWith(Array.from({ length: 20 }, (_, i) => `e${i}`), 0o2770);
    const before = await fs.stat(dir);
    const trash = path.join(root, 'trash');
    const log = new SwapLog(trash);
    try {
      log.prepareSpares(dir, 2);
      expect((await fs.readdir(trash)).sort()).toEqual(['spare-0', 'spare-1']);
      log.swapOut(dir, before, ['e1']);
    } finally {
      log.close();
    }
    expect((await fs.readdir(trash)).filter((n) => n.startsWith('spare-'))).toEqual(['spare-0']);
    const after = await fs.stat(dir);
    expect({ mode: after.mode, uid: after.uid, gid: after.gid }).toEqual({ mode: before.mode, uid: before.uid, gid: before.gid });
    expect(await fs.readdir(dir)).toEqual(['e1']);
  });

  it('is worth it only when a directory loses many more entries than it keeps', async () => {
    const dir = await dirWith(['a']);
    expect(worthSwapping(dir, 100, 90)).toBeDefined();
    expect(worthSwapping(dir, 100, 50)).toBeUndefined();
    expect(worthSwapping(dir, 10, 9)).toBeDefined();
    expect(worthSwapping(dir, 8, 8)).toBeDefined();
    expect(worthSwapping(dir, 7, 7)).toBeUndefined();
    expect(worthSwapping(path.join(root, 'nope'), 100, 100)).toBeUndefined();
  });
});

describe('SwapLog.announce', () => {
  it('puts the swaps a window may make on disk before it, each with an aside of its own; one never made is undone as nothing', async () => {
    const one = await dirWith(Array.from({ length: 12 }, (_, i) => `a${i}`));
    const two = path.join(root, 'two');
    const trash = path.join(root, 'trash');
    await fs.mkdir(trash);
    const log = new SwapLog(trash);
    expect(log.announce([one, two])).toBe(true);
    const announced = (await fs.readFile(path.join(trash, 'swaps.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as string[]);
    expect(announced).toEqual([
      ['swap', path.join(trash, 'aside-0'), one],
      ['swap', path.join(trash, 'aside-1'), two],
    ]);
    // The swap itself writes no announcement of its own: it uses the one on disk.
    expect(log.swapOut(one, (worthSwapping(one, 12, 11) as Stats), ['a0'])).toBe('aside-0');
    log.close();
    const lines = (await fs.readFile(path.join(trash, 'swaps.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as string[]);
    expect(lines.slice(2)).toEqual([['done', path.join(trash, 'aside-0')]]);
    expect(await fs.readdir(one)).toEqual(['a0']);
    // A run that died here: the announced swap of `two` never happened, and its recovery moves nothing.
    expect(undoSwaps(trash)).toBe(0);
    await expect(fs.stat(two)).rejects.toThrow();
  });
});

describe('undoSwaps', () => {
  it('puts back every entry of a swap a run died in, before its kept entries came back', async () => {
    const dir = await dirWith(['a', 'b', 'c', 'keep']);
    const trash = path.join(root, 'trash');
    await fs.mkdir(path.join(trash, 'swept'), { recursive: true });
    const aside = path.join(trash, 'swept', '0');
    const finished = path.join(trash, 'swept', 'finished');
    // What the log holds at a SIGKILL: a finished swap, the next one announced, and a third cut short while announced.
    const lines = [['swap', finished, path.join(root, 'other')], ['done', finished], ['swap', aside, dir]].map((l) => JSON.stringify(l));
    await fs.writeFile(path.join(trash, 'swaps.jsonl'), `${lines.join('\n')}\n["swap","${path.join(trash, 'swept', '1')}"`);
    // What swapOut did of the announced one: the directory aside, the new one, one kept entry back of two.
    await fs.rename(dir, aside);
    await fs.mkdir(dir);
    await fs.rename(path.join(aside, 'keep'), path.join(dir, 'keep'));

    expect(undoSwaps(trash)).toBe(1);

    expect((await fs.readdir(dir)).sort()).toEqual(['a', 'b', 'c', 'keep']);
    expect(await fs.readdir(aside)).toEqual([]);
    await expect(fs.stat(path.join(root, 'other'))).rejects.toThrow();
    // Marked done: a second recovery has nothing to do.
    expect(undoSwaps(trash)).toBe(0);
  });

  it('leaves a directory alone (nothing to put back) when the run died between announcing and moving it', async () => {
    const dir = await dirWith(['a', 'keep']);
    const trash = path.join(root, 'trash');
    await fs.mkdir(trash);
    await fs.writeFile(path.join(trash, 'swaps.jsonl'), `${JSON.stringify(['swap', path.join(trash, 'x'), dir])}\n`);
    expect(undoSwaps(trash)).toBe(0);
    expect((await fs.readdir(dir)).sort()).toEqual(['a', 'keep']);
  });

  it('does nothing without a trash or a log', async () => {
    expect(undoSwaps(undefined)).toBe(0);
    expect(undoSwaps(root)).toBe(0);
  });
});

describe('the apply and the builtin sweep take most of a directory at once', () => {
  it('removes 30 of 31 revisions and their blobs by swaps, journals them, and a restore gives the same tree back', async () => {
    const w = await new TreeWriter(root).init();
    for (let i = 0; i < 30; i++) await w.image('app', { seed: `old ${i}`, layers: 1 });
    await w.image('app', { seed: 'new', tag: 'latest', layers: 1 });
    await w.blob(seededBytes('orphan', 100));
    const before = await snapshot(path.join(root, 'docker'));
    const planned = await planTree(filesystemSource(root), { registryVersion: '2.8.2', builtin: true, recentAfter: Infinity });
    const quarantine = trashFor(root, 3_600_000);
    const remover = Remover.open(root, { trash: quarantine });
    const revisions = w.layout.pathFor({ kind: 'revisions', name: 'app' });
    const layers = w.layout.pathFor({ kind: 'layerAlgorithm', name: 'app' });
    try {
      const applied = await applyPlan(root, planned.plan, { remover });
      expect(applied.manifests).toHaveLength(30);
      const { sweepBlobs, sweepLayerLinks } = await import('../../src/apply/blobSweep.js');
      const swept = await sweepBlobs(root, { swept: planned.sweptDigests(), isMarked: planned.isMarked, sizeOf: planned.sizeOf, remover });
      const links = sweepLayerLinks(root, linksOfTaken(swept), remover);
      expect(swept.blobs).toBe(planned.predicted.blobs);
      expect(links.layerLinks).toBeGreaterThan(30);
    } finally {
      remover.close();
    }
    // The revisions by a swap, the kept one back; the _layers links one by one after the window.
    expect(await fs.readdir(revisions)).toHaveLength(1);
    expect((await fs.readdir(layers)).length).toBeLessThan(5);
    expect(undoSwaps(quarantine)).toBe(0);

    await restoreJournal(root, quarantine);
    expect(await snapshot(path.join(root, 'docker'))).toEqual(before);
  });
});

describe('twins: a spare filled before the window with what the directory keeps', () => {
  /** A prefix-like directory: `n` entries, each a directory of one `data` file, mode 0750, the entries' files written with their names. */
  async function entriesDir(n: number): Promise<string> {
    const dir = path.join(root, 'prefix');
    await fs.mkdir(dir);
    for (let i = 0; i < n; i++) {
      await fs.mkdir(path.join(dir, `e${i}`), { mode: 0o750 });
      await fs.writeFile(path.join(dir, `e${i}`, 'data'), `e${i}`);
    }
    return dir;
  }
  const inodeOf = async (file: string): Promise<number> => (await fs.stat(file)).ino;

  it('makes the swap two renames: the kept entries are twins holding the same files, everything else aside', async () => {
    const dir = await entriesDir(20);
    const trash = path.join(root, 'trash');
    await fs.mkdir(trash);
    const kept = ['e2', 'e5'];
    const inodes = await Promise.all(kept.map((k) => inodeOf(path.join(dir, k, 'data'))));
    const before = await fs.stat(path.join(dir, 'e2'));
    const log = new SwapLog(trash);
    let aside: string;
    try {
      expect(log.prepareTwins(dir, (name) => kept.includes(name), 'data')).toBe(true);
      aside = path.join(trash, log.swapOut(dir, (await fs.stat(dir)) as Stats, kept) as string);
    } finally {
      log.close();
    }
    expect((await fs.readdir(dir)).sort()).toEqual(kept);
    // The same files (one inode each, so the same bytes and mtime), in new directories of the same owner and mode.
    expect(await Promise.all(kept.map((k) => inodeOf(path.join(dir, k, 'data'))))).toEqual(inodes);
    const after = await fs.stat(path.join(dir, 'e2'));
    expect(after.ino).not.toBe(before.ino);
    expect({ mode: after.mode, uid: after.uid, gid: after.gid }).toEqual({ mode: before.mode, uid: before.uid, gid: before.gid });
    // Nothing was renamed back: the originals of the kept entries went aside with the rest.
    expect((await fs.readdir(aside)).length).toBe(20);
    expect(undoSwaps(trash)).toBe(0);
  });

  it('makes no more twins than the run may hold in memory: a directory beyond the budget is renamed back as before, still right', async () => {
    const dir = await entriesDir(20);
    const trash = path.join(root, 'trash');
    await fs.mkdir(trash);
    const kept = ['e1', 'e2', 'e3'];
    const dirInodes = await Promise.all(kept.map((k) => inodeOf(path.join(dir, k))));
    const first = path.join(root, 'first');
    await fs.mkdir(path.join(first, 'x'), { recursive: true });
    await fs.writeFile(path.join(first, 'x', 'data'), 'x');
    const log = new SwapLog(trash, 3);
    try {
      expect(log.prepareTwins(first, () => true, 'data')).toBe(true);
      // One twin made: two left, fewer than this directory keeps.
      expect(log.prepareTwins(dir, (name) => kept.includes(name), 'data')).toBe(false);
      log.announce([dir]);
      expect(log.swapOut(dir, (await fs.stat(dir)) as Stats, kept)).toBeDefined();
    } finally {
      log.close();
    }
    // No twins for it: the kept entries themselves were renamed back.
    expect((await fs.readdir(dir)).sort()).toEqual(kept);
    expect(await Promise.all(kept.map((k) => inodeOf(path.join(dir, k))))).toEqual(dirInodes);
  });

  it('renames back what has no twin: an entry of another shape, and one new since; a twin of an entry gone since is dropped', async () => {
    const dir = await entriesDir(20);
    await fs.writeFile(path.join(dir, 'e3', 'extra'), 'x'); // two files: no twin
    await fs.rm(path.join(dir, 'e4', 'data'));
    await fs.symlink('/etc/hostname', path.join(dir, 'e4', 'data')); // not a regular file: no twin
    const trash = path.join(root, 'trash');
    await fs.mkdir(trash);
    const log = new SwapLog(trash);
    try {
      log.prepareTwins(dir, (name) => ['e1', 'e3', 'e4', 'e6'].includes(name), 'data');
      await fs.rm(path.join(dir, 'e6'), { recursive: true }); // gone since: its twin must not come back
      await fs.mkdir(path.join(dir, 'new'));
      await fs.writeFile(path.join(dir, 'new', 'data'), 'new'); // new since: no twin, renamed back
      const e3 = await inodeOf(path.join(dir, 'e3'));
      log.swapOut(dir, (await fs.stat(dir)) as Stats, ['e1', 'e3', 'e4', 'new']);
      expect(await inodeOf(path.join(dir, 'e3'))).toBe(e3);
    } finally {
      log.close();
    }
    expect((await fs.readdir(dir)).sort()).toEqual(['e1', 'e3', 'e4', 'new']);
    expect((await fs.readdir(path.join(dir, 'e3'))).sort()).toEqual(['data', 'extra']);
    expect(await fs.readlink(path.join(dir, 'e4', 'data'))).toBe('/etc/hostname');
    expect(await fs.readFile(path.join(dir, 'new', 'data'), 'utf8')).toBe('new');
  });

  it('a swap a run died in after the twins took the place: the recovery leaves every entry, twins standing for their originals', async () => {
    const dir = await entriesDir(12);
    const trash = path.join(root, 'trash');
    await fs.mkdir(trash);
    const log = new SwapLog(trash);
    expect(log.announce([dir])).toBe(true);
    expect(log.prepareTwins(dir, (name) => name === 'e0' || name === 'e1', 'data')).toBe(true);
    log.close();
    // What swapOut does up to a SIGKILL after its second rename: the directory aside, the filled spare in its place.
    const [spare] = (await fs.readdir(trash)).filter((n) => n.startsWith('spare-'));
    await fs.rename(dir, path.join(trash, 'aside-0'));
    await fs.rename(path.join(trash, spare as string), dir);
    expect((await fs.readdir(dir)).sort()).toEqual(['e0', 'e1']);

    expect(undoSwaps(trash)).toBe(1);
    expect((await fs.readdir(dir)).sort()).toEqual(Array.from({ length: 12 }, (_, i) => `e${i}`).sort());
    for (let i = 0; i < 12; i++) expect(await fs.readFile(path.join(dir, `e${i}`, 'data'), 'utf8')).toBe(`e${i}`);
    // The originals of the twins are left aside: the trash's to delete, and deleting them deletes no data.
    await fs.rm(trash, { recursive: true });
    expect(await fs.readFile(path.join(dir, 'e0', 'data'), 'utf8')).toBe('e0');
  });

  it('the Remover fills a spare with twins of the revisions a repository keeps, but not in a quarantine', async () => {
    const w = await new TreeWriter(path.join(root, 'tree')).init();
    for (let i = 0; i < 12; i++) await w.image('app', { seed: `old ${i}` });
    await w.image('app', { seed: 'new', tag: 'latest' });
    const revisions = w.layout.pathFor({ kind: 'revisions', name: 'app' });
    const keptHex = (await fs.readdir(revisions)).slice(0, 1);
    for (const quarantineMs of [undefined, 3_600_000]) {
      const trash = trashFor(w.layout.root, quarantineMs);
      const remover = Remover.open(w.layout.root, { trash });
      remover.prepareSwaps(w.layout.pathFor({ kind: 'blobAlgorithm' }), [{ dir: revisions, removing: (hex) => !keptHex.includes(hex), leaf: 'link' }]);
      const spares = (await fs.readdir(trash)).filter((n) => n.startsWith('spare-'));
      const inSpares = (await Promise.all(spares.map((s) => fs.readdir(path.join(trash, s))))).flat();
      expect(inSpares, String(quarantineMs)).toEqual(quarantineMs === undefined ? keptHex : []);
      remover.close();
      await fs.rm(trash, { recursive: true });
    }
  });
});
