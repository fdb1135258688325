/**
 * Removals in a bucket: many keys in DeleteObjects requests (at most 1,000
 * keys each, quiet mode: the answer lists only the keys that failed), a few
 * requests in flight at once; "a directory" (every key under a prefix: one
 * flat listing, then those batches); and keys that may go only while another
 * key is absent.
 *
 * Each batch is handed to `onBatch` before the request that deletes it, and
 * that request waits for it: a journal line made durable there is on disk
 * before any of its keys can be gone (a journal written first, as the
 * filesystem removals do). A key the server refuses in a 200 answer (its
 * per-key Errors: AccessDenied, InternalError…) is reported with the server's
 * code, never taken as removed. A request that fails as a whole is retried by
 * the client's retry strategy (client.ts), then ends the removal with an
 * error naming it; batches already sent finish first, none starts after.
 *
 * S3 deletes are idempotent: a key that was already gone counts as removed.
 */
import type { BucketClient } from './client.js';
import { bucketError } from './client.js';
import { bounded, listFlat } from './listing.js';

/** The most keys one DeleteObjects request may carry. */
const MAX_BATCH = 1000;

interface RemovalFailure {
  key: string;
  /** The server's error code for this key (`AccessDenied`, `InternalError`…). */
  code: string;
  message: string;
}

export interface Removal {
  /** Keys the server says it removed (or that were already gone), in the order given. */
  removed: string[];
  /** Keys it refused, each with why. */
  failed: RemovalFailure[];
}

export interface RemoveOptions {
  /** DeleteObjects requests in flight at once (default 8). */
  concurrency?: number;
  /** Keys per request (default and at most 1,000). */
  batchSize?: number;
  /**
   * Awaited before the request that removes these keys is sent (one call at a
   * time, in order): where a journal records them. If it throws, the removal
   * stops with that error and this batch is not sent.
   */
  onBatch?: (keys: readonly string[]) => Promise<void> | void;
}

function batchesOf(keys: Iterable<string>, size: number): string[][] {
  const unique = [...new Set(keys)];
  for (const key of unique) if (key === '') throw new Error('an empty key cannot be removed');
  const batches: string[][] = [];
  for (let i = 0; i < unique.length; i += size) batches.push(unique.slice(i, i + size));
  return batches;
}

/** One DeleteObjects request for `keys`, after the hook: what went and what did not. */
async function removeBatch(client: BucketClient, keys: string[]): Promise<Removal> {
  const { s3, sdk, location } = client;
  let answer;
  try {
    answer = await s3.send(new sdk.DeleteObjectsCommand({ Bucket: location.bucket, Delete: { Quiet: true, Objects: keys.map((Key) => ({ Key })) } }));
  } catch (error) {
    throw bucketError(client, error, `removing ${keys.length} keys (${keys[0]}${keys.length > 1 ? ' …' : ''})`);
  }
  const failed = (answer.Errors ?? []).map((e) => ({ key: e.Key ?? '', code: e.Code ?? 'unknown', message: e.Message ?? '' }));
  const refused = new Set(failed.map((f) => f.key));
  return { removed: keys.filter((k) => !refused.has(k)), failed };
}

/** Removes `keys` (duplicates once) in batches; see the top of this file. */
export async function removeKeys(client: BucketClient, keys: Iterable<string>, options: RemoveOptions = {}): Promise<Removal> {
  const size = Math.min(options.batchSize ?? MAX_BATCH, MAX_BATCH);
  if (!(size >= 1)) throw new Error(`batchSize must be 1 to ${MAX_BATCH}`);
  const batches = batchesOf(keys, size);
  const results: Removal[] = new Array(batches.length);
  const limit = bounded(Math.max(1, options.concurrency ?? 8));
  let hooks: Promise<void> = Promise.resolve();
  let stopped: unknown;
  await Promise.all(
    batches.map((batch, i) =>
      limit(async () => {
        // Slots open in batch order, so the hooks run one at a time in that order, at most `concurrency` ahead of the removals.
        const previous = hooks;
        let done = (): void => {};
        hooks = new Promise((resolve) => (done = resolve));
        try {
          await previous;
          if (stopped === undefined) await options.onBatch?.(batch);
        } catch (error) {
          stopped ??= error;
        } finally {
          done();
        }
        if (stopped !== undefined) return;
        try {
          results[i] = await removeBatch(client, batch);
        } catch (error) {
          stopped ??= error;
        }
      }),
    ),
  );
  if (stopped !== undefined) throw stopped;
  return { removed: results.flatMap((r) => r.removed), failed: results.flatMap((r) => r.failed) };
}

/**
 * Removes every key under `prefix` ("a directory": it must end in '/' and
 * name something below the bucket's top): one flat listing, then batches.
 */
export async function removeDirectory(client: BucketClient, prefix: string, options: RemoveOptions = {}): Promise<Removal> {
  if (!prefix.endsWith('/') || prefix.replace(/\/+/g, '') === '') throw new Error(`not a directory prefix: ${JSON.stringify(prefix)}`);
  const keys: string[] = [];
  await listFlat(client, bounded(1), prefix, (page) => {
    for (const o of page) keys.push(o.key);
  });
  return removeKeys(client, keys, options);
}

/** Whether each key exists now: one HEAD each, a few in flight. */
async function existing(client: BucketClient, keys: Iterable<string>, concurrency: number): Promise<Set<string>> {
  const { s3, sdk, location } = client;
  const limit = bounded(concurrency);
  const found = new Set<string>();
  await Promise.all(
    [...new Set(keys)].map((key) =>
      limit(async () => {
        try {
          await s3.send(new sdk.HeadObjectCommand({ Bucket: location.bucket, Key: key }));
          found.add(key);
        } catch (error) {
          if ((error as { name?: string }).name === 'NotFound' || (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return;
          throw bucketError(client, error, `checking ${key}`);
        }
      }),
    ),
  );
  return found;
}

export interface ConditionalRemoval extends Removal {
  /** Keys left because their `unless` key exists. */
  kept: string[];
}

/**
 * Removes each `key` only while its `unless` key is absent (the sweep removes
 * a blob's `_layers` link only while the blob's data is still gone): a HEAD
 * of each `unless` key, then the batches of those still absent.
 *
 * What remains racy: S3 has no conditional delete across keys (and radosgw 16
 * ignores If-Match on DELETE altogether), so between the HEAD and the
 * DeleteObjects request a writer may create the `unless` key (a push
 * uploading the blob again) and the key still goes: a link removed under a
 * blob that is back. On a filesystem the same check and removal are two
 * syscalls with the same gap, closed there, as here, by holding every writer
 * (the registry paused or read-only) while this runs; a replica this run does
 * not hold could still write in the gap of a few milliseconds.
 */
export async function removeUnless(client: BucketClient, pairs: ReadonlyArray<{ key: string; unless: string }>, options: RemoveOptions = {}): Promise<ConditionalRemoval> {
  const present = await existing(
    client,
    pairs.map((p) => p.unless),
    Math.max(1, options.concurrency ?? 8) * 4,
  );
  const kept = [...new Set(pairs.filter((p) => present.has(p.unless)).map((p) => p.key))];
  const keep = new Set(kept);
  const result = await removeKeys(
    client,
    pairs.filter((p) => !keep.has(p.key)).map((p) => p.key),
    options,
  );
  return { ...result, kept };
}
