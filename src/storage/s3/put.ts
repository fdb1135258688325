/**
 * Writing a small object whole (the run lock, later an index beside docker/),
 * and reading one back with what the server says of it.
 *
 * An S3 PUT is atomic by itself: the object appears only once the whole body
 * has arrived (a short body fails the request and the old object stays), so a
 * half write never lands. What a PUT does not guard by itself is a body
 * damaged on the way: the SDK adds a CRC32 checksum header, but radosgw 16
 * ignores it (a wrong x-amz-checksum-crc32 is stored), while it checks
 * Content-MD5 (a wrong one: 400 BadDigest). So every write here sends
 * Content-MD5.
 *
 * Conditional writes: `If-None-Match: *` (create only) and `If-Match: <etag>`
 * (replace only what we last saw) answer 412 when the condition fails. radosgw
 * 16 honours both on PUT, atomically (of 16 racing creates one wins), but
 * compares If-Match against the bare ETag: the quoted form RFC 7232 and AWS use
 * fails even when it matches. Callers that use If-Match find out which form the
 * server takes (lock.ts).
 */
import { createHash } from 'node:crypto';
import type { BucketClient } from './client.js';
import { bucketError } from './client.js';

export interface PutOptions {
  /** Create only: 412 if the key exists. */
  ifNoneMatch?: boolean;
  /** Replace only this version: the If-Match header as sent (quoted or bare ETag). */
  ifMatch?: string;
}

/** What the server said of a write: its ETag (without quotes), or that its condition failed (412) or raced another conditional write (409). */
export type PutResult = { etag: string } | 'precondition failed' | 'conflict';

export function md5Hex(body: Uint8Array): string {
  return createHash('md5').update(body).digest('hex');
}

function bytesOf(body: Uint8Array | string): Uint8Array {
  return typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
}

/** Writes `body` at `key` in one PUT with Content-MD5, under the condition given. */
export async function putObject(client: BucketClient, key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<PutResult> {
  const { s3, sdk, location } = client;
  const bytes = bytesOf(body);
  const md5 = createHash('md5').update(bytes).digest('base64');
  try {
    const answer = await s3.send(
      new sdk.PutObjectCommand({
        Bucket: location.bucket,
        Key: key,
        Body: bytes,
        ContentMD5: md5,
        ContentLength: bytes.length,
        IfNoneMatch: options.ifNoneMatch ? '*' : undefined,
        IfMatch: options.ifMatch,
      }),
    );
    return { etag: (answer.ETag ?? '').replace(/"/g, '') };
  } catch (error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const name = (error as { name?: string }).name;
    if (status === 412 || name === 'PreconditionFailed') return 'precondition failed';
    // AWS answers 409 ConditionalRequestConflict to conditional writes that race each other.
    if (status === 409 && (options.ifMatch !== undefined || options.ifNoneMatch)) return 'conflict';
    throw bucketError(client, error, `writing ${key}`);
  }
}

/** An object as read back: its bytes, ETag, and LastModified and the response's Date, both by the server's clock (ms, second precision). */
export interface ReadBack {
  body: Uint8Array;
  etag: string;
  modified: number;
}

/** The object at `key` with its ETag and LastModified, or undefined when there is none. */
export async function readBack(client: BucketClient, key: string): Promise<ReadBack | undefined> {
  const { s3, sdk, location } = client;
  try {
    const answer = await s3.send(new sdk.GetObjectCommand({ Bucket: location.bucket, Key: key }));
    const body = (await answer.Body?.transformToByteArray()) ?? new Uint8Array();
    return { body, etag: (answer.ETag ?? '').replace(/"/g, ''), modified: answer.LastModified?.getTime() ?? 0 };
  } catch (error) {
    if ((error as { name?: string }).name === 'NoSuchKey') return undefined;
    throw bucketError(client, error, `reading ${key}`);
  }
}

/**
 * Writes `body` at `key` (unconditionally) and reads it back: true when the
 * object now holds exactly these bytes. False means another writer's PUT
 * landed after ours (last writer wins on S3).
 */
export async function putAndVerify(client: BucketClient, key: string, body: Uint8Array | string): Promise<boolean> {
  const bytes = bytesOf(body);
  await putObject(client, key, bytes);
  const back = await readBack(client, key);
  return back !== undefined && Buffer.from(back.body).equals(Buffer.from(bytes));
}
