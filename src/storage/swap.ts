/**
 * Taking many entries out of one directory in few metadata operations: the
 * directory goes aside into the trash whole (one rename), a new one takes its
 * place with the same owner and mode, and only the entries that stay are
 * renamed back. Where a directory keeps few entries and loses many (a blob
 * prefix directory, a repository's revisions), that is a fraction of one
 * rename per removed entry, inside the window where every operation counts.
 *
 * Between the first rename and the last, the entries that stay are not where
 * the registry looks. So the intent is written first (`<aside>.origin`, in
 * the trash), and removed last; a run that dies halfway leaves it, and
 * whoever brings the registry back (the watchdog, the next run) undoes the
 * swap with undoSwaps before the registry serves again: every entry goes back,
 * which at worst sweeps less.
 */
import fs from 'node:fs';
import path from 'node:path';
import { errnoOf, isMissing } from '../util/errno.js';

const ORIGIN = '.origin';

/** Swapping pays when the directory loses this many more entries than it keeps (and this process can give the new one its owner). */
const WORTH = 8;

/** Can this process give a new directory the owner and mode of `stat`? */
function canRecreate(stat: fs.Stats): boolean {
  const uid = process.getuid?.();
  return uid === 0 || uid === stat.uid;
}

/** Should the `removing` entries of `dir`, which holds `total`, go by a swap? */
export function worthSwapping(dir: string, total: number, removing: number): boolean {
  if (removing - (total - removing) < WORTH) return false;
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  return stat !== undefined && canRecreate(stat);
}

/**
 * Moves `dir` to `aside` (a path in the trash, which must not exist) and
 * every entry of `keep` back into a new `dir`. The caller journals what went.
 */
export function swapOut(dir: string, aside: string, keep: Iterable<string>): void {
  const stat = fs.statSync(dir);
  fs.writeFileSync(`${aside}${ORIGIN}`, dir);
  fs.renameSync(dir, aside);
  fs.mkdirSync(dir);
  fs.chownSync(dir, stat.uid, stat.gid);
  fs.chmodSync(dir, stat.mode & 0o7777);
  for (const name of keep) fs.renameSync(path.join(aside, name), path.join(dir, name));
  fs.unlinkSync(`${aside}${ORIGIN}`);
}

/** Moves back every entry of an aside directory its origin lacks. */
function undoOne(aside: string, origin: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(aside);
  } catch (error) {
    if (isMissing(error)) return; // the run died before moving the directory aside
    throw error;
  }
  fs.mkdirSync(origin, { recursive: true });
  for (const name of names) {
    try {
      fs.renameSync(path.join(aside, name), path.join(origin, name));
    } catch (error) {
      // Already back (moved back before the run died), or there again: leave it.
      if (errnoOf(error) !== 'EEXIST' && errnoOf(error) !== 'ENOTEMPTY') throw error;
    }
  }
}

/**
 * Undoes the swaps a dead run left half-done in its trash (its lock names the
 * trash). Returns how many it undid.
 */
export function undoSwaps(trash: string | undefined): number {
  if (!trash) return 0;
  let undone = 0;
  for (const dir of [trash, path.join(trash, 'swept')]) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch (error) {
      if (isMissing(error)) continue;
      throw error;
    }
    for (const name of names.filter((n) => n.endsWith(ORIGIN))) {
      const marker = path.join(dir, name);
      undoOne(marker.slice(0, -ORIGIN.length), fs.readFileSync(marker, 'utf8'));
      fs.unlinkSync(marker);
      undone++;
    }
  }
  return undone;
}
