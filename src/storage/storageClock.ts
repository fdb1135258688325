/**
 * The storage's clock. "Newer than the grace" compares blob data mtimes, which
 * the storage's clock wrote (the kernel of the machine that holds the disk, an
 * NFS server), with "now". This process's clock may be skewed from it (a
 * container, a VM, another host): 2 hours ahead, and a layer uploaded a minute
 * ago looks older than a 1 h grace and is swept under the push that needs it.
 * So "now" is the storage's: a file this run writes in the root tells it, by
 * its mtime read back after the write against this process's clock then.
 */
export interface StorageClock {
  /** `storage`: from a file this run wrote in the root; `process`: nothing was written (a dry run, a lock taken on a full disk), this process's own. */
  source: 'storage' | 'process';
  /** The storage's clock minus this process's, in milliseconds (0 for this process's own). */
  offsetMs: number;
}

export const PROCESS_CLOCK: StorageClock = { source: 'process', offsetMs: 0 };
