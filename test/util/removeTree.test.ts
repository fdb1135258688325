/**
 * removeTree: a directory tree deleted a few entries at a time, as a trash of
 * millions is emptied: everything below goes, symbolic links are removed and
 * never followed, a missing path is nothing to do.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { removeTree } from '../../src/util/removeTree.js';
import { tempDir } from '../support/tmp.js';

let base: string;
beforeEach(async () => {
  base = await tempDir('regsweep-removetree-');
});
afterEach(async () => {
  await fs.rm(base, { recursive: true, force: true });
});

it('deletes a tree with a wide directory, nested ones, empty ones and links, and follows no link', async () => {
  const trash = path.join(base, 'trash');
  const wide = path.join(trash, 'swept');
  await fs.mkdir(wide, { recursive: true });
  // Wider than one read of the directory (256 entries): the listing is read in pieces while entries go.
  for (let i = 0; i < 3000; i++) {
    const entry = path.join(wide, `e${i}`);
    await fs.mkdir(entry);
    await fs.writeFile(path.join(entry, 'data'), `${i}`);
  }
  await fs.mkdir(path.join(trash, 'aside-1', 'a', 'b', 'c', 'empty'), { recursive: true });
  await fs.writeFile(path.join(trash, 'aside-1', 'a', 'b', 'c', 'f'), 'x');
  const outside = path.join(base, 'keep');
  await fs.mkdir(outside);
  await fs.writeFile(path.join(outside, 'precious'), 'y');
  await fs.symlink(outside, path.join(trash, 'aside-1', 'to-dir'));
  await fs.symlink(path.join(outside, 'precious'), path.join(wide, 'to-file'));
  await fs.symlink(path.join(base, 'nowhere'), path.join(wide, 'dangling'));

  removeTree(trash);

  await expect(fs.lstat(trash)).rejects.toMatchObject({ code: 'ENOENT' });
  expect(await fs.readFile(path.join(outside, 'precious'), 'utf8')).toBe('y');
  expect(await fs.readdir(base)).toEqual(['keep']);
});

it('deletes a lone file or link, and does nothing for a missing path', async () => {
  const file = path.join(base, 'f');
  await fs.writeFile(file, 'z');
  removeTree(file);
  removeTree(path.join(base, 'missing'));
  await fs.symlink(base, path.join(base, 'loop'));
  removeTree(path.join(base, 'loop'));
  expect(await fs.readdir(base)).toEqual([]);
});
