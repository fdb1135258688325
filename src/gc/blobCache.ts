/**
 * The registry's blob-descriptor cache when it outlives the registry (Redis):
 * after garbage-collect it still says swept blobs exist, and a client that
 * pushes them again skips their upload and gets a broken image. regsweep
 * makes it forget what it removed, before the registry serves again.
 */
import type { Digest } from '../model.js';

export interface BlobCache {
  /** Where the cache is, for the report and errors (no password). */
  readonly where: string;
  /** Refuses (UsageError, exit 2) when the cache cannot be reached from here. Called before anything changes. */
  check(): Promise<void>;
  /**
   * Forgets the blobs garbage-collect swept (everywhere), and the revisions
   * each repository lost (in that repository). Returns the entries removed.
   */
  forget(swept: readonly Digest[], unlinked: ReadonlyMap<string, readonly Digest[]>): Promise<number>;
  close(): Promise<void>;
}
