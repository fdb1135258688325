/**
 * Where the pull index (plan/pullIndex.ts) is kept: one small text beside
 * docker/ in the storage root, so it moves with the registry's data. On a
 * filesystem a file (fs/pullIndexFile.ts), in a bucket an object
 * (s3/pullIndexObject.ts), both named as below and both written whole or not
 * at all.
 */

/** The index's name beside docker/: `<root>/.regsweep-pulls`, or the key `<rootdirectory>/.regsweep-pulls`. */
export const PULL_INDEX_NAME = '.regsweep-pulls';

/**
 * What writing the index came to. `read-only`: the storage cannot be written
 * by this process (a dry run from a read-only mount, keys that may only read),
 * and nothing was changed. `failed`: it could be written but the write did not
 * land (a full disk): the previous index stands; the run goes on, since the
 * index is what a later run reads, not what this one removes by.
 */
export type PullIndexWrite = { state: 'written' } | { state: 'read-only' } | { state: 'failed'; problem: string };
