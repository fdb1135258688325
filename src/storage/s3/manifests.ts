/**
 * The manifests the revisions of a bucket's repositories name, read as scan.ts
 * reads them: parsed and checked against their digest, missing when their
 * blob has no data, unreadable (a problem that blocks garbage-collect) when
 * the bytes are no manifest. Each distinct digest is read once, however many
 * repositories link it.
 */
import type { Digest, RepositoryState } from '../../model.js';
import { hexOf } from '../layout.js';
import { type ManifestRead, manifestRead } from '../manifest.js';
import type { RepositoryScan } from '../source.js';
import type { BucketClient } from './client.js';
import type { BucketKeys } from './keys.js';
import { type Limit, readObject } from './listing.js';


/** distribution 3.x refuses a manifest larger than this (maxManifestBodySize): a blob larger is no manifest, and is not downloaded to say so. */
const MAX_MANIFEST_BYTES = 4 << 20;

async function readManifest(client: BucketClient, limit: Limit, keys: BucketKeys, blobSizes: ReadonlyMap<string, number>, digest: Digest): Promise<ManifestRead> {
  const size = blobSizes.get(hexOf(digest));
  if (size === undefined) return { missing: true };
  if (size > MAX_MANIFEST_BYTES) return { error: `not a manifest: its blob holds ${size} bytes, more than a manifest may` };
  const raw = await readObject(client, limit, keys.keyFor({ kind: 'blobData', digest }));
  // Swept since the listing (undefined): missing, as a scan that came a moment later would find it.
  return manifestRead(raw, digest);
}

/** For each repository, in the same order, its revisions with their manifests as read. */
export async function readManifests(client: BucketClient, limit: Limit, keys: BucketKeys, blobSizes: ReadonlyMap<string, number>, repos: readonly RepositoryState[]): Promise<Array<RepositoryScan['manifests']>> {
  const reads = new Map<Digest, Promise<ManifestRead>>();
  for (const repo of repos) {
    for (const digest of repo.revisions) if (!reads.has(digest)) reads.set(digest, readManifest(client, limit, keys, blobSizes, digest));
  }
  // Awaited together, so a failed read never leaves the others' rejections unhandled.
  const settled = new Map<Digest, ManifestRead>();
  const entries = [...reads.entries()];
  (await Promise.all(entries.map(([, read]) => read))).forEach((read, i) => settled.set((entries[i] as [Digest, unknown])[0], read));
  return repos.map((repo) => repo.revisions.map((digest): [Digest, ManifestRead] => [digest, settled.get(digest) as ManifestRead]));
}
