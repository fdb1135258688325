/**
 * Unfinished blob uploads in a bucket (`--stale-uploads`), as uploads.ts finds
 * them on a filesystem: `_uploads/<id>/` of a repository, with the time it
 * began in `startedat` (one small read each). The bytes received so far are
 * not in a listed object: the s3 driver writes an upload's `data` as a
 * multipart upload it completes only when the blob is, so they are the parts
 * of the multipart uploads at that key (ListMultipartUploads, ListParts), and
 * removing the upload aborts them, else the bucket keeps their bytes. One
 * whose start cannot be read is left alone.
 */
import type { StaleUpload } from '../uploads.js';
import { parseStartedAt } from '../uploads.js';
import type { BucketClient } from './client.js';
import { bucketError } from './client.js';
import { BucketKeys } from './keys.js';
import { listRepositoryKeys } from './inventory.js';
import { type Limit, bounded, readObject } from './listing.js';
import type { RepositoryKeys } from './repositoryKeys.js';

/** A stale upload with every key it holds, and the multipart uploads of its `data`. */
export interface BucketUpload extends StaleUpload {
  keys: string[];
  multipart: Array<{ key: string; uploadId: string }>;
}

/** The multipart uploads at `key` (exactly), with the bytes of their parts. */
async function multipartAt(client: BucketClient, limit: Limit, key: string): Promise<{ uploads: BucketUpload['multipart']; bytes: number }> {
  const { s3, sdk, location } = client;
  const listed = await limit(() => s3.send(new sdk.ListMultipartUploadsCommand({ Bucket: location.bucket, Prefix: key }))).catch((error: unknown) => {
    throw bucketError(client, error, `listing the multipart uploads of ${key}`);
  });
  const uploads = (listed.Uploads ?? []).filter((u) => u.Key === key && u.UploadId).map((u) => ({ key, uploadId: u.UploadId as string }));
  let bytes = 0;
  for (const { uploadId } of uploads) {
    let marker: string | undefined;
    do {
      const page = await limit(() => s3.send(new sdk.ListPartsCommand({ Bucket: location.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }))).catch((error: unknown) => {
        throw bucketError(client, error, `listing the parts of ${key}`);
      });
      for (const part of page.Parts ?? []) bytes += part.Size ?? 0;
      marker = page.IsTruncated ? page.NextPartNumberMarker : undefined;
    } while (marker);
  }
  return { uploads, bytes };
}

/** Aborts multipart uploads (their parts' bytes go); one already gone counts as aborted. */
export async function abortMultipart(client: BucketClient, limit: Limit, uploads: BucketUpload['multipart']): Promise<void> {
  const { s3, sdk, location } = client;
  await Promise.all(
    uploads.map(({ key, uploadId }) =>
      limit(() => s3.send(new sdk.AbortMultipartUploadCommand({ Bucket: location.bucket, Key: key, UploadId: uploadId }))).catch((error: unknown) => {
        if ((error as { name?: string }).name === 'NoSuchUpload') return;
        throw bucketError(client, error, `aborting the upload of ${key}`);
      }),
    ),
  );
}

/** The uploads of `repos` (listed with keepKeys) started before `before` (ms since the epoch), by repository and id. */
export async function staleUploadsIn(client: BucketClient, limit: Limit, repos: readonly RepositoryKeys[], before: number): Promise<BucketUpload[]> {
  const keys = new BucketKeys(client.location);
  const found: Array<Promise<BucketUpload | undefined>> = [];
  for (const repo of repos) {
    const dir = keys.dirFor({ kind: 'uploads', name: repo.name });
    const byId = new Map<string, { keys: string[]; bytes: number; startedAt?: string }>();
    for (const object of repo.uploads ?? []) {
      const [id, ...rest] = BucketKeys.below(dir, object.key);
      if (!id || rest.length === 0) continue;
      const upload = byId.get(id) ?? { keys: [], bytes: 0 };
      byId.set(id, upload);
      upload.keys.push(object.key);
      if (rest.length === 1 && rest[0] === 'data') upload.bytes = object.size;
      if (rest.length === 1 && rest[0] === 'startedat') upload.startedAt = object.key;
    }
    for (const [id, upload] of [...byId].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (!upload.startedAt) continue;
      const startedAt = upload.startedAt;
      found.push(
        (async () => {
          const bytes = await readObject(client, limit, startedAt, 64);
          const began = bytes && parseStartedAt(Buffer.from(bytes).toString('utf8'));
          if (began === undefined || began >= before) return undefined;
          const multipart = await multipartAt(client, limit, `${dir}${id}/data`);
          return { repository: repo.name, id, startedAt: new Date(began).toISOString(), bytes: upload.bytes + multipart.bytes, keys: upload.keys, multipart: multipart.uploads };
        })(),
      );
    }
  }
  return (await Promise.all(found)).filter((u): u is BucketUpload => u !== undefined);
}

/** What a dry run reports: the stale uploads of the bucket's repositories (those of `names`, all when absent), from a listing of its own. */
export async function findStaleUploadsInBucket(client: BucketClient, concurrency: number, before: number, names?: ReadonlySet<string>): Promise<StaleUpload[]> {
  const limit = bounded(concurrency);
  const repos = (await listRepositoryKeys(client, limit, new BucketKeys(client.location), true)).filter((r) => !names || names.has(r.name));
  return (await staleUploadsIn(client, limit, repos, before)).map(({ keys: _, multipart: __, ...upload }) => upload);
}
