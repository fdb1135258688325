/**
 * The storage's clock. "Newer than the grace" compares blob data mtimes, which
 * the storage's clock wrote (the kernel of the machine that holds the disk, an
 * NFS server), with "now". This process's clock may be skewed from it (a
 * container, a VM, another host): 2 hours ahead, and a layer uploaded a minute
 * ago looks older than a 1 h grace and is swept under the push that needs it.
 * So "now" is the storage's: a file this run writes in the root tells it, by
 * its mtime read back after the write against this process's clock then.
 */
import fs from 'node:fs';

export interface StorageClock {
  /** `storage`: from a file this run wrote in the root; `process`: nothing was written (a dry run, a lock taken on a full disk), this process's own. */
  source: 'storage' | 'process';
  /** The storage's clock minus this process's, in milliseconds (0 for this process's own). */
  offsetMs: number;
}

export const PROCESS_CLOCK: StorageClock = { source: 'process', offsetMs: 0 };

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
