/**
 * Deletes a directory tree reading each directory a few entries at a time
 * (fs.opendirSync), never a whole listing. A trash can hold a million and
 * more entries in one directory (the history entries and blobs a run took one
 * by one): fs.rmSync reads such a listing into one array, with a path string
 * per entry, and a real run on a million revisions grew by some 300 MiB there.
 * Symbolic links are removed, never followed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { errnoOf, isMissing, isNotEmpty } from './errno.js';

function* removingEntry(file: string): Generator<void> {
  try {
    fs.unlinkSync(file);
  } catch (error) {
    if (isMissing(error)) return;
    // A directory the listing did not type (some filesystems give no type).
    const code = errnoOf(error);
    if (code === 'EISDIR' || code === 'EPERM') yield* removing(file);
    else throw error;
  }
}

/** The deletion of `target` and everything below it, one step an entry gone. */
function* removing(target: string): Generator<void> {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(target);
  } catch (error) {
    if (isMissing(error)) return;
    throw error;
  }
  if (!stat.isDirectory()) return yield* removingEntry(target);
  for (;;) {
    let removed = 0;
    const dir = fs.opendirSync(target, { bufferSize: 256 });
    try {
      for (let entry = dir.readSync(); entry !== null; entry = dir.readSync()) {
        const inside = `${target}${path.sep}${entry.name}`;
        if (entry.isDirectory()) yield* removing(inside);
        else yield* removingEntry(inside);
        removed++;
        yield;
      }
    } finally {
      dir.closeSync();
    }
    try {
      fs.rmdirSync(target);
      return;
    } catch (error) {
      if (isMissing(error)) return;
      // Entries added meanwhile: read again; none found though not empty is not ours to loop on.
      if (!isNotEmpty(error) || removed === 0) throw error;
    }
  }
}

/** Deletes `target` and everything below it; nothing when it is gone already. */
export function removeTree(target: string): void {
  for (const _ of removing(target));
}

/**
 * removeTree, letting the event loop run every `every` entries: a trash of
 * millions of entries takes minutes to delete, and a SIGTERM or SIGINT in
 * that time is handled there (the run gives its lock up and ends, and the
 * next run deletes the rest), not once the last entry is gone.
 */
export async function removeTreeYielding(target: string, every = 1024): Promise<void> {
  let steps = 0;
  for (const _ of removing(target)) if (++steps % every === 0) await new Promise<void>((resolve) => setImmediate(resolve));
}
