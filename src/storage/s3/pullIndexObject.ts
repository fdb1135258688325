/**
 * The pull index in a bucket: the object `<rootdirectory>/.regsweep-pulls`,
 * beside the docker/ prefix and the run lock (lock.ts). One PUT is atomic (the
 * object appears whole or the old one stays) and carries Content-MD5 (put.ts),
 * so no temp object is needed. Keys that may read but not write the bucket
 * (AccessDenied on the PUT) leave the index as it is: read, not written.
 */
import type { S3Location } from './location.js';
import { keyPrefix } from './location.js';
import type { BucketClient } from './client.js';
import { putObject, readBack } from './put.js';
import { PULL_INDEX_NAME, type PullIndexWrite } from '../pullIndexStore.js';

/** The index's key: beside docker/, as `<root>/.regsweep-pulls` is on a filesystem. */
export function pullIndexKey(location: Pick<S3Location, 'rootdirectory'>): string {
  return `${keyPrefix(location)}${PULL_INDEX_NAME}`;
}

/** The index's text, or undefined when there is none yet. Throws what bucketError makes of a failed read. */
export async function readPullIndexObject(client: BucketClient): Promise<string | undefined> {
  const found = await readBack(client, pullIndexKey(client.location));
  return found === undefined ? undefined : Buffer.from(found.body).toString('utf8');
}

/** Whether the server refused the write for want of permission (403, AccessDenied), rather than failing it. */
function refused(error: unknown): boolean {
  const cause = ((error as { cause?: unknown }).cause ?? error) as { name?: string; $metadata?: { httpStatusCode?: number } };
  return cause.name === 'AccessDenied' || cause.$metadata?.httpStatusCode === 403;
}

/** Writes the index in one PUT. */
export async function writePullIndexObject(client: BucketClient, text: string): Promise<PullIndexWrite> {
  try {
    await putObject(client, pullIndexKey(client.location), text);
    return { state: 'written' };
  } catch (error) {
    if (refused(error)) return { state: 'read-only' };
    return { state: 'failed', problem: (error as Error).message };
  }
}
