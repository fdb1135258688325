/**
 * Reading a bucket at its floor: flat listings (ListObjectsV2, no delimiter,
 * 1,000 keys a page) of prefixes that run side by side, one delimited listing
 * where the prefixes to split by must first be found, and small reads, all
 * through one bound on the requests in flight.
 */
import type { BucketClient } from './client.js';
import { bucketError } from './client.js';

/** What a listing says of an object: all the inventory needs, never its body. */
export interface ListedObject {
  key: string;
  size: number;
  /** LastModified, ms since the epoch: the object's mtime. */
  modified: number;
  /** Without quotes; for an object written in one PUT without SSE-KMS or SSE-C, the hex MD5 of its bytes. */
  etag: string;
}

/** At most `limit` calls of `run` in flight at once; the rest wait in order. */
export function bounded(limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await task();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

export type Limit = ReturnType<typeof bounded>;

/** Every object whose key starts with `prefix`, page by page in key order (each page handed to `onPage` as it comes). */
export async function listFlat(client: BucketClient, limit: Limit, prefix: string, onPage: (objects: ListedObject[]) => void): Promise<void> {
  const { s3, sdk, location } = client;
  let token: string | undefined;
  do {
    const page = await limit(() =>
      s3.send(new sdk.ListObjectsV2Command({ Bucket: location.bucket, Prefix: prefix, MaxKeys: 1000, ContinuationToken: token })).catch((error: unknown) => {
        throw bucketError(client, error, `listing ${prefix}`);
      }),
    );
    onPage(
      (page.Contents ?? []).map((o) => ({
        key: o.Key ?? '',
        size: o.Size ?? 0,
        modified: o.LastModified?.getTime() ?? 0,
        etag: (o.ETag ?? '').replace(/"/g, ''),
      })),
    );
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}

/** The "directories" right below `prefix` (which ends in '/'): the names of its common prefixes, in key order. */
export async function listDirectories(client: BucketClient, limit: Limit, prefix: string): Promise<string[]> {
  const { s3, sdk, location } = client;
  const names: string[] = [];
  let token: string | undefined;
  do {
    const page = await limit(() =>
      s3.send(new sdk.ListObjectsV2Command({ Bucket: location.bucket, Prefix: prefix, Delimiter: '/', MaxKeys: 1000, ContinuationToken: token })).catch((error: unknown) => {
        throw bucketError(client, error, `listing ${prefix}`);
      }),
    );
    for (const p of page.CommonPrefixes ?? []) if (p.Prefix) names.push(p.Prefix.slice(prefix.length, -1));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return names;
}

/** The bytes of an object (the first `maxBytes` when given), or undefined when it is gone. */
export async function readObject(client: BucketClient, limit: Limit, key: string, maxBytes?: number): Promise<Uint8Array | undefined> {
  const { s3, sdk, location } = client;
  return limit(async () => {
    try {
      const range = maxBytes === undefined ? undefined : `bytes=0-${maxBytes - 1}`;
      const answer = await s3.send(new sdk.GetObjectCommand({ Bucket: location.bucket, Key: key, Range: range }));
      return (await answer.Body?.transformToByteArray()) ?? new Uint8Array();
    } catch (error) {
      if ((error as { name?: string }).name === 'NoSuchKey') return undefined;
      throw bucketError(client, error, `reading ${key}`);
    }
  });
}
