/** The clock of a filesystem: the mtime of a file this run wrote (what a storage clock is: ../storageClock.ts). */
import fs from 'node:fs';
import { PROCESS_CLOCK, type StorageClock } from '../storageClock.js';

/**
 * The clock of the storage holding `file`, which this process has just
 * written. Its own time is read after the stat, so the offset errs early (as
 * does a filesystem's coarse mtime): "now" is then a little earlier than the
 * storage's, and the grace keeps a little more, never less.
 */
export function clockOfWritten(file: string): StorageClock {
  try {
    const { mtimeMs } = fs.statSync(file);
    return { source: 'storage', offsetMs: Math.floor(mtimeMs - Date.now()) };
  } catch {
    // Gone already (taken over by another run, which the lock finds itself): nothing to read the storage's time from.
    return PROCESS_CLOCK;
  }
}
