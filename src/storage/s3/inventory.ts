/**
 * A registry's bucket read at its floor, into exactly what the filesystem scan
 * makes of a tree (scan.ts): a RepositoryScan per repository, in name order,
 * and the blobs as a BlobPart, with the same problems for the same damage.
 *
 * The reads: flat listings of `blobs/sha256/<xx>/` (each blob's `data` key
 * with its size and LastModified) and of `repositories/<top>/` for every top
 * level name, side by side within one bound on requests in flight; two
 * delimited listings first find those prefixes. Then a GET per distinct
 * manifest a revision names (not one per repository that links it). Links
 * need no GET when the listing's ETag is the MD5 of the content they must
 * hold: `sha256:<hex>` of a revision or index entry's own directory, or of
 * one of its tag's index entries for a current link. An ETag that is not (a
 * corrupt link, or a bucket whose ETags are no MD5: SSE-KMS, multipart) costs
 * one small GET, so the result never rests on the shortcut.
 *
 * It only reads. A bucket it cannot read (no such bucket, keys refused, no
 * endpoint) is a UsageError naming the bucket (client.ts).
 */
import { createHash } from 'node:crypto';
import { UsageError } from '../../errors.js';
import type { BlobPart, Digest, FoundRepository, Problem, RepositoryState } from '../../model.js';
import { digestFromHex, isRepositoryName, parseDigest } from '../layout.js';
import type { RepositoryScan } from '../source.js';
import type { BucketClient } from './client.js';
import type { RequestCount } from '../source.js';
import { BucketKeys } from './keys.js';
import { type Limit, type ListedObject, bounded, listDirectories, listFlat, readObject } from './listing.js';
import { readManifests } from './manifests.js';
import { type RepositoryKeys, RepositoryIndex } from './repositoryKeys.js';
import { type LinkContent, repositoryState } from './repositoryState.js';

export interface InventoryOptions {
  /** Also note push times (LastModified of current links and tag index links), as ScanOptions.times. */
  times?: boolean;
  /** Note blobs whose data is newer than this (ms since the epoch; default Infinity: none). */
  recentAfter?: number;
  /** Requests in flight at once (default 16). */
  concurrency?: number;
}

export interface BucketInventory {
  /** Every repository, valid name, in name order. */
  found: FoundRepository[];
  /** Each repository of `found`, in the same order, as scanRepository makes it. */
  repositories: RepositoryScan[];
  /** Every blob with data, in key order. */
  blobs: BlobPart;
  /** Problems outside any repository: bad repository names in walk order, then blobs at unexpected paths, by path. */
  problems: Problem[];
  /** The requests this inventory sent, retries included. */
  requests: RequestCount;
}

/** More than a link can be: read no further to say it is corrupt (read.ts reads as much). */
const LINK_READ_LIMIT = 128;

/** The blobs of one prefix directory, from its flat listing. */
interface BlobAccumulator {
  hex: string[];
  sizes: number[];
  /** Indexes into sizes. */
  recent: number[];
  problems: Problem[];
}

function blobsOf(keys: BucketKeys, prefix: string, objects: readonly ListedObject[], recentAfter: number, into: BlobAccumulator): void {
  const dir = `${keys.blobs}${prefix}/`;
  for (const object of objects) {
    const parts = BucketKeys.below(dir, object.key);
    // Only `<entry>/data` is a blob's data: garbage-collect counts nothing else either.
    if (parts.length !== 2 || parts[1] !== 'data') continue;
    const name = parts[0] as string;
    if (!digestFromHex(name) || name.slice(0, 2) !== prefix) {
      into.problems.push({ path: keys.display(object.key), message: 'blob data at an unexpected path; garbage-collect aborts on it', blocksGc: true });
      continue;
    }
    if (object.modified > recentAfter) into.recent.push(into.sizes.length);
    into.hex.push(name);
    into.sizes.push(object.size);
  }
}

interface Listed {
  blobs: BlobPart;
  /** The size of each blob's data, by digest: which manifests exist and how large. */
  blobSizes: Map<string, number>;
  repositories: RepositoryKeys[];
}

/** Every repository's keys as a flat listing per top-level name shows them (`keepKeys`: with every key, for a real run's removals). */
export async function listRepositoryKeys(client: BucketClient, limit: Limit, keys: BucketKeys, keepKeys = false, tops?: string[]): Promise<RepositoryKeys[]> {
  const index = new RepositoryIndex(keepKeys);
  const names = tops ?? (await listDirectories(client, limit, keys.repositories));
  // Top-level names starting with `_` are never walked: no repository can be below them.
  await Promise.all(
    names.filter((t) => !t.startsWith('_')).map((t) =>
      listFlat(client, limit, `${keys.repositories}${t}/`, (page) => {
        for (const object of page) index.add(BucketKeys.below(keys.repositories, object.key), object);
      }),
    ),
  );
  return index.repositories();
}

async function listBucket(client: BucketClient, limit: Limit, keys: BucketKeys, recentAfter: number): Promise<Listed> {
  const [prefixes, tops] = await Promise.all([listDirectories(client, limit, keys.blobs), listDirectories(client, limit, keys.repositories)]);
  if (prefixes.length === 0 && tops.length === 0) {
    throw new UsageError(`${keys.display(keys.prefix)} holds no registry storage (no keys below ${keys.v2}): check storage.s3.rootdirectory and bucket`);
  }
  // One accumulator per prefix directory, each filled page by page in key order, joined in prefix order.
  const perPrefix = prefixes.map(() => ({ hex: [] as string[], sizes: [] as number[], recent: [] as number[], problems: [] as Problem[] }));
  const [repositories] = await Promise.all([
    listRepositoryKeys(client, limit, keys, false, tops),
    ...prefixes.map((p, i) => listFlat(client, limit, `${keys.blobs}${p}/`, (page) => blobsOf(keys, p, page, recentAfter, perPrefix[i] as BlobAccumulator))),
  ]);
  const into: BlobAccumulator = { hex: [], sizes: [], recent: [], problems: [] };
  for (const part of perPrefix) {
    // Loops, not push(...spread): a prefix of a large bucket holds more blobs than a call takes arguments.
    for (const i of part.recent) into.recent.push(into.sizes.length + i);
    for (let i = 0; i < part.hex.length; i++) {
      into.hex.push(part.hex[i] as string);
      into.sizes.push(part.sizes[i] as number);
    }
    for (const problem of part.problems) into.problems.push(problem);
  }
  const digests = new Uint8Array(into.hex.length * 32);
  into.hex.forEach((hex, i) => Buffer.from(digests.buffer, i * 32, 32).write(hex, 'hex'));
  const blobSizes = new Map(into.hex.map((hex, i) => [hex, into.sizes[i] as number]));
  const problems = into.problems.sort((a, b) => ((a.path ?? '') < (b.path ?? '') ? -1 : 1));
  return { blobs: { digests, sizes: Float64Array.from(into.sizes), recent: into.recent, problems }, blobSizes, repositories };
}

/** The content of a link object: from its ETag when that is the MD5 of what it must hold, else read (its first 128 bytes). */
export async function linkContent(client: BucketClient, limit: Limit, object: ListedObject, expected: readonly Digest[]): Promise<LinkContent> {
  if (object.size === 'sha256:'.length + 64) {
    const known = expected.find((d) => createHash('md5').update(d).digest('hex') === object.etag);
    if (known) return { digest: known };
  }
  const bytes = object.size === 0 ? new Uint8Array() : await readObject(client, limit, object.key, LINK_READ_LIMIT);
  // Gone since the listing: as good as empty to the registry, and garbage-collect would stop on it the same way.
  const content = Buffer.from(bytes ?? new Uint8Array()).toString('utf8');
  const digest = parseDigest(content);
  return digest ? { digest } : { corrupt: content };
}

/** Reads the bucket. Throws a UsageError when it cannot be read at all. */
export async function inventoryBucket(client: BucketClient, options: InventoryOptions = {}): Promise<BucketInventory> {
  const before = { total: client.requests.total, byOperation: { ...client.requests.byOperation } };
  const limit = bounded(options.concurrency ?? 16);
  const keys = new BucketKeys(client.location);
  const listed = await listBucket(client, limit, keys, options.recentAfter ?? Infinity);
  const problems: Problem[] = [];
  const found: FoundRepository[] = [];
  const link = (object: ListedObject, expected: readonly Digest[]): Promise<LinkContent> => linkContent(client, limit, object, expected);
  const states: Array<Promise<RepositoryState>> = [];
  for (const repo of listed.repositories) {
    if (!isRepositoryName(repo.name)) {
      problems.push({ path: keys.display(`${keys.repositories}${repo.name}`), message: `directory ${JSON.stringify(repo.name)} looks like a repository but is not a valid repository name; garbage-collect aborts on it`, blocksGc: true });
      continue;
    }
    found.push({ name: repo.name, hasLayers: repo.hasLayers, hasManifests: repo.hasManifests });
    states.push(repositoryState(keys, repo, options.times ?? false, link));
  }
  const repos = await Promise.all(states);
  const manifests = await readManifests(client, limit, keys, listed.blobSizes, repos);
  const order = found.map((f, i) => ({ f, i })).sort((a, b) => (a.f.name < b.f.name ? -1 : a.f.name > b.f.name ? 1 : 0));
  return {
    found: order.map(({ f }) => f),
    repositories: order.map(({ i }) => ({ repo: repos[i] as RepositoryState, manifests: manifests[i] as RepositoryScan['manifests'] })),
    blobs: listed.blobs,
    problems: [...problems, ...listed.blobs.problems],
    requests: since(before, client.requests),
  };
}

function since(before: RequestCount, now: RequestCount): RequestCount {
  const byOperation: Record<string, number> = {};
  for (const [op, n] of Object.entries(now.byOperation)) if (n > (before.byOperation[op] ?? 0)) byOperation[op] = n - (before.byOperation[op] ?? 0);
  return { total: now.total - before.total, byOperation };
}
