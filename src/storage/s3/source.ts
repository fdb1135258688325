/**
 * A registry's bucket as a TreeSource: the inventory (flat listings and one
 * read per link and manifest, inventory.ts) handed to the planner as the
 * filesystem walk hands a tree, repositories in name order, then the blobs.
 */
import type { Counts } from '../../model.js';
import type { StorageClock } from '../storageClock.js';
import { type ScanOptions, type TreeSource, type TreeVisitor, type WalkResult, visitRepository } from '../source.js';
import type { BucketClient } from './client.js';
import type { RequestCount } from '../source.js';
import { ServerClock } from './clock.js';
import { inventoryBucket } from './inventory.js';

/** Requests in flight at once when the run names no --concurrency: an object store answers many side by side. */
const DEFAULT_REQUESTS = 16;

export interface BucketSource extends TreeSource {
  readonly client: BucketClient;
  /** Every request sent to the bucket so far, retries included. */
  readonly requests: RequestCount;
  /** Requests in flight at once. */
  readonly concurrency: number;
  /** The S3 server's clock (from the Date of its responses), which wrote the LastModified the grace compares with. */
  clock(): Promise<StorageClock>;
}

/** `concurrency`: requests in flight at once (the run's --concurrency where it names one). */
export function bucketSource(client: BucketClient, concurrency = DEFAULT_REQUESTS): BucketSource {
  return {
    client,
    where: client.describe,
    requests: client.requests,
    concurrency,
    clock: () => ServerClock.of(client).measure(),
    async walk(options: ScanOptions, visitor: TreeVisitor): Promise<WalkResult> {
      const inventory = await inventoryBucket(client, { times: options.times, recentAfter: options.recentAfter, concurrency });
      visitor.found?.(inventory.found);
      const counts: Counts = { repositories: 0, tags: 0, manifests: 0 };
      const phase = options.phase ?? 'scan';
      inventory.repositories.forEach((scan, i) => {
        visitRepository(scan, counts, visitor);
        options.onProgress?.({ phase, done: i + 1, total: inventory.repositories.length, unit: 'repositories' });
      });
      visitor.blobs(inventory.blobs);
      return { counts, problems: inventory.problems };
    },
  };
}
